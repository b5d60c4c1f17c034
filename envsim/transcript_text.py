"""Plain-text rendering of an OpenAI-format message list (for ``render()``, the CLI and the judge).

Any message list renders, including one read from a file: a tool call without a ``function``
object or a name shows as ``?``, content that is not text (a list of parts) as its ``str``.

Example:
    >>> print(format_messages([
    ...     {"role": "system", "content": "policy"},
    ...     {"role": "user", "content": "Hi"},
    ...     {"role": "assistant", "content": None, "tool_calls": [
    ...         {"id": "c1", "type": "function", "function": {"name": "get_order", "arguments": '{"id": 1}'}},
    ...         {"id": "c2", "type": "function"}]},
    ...     {"role": "tool", "tool_call_id": "c1", "content": "{}"}]))
    user: Hi
    agent: [calls get_order({"id": 1}), ?()]
    tool: {}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def _call_text(call: Any) -> str:
    """One tool call as ``name(arguments)``; ``?`` for what is missing."""
    function = call.get("function") if isinstance(call, Mapping) else None
    if not isinstance(function, Mapping):
        return "?()"
    return f"{function.get('name') or '?'}({function.get('arguments') or ''})"


def format_message(message: Mapping[str, Any]) -> str:
    """One message as ``role: text`` (tool calls as ``name(arguments)``)."""
    role = message.get("role", "?")
    calls = message.get("tool_calls")
    if calls:
        listed = ", ".join(_call_text(c) for c in calls) if isinstance(calls, list) else "?()"
        text = f"{message['content']} " if message.get("content") else ""
        return f"agent: {text}[calls {listed}]"
    label = {"assistant": "agent", "tool": "tool", "user": "user", "system": "system"}.get(str(role), str(role))
    return f"{label}: {message.get('content') or ''}"


def format_messages(messages: Sequence[Mapping[str, Any]], *, include_system: bool = False) -> str:
    """The conversation as text, one message per line."""
    return "\n".join(
        format_message(m) for i, m in enumerate(messages) if include_system or i > 0 or m.get("role") != "system"
    )
