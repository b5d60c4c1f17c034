"""The BANKING77 importer: one single-turn conversation per query, intent labels, located errors."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from envsim.transcripts.importers import TranscriptFormatError, read


def test_queries_become_one_turn_conversations(corpus: Path) -> None:
    with (corpus / "banking77" / "test.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    conversations = list(read("banking77", corpus / "banking77" / "test.csv"))
    assert len(conversations) == len(rows)
    for number, (row, conversation) in enumerate(zip(rows, conversations, strict=True), start=1):
        assert conversation.id == f"test-{number}"
        assert [(t.role, t.text) for t in conversation.turns] == [("user", row["text"])]
        assert conversation.labels == {"intent": row["category"], "split": "test"}


def test_folder_reads_train_then_test_with_77_intents(corpus: Path) -> None:
    conversations = list(read("banking77", corpus / "banking77"))
    assert len(conversations) == 13083
    assert conversations[0].id == "train-1" and conversations[-1].id == "test-3080"
    assert len({c.labels["intent"] for c in conversations}) == 77


def test_bad_rows_are_located(tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    path.write_text('text,category\n"a, quoted query",card_arrival\nx,y,z\n', encoding="utf-8")
    with pytest.raises(TranscriptFormatError) as caught:
        list(read("banking77", path))
    assert str(caught.value) == f"{path}:3: expected 2 columns (text, category), got 3"

    path.write_text("query,label\nhello,card_arrival\n", encoding="utf-8")
    with pytest.raises(TranscriptFormatError) as caught:
        list(read("banking77", path))
    assert str(caught.value) == f"{path}:1: expected the header text,category, got query,label"


def test_file_without_a_split_name_has_no_split_label(tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    path.write_text("text,category\nwhere is my card,card_arrival\n", encoding="utf-8")
    [conversation] = read("banking77", path)
    assert conversation.id == "mine-1" and conversation.labels == {"intent": "card_arrival"}
