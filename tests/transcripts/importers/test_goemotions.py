"""The GoEmotions importer: one single-turn conversation per comment, emotions by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from envsim.transcripts.importers import TranscriptFormatError, read


def test_comments_become_one_turn_conversations(corpus: Path) -> None:
    folder = corpus / "goemotions"
    names = (folder / "labels.txt").read_text(encoding="utf-8").split()
    lines = (folder / "dev.tsv").read_text(encoding="utf-8").splitlines()
    conversations = list(read("goemotions", folder / "dev.tsv"))
    assert len(conversations) == len(lines)
    for line, conversation in zip(lines, conversations, strict=True):
        text, ids, comment_id = line.split("\t")
        assert conversation.id == comment_id
        assert [(t.role, t.text) for t in conversation.turns] == [("user", text)]
        assert conversation.labels == {"emotions": [names[int(i)] for i in ids.split(",")], "split": "dev"}


def test_folder_reads_every_split(corpus: Path) -> None:
    splits: dict[str, int] = {}
    emotions: set[str] = set()
    for conversation in read("goemotions", corpus / "goemotions"):
        splits[conversation.labels["split"]] = splits.get(conversation.labels["split"], 0) + 1
        emotions.update(conversation.labels["emotions"])
    assert splits == {"train": 43410, "dev": 5426, "test": 5427}
    assert len(emotions) == 28 and {"fear", "nervousness", "anger", "annoyance", "neutral"} <= emotions


def test_errors(tmp_path: Path) -> None:
    path = tmp_path / "dev.tsv"
    path.write_text("I am fine\t0\tc1\n", encoding="utf-8")
    with pytest.raises(TranscriptFormatError) as caught:
        list(read("goemotions", path))
    assert str(caught.value) == (
        f"{tmp_path / 'labels.txt'}: no such file (GoEmotions needs labels.txt beside the TSV files)"
    )

    (tmp_path / "labels.txt").write_text("joy\nneutral\n", encoding="utf-8")
    path.write_text("I am fine\t0\tc1\nwhat now\t1,2\tc2\n", encoding="utf-8")
    with pytest.raises(TranscriptFormatError) as caught:
        list(read("goemotions", path))
    assert str(caught.value) == f"{path}:2: bad label ids '1,2' (expected comma-separated numbers 0 to 1)"

    path.write_text("no tabs here\n", encoding="utf-8")
    with pytest.raises(TranscriptFormatError) as caught:
        list(read("goemotions", path))
    assert str(caught.value) == f"{path}:1: expected 3 tab-separated fields, got 1"
