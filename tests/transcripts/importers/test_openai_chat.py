"""The OpenAI-format chat log importer: tool calls with their results, and ``file:line:col: field: message`` errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from envsim.transcripts.importers import TranscriptFormatError, read
from tests.conftest import REPO

PRODUCTION_LOG = REPO / "tests" / "data" / "production_log.jsonl"


def _call(call_id: str, name: str, arguments: Any) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def _write(tmp_path: Path, *lines: Any) -> Path:
    path = tmp_path / "log.jsonl"
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines), encoding="utf-8")
    return path


def test_turns_tool_calls_results_and_labels(tmp_path: Path) -> None:
    line = {
        "id": 42,
        "metadata": {"outcome": "failed"},
        "tools": [{"type": "function", "function": {"name": "get_order"}}],
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Where is "}, {"type": "text", "text": "#W1?"}]},
            {
                "role": "assistant",
                "content": "Checking.",
                "refusal": None,
                "tool_calls": [_call("a", "get_order", '{"order_id": "#W1"}'), _call("b", "ping", {"n": 1})],
            },
            {"role": "tool", "tool_call_id": "b", "content": "pong"},
            {"role": "tool", "tool_call_id": "a", "content": '{"status": "shipped"}'},
            {"role": "assistant", "content": "It has shipped."},
        ],
    }
    [conversation] = read("openai", _write(tmp_path, line))
    assert (conversation.corpus, conversation.id, conversation.labels) == ("openai", "42", {"outcome": "failed"})
    shown = [(t.role, t.tool.name if t.tool else t.text) for t in conversation.turns]
    assert shown == [
        ("system", "Be brief."),
        ("user", "Where is #W1?"),
        ("agent", "Checking."),
        ("tool", "get_order"),
        ("tool", "ping"),
        ("agent", "It has shipped."),
    ]
    get_order, ping = conversation.turns[3].tool, conversation.turns[4].tool
    assert get_order is not None and ping is not None
    assert (get_order.arguments, get_order.result) == ({"order_id": "#W1"}, {"status": "shipped"})
    assert (ping.arguments, ping.result) == ({"n": 1}, "pong")


def test_conversation_without_id_is_named_by_its_line(tmp_path: Path) -> None:
    path = _write(tmp_path, {"messages": [{"role": "user", "content": "a"}]}, "", {"messages": [{"role": "user"}]})
    assert [c.id for c in read("openai", path)] == ["line-1", "line-3"]


def test_the_production_log_reads() -> None:
    conversations = list(read("openai", PRODUCTION_LOG))
    assert [c.id for c in conversations] == ["prod-2291", "prod-2307"]
    assert all(c.labels["outcome"] == "failed" for c in conversations)
    calls = [t.tool.name for t in conversations[0].turns if t.tool is not None]
    assert calls == ["crm_lookup", "order_lookup", "order_cancel", "send_survey"]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            '{"messages": [{"role": "user", "content": "hi"}]',
            "log.jsonl:2:49: invalid JSON: Expecting ',' delimiter",
        ),
        ("[1, 2]", "log.jsonl:2:1: expected a JSON object, got list"),
        ({"mesages": []}, "log.jsonl:2:1: mesages: unknown field (did you mean 'messages'?)"),
        ({"messages": []}, "log.jsonl:2:1: messages: List should have at least 1 item after validation, not 0"),
        ({"messages": [{"role": "bot", "content": "x"}]}, "log.jsonl:2:1: messages.0.role: Input should be"),
        (
            {"messages": [{"role": "tool", "tool_call_id": "zz", "content": "x"}]},
            "log.jsonl:2:1: messages.0.tool_call_id: no earlier tool call has id 'zz'",
        ),
        (
            {"messages": [{"role": "assistant", "tool_calls": [_call("a", "f", '{"x": ')]}]},
            "log.jsonl:2:1: messages.0.tool_calls.0.function.arguments: invalid JSON: Expecting value",
        ),
        (
            {"messages": [{"role": "assistant", "tool_calls": [_call("a", "f", "[1]")]}]},
            "log.jsonl:2:1: messages.0.tool_calls.0.function.arguments: expected a JSON object of arguments",
        ),
    ],
)
def test_bad_lines_are_located(tmp_path: Path, line: Any, expected: str) -> None:
    path = _write(tmp_path, {"messages": [{"role": "user", "content": "fine"}]}, line)
    with pytest.raises(TranscriptFormatError) as caught:
        list(read("openai", path))
    assert str(caught.value).startswith(f"{tmp_path / expected}")
