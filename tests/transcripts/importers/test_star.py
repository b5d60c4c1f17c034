"""The STAR importer: event mapping, labels, the whole corpus, located errors."""

from __future__ import annotations

import gzip
import itertools
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from envsim.transcripts.importers import TranscriptFormatError, read
from envsim.transcripts.importers.star import convert, instruction_text

STAR_DIALOGUES = 6652


def _dialogue(dialogue_id: int = 1, **extra: Any) -> dict[str, Any]:
    """A small synthetic dialogue in STAR's published shape."""
    events = [
        {"Agent": "UserGuide", "Action": "instruct", "Text": "Be grumpy. [instruction 1 of 2]", "UnixTime": 100},
        {"Agent": "User", "Action": "utter", "Text": "where is my ride", "UnixTime": 105},
        {"Agent": "Wizard", "Action": "select_task", "Task": "ride_status", "UnixTime": 106},
        {
            "Agent": "Wizard",
            "Action": "query",
            "APIName": "ride_status",
            "UnixTime": 110,
            "Constraints": [{"RequestType": '"ride_status"'}, {"Name": '"Ann"'}],
        },
        {
            "Agent": "KnowledgeBase",
            "Action": "return_item",
            "APIName": "ride_status",
            "TotalItems": 1,
            "Item": {"RideWait": 5},
        },
        {"Agent": "Wizard", "Action": "request_suggestions", "Text": "5 min", "UnixTime": 120},
        {"Agent": "Wizard", "Action": "request_suggestions", "Text": "about 5 min", "UnixTime": 122},
        {
            "Agent": "Wizard",
            "Action": "pick_suggestion",
            "Text": "Your ride arrives in 5 minutes.",
            "UnixTime": 125,
            "ActionLabel": "ride_inform_wait",
            "ActionLabelOptions": ["ride_inform_wait"],
        },
        {"Agent": "User", "Action": "utter", "Text": "too slow", "UnixTime": 140},
        {"Agent": "Wizard", "Action": "request_suggestions", "Text": "sorry", "UnixTime": 150},
        {"Agent": "User", "Action": "complete", "UnixTime": 160},
    ]
    return {
        "DialogueID": dialogue_id,
        "BatchID": "woz_1",
        "CompletionLevel": "Complete",
        "Scenario": {
            "Domains": ["ride"],
            "Happy": False,
            "MultiTask": False,
            "UserTask": "Ask about a ride.",
            "WizardTask": "Help.",
            "WizardCapabilities": [{"Domain": "ride", "Task": "ride_status"}],
        },
        "Events": events,
        "UserQuestionnaire": [{"Question": "Did the assistant stay calm and helpful throughout?", "Answer": True}],
        "WizardQuestionnaire": [
            {"Question": "Did the user become aggressive or annoyed during the dialogue?", "Answer": True},
            {"Question": "...change his/her mind about what he/she wants at any time?", "Answer": False},
        ],
        **extra,
    }


def test_events_become_turns() -> None:
    conversation = convert(_dialogue())
    assert [(t.role, t.text, t.timestamp) for t in conversation.turns] == [
        ("instruction", "Be grumpy. [instruction 1 of 2]", 100.0),
        ("user", "where is my ride", 105.0),
        ("tool", "", 110.0),
        ("agent", "Your ride arrives in 5 minutes.", 125.0),
        ("user", "too slow", 140.0),
    ]
    tool = conversation.turns[2]
    assert tool.tool is not None and tool.tool.name == "ride_status"
    assert tool.tool.arguments == {"constraints": [{"RequestType": '"ride_status"'}, {"Name": '"Ann"'}]}
    assert tool.tool.result == {"RideWait": 5} and tool.labels == {"action": "query", "total_items": 1}
    assert conversation.turns[3].labels == {
        "action": "pick_suggestion",
        "action_label": "ride_inform_wait",
        "drafts": ["5 min", "about 5 min"],
    }
    assert conversation.turns[1].labels == {"action": "utter"}


def test_conversation_labels() -> None:
    labels = convert(_dialogue()).labels
    assert labels["persona_instructions"] == ["Be grumpy. [instruction 1 of 2]"]
    assert (labels["annoyed"], labels["changed_mind"], labels["assistant_calm"]) == (True, False, True)
    assert (labels["domains"], labels["happy"], labels["tasks"]) == (["ride"], False, ["ride_status"])
    assert (labels["user_task"], labels["completion_level"], labels["batch_id"]) == (
        "Ask about a ride.",
        "Complete",
        "woz_1",
    )
    assert labels["user_completed"] is True and labels["unsent_drafts"] == ["sorry"]
    assert "wizard_unsure" not in labels


def test_instruction_text_drops_the_counter() -> None:
    assert instruction_text("Be grumpy. [instruction 1 of 2]") == "Be grumpy."


def test_star_first_dialogues_match_their_events(corpus: Path) -> None:
    with gzip.open(corpus / "star" / "dialogues.jsonl.gz", "rt", encoding="utf-8") as handle:
        raw = [json.loads(line) for line in itertools.islice(handle, 300)]
    conversations = list(itertools.islice(read("star", corpus / "star" / "dialogues.jsonl.gz"), 300))
    for dialogue, conversation in zip(raw, conversations, strict=True):
        events = dialogue["Events"]
        assert conversation.id == str(dialogue["DialogueID"])
        roles = Counter(t.role for t in conversation.turns)
        assert roles["user"] == sum(e["Agent"] == "User" and e["Action"] == "utter" for e in events)
        assert roles["agent"] == sum(
            e["Agent"] == "Wizard" and e["Action"] in ("utter", "pick_suggestion") for e in events
        )
        assert roles["tool"] == sum(e["Agent"] == "Wizard" and e["Action"] == "query" for e in events)
        guide = [e["Text"] for e in events if e["Agent"] == "UserGuide"]
        assert [t.text for t in conversation.turns if t.role == "instruction"] == guide
        assert conversation.labels["persona_instructions"] == guide
        assert all(t.timestamp is not None for t in conversation.turns)
        assert conversation.labels["domains"] == dialogue["Scenario"]["Domains"]


def test_whole_star_corpus(corpus: Path) -> None:
    started = time.perf_counter()
    conversations = 0
    annoyed = 0
    roles: Counter[str] = Counter()
    for conversation in read("star", corpus / "star"):
        conversations += 1
        annoyed += conversation.labels.get("annoyed") is True
        roles.update(t.role for t in conversation.turns)
    seconds = time.perf_counter() - started
    assert conversations == STAR_DIALOGUES
    assert annoyed == 251  # the README's count of "aggressive or annoyed" dialogues
    assert roles["user"] > 50_000 and roles["agent"] > 50_000 and roles["tool"] > 20_000
    assert seconds < 30, f"reading STAR took {seconds:.1f}s"


def test_folder_of_json_dialogues_in_numeric_order(tmp_path: Path) -> None:
    for dialogue_id in (10, 2):
        (tmp_path / f"{dialogue_id}.json").write_text(json.dumps(_dialogue(dialogue_id)), encoding="utf-8")
    assert [c.id for c in read("star", tmp_path)] == ["2", "10"]


def test_bad_lines_are_located(tmp_path: Path) -> None:
    path = tmp_path / "dialogues.jsonl"
    bad = {k: v for k, v in _dialogue().items() if k != "Events"}
    path.write_text(json.dumps(_dialogue()) + "\n\n" + json.dumps(bad) + "\n", encoding="utf-8")
    with pytest.raises(TranscriptFormatError) as caught:
        list(read("star", path))
    assert str(caught.value) == f"{path}:3: not a STAR dialogue: missing field 'Events'"

    path.write_text('{"DialogueID": 1,\n', encoding="utf-8")
    with pytest.raises(TranscriptFormatError) as caught:
        list(read("star", path))
    assert str(caught.value) == f"{path}:1:18: invalid JSON: Expecting property name enclosed in double quotes"

    odd = _dialogue()
    odd["Events"].append({"Agent": "Robot", "Action": "utter", "Text": "beep"})
    path.write_text(json.dumps(odd) + "\n", encoding="utf-8")
    with pytest.raises(TranscriptFormatError) as caught:
        list(read("star", path))
    assert str(caught.value) == f"{path}:1: not a STAR dialogue: unknown event Agent 'Robot'"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TranscriptFormatError) as caught:
        list(read("star", tmp_path / "nope.jsonl"))
    assert str(caught.value) == f"{tmp_path / 'nope.jsonl'}: no such file or folder"
