"""The importer registry, ``read`` and the canonical JSONL reader and writer."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from pathlib import Path

import pytest

from envsim.errors import EnvsimError, UnknownNameError
from envsim.transcripts.importers import IMPORTERS, TranscriptFormatError, importer, read, read_jsonl, write_jsonl
from envsim.transcripts.schema import Conversation, ToolEvent, Turn

CHATS = [
    Conversation(
        corpus="plain",
        id="1",
        turns=[
            Turn(role="user", text="Hi, my card — it's gone!", timestamp=1.5, labels={"emotion": "fear"}),
            Turn(role="tool", tool=ToolEvent(name="lookup", arguments={"n": [1, 2]}, result={"ok": True})),
            Turn(role="agent", text="Let me look.", timestamp=3),
        ],
        labels={"annoyed": False, "domains": ["bank"], "nested": {"a": None}},
    ),
    Conversation(corpus="star", id="2", turns=[]),
]


def test_registry_names() -> None:
    assert set(IMPORTERS) == {"star", "abcd", "banking77", "goemotions", "plain", "openai", "canonical"}
    assert all(i.name == name and i.description for name, i in IMPORTERS.items())


def test_unknown_format_suggests() -> None:
    with pytest.raises(UnknownNameError) as caught:
        importer("banking")
    assert str(caught.value) == (
        "unknown transcript format 'banking' (did you mean 'banking77'?); "
        "known formats: abcd, banking77, canonical, goemotions, openai, plain, star"
    )
    assert isinstance(caught.value, EnvsimError)


def test_readers_stream(tmp_path: Path) -> None:
    assert inspect.isgenerator(read("plain", tmp_path / "does-not-exist.jsonl"))  # nothing read yet


@pytest.mark.parametrize("name", ["chats.jsonl", "chats.jsonl.gz"])
def test_canonical_round_trip(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    assert write_jsonl(iter(CHATS), path) == 2
    assert list(read_jsonl(path)) == CHATS
    assert list(read("canonical", tmp_path)) == CHATS  # a folder of canonical files


def test_invalid_canonical_line_is_located(tmp_path: Path) -> None:
    path = tmp_path / "chats.jsonl"
    write_jsonl(CHATS, path)
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"corpus": "x", "id": "3", "turns": [{"role": "bot"}], "extra": 1}\n')
    with pytest.raises(TranscriptFormatError) as caught:
        list(read_jsonl(path))
    assert str(caught.value) == (
        f"{path}:3: not a canonical conversation: turns.0.role: Input should be 'user', 'agent', 'system', "
        "'tool' or 'instruction'; extra: Extra inputs are not permitted"
    )


def test_failed_write_leaves_no_file(tmp_path: Path) -> None:
    def broken() -> Iterator[Conversation]:
        yield CHATS[0]
        raise TranscriptFormatError(tmp_path / "in.jsonl", 2, "bad")

    target = tmp_path / "out.jsonl"
    with pytest.raises(TranscriptFormatError):
        write_jsonl(broken(), target)
    assert list(tmp_path.iterdir()) == []
