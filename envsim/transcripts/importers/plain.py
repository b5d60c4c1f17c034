"""A company's own transcript export: one turn per JSONL line or CSV row.

Each record has ``conversation_id``, ``role`` and ``text``, and optionally ``timestamp``
(seconds since the epoch, or an ISO 8601 date-time; one without a zone is taken as UTC).
Roles ``customer``/``user`` become ``user``, ``agent``/``assistant`` become ``agent``; the other
canonical roles (``system``, ``tool``, ``instruction``) are kept. Any other field is an error,
so that a misspelt column is not silently dropped.

JSONL is one JSON object per line; CSV has a header naming the columns (in any order). The
format is chosen by the name (``.csv`` / ``.csv.gz`` is CSV, anything else JSONL); a folder
reads each ``.jsonl``, ``.ndjson`` and ``.csv`` file in it. Turns are grouped by conversation
id in the order they appear, conversations ordered by first appearance; since a
conversation's turns may be spread over the file, a file is read whole before the first
conversation is yielded. A bad record raises :class:`TranscriptFormatError` naming the file
and line.

Example:
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "export.csv"
    >>> _ = path.write_text("conversation_id,role,text\\nc1,customer,hi\\nc2,customer,yo\\nc1,assistant,hello\\n")
    >>> [(c.id, [(t.role, t.text) for t in c.turns]) for c in read(path)]
    [('c1', [('user', 'hi'), ('agent', 'hello')]), ('c2', [('user', 'yo')])]
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from envsim.errors import TranscriptFormatError
from envsim.suggest import did_you_mean
from envsim.transcripts.importers.common import input_files, numbered_lines, open_text
from envsim.transcripts.schema import Conversation, Role, Turn

CORPUS = "plain"
FIELDS = ("conversation_id", "role", "text", "timestamp")
REQUIRED = ("conversation_id", "role", "text")
ROLES: dict[str, Role] = {
    "user": "user",
    "customer": "user",
    "agent": "agent",
    "assistant": "agent",
    "system": "system",
    "tool": "tool",
    "instruction": "instruction",
}
CSV_SUFFIXES = (".csv", ".csv.gz")
SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz", *CSV_SUFFIXES)


def read(path: Path) -> Iterator[Conversation]:
    """The conversations of ``path`` (a JSONL or CSV export, or a folder of them), grouped by id."""
    for file in input_files(path, SUFFIXES):
        records = _csv_records(file) if file.name.endswith(CSV_SUFFIXES) else _jsonl_records(file)
        grouped: dict[str, list[Turn]] = {}
        for line, record in records:
            conversation_id, turn = parse_record(record, file, line)
            grouped.setdefault(conversation_id, []).append(turn)
        for conversation_id, turns in grouped.items():
            yield Conversation(corpus=CORPUS, id=conversation_id, turns=turns)


def _jsonl_records(file: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with open_text(file) as handle:
        for number, line in numbered_lines(handle):
            try:
                record = json.loads(line.rstrip("\r\n"))
            except json.JSONDecodeError as error:
                raise TranscriptFormatError(file, number, f"invalid JSON: {error.msg}", column=error.colno) from None
            if not isinstance(record, dict):
                raise TranscriptFormatError(file, number, f"expected a JSON object, got {type(record).__name__}")
            yield number, record


def _csv_records(file: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with open_text(file) as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
            if header is None:
                raise TranscriptFormatError(file, None, f"empty file (expected a header: {','.join(FIELDS)})")
            columns = [h.strip() for h in header]
            _check_fields(columns, file, 1)
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) != len(columns):
                    raise TranscriptFormatError(
                        file, reader.line_num, f"expected {len(columns)} columns ({','.join(columns)}), got {len(row)}"
                    )
                yield reader.line_num, dict(zip(columns, row, strict=True))
        except csv.Error as error:
            raise TranscriptFormatError(file, reader.line_num, f"invalid CSV: {error}") from None


def _check_fields(fields: list[str], file: Path, line: int) -> None:
    for name in fields:
        if name not in FIELDS:
            raise TranscriptFormatError(
                file, line, f"unknown field {name!r}{did_you_mean(name, FIELDS)} (expected {', '.join(FIELDS)})"
            )
    for name in REQUIRED:
        if name not in fields:
            raise TranscriptFormatError(file, line, f"missing field {name!r}")


def parse_record(record: dict[str, Any], file: Path, line: int) -> tuple[str, Turn]:
    """The conversation id and turn of one export record; a located error when it is malformed.

    Example:
        >>> parse_record({"conversation_id": 7, "role": "Customer", "text": "hi", "timestamp": 5}, Path("x"), 1)
        ('7', Turn(role='user', text='hi', timestamp=5.0, tool=None, labels={}))
        >>> parse_record({"conversation_id": "7", "role": "bot", "text": "hi"}, Path("x.jsonl"), 4)
        Traceback (most recent call last):
        ...
        envsim.errors.TranscriptFormatError: x.jsonl:4: unknown role 'bot' (expected one \
of agent, assistant, customer, instruction, system, tool, user)
    """
    _check_fields(list(record), file, line)
    conversation_id = record["conversation_id"]
    if isinstance(conversation_id, bool) or not isinstance(conversation_id, str | int) or str(conversation_id) == "":
        raise TranscriptFormatError(file, line, f"conversation_id must be a non-empty string, got {conversation_id!r}")
    raw_role = record["role"]
    role = ROLES.get(raw_role.strip().lower()) if isinstance(raw_role, str) else None
    if role is None:
        raise TranscriptFormatError(
            file, line, f"unknown role {raw_role!r} (expected one of {', '.join(sorted(ROLES))})"
        )
    text = record["text"]
    if not isinstance(text, str):
        raise TranscriptFormatError(file, line, f"text must be a string, got {json.dumps(text)}")
    timestamp = parse_timestamp(record.get("timestamp"), file, line)
    return str(conversation_id), Turn(role=role, text=text, timestamp=timestamp)


def parse_timestamp(value: Any, file: Path, line: int) -> float | None:
    """Seconds since the epoch from a number, a numeric string or an ISO 8601 date-time; ``None`` when empty.

    Example:
        >>> parse_timestamp("2024-05-01T12:00:30Z", Path("x"), 1) - parse_timestamp("2024-05-01T12:00:00", Path("x"), 1)
        30.0
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    if isinstance(value, str):
        try:
            seconds = float(value)
        except ValueError:
            pass
        else:
            if math.isfinite(seconds):
                return seconds
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            pass
        else:
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            return moment.timestamp()
    raise TranscriptFormatError(
        file, line, f"timestamp {value!r} is neither seconds since the epoch nor an ISO 8601 date-time"
    )
