"""The action parser."""

from __future__ import annotations

from envsim.actions import Malformed, Message, ToolCall, ToolCalls, parse_action


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
    import math

    parsed = parse_action({"name": "f", "arguments": {"ids": ("a", "b"), "when": object, "x": math.nan}})
    assert isinstance(parsed, ToolCalls)
    arguments = parsed.calls[0].arguments
    assert arguments["ids"] == ["a", "b"] and arguments["when"] == str(object) and math.isnan(arguments["x"])


def test_a_malformed_dict_action_keeps_its_json_text_and_a_cyclic_one_is_malformed() -> None:
    parsed = parse_action({"tool_calls": "x", "content": "é"})
    assert isinstance(parsed, Malformed) and parsed.raw == '{"tool_calls": "x", "content": "é"}'
    cyclic: dict[str, object] = {}
    cyclic["self"] = cyclic
    parsed = parse_action(cyclic)
    assert isinstance(parsed, Malformed) and parsed.reason == "the action dict is not JSON-serialisable"
