"""The one parser of agent actions.

An action is either

- a tool call: JSON text or a dict ``{"name": ..., "arguments": {...}}`` (arguments may also
  be a JSON string, as OpenAI sends them);
- an OpenAI assistant message dict (or its JSON) with ``tool_calls`` and optional ``content``;
- a message to the user: any other string, or an assistant message dict with only ``content``.

Text that starts with ``{`` is read as an attempted tool call; if it is not a valid one the
result is :class:`Malformed` (the agent gets an error observation; the user never sees it).

Whatever it is given, :func:`parse_action` returns, and what it returns can be recorded and
written as JSON (UTF-8): an action that cannot be is :class:`Malformed` too. That is

- text (a message, JSON text, or any string in a dict) with a lone surrogate (``'\\ud800'``,
  or a JSON escape ``"\\ud800"`` without its pair): not Unicode text that UTF-8 can encode;
- nesting deeper than JSON parsing allows (a few hundred levels), an integer of more digits than
  Python converts to text (4,300), a cycle, or a value whose ``str()`` raises (in a dict action);
- NaN or an infinity (``NaN``, ``Infinity``, ``1e999``; a ``float('nan')`` in a dict): JSON has
  no such numbers, and a tool must not compute with them (tool-call arguments given as JSON text
  that hold one are an ``invalid_arguments`` error of that call);
- an object that is neither a string nor a dict (its ``repr`` is recorded, or its type's name
  where even that raises);
- text (or a dict's JSON text) longer than ``max_length``, the action space's bound.

A malformed action's ``raw`` text is what the record keeps: surrogates are written as escapes
(``\\ud800``) and it is cut at ``max_length``.

Example:
    >>> parse_action('{"name": "get_order", "arguments": {"order_id": "#W1"}}')
    ToolCalls(calls=(ToolCall(name='get_order', arguments={'order_id': '#W1'}, id=None, error=None),), content='')
    >>> parse_action("Hello, how can I help?")
    Message(content='Hello, how can I help?')
    >>> parse_action('{"name": "x", ').reason
    'not valid JSON: EOF while parsing a value at line 1 column 13'
    >>> parse_action("caf\\udce9").reason
    'the action is not valid Unicode text: a lone surrogate (U+DCE9) at character 3'
    >>> parse_action({"name": "f", "arguments": {"n": 10**5000}}).reason
    'the action dict has no JSON form: an integer has more than 4300 digits'
"""

from __future__ import annotations

import json
import math
import re
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
    """An action that tried to be a tool call (or could not be read at all); ``reason`` says why.

    ``raw`` is the action's text as the record keeps it: valid Unicode, at most the action space's length.
    """

    raw: str
    reason: str


Action = ToolCalls | Message | Malformed

_SURROGATE = re.compile("[\ud800-\udfff]")
_REASON_LENGTH = 300
"""Longest quoted error text (an exception message of a value in a dict action) in a malformed action's reason."""


def escape_surrogates(text: str) -> str:
    """``text`` with each lone surrogate written as its escape, so that it encodes as UTF-8.

    Example:
        >>> escape_surrogates("a\\ud800b")
        'a\\\\ud800b'
    """
    if text.isascii() or _SURROGATE.search(text) is None:
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _surrogate(text: str) -> str | None:
    """Why ``text`` is not valid Unicode text (a lone surrogate, located), or None."""
    if text.isascii():
        return None
    found = _SURROGATE.search(text)
    if found is None:
        return None
    return f"a lone surrogate (U+{ord(found.group()):04X}) at character {found.start()}"


def _clip(text: str, limit: int | None) -> str:
    """``text`` cut at ``limit`` characters, saying how many it had."""
    if limit is None or len(text) <= limit:
        return text
    return f"{text[:limit]}... [{len(text):,} characters in all]"


def _json_problem(err: ValueError) -> str:
    """A JSON parser's or serializer's error in words a user reads (pydantic-core's words, kept where clear)."""
    message = str(err)
    if "recursion limit" in message or "serialization depth" in message:
        return "nested too deeply"
    if "number out of range" in message:
        return "an integer has more than 4300 digits"
    if "surrogate" in message:
        return "a string has a lone surrogate (not valid Unicode text)"
    return _clip(escape_surrogates(message.removeprefix("Error serializing to JSON: ")), _REASON_LENGTH)


_BIG_EXPONENT = re.compile(r"[eE]\+?\d{3}")
_LONG_DIGITS = re.compile(r"\d{200}")
"""A number that may overflow a double has a three-digit exponent or an integer part of 210 digits or more (with an
exponent of two digits at most): only then are the parsed values checked for infinities."""


def _non_finite(value: Any) -> bool:
    """Whether a parsed JSON value holds a float that is NaN or infinite."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _load(text: str | bytes) -> tuple[Any, str | None]:
    """JSON ``text`` parsed, or why it is not JSON (NaN and the infinities are not JSON numbers)."""
    try:
        data = pydantic_core.from_json(text, allow_inf_nan=False)
    except ValueError as err:
        try:
            pydantic_core.from_json(text, allow_inf_nan=True)
        except ValueError:
            return None, _json_problem(err)
        return None, _NOT_FINITE
    # (bytes come from pydantic-core's to_json, which writes a non-finite float as NaN or Infinity: refused above)
    if isinstance(text, str) and (_BIG_EXPONENT.search(text) or _LONG_DIGITS.search(text)) and _non_finite(data):
        return None, _NOT_FINITE
    return data, None


_NOT_FINITE = "NaN, Infinity and numbers past a double's range are not JSON numbers"


def _arguments(raw: Any) -> tuple[dict[str, Any], str | None]:
    if raw is None:
        return {}, None
    if isinstance(raw, str):
        if not raw.strip():
            return {}, None
        raw, problem = _load(raw)
        if problem is not None:
            return {}, f"arguments are not valid JSON: {problem}"
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


def _plain(action: dict[str, Any], max_length: int | None) -> dict[str, Any] | str:
    """``action`` as JSON values only (a round trip through pydantic-core's JSON), or why it has no JSON form.

    Values JSON has no type for are written as ``str(value)`` (sets and tuples as lists). A lone
    surrogate, a cycle, nesting past the parser's depth limit, an integer past the digit limit, NaN
    or an infinity, a ``str()`` that raises, or JSON text longer than ``max_length`` bytes: no JSON form.
    """
    try:
        text = pydantic_core.to_json(action, fallback=str, inf_nan_mode="constants")
    except Exception as err:  # a value's __str__ (the fallback) is the caller's code: it may raise anything
        problem = _json_problem(err) if isinstance(err, ValueError) else f"{type(err).__name__} converting a value"
        return f"the action dict has no JSON form: {problem}"
    if max_length is not None and len(text) > max_length:
        return f"the action dict's JSON text has {len(text):,} bytes, more than the action space's {max_length:,}"
    data, failure = _load(text)
    if failure is not None:
        return f"the action dict has no JSON form: {failure}"
    return data if isinstance(data, dict) else "the action dict has no JSON form"


def _describe(value: Any) -> str:
    """``repr(value)`` as valid Unicode, or ``<type object>`` when the repr raises (a hostile ``__repr__``,
    nesting past the recursion limit, an integer past the ``str()`` digit limit)."""
    try:
        text = repr(value)
    except Exception:  # the caller's __repr__ may raise anything
        text = f"<{type(value).__qualname__} object>"
    return escape_surrogates(text)


def _dict_text(data: dict[str, Any]) -> str:
    """The text of a dict action (JSON values only), for the record of a malformed one."""
    return json.dumps(data, ensure_ascii=False)


def parse_action(action: Any, *, max_length: int | None = None) -> Action:
    """Parse an agent action (string or dict); never raises (see the module docstring).

    Args:
        action: What the agent sent.
        max_length: The longest action text (a dict's: its JSON text, in bytes) that is read; longer is
            :class:`Malformed`. The environment passes its action space's ``max_length``.
    """
    if isinstance(action, dict):
        plain = _plain(action, max_length)  # only JSON values reach the tools and the record
        if isinstance(plain, str):
            return Malformed(_clip(_describe(action), max_length), plain)
        return _from_dict(plain, lambda: _dict_text(plain))
    if not isinstance(action, str):
        return Malformed(
            _clip(_describe(action), max_length), f"an action must be a string or a dict, got {type(action).__name__}"
        )
    if type(action) is not str:  # a str subclass may override what is called below
        action = str.__str__(action)
    if max_length is not None and len(action) > max_length:
        return Malformed(
            _clip(escape_surrogates(action), max_length),
            f"the action has {len(action):,} characters, more than the action space's {max_length:,}",
        )
    problem = _surrogate(action)
    if problem is not None:
        return Malformed(escape_surrogates(action), f"the action is not valid Unicode text: {problem}")
    stripped = action.strip()
    if not stripped.startswith("{"):
        return Message(action)
    data, problem = _load(stripped)
    if problem is not None:
        return Malformed(action, f"not valid JSON: {problem}")
    if not isinstance(data, dict):
        return Malformed(action, "expected a JSON object")
    return _from_dict(data, action)
