"""The plain importer: a company's JSONL or CSV export, grouped by conversation, with located errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from envsim.transcripts.importers import TranscriptFormatError, read

ROWS = [
    {"conversation_id": "c1", "role": "customer", "text": "My parcel never came", "timestamp": "2024-05-01T10:00:00Z"},
    {"conversation_id": "c2", "role": "user", "text": "Change my address", "timestamp": 1714557600},
    {"conversation_id": "c1", "role": "Agent", "text": "Sorry to hear that.", "timestamp": "2024-05-01T10:00:42+00:00"},
    {"conversation_id": "c1", "role": "assistant", "text": "Let me check."},
    {"conversation_id": "c2", "role": "system", "text": "transferred", "timestamp": "1714557630.5"},
]
EXPECTED = {
    "c1": [
        ("user", "My parcel never came", 1714557600.0),
        ("agent", "Sorry to hear that.", 1714557642.0),
        ("agent", "Let me check.", None),
    ],
    "c2": [("user", "Change my address", 1714557600.0), ("system", "transferred", 1714557630.5)],
}


def _turns(path: Path) -> dict[str, list[tuple[str, str, float | None]]]:
    return {c.id: [(t.role, t.text, t.timestamp) for t in c.turns] for c in read("plain", path)}


def test_jsonl_export(tmp_path: Path) -> None:
    path = tmp_path / "export.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in ROWS) + "\n", encoding="utf-8")
    assert _turns(path) == EXPECTED
    assert all(c.corpus == "plain" for c in read("plain", path))


def test_csv_export_any_column_order(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    lines = ["text,timestamp,role,conversation_id"]
    for row in ROWS:
        text = str(row["text"]).replace('"', '""')
        lines.append(f'"{text}",{row.get("timestamp", "")},{row["role"]},{row["conversation_id"]}')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert _turns(path) == EXPECTED


def test_csv_without_timestamp_column(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text('conversation_id,role,text\n7,customer,"hi, there"\n7,agent,hello\n', encoding="utf-8")
    assert _turns(path) == {"7": [("user", "hi, there", None), ("agent", "hello", None)]}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            '{"conversation_id": "c1", "role": "bot", "text": "hi"}',
            "unknown role 'bot' (expected one of agent, assistant, customer, instruction, system, tool, user)",
        ),
        ('{"conversation_id": "c1", "role": "user"}', "missing field 'text'"),
        (
            '{"conversation_id": "c1", "role": "user", "txt": "hi"}',
            "unknown field 'txt' (did you mean 'text'?) (expected conversation_id, role, text, timestamp)",
        ),
        (
            '{"conversation_id": "c1", "role": "user", "text": "hi", "timestamp": "yesterday"}',
            "timestamp 'yesterday' is neither seconds since the epoch nor an ISO 8601 date-time",
        ),
        ('{"conversation_id": "", "role": "user", "text": "hi"}', "conversation_id must be a non-empty string, got ''"),
        ('{"conversation_id": "c1", "role": "user", "text": null}', "text must be a string, got null"),
        ('["c1", "user", "hi"]', "expected a JSON object, got list"),
    ],
)
def test_malformed_jsonl_row(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "export.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n\n" + line + "\n", encoding="utf-8")
    with pytest.raises(TranscriptFormatError) as caught:
        list(read("plain", path))
    assert str(caught.value) == f"{path}:3: {message}"


def test_invalid_json_row_names_its_column(tmp_path: Path) -> None:
    path = tmp_path / "export.jsonl"
    path.write_text(
        json.dumps(ROWS[0]) + "\n\n" + '{"conversation_id": "c1", "role": "user", "text": "hi"\n', encoding="utf-8"
    )
    with pytest.raises(TranscriptFormatError) as caught:
        list(read("plain", path))
    assert str(caught.value) == f"{path}:3:55: invalid JSON: Expecting ',' delimiter"


def test_malformed_csv_rows(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text("conversation_id,role,text\nc1,user,hi\nc1,agent\n", encoding="utf-8")
    with pytest.raises(TranscriptFormatError) as caught:
        list(read("plain", path))
    assert str(caught.value) == f"{path}:3: expected 3 columns (conversation_id,role,text), got 2"

    path.write_text("conversation,role,text\nc1,user,hi\n", encoding="utf-8")
    with pytest.raises(TranscriptFormatError) as caught:
        list(read("plain", path))
    assert str(caught.value) == (
        f"{path}:1: unknown field 'conversation' (did you mean 'conversation_id'?) "
        "(expected conversation_id, role, text, timestamp)"
    )

    path.write_text('conversation_id,role,text\nc1,user,"a\nmulti-line text"\nc1,robot,hi\n', encoding="utf-8")
    with pytest.raises(TranscriptFormatError) as caught:
        list(read("plain", path))
    assert str(caught.value) == (
        f"{path}:4: unknown role 'robot' (expected one of agent, assistant, customer, instruction, system, tool, user)"
    )


def test_folder_of_exports(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text(json.dumps(ROWS[0]) + "\n", encoding="utf-8")
    (tmp_path / "b.csv").write_text("conversation_id,role,text\nc9,user,hi\n", encoding="utf-8")
    (tmp_path / "notes.txt").write_text("ignored\n", encoding="utf-8")
    assert [c.id for c in read("plain", tmp_path)] == ["c1", "c9"]
