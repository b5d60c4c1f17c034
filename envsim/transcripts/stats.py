"""Statistics of a transcript set, for calibrating and checking mock users.

:func:`summarize` returns a :class:`TranscriptStats`: counts (conversations, turns per role),
turn length in words per role, reply latencies (seconds between a turn and the turn of the
other party it answers) and label counts (annoyed, escalated, persona-instruction categories,
the top intents, emotions and domains). :func:`turn_frame` gives the per-turn pandas table the
numbers come from, for analyses of your own.

Example:
    >>> from envsim.transcripts.schema import Conversation, Turn
    >>> chat = Conversation(corpus="plain", id="1", labels={"annoyed": True}, turns=[
    ...     Turn(role="agent", text="How can I help?", timestamp=0),
    ...     Turn(role="user", text="My card is gone", timestamp=12)])
    >>> stats = summarize([chat])
    >>> stats.turns_by_role, stats.words_by_role["user"].mean, stats.latency_seconds["user"].median
    ({'agent': 1, 'user': 1}, 4.0, 12.0)
    >>> stats.labels["annoyed"]
    {'false': 0, 'true': 1}
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from envsim.transcripts.schema import Conversation

DIALOGUE_ROLES = ("user", "agent")
"""The roles whose turns make the dialogue; latencies are measured between them."""

PERSONA_CATEGORIES: dict[str, re.Pattern[str]] = {
    name: re.compile(pattern, re.IGNORECASE)
    for name, pattern in {
        "annoyed": r"annoy|grump|rude|angry|impatien|irritat|frustrat|aggressive",
        "riddles": r"riddle|serene",
        "confused": r"confus|memory problem|forget what|forgot what|years old",
        "worried": r"worr|concern|nervous|panic|scared|anxious",
        "emergency": r"explosion|boom!|alarm|life support|emergency",
        "complaining": r"complain",
        "changes_mind": r"change[ds]? your mind|change of plans",
        "smalltalk": r"small ?talk|joke",
        "negations": r"negation",
    }.items()
}
"""Keyword rules that sort persona instructions (STAR's UserGuide notes) into categories."""

COUNTED_BOOLEANS = ("annoyed", "escalated")
TOP_K_LABELS = ("intent", "emotions", "domains")


class Distribution(BaseModel):
    """Summary of a numeric sample: size, mean, median, 90th percentile (linear interpolation), min, max.

    Example:
        >>> Distribution.of([2, 4, 10]).p90
        8.8
        >>> Distribution.of([]).mean is None
        True
    """

    model_config = ConfigDict(extra="forbid")

    count: int
    mean: float | None = None
    median: float | None = None
    p90: float | None = None
    min: float | None = None
    max: float | None = None

    @classmethod
    def of(cls, values: Iterable[float] | pd.Series[float]) -> Distribution:
        """The distribution of ``values`` (all fields but ``count`` are ``None`` when empty)."""
        series = values if isinstance(values, pd.Series) else pd.Series(list(values), dtype="float64")
        series = series.dropna()
        if series.empty:
            return cls(count=0)
        return cls(
            count=int(series.size),
            mean=float(series.mean()),
            median=float(series.median()),
            p90=float(series.quantile(0.9)),
            min=float(series.min()),
            max=float(series.max()),
        )


class TranscriptStats(BaseModel):
    """What :func:`summarize` reports; ``model_dump()`` is the ``--json`` output of ``envsim transcripts stats``."""

    model_config = ConfigDict(extra="forbid")

    conversations: int
    turns: int
    corpora: dict[str, int] = Field(description="Conversations per corpus.")
    turns_by_role: dict[str, int]
    words_by_role: dict[str, Distribution] = Field(description="Words per turn (whitespace-separated), by role.")
    latency_seconds: dict[str, Distribution] = Field(
        description="'user': seconds from an agent turn to the user turn that follows it; 'agent': the converse."
    )
    labels: dict[str, dict[str, int]] = Field(
        description="annoyed / escalated as true-false counts, persona_categories (conversations per category) "
        "and the top intents, emotions and domains; only the labels the conversations carry."
    )


def persona_categories(instruction: str) -> list[str]:
    """The :data:`PERSONA_CATEGORIES` an instruction text falls in (possibly none).

    Example:
        >>> persona_categories("Act like a very annoying/grumpy person, and make a joke.")
        ['annoyed', 'smalltalk']
    """
    return [name for name, pattern in PERSONA_CATEGORIES.items() if pattern.search(instruction)]


def turn_frame(conversations: Iterable[Conversation]) -> pd.DataFrame:
    """One row per turn: ``conversation`` (index), ``corpus``, ``id``, ``position``, ``role``, ``words``, ``timestamp``.

    Example:
        >>> from envsim.transcripts.schema import Turn
        >>> turn_frame([Conversation(corpus="plain", id="a", turns=[Turn(role="user", text="two words")])])
        ... # doctest: +NORMALIZE_WHITESPACE
           conversation corpus id  position  role  words  timestamp
        0             0  plain  a         0  user      2        NaN
    """
    rows: list[tuple[int, str, str, int, str, int, float | None]] = []
    for index, conversation in enumerate(conversations):
        for position, turn in enumerate(conversation.turns):
            words = len(turn.text.split())
            rows.append((index, conversation.corpus, conversation.id, position, turn.role, words, turn.timestamp))
    frame = pd.DataFrame(rows, columns=["conversation", "corpus", "id", "position", "role", "words", "timestamp"])
    return frame.astype({"conversation": "int64", "position": "int64", "words": "int64", "timestamp": "float64"})


def reply_latencies(frame: pd.DataFrame) -> pd.DataFrame:
    """Replies and their latency: a user or agent turn whose previous user/agent turn is the other party's.

    Other roles (instructions, tool calls) are skipped over; pairs without both timestamps are
    left out. Columns: ``conversation``, ``role`` (who replied), ``seconds``.
    """
    dialogue = frame[frame["role"].isin(DIALOGUE_ROLES)]
    previous = dialogue.groupby("conversation", sort=False)[["role", "timestamp"]].shift(1)
    replies = dialogue[(previous["role"].notna()) & (previous["role"] != dialogue["role"])]
    seconds = replies["timestamp"] - previous.loc[replies.index, "timestamp"]
    result = pd.DataFrame({"conversation": replies["conversation"], "role": replies["role"], "seconds": seconds})
    return result.dropna(subset=["seconds"]).reset_index(drop=True)


class _LabelTally:
    """Accumulates the label counts of :func:`label_counts` one conversation at a time."""

    def __init__(self) -> None:
        self.booleans: dict[str, Counter[str]] = {name: Counter() for name in COUNTED_BOOLEANS}
        self.tops: dict[str, Counter[str]] = {name: Counter() for name in TOP_K_LABELS}
        self.categories: Counter[str] = Counter()

    def add(self, conversation: Conversation) -> None:
        labels = conversation.labels
        for name in COUNTED_BOOLEANS:
            value = labels.get(name)
            if isinstance(value, bool):
                self.booleans[name]["true" if value else "false"] += 1
        for name in TOP_K_LABELS:
            value = labels.get(name)
            if isinstance(value, str):
                self.tops[name][value] += 1
            elif isinstance(value, list):
                self.tops[name].update(str(v) for v in value if v is not None)
        instructions = labels.get("persona_instructions")
        if isinstance(instructions, list):
            found = {c for text in instructions if isinstance(text, str) for c in persona_categories(text)}
            self.categories.update(found)

    def counts(self, top_k: int) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {}
        for name, counter in self.booleans.items():
            if counter:
                counts[name] = {"false": counter["false"], "true": counter["true"]}
        if self.categories:
            counts["persona_categories"] = _most_common(self.categories, None)
        for name, counter in self.tops.items():
            if counter:
                counts[name] = _most_common(counter, top_k)
        return counts


def _most_common(counter: Counter[str], k: int | None) -> dict[str, int]:
    """Most frequent first, ties by name."""
    return dict(sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:k])


def label_counts(conversations: Iterable[Conversation], top_k: int = 10) -> dict[str, dict[str, int]]:
    """Counts of the labels :class:`TranscriptStats` reports (see its ``labels`` field).

    Example:
        >>> chats = [Conversation(corpus="x", id=str(i), turns=[], labels={"intent": intent})
        ...          for i, intent in enumerate(["refund", "card", "refund"])]
        >>> label_counts(chats, top_k=1)
        {'intent': {'refund': 2}}
    """
    tally = _LabelTally()
    for conversation in conversations:
        tally.add(conversation)
    return tally.counts(top_k)


def summarize(conversations: Iterable[Conversation], top_k: int = 10) -> TranscriptStats:
    """The statistics of ``conversations`` (read once, so a streaming reader is fine)."""
    tally = _LabelTally()
    corpora: Counter[str] = Counter()

    def counted(source: Iterable[Conversation]) -> Iterator[Conversation]:
        for conversation in source:
            corpora[conversation.corpus] += 1
            tally.add(conversation)
            yield conversation

    frame = turn_frame(counted(conversations))
    by_role = frame.groupby("role", sort=True)
    latencies = reply_latencies(frame)
    return TranscriptStats(
        conversations=corpora.total(),
        turns=len(frame),
        corpora=dict(sorted(corpora.items())),
        turns_by_role={str(role): int(n) for role, n in by_role.size().items()},
        words_by_role={str(role): Distribution.of(group["words"]) for role, group in by_role},
        latency_seconds={
            role: Distribution.of(latencies.loc[latencies["role"] == role, "seconds"]) for role in DIALOGUE_ROLES
        },
        labels=tally.counts(top_k),
    )


def as_rows(stats: TranscriptStats) -> Mapping[str, list[tuple[str, ...]]]:
    """The statistics as printable rows per section (``counts``, ``words``, ``latency``, ``labels``)."""

    def number(value: Any) -> str:
        return "-" if value is None else f"{value:.1f}" if isinstance(value, float) else str(value)

    def distribution(name: str, d: Distribution) -> tuple[str, ...]:
        return (name, str(d.count), number(d.mean), number(d.median), number(d.p90), number(d.min), number(d.max))

    return {
        "counts": [
            ("conversations", str(stats.conversations)),
            ("turns", str(stats.turns)),
            *((f"{role} turns", str(n)) for role, n in stats.turns_by_role.items()),
        ],
        "words": [distribution(role, d) for role, d in stats.words_by_role.items()],
        "latency": [distribution(f"{role} reply", d) for role, d in stats.latency_seconds.items()],
        "labels": [(name, value, str(n)) for name, counts in stats.labels.items() for value, n in counts.items()],
    }
