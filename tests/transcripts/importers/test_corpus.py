"""Every conversation file of the shared corpus imports and round-trips through the canonical JSONL."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from envsim.transcripts.importers import read, read_jsonl, write_jsonl

# (format, file relative to the corpus folder, conversations expected; None: only a STAR sample is read)
CONVERSATION_FILES = [
    ("star", "star/dialogues.jsonl.gz", None),
    ("abcd", "abcd/abcd_sample.json", 3),
    ("banking77", "banking77/train.csv", 10003),
    ("banking77", "banking77/test.csv", 3080),
    ("goemotions", "goemotions/train.tsv", 43410),
    ("goemotions", "goemotions/dev.tsv", 5426),
    ("goemotions", "goemotions/test.tsv", 5427),
]
# Files of the corpus that hold no conversations: licences, notes, ontologies, label names, KB tables.
NOT_CONVERSATIONS = {
    "README.md",
    "abcd/guidelines.json",
    "abcd/kb.json",
    "abcd/ontology.json",
    "goemotions/labels.txt",
}
STAR_SAMPLE = 300


def test_every_conversation_file_is_covered(corpus: Path) -> None:
    files = {p.relative_to(corpus).as_posix() for p in corpus.rglob("*") if p.is_file()}
    others = {f for f in files if f.endswith("/LICENSE") or f.startswith("star/api_dbs/") or f in NOT_CONVERSATIONS}
    assert files - others == {name for _, name, _ in CONVERSATION_FILES}


@pytest.mark.parametrize(("format", "name", "expected"), CONVERSATION_FILES, ids=[n for _, n, _ in CONVERSATION_FILES])
def test_import_round_trips(corpus: Path, tmp_path: Path, format: str, name: str, expected: int | None) -> None:
    conversations = list(itertools.islice(read(format, corpus / name), expected or STAR_SAMPLE))
    assert len(conversations) == (expected or STAR_SAMPLE)
    if expected is not None:  # the whole file was asked for: nothing is left
        assert next(itertools.islice(read(format, corpus / name), expected, None), None) is None
    assert len({c.id for c in conversations}) == len(conversations)
    assert all(c.corpus == format and c.turns for c in conversations if format != "star")
    target = tmp_path / "out.jsonl"
    assert write_jsonl(conversations, target) == len(conversations)
    assert list(read_jsonl(target)) == conversations
    assert len(target.read_text(encoding="utf-8").splitlines()) == len(conversations)


def test_gzipped_canonical_round_trip(corpus: Path, tmp_path: Path) -> None:
    conversations = list(itertools.islice(read("star", corpus / "star"), 50))
    target = tmp_path / "star.jsonl.gz"
    write_jsonl(conversations, target)
    assert target.read_bytes()[:2] == b"\x1f\x8b"
    assert list(read("canonical", target)) == conversations
