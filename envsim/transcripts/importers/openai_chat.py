"""OpenAI-format chat logs: one conversation per JSONL line, with the agent's ``tool_calls``.

Each line is a JSON object with ``messages`` (the Chat Completions message list) and optionally
``id`` (or ``conversation_id``; default: ``line-<n>``), ``metadata`` (a mapping kept as the
conversation's labels, e.g. ``{"outcome": "failed"}``), and ``tools`` / ``parallel_tool_calls``
(the request's tool definitions, which are ignored). Any other key is an error, so that a
misspelt key is not silently dropped.

Messages: ``user`` → a ``user`` turn; ``assistant`` → an ``agent`` turn (when it has text) and one
``tool`` turn per entry of ``tool_calls`` (``ToolEvent(name, arguments)``, the arguments decoded
from their JSON text); a ``tool`` message gives the result of the call whose ``tool_call_id`` it
names; ``system`` / ``developer`` → a ``system`` turn. Content may be a string, ``null`` or a
list of parts (their ``text`` joined). A message's other keys (``refusal``, ``annotations``...)
are ignored.

A bad line raises :class:`TranscriptFormatError` as ``file:line:col: message`` for a JSON syntax error
(its column), or ``file:line:1: field: message`` for a message that is not what the format says.

Example:
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "log.jsonl"
    >>> call = {"id": "c1", "type": "function", "function": {"name": "get_order", "arguments": '{"order_id": "#W1"}'}}
    >>> line = {"id": "chat-7", "messages": [{"role": "user", "content": "Where is #W1?"},
    ...     {"role": "assistant", "content": None, "tool_calls": [call]},
    ...     {"role": "tool", "tool_call_id": "c1", "content": '{"status": "shipped"}'}]}
    >>> _ = path.write_text(json.dumps(line) + "\\n")
    >>> [c] = read(path)
    >>> [(t.role, t.tool.name if t.tool else t.text) for t in c.turns]
    [('user', 'Where is #W1?'), ('tool', 'get_order')]
    >>> c.turns[1].tool.arguments, c.turns[1].tool.result
    ({'order_id': '#W1'}, {'status': 'shipped'})
    >>> _ = path.write_text('{"messages": [{"role": "user", "content": "hi"}]\\n')
    >>> next(read(path))
    Traceback (most recent call last):
    ...
    envsim.errors.TranscriptFormatError: ...log.jsonl:1:49: invalid JSON: \
Expecting ',' delimiter
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from envsim.errors import TranscriptFormatError
from envsim.suggest import did_you_mean
from envsim.transcripts.importers.common import input_files, numbered_lines, open_text
from envsim.transcripts.schema import Conversation, Role, ToolEvent, Turn

CORPUS = "openai"
SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz")
ROLES: dict[str, Role] = {"user": "user", "assistant": "agent", "system": "system", "developer": "system"}


class _Function(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(min_length=1)
    arguments: str | dict[str, Any] = "{}"


class _ToolCall(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str | None = None
    type: Literal["function"] = "function"
    function: _Function


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    tool_calls: list[_ToolCall] | None = None
    tool_call_id: str | None = None


class _Line(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | int | None = None
    conversation_id: str | int | None = None
    messages: list[_Message] = Field(min_length=1)
    metadata: dict[str, Any] = Field(default_factory=dict)
    tools: list[Any] | None = None
    parallel_tool_calls: bool | None = None


def read(path: Path) -> Iterator[Conversation]:
    """Stream the conversations of an OpenAI-format chat log (or a folder of them), one per line."""
    for file in input_files(path, SUFFIXES):
        with open_text(file) as handle:
            for number, line in numbered_lines(handle):
                yield parse_line(line, file, number)


def parse_line(line: str, file: Path, number: int) -> Conversation:
    """One log line as a :class:`Conversation`; a located :class:`TranscriptFormatError` when it is malformed."""
    try:
        raw = json.loads(line.rstrip("\r\n"))
    except json.JSONDecodeError as error:
        raise TranscriptFormatError(file, number, f"invalid JSON: {error.msg}", column=error.colno) from None
    if not isinstance(raw, dict):
        raise TranscriptFormatError(file, number, f"expected a JSON object, got {type(raw).__name__}", column=1)
    try:
        record = _Line.model_validate(raw)
    except ValidationError as error:
        errors = sorted(error.errors(include_url=False), key=lambda e: e["type"] != "extra_forbidden")
        first = errors[0]  # a misspelt key first: it explains the missing field it was meant to be
        where = ".".join(str(part) for part in first["loc"])
        if first["type"] == "extra_forbidden":
            message = f"unknown field{did_you_mean(where, _Line.model_fields)}"
        else:
            message = first["msg"]
        raise TranscriptFormatError(file, number, message, column=1, field=where or "line") from None
    given_id = record.id if record.id is not None else record.conversation_id
    conversation_id = str(given_id) if given_id is not None and str(given_id) else f"line-{number}"
    return Conversation(
        corpus=CORPUS, id=conversation_id, turns=_turns(record.messages, file, number), labels=dict(record.metadata)
    )


def _text(content: str | list[dict[str, Any]] | None) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))


def _turns(messages: list[_Message], file: Path, number: int) -> list[Turn]:
    turns: list[Turn] = []
    calls: dict[str, Turn] = {}
    for index, message in enumerate(messages):
        text = _text(message.content)
        if message.role == "tool":
            turn = calls.get(message.tool_call_id or "")
            if turn is None or turn.tool is None:
                raise TranscriptFormatError(
                    file,
                    number,
                    f"no earlier tool call has id {message.tool_call_id!r}",
                    column=1,
                    field=f"messages.{index}.tool_call_id",
                )
            turn.tool.result = _decoded(text)
            continue
        role = ROLES[message.role]
        if text or not message.tool_calls:
            turns.append(Turn(role=role, text=text))
        for k, call in enumerate(message.tool_calls or []):
            arguments = _arguments(call.function.arguments, file, number, f"messages.{index}.tool_calls.{k}")
            labels = {"tool_call_id": call.id} if call.id else {}
            turn = Turn(role="tool", tool=ToolEvent(name=call.function.name, arguments=arguments), labels=labels)
            turns.append(turn)
            if call.id:
                calls[call.id] = turn
    return turns


def _arguments(given: str | dict[str, Any], file: Path, number: int, where: str) -> dict[str, Any]:
    if isinstance(given, dict):
        return given
    try:
        decoded = json.loads(given) if given.strip() else {}
    except json.JSONDecodeError as error:
        raise TranscriptFormatError(
            file, number, f"invalid JSON: {error.msg}", column=1, field=f"{where}.function.arguments"
        ) from None
    if not isinstance(decoded, dict):
        raise TranscriptFormatError(
            file, number, "expected a JSON object of arguments", column=1, field=f"{where}.function.arguments"
        )
    return decoded


def _decoded(text: str) -> Any:
    """A tool result: its JSON value when it is JSON, else the text."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text
