"""Transcript statistics, checked on a small synthetic set computed by hand."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from envsim.transcripts.importers import read
from envsim.transcripts.schema import Conversation, ToolEvent, Turn
from envsim.transcripts.stats import (
    Distribution,
    label_counts,
    persona_categories,
    reply_latencies,
    summarize,
    turn_frame,
)

A = Conversation(
    corpus="plain",
    id="a",
    labels={"annoyed": True, "persona_instructions": ["Act grumpy and make a joke."], "intent": "refund"},
    turns=[
        Turn(role="agent", text="Hello how can I help", timestamp=100),  # 5 words
        Turn(role="user", text="I want a refund", timestamp=110),  # 4 words, replies after 10 s
        Turn(role="instruction", text="Be rude now", timestamp=110),  # not part of the dialogue
        Turn(role="tool", tool=ToolEvent(name="lookup"), timestamp=115),
        Turn(role="agent", text="Sure", timestamp=130),  # agent replies after 20 s (to the user turn at 110)
        Turn(role="user", text="Thanks", timestamp=160),  # 30 s
        Turn(role="user", text="Bye now", timestamp=170),  # follows a user turn: not a reply
    ],
)
B = Conversation(
    corpus="plain",
    id="b",
    labels={"annoyed": False, "escalated": True, "intent": "refund", "emotions": ["anger", "fear"]},
    turns=[
        Turn(role="user", text="Where is my card"),  # no timestamp
        Turn(role="agent", text="Checking now", timestamp=50),  # replies to an untimed turn: no latency
        Turn(role="user", text="ok", timestamp=65),  # 15 s
    ],
)
C = Conversation(
    corpus="star",
    id="c",
    turns=[
        Turn(role="user", text="a b c d e f g h i j", timestamp=0),
        Turn(role="agent", text="x", timestamp=4),  # 4 s
    ],
)


def test_counts() -> None:
    stats = summarize(iter([A, B, C]))  # one pass over a generator is enough
    assert (stats.conversations, stats.turns) == (3, 12)
    assert stats.corpora == {"plain": 2, "star": 1}
    assert stats.turns_by_role == {"agent": 4, "instruction": 1, "tool": 1, "user": 6}


def test_turn_lengths() -> None:
    words = summarize([A, B, C]).words_by_role
    # user: 4, 1, 2, 4, 1, 10 → sorted 1 1 2 4 4 10; p90 at rank 4.5: 4 + 0.5 × (10 − 4)
    assert words["user"].model_dump() == {
        "count": 6,
        "mean": pytest.approx(22 / 6),
        "median": 3.0,
        "p90": 7.0,
        "min": 1.0,
        "max": 10.0,
    }
    # agent: 5, 1, 2, 1 → sorted 1 1 2 5; p90 at rank 2.7: 2 + 0.7 × 3
    assert words["agent"].model_dump() == {
        "count": 4,
        "mean": 2.25,
        "median": 1.5,
        "p90": pytest.approx(4.1),
        "min": 1.0,
        "max": 5.0,
    }
    assert words["tool"] == Distribution(count=1, mean=0.0, median=0.0, p90=0.0, min=0.0, max=0.0)


def test_reply_latencies() -> None:
    latency = summarize([A, B, C]).latency_seconds
    # user replies: 10, 30 (A), 15 (B); p90 at rank 1.8: 15 + 0.8 × 15
    assert latency["user"].model_dump() == {
        "count": 3,
        "mean": pytest.approx(55 / 3),
        "median": 15.0,
        "p90": 27.0,
        "min": 10.0,
        "max": 30.0,
    }
    # agent replies: 20 (A), 4 (C); p90 at rank 0.9: 4 + 0.9 × 16
    assert latency["agent"].model_dump() == {
        "count": 2,
        "mean": 12.0,
        "median": 12.0,
        "p90": pytest.approx(18.4),
        "min": 4.0,
        "max": 20.0,
    }
    frame = reply_latencies(turn_frame([A, B, C]))
    assert frame.to_dict("records") == [
        {"conversation": 0, "role": "user", "seconds": 10.0},
        {"conversation": 0, "role": "agent", "seconds": 20.0},
        {"conversation": 0, "role": "user", "seconds": 30.0},
        {"conversation": 1, "role": "user", "seconds": 15.0},
        {"conversation": 2, "role": "agent", "seconds": 4.0},
    ]


def test_labels() -> None:
    assert summarize([A, B, C]).labels == {
        "annoyed": {"false": 1, "true": 1},
        "escalated": {"false": 0, "true": 1},
        "persona_categories": {"annoyed": 1, "smalltalk": 1},
        "intent": {"refund": 2},
        "emotions": {"anger": 1, "fear": 1},
    }
    assert label_counts([A, B, C], top_k=1)["emotions"] == {"anger": 1}  # ties broken by name


def test_persona_categories() -> None:
    assert persona_categories("Boom! You hear explosions all around you.") == ["emergency"]
    assert persona_categories("Ask for the weather.") == []


def test_empty_set() -> None:
    stats = summarize([])
    assert (stats.conversations, stats.turns, stats.turns_by_role, stats.labels) == (0, 0, {}, {})
    assert stats.latency_seconds["user"] == Distribution(count=0)


def test_star_sample_statistics(corpus: Path) -> None:
    conversations = list(itertools.islice(read("star", corpus / "star"), 300))
    stats = summarize(conversations)
    assert stats.turns_by_role["user"] == sum(len(c.user_turns()) for c in conversations)
    fastest = stats.latency_seconds["user"].min
    assert stats.latency_seconds["user"].count > 0 and fastest is not None and fastest >= 0
    assert stats.labels["annoyed"]["true"] + stats.labels["annoyed"]["false"] == sum(
        isinstance(c.labels.get("annoyed"), bool) for c in conversations
    )
    assert set(stats.labels["domains"]) <= {d for c in conversations for d in c.labels["domains"]}  # None not counted
