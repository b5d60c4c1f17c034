"""The action parser."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from envsim.actions import Malformed, Message, ToolCall, ToolCalls, escape_surrogates, parse_action


def test_plain_text_is_a_message() -> None:
    assert parse_action("Hello there") == Message("Hello there")
    assert parse_action("") == Message("")


def test_tool_call_json_and_dict() -> None:
    expected = ToolCalls((ToolCall("f", {"a": 1}),))
    assert parse_action('{"name": "f", "arguments": {"a": 1}}') == expected
    assert parse_action({"name": "f", "arguments": '{"a": 1}'}) == expected
    assert parse_action({"name": "f"}) == ToolCalls((ToolCall("f", {}),))


def test_openai_assistant_message_with_tool_calls() -> None:
    action = {
        "role": "assistant",
        "content": "On it.",
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
            {"id": "c2", "type": "function", "function": {"name": "g", "arguments": "{bad"}},
        ],
    }
    parsed = parse_action(action)
    assert isinstance(parsed, ToolCalls) and parsed.content == "On it."
    assert parsed.calls[0] == ToolCall("f", {}, "c1")
    assert parsed.calls[1].error is not None and parsed.calls[1].error.startswith("arguments are not valid JSON")


def test_assistant_message_without_tool_calls_is_a_message() -> None:
    assert parse_action({"role": "assistant", "content": "Hi"}) == Message("Hi")


def test_malformed_attempts() -> None:
    for action in ['{"name": ', "{}", '{"name": 3}', '{"tool_calls": "x"}', '{"tool_calls": [1]}', 42, None]:
        assert isinstance(parse_action(action), Malformed), action
    assert parse_action({"name": "f", "arguments": [1]}) == ToolCalls(
        (ToolCall("f", {}, None, "arguments must be a JSON object, got list"),)
    )
    deep = "{" + '"a":{' * 5000 + "}" * 5001
    assert isinstance(parse_action(deep), Malformed)


def test_dict_actions_reach_the_tools_as_json_values_only() -> None:
    parsed = parse_action({"name": "f", "arguments": {"ids": ("a", "b"), "when": object, "x": 1.5}})
    assert isinstance(parsed, ToolCalls)
    arguments = parsed.calls[0].arguments
    assert arguments["ids"] == ["a", "b"] and arguments["when"] == str(object) and arguments["x"] == 1.5


def test_nan_and_infinities_are_not_json_numbers() -> None:
    """They are refused (a tool must not compute with them, and JSON Lines exports could not hold them)."""
    reason = "NaN, Infinity and numbers past a double's range are not JSON numbers"
    for value in [math.nan, math.inf, -math.inf]:
        parsed = parse_action({"name": "f", "arguments": {"x": [value]}})
        assert isinstance(parsed, Malformed) and parsed.reason == f"the action dict has no JSON form: {reason}"
    for number in ["NaN", "-Infinity", "1e999", "-1E+400", "1" + "0" * 400 + ".5"]:
        text = '{"name": "f", "arguments": {"x": {"y": ' + number + "}}}"
        assert parse_action(text) == Malformed(text, f"not valid JSON: {reason}"), number
        call = parse_action({"name": "f", "arguments": '{"x": ' + number + "}"})
        assert isinstance(call, ToolCalls) and call.calls[0].error == f"arguments are not valid JSON: {reason}"
    assert parse_action('{"name": "f", "arguments": {"x": 1e308, "y": "e999"}}') == ToolCalls(
        (ToolCall("f", {"x": 1e308, "y": "e999"}),)
    )


def test_a_malformed_dict_action_keeps_its_json_text_and_a_cyclic_one_is_malformed() -> None:
    parsed = parse_action({"tool_calls": "x", "content": "é"})
    assert isinstance(parsed, Malformed) and parsed.raw == '{"tool_calls": "x", "content": "é"}'
    cyclic: dict[str, object] = {}
    cyclic["self"] = cyclic
    parsed = parse_action(cyclic)
    assert isinstance(parsed, Malformed) and parsed.reason.startswith("the action dict has no JSON form")
    assert "Circular reference" in parsed.reason


class _Hostile:
    """A value whose ``repr`` and ``str`` raise."""

    def __repr__(self) -> str:
        raise RuntimeError("no repr")

    def __str__(self) -> str:
        raise RuntimeError("no str")


def _deep(levels: int) -> dict[str, Any]:
    root: dict[str, Any] = {}
    node = root
    for _ in range(levels):
        node["a"] = {}
        node = node["a"]
    return root


def _recordable(parsed: Malformed) -> None:
    """A malformed action's text and reason can be written as UTF-8 JSON."""
    json.dumps([parsed.raw, parsed.reason], ensure_ascii=False).encode("utf-8")


SURROGATE_ACTIONS: dict[str, Any] = {
    "text": "hello \ud800 there",
    "json text": '{"name": "f", "arguments": {"a": "\ud800"}}',
    "json escape": '{"name": "f", "arguments": {"a": "\\ud800"}}',
    "dict argument": {"name": "f", "arguments": {"a": "\udfff"}},
    "dict key": {"name": "f", "arguments": {"\ud800": 1}},
    "dict name": {"name": "f\ud800"},
    "assistant content": {"role": "assistant", "content": "hi \ud800"},
    "assistant tool call": {
        "role": "assistant",
        "tool_calls": [{"id": "c\ud800", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
    },
}


@pytest.mark.parametrize("form", list(SURROGATE_ACTIONS))
def test_a_lone_surrogate_in_any_form_is_malformed_and_recordable(form: str) -> None:
    parsed = parse_action(SURROGATE_ACTIONS[form])
    assert isinstance(parsed, Malformed), form
    assert "surrogate" in parsed.reason or "hex escape" in parsed.reason, parsed.reason
    _recordable(parsed)


def test_a_lone_surrogate_is_located_and_kept_as_an_escape() -> None:
    parsed = parse_action("caf\udce9!")
    assert isinstance(parsed, Malformed)
    assert parsed.reason == "the action is not valid Unicode text: a lone surrogate (U+DCE9) at character 3"
    assert parsed.raw == "caf\\udce9!"
    assert escape_surrogates("pair \U0001f600 kept") == "pair \U0001f600 kept"


def test_a_surrogate_pair_escape_in_json_is_a_character_not_an_error() -> None:
    assert parse_action('{"name": "f", "arguments": {"a": "\\ud83d\\ude00"}}') == ToolCalls(
        (ToolCall("f", {"a": "\U0001f600"}),)
    )


def test_deep_structures_are_malformed() -> None:
    deep = _deep(5000)
    for action in [deep, {"name": "f", "arguments": deep}, {"role": "assistant", "content": "x", "extra": deep}]:
        parsed = parse_action(action)
        assert isinstance(parsed, Malformed) and parsed.reason.endswith("nested too deeply"), parsed.reason
        _recordable(parsed)
    nested_list: list[Any] = []
    for _ in range(5000):
        nested_list = [nested_list]
    parsed = parse_action(nested_list)
    assert isinstance(parsed, Malformed) and parsed.raw == "<list object>"
    text = '{"name": "f", "arguments": ' + '{"a": ' * 5000 + "1" + "}" * 5001
    assert parse_action(text) == Malformed(text, "not valid JSON: nested too deeply")


def test_huge_integers_are_malformed() -> None:
    parsed = parse_action({"name": "f", "arguments": {"n": 10**5000}})  # its repr raises too (str() digit limit)
    assert parsed == Malformed(
        "<dict object>", "the action dict has no JSON form: an integer has more than 4300 digits"
    )
    text = '{"name": "f", "arguments": {"n": ' + "9" * 5000 + "}}"
    assert parse_action(text) == Malformed(text, "not valid JSON: an integer has more than 4300 digits")
    from_openai = parse_action({"function": {"name": "f", "arguments": '{"n": ' + "9" * 5000 + "}"}})
    assert isinstance(from_openai, ToolCalls)
    assert from_openai.calls[0].error == "arguments are not valid JSON: an integer has more than 4300 digits"
    assert parse_action({"name": "f", "arguments": {"n": 10**300}}) == ToolCalls((ToolCall("f", {"n": 10**300}),))


def test_objects_whose_repr_or_str_raises_are_malformed() -> None:
    parsed = parse_action(_Hostile())
    assert parsed == Malformed("<_Hostile object>", "an action must be a string or a dict, got _Hostile")
    for action in [{"name": "f", "arguments": {"x": _Hostile()}}, {"x": _Hostile()}]:
        parsed = parse_action(action)
        assert isinstance(parsed, Malformed) and parsed.reason.startswith("the action dict has no JSON form")
        assert "RuntimeError: no str" in parsed.reason and parsed.raw == "<dict object>"
        _recordable(parsed)


def test_an_action_longer_than_the_action_space_is_malformed_and_clipped() -> None:
    parsed = parse_action("x" * 101, max_length=100)
    assert isinstance(parsed, Malformed)
    assert parsed.reason == "the action has 101 characters, more than the action space's 100"
    assert parsed.raw == "x" * 100 + "... [101 characters in all]"
    parsed = parse_action({"name": "f", "arguments": {"a": "y" * 200}}, max_length=100)
    assert isinstance(parsed, Malformed) and "JSON text has" in parsed.reason and len(parsed.raw) < 140
    assert parse_action("x" * 100, max_length=100) == Message("x" * 100)


def test_a_str_subclass_is_read_as_its_text() -> None:
    class Sneaky(str):
        def strip(self, chars: str | None = None) -> str:
            raise RuntimeError("no strip")

    assert parse_action(Sneaky("hi")) == Message("hi")
