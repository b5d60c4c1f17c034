"""The one parser of agent actions.

An action is either

- a tool call: JSON text or a dict ``{"name": ..., "arguments": {...}}`` (arguments may also
  be a JSON string, as OpenAI sends them);
- an OpenAI assistant message dict (or its JSON) with ``tool_calls`` and optional ``content``;
- a message to the user: any other string, or an assistant message dict with only ``content``.

Text that starts with ``{`` is read as an attempted tool call; if it is not a valid one the
result is :class:`Malformed` (the agent gets an error observation; the user never sees it).

Example:
    >>> parse_action('{"name": "get_order", "arguments": {"order_id": "#W1"}}')
    ToolCalls(calls=(ToolCall(name='get_order', arguments={'order_id': '#W1'}, id=None, error=None),), content='')
    >>> parse_action("Hello, how can I help?")
    Message(content='Hello, how can I help?')
    >>> parse_action('{"name": "x", ').reason
    'not valid JSON: Expecting property name enclosed in double quotes: line 1 column 14 (char 13)'
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pydantic_core


@dataclass(frozen=True)
class ToolCall:
    """One requested tool call; ``error`` is set when its arguments could not be read."""

    name: str
    arguments: dict[str, Any]
    id: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class ToolCalls:
    """One or more tool calls, with any text the agent sent alongside them."""

    calls: tuple[ToolCall, ...]
    content: str = ""


@dataclass(frozen=True)
class Message:
    """A message to the user."""

    content: str


@dataclass(frozen=True)
class Malformed:
    """An action that tried to be a tool call and failed; ``reason`` says why."""

    raw: str
    reason: str


Action = ToolCalls | Message | Malformed


def _arguments(raw: Any) -> tuple[dict[str, Any], str | None]:
    if raw is None:
        return {}, None
    if isinstance(raw, str):
        if not raw.strip():
            return {}, None
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as err:
            return {}, f"arguments are not valid JSON: {err}"
    if not isinstance(raw, dict):
        return {}, f"arguments must be a JSON object, got {type(raw).__name__}"
    return raw, None


def _one_call(item: Any) -> ToolCall | str:
    if not isinstance(item, dict):
        return "each tool call must be an object"
    call_id = item.get("id") if isinstance(item.get("id"), str) else None
    fn = item.get("function", item)
    if not isinstance(fn, dict):
        return "tool call 'function' must be an object"
    name = fn.get("name")
    if not isinstance(name, str) or not name:
        return "tool call has no 'name'"
    arguments, error = _arguments(fn.get("arguments"))
    return ToolCall(name=name, arguments=arguments, id=call_id, error=error)


def _from_dict(data: dict[str, Any], raw: str | Callable[[], str]) -> Action:
    """The action ``data`` describes; ``raw`` (or, lazily, what it returns) is the text a malformed one keeps."""

    def malformed(reason: str) -> Malformed:
        return Malformed(raw if isinstance(raw, str) else raw(), reason)

    if data.get("tool_calls"):
        items = data["tool_calls"]
        if not isinstance(items, list):
            return malformed("'tool_calls' must be a list")
        calls: list[ToolCall] = []
        for item in items:
            call = _one_call(item)
            if isinstance(call, str):
                return malformed(call)
            calls.append(call)
        content = data.get("content")
        return ToolCalls(tuple(calls), content if isinstance(content, str) else "")
    if "name" in data or "function" in data:
        call = _one_call(data)
        return malformed(call) if isinstance(call, str) else ToolCalls((call,))
    content = data.get("content")
    if isinstance(content, str):
        return Message(content)
    return malformed('expected a tool call {"name": ..., "arguments": {...}} or an assistant message')


def _plain(action: dict[str, Any]) -> dict[str, Any] | None:
    """``action`` as JSON values only (a round trip through pydantic-core's JSON); None if it has no JSON form.

    Values JSON has no type for are written as ``str(value)`` (sets and tuples as lists, NaN kept);
    a cycle or nesting past the serializer's depth limit has no JSON form.
    """
    try:
        data = pydantic_core.from_json(
            pydantic_core.to_json(action, fallback=str, inf_nan_mode="constants"), allow_inf_nan=True
        )
    except (TypeError, ValueError, RecursionError):  # PydanticSerializationError is a ValueError
        return None
    return data if isinstance(data, dict) else None


def _dict_text(action: dict[str, Any]) -> str:
    """The text of a dict action, for the record of a malformed one."""
    try:
        return json.dumps(action, ensure_ascii=False, default=str)
    except (TypeError, ValueError, RecursionError):
        return repr(action)


def parse_action(action: Any) -> Action:
    """Parse an agent action (string or dict); never raises."""
    if isinstance(action, dict):
        data = _plain(action)  # only JSON values reach the tools and the record
        if data is None:
            return Malformed(repr(action), "the action dict is not JSON-serialisable")
        return _from_dict(data, lambda: _dict_text(action))
    if not isinstance(action, str):
        return Malformed(repr(action), f"an action must be a string or a dict, got {type(action).__name__}")
    stripped = action.strip()
    if not stripped.startswith("{"):
        return Message(action)
    try:
        data = json.loads(stripped)
    except json.JSONDecodeError as err:
        return Malformed(action, f"not valid JSON: {err}")
    except RecursionError:
        return Malformed(action, "not valid JSON: nested too deeply")
    if not isinstance(data, dict):
        return Malformed(action, "expected a JSON object")
    return _from_dict(data, action)
