"""The ABCD importer: the sample list, the full-corpus dict by split (plain and gzipped), errors."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from envsim.transcripts.importers import TranscriptFormatError, read
from envsim.transcripts.importers.abcd import convert

ROLES = {"customer": "user", "agent": "agent", "action": "tool"}


def _sample(corpus: Path) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads((corpus / "abcd" / "abcd_sample.json").read_text(encoding="utf-8"))
    return data


def test_sample_turns_follow_the_original(corpus: Path) -> None:
    raw = _sample(corpus)
    conversations = list(read("abcd", corpus / "abcd" / "abcd_sample.json"))
    assert [c.id for c in conversations] == [str(obj["convo_id"]) for obj in raw]
    for obj, conversation in zip(raw, conversations, strict=True):
        assert [(t.role, t.text) for t in conversation.turns] == [(ROLES[s], text) for s, text in obj["original"]]
        buttons = [d["targets"][2] for d in obj["delexed"] if d["speaker"] == "action"]
        assert [t.tool.name for t in conversation.turns if t.tool is not None] == buttons
        assert conversation.labels["flow"] == obj["scenario"]["flow"]
        assert conversation.labels["intent"] == conversation.labels["subflow"] == obj["scenario"]["subflow"]
        assert conversation.labels["escalated"] is ("notify-team" in buttons)
        assert "split" not in conversation.labels and "flow" not in conversation.labels["scenario"]


def test_sample_escalation(corpus: Path) -> None:
    by_id = {c.id: c for c in read("abcd", corpus / "abcd")}
    assert {i for i, c in by_id.items() if c.labels["escalated"]} == {"3592"}
    assert by_id["3592"].labels["escalation_teams"] == ["manager"]
    notify = [t for t in by_id["3592"].turns if t.tool is not None and t.tool.name == "notify-team"]
    assert len(notify) == 1 and notify[0].tool is not None and notify[0].tool.arguments == {"values": ["manager"]}


@pytest.mark.parametrize("name", ["abcd_v1.1.json.gz", "abcd_v1.1.json"])
def test_full_corpus_dict_by_split(corpus: Path, tmp_path: Path, name: str) -> None:
    raw = _sample(corpus)
    payload = json.dumps({"train": raw[:2], "dev": raw[2:], "test": []}).encode("utf-8")
    path = tmp_path / name
    path.write_bytes(gzip.compress(payload) if name.endswith(".gz") else payload)
    from_sample = list(read("abcd", corpus / "abcd" / "abcd_sample.json"))
    for source in (path, tmp_path):  # the file, and a folder holding it
        conversations = list(read("abcd", source))
        assert [c.labels["split"] for c in conversations] == ["train", "train", "dev"]
        for full, sample in zip(conversations, from_sample, strict=True):
            assert full.turns == sample.turns
            assert {k: v for k, v in full.labels.items() if k != "split"} == sample.labels


def test_delexed_missing_still_imports() -> None:
    obj = {
        "convo_id": 1,
        "scenario": {"flow": "f", "subflow": "s"},
        "original": [["agent", "one moment"], ["action", "The website team has been notified."]],
    }
    conversation = convert(obj)
    tool = conversation.turns[1].tool
    assert tool is not None and tool.name == "action" and tool.arguments == {"values": []}
    assert conversation.labels["escalated"] is True and "escalation_teams" not in conversation.labels


def test_errors_are_located(tmp_path: Path) -> None:
    path = tmp_path / "abcd.json"
    path.write_text(json.dumps({"train": [{"convo_id": 1, "original": [["bot", "hi"]]}]}), encoding="utf-8")
    with pytest.raises(TranscriptFormatError) as caught:
        list(read("abcd", path))
    assert str(caught.value) == (
        f"{path}: conversation train[0]: turn 0: unknown speaker 'bot' (expected agent, customer or action)"
    )

    path.write_text(json.dumps([{"original": []}]), encoding="utf-8")
    with pytest.raises(TranscriptFormatError) as caught:
        list(read("abcd", path))
    assert str(caught.value) == f"{path}: conversation [0]: missing field 'convo_id'"

    path.write_text('"just a string"', encoding="utf-8")
    with pytest.raises(TranscriptFormatError) as caught:
        list(read("abcd", path))
    assert str(caught.value) == (
        f"{path}: expected a list of ABCD conversations or a dict of them by split (train, dev, test)"
    )

    path.write_text("[\n{]", encoding="utf-8")
    with pytest.raises(TranscriptFormatError) as caught:
        list(read("abcd", path))
    assert str(caught.value) == f"{path}:2:2: invalid JSON: Expecting property name enclosed in double quotes"


def test_folder_without_abcd_file(tmp_path: Path) -> None:
    with pytest.raises(TranscriptFormatError) as caught:
        list(read("abcd", tmp_path))
    assert str(caught.value) == f"{tmp_path}: folder holds none of abcd_v1.1.json.gz, abcd_v1.1.json, abcd_sample.json"
