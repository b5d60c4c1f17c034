"""Rendering message lists as text: whatever a stored trajectory holds renders."""

from __future__ import annotations

from envsim.transcript_text import format_message, format_messages


def test_malformed_tool_calls_and_content_render() -> None:
    message = {"role": "assistant", "content": "On it.", "tool_calls": [{"id": "c1"}, {"function": "x"}, 3]}
    assert format_message(message) == "agent: On it. [calls ?(), ?(), ?()]"
    assert format_message({"role": "assistant", "tool_calls": "oops"}) == "agent: [calls ?()]"
    assert format_message({"content": [{"type": "text", "text": "hi"}]}) == "?: [{'type': 'text', 'text': 'hi'}]"
    assert format_message({"role": 7, "content": None}) == "7: "


def test_the_system_prompt_is_left_out_unless_asked_for() -> None:
    messages = [{"role": "system", "content": "policy"}, {"role": "user", "content": "Hi"}]
    assert format_messages(messages) == "user: Hi"
    assert format_messages(messages, include_system=True) == "system: policy\nuser: Hi"
