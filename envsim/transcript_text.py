"""Plain-text rendering of an OpenAI-format message list (for ``render()`` and the CLI)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def format_message(message: dict[str, Any]) -> str:
    """One message as ``role: text`` (tool calls as ``name(arguments)``)."""
    role = message.get("role", "?")
    if message.get("tool_calls"):
        calls = ", ".join(f"{c['function']['name']}({c['function']['arguments']})" for c in message["tool_calls"])
        text = f"{message['content']} " if message.get("content") else ""
        return f"agent: {text}[calls {calls}]"
    label = {"assistant": "agent", "tool": "tool", "user": "user", "system": "system"}.get(role, role)
    return f"{label}: {message.get('content') or ''}"


def format_messages(messages: Sequence[dict[str, Any]], *, include_system: bool = False) -> str:
    """The conversation as text, one message per line."""
    return "\n".join(
        format_message(m) for i, m in enumerate(messages) if include_system or i > 0 or m.get("role") != "system"
    )
