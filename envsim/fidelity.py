"""How human is a mock user? Held-out human dialogues replayed, with figures that can fail.

**The split** (:mod:`envsim.fidelity_split`): the evaluation dialogues are STAR's held-out
dialogues (the calibration's split, :func:`envsim.calibrate.is_heldout`), and no scenario template
(task text and persona instructions) of theirs is on the pool side; the transcript user retrieves
from the pool side only (:func:`evaluate` writes it to a temporary folder and points the user at
it), the LLM user draws its exemplars from it, and the coherence model is fitted on it.

**The replay.** For each persona, the evaluation dialogues of its persona category (by
:func:`envsim.calibrate.classify`; a hand-written persona uses the category
:func:`envsim.user.transcript.persona_group` gives it) are *replayed*: the mock user gets the
dialogue's first human turn as its scenario's opening line and then, one by one, the human agent's
(wizard's) turns as the agent messages, with the wizard's knowledge-base queries as successful tool
calls in between, so both sides answer the same prompts (:class:`Replay`). The replay scenario's
facts are the details the role-player was given (:func:`task_facts`), its further requests those the instructions
added (:func:`follow_ups`). A replay stops when the user ends the conversation.

**The figures that can fail** (targets of issue 19, :func:`targets`):

- ``context_auc`` per persona (target <= 0.65): a discriminator that sees the agent turn and the
  reply, their features and their interaction (:func:`~envsim.fidelity_measures.context_features`),
  one logistic regression over every persona (:func:`context_aucs`), cross-validated with folds by
  dialogue; ``context_auc_shuffled``: the same with shuffled labels (chance, near 0.5). Pairs whose
  human reply is a near-duplicate of a pool turn are left out on both sides (:func:`context_rows`);
- the dialogue-level test (:func:`dialogue_level`, target accuracy <= 0.70): given the human and the
  simulated side of one dialogue, which is human? With its shuffled baseline;
- the context fit (target: misfit rates within 2 points): the coherence model
  (:mod:`envsim.user.transcript.coherence`) fitted on pool pairs only; its misfit rate on simulated replies
  beside human replies to the same agent turns;
- the copy rate (reported): the share of simulated replies within normalised edit distance 0.2 of a
  pool turn (:class:`~envsim.fidelity_measures.NearDuplicates`), beside the held-out human replies'.

**Style figures** (:class:`PersonaFidelity`, no target): ``turn_auc``, the classifier that sees a
reply alone (:mod:`envsim.fidelity_classifier`); Kolmogorov-Smirnov and Wasserstein distances of
words per turn; question rates; affect (:mod:`envsim.user.affect_scorer`); the Jensen-Shannon
divergence of the unigram distributions, beside the same between two halves of the human turns.

Example:
    >>> ks_distance([1, 2, 3], [1, 2, 3]), ks_distance([1, 2], [5, 6])
    (0.0, 1.0)
    >>> round(js_divergence({"a": 1}, {"b": 1}), 3), js_divergence({"a": 2, "b": 1}, {"a": 4, "b": 2})
    (1.0, 0.0)
"""

from __future__ import annotations

import atexit
import json
import math
import re
import shutil
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from envsim.errors import EnvsimError
from envsim.fidelity_classifier import FEATURES, FOLDS, cv_auc, cv_aucs_by, turn_features
from envsim.fidelity_measures import (
    COPY_DISTANCE,
    SHUFFLED_REPEATS,
    NearDuplicates,
    agent_act_of,
    context_features,
    normalise,
    pair_accuracy,
)
from envsim.fidelity_split import Split, split_by_template, write_pool
from envsim.scenario import AgentSpec, Expected, Fact, PersonaSpec, Scenario, UserSpec
from envsim.transcripts.schema import Conversation
from envsim.user.affect_scorer import AFFECTS, AffectScorer, default_scorer
from envsim.user.base import UserSimulator
from envsim.user.transcript.text import Names, entity_spans

if TYPE_CHECKING:
    from envsim.user.transcript.coherence import CoherenceModel

TURN_AUC_REPEATS = 2
"""Cross-validation splits of the style-only ``turn_auc`` (a figure without a target: fewer splits, less time)."""

DEFAULT_DIALOGUES = 100
"""Held-out dialogues per persona when none is given (the first ones by id)."""

TOOLKIT = "banking"
"""The toolkit named by replay scenarios (no tool is ever called: the wizard's queries are replayed as messages)."""

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


# -- distances -------------------------------------------------------------------------------


def ks_distance(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """The two-sample Kolmogorov-Smirnov distance: the largest gap between the empirical CDFs.

    Example:
        >>> ks_distance([1, 2, 3, 4], [3, 4, 5, 6])
        0.5
    """
    x, y = np.sort(np.asarray(a, dtype=float)), np.sort(np.asarray(b, dtype=float))
    if not len(x) or not len(y):
        return float("nan")
    grid = np.concatenate([x, y])
    cdf_x = np.searchsorted(x, grid, side="right") / len(x)
    cdf_y = np.searchsorted(y, grid, side="right") / len(y)
    return float(np.max(np.abs(cdf_x - cdf_y)))


def wasserstein(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """The Wasserstein-1 (earth mover's) distance between two samples: the area between their CDFs.

    Example:
        >>> wasserstein([0, 1], [2, 3])
        2.0
    """
    x, y = np.sort(np.asarray(a, dtype=float)), np.sort(np.asarray(b, dtype=float))
    if not len(x) or not len(y):
        return float("nan")
    grid = np.sort(np.concatenate([x, y]))
    widths = np.diff(grid)
    cdf_x = np.searchsorted(x, grid[:-1], side="right") / len(x)
    cdf_y = np.searchsorted(y, grid[:-1], side="right") / len(y)
    return float(np.sum(np.abs(cdf_x - cdf_y) * widths))


def js_divergence(p: Mapping[str, float], q: Mapping[str, float]) -> float:
    """Jensen-Shannon divergence (base 2, in [0, 1]) of two count (or probability) tables."""
    keys = sorted(set(p) | set(q))
    if not keys:
        return 0.0
    pa = np.array([p.get(k, 0.0) for k in keys], dtype=float)
    qa = np.array([q.get(k, 0.0) for k in keys], dtype=float)
    if pa.sum() <= 0 or qa.sum() <= 0:
        return float("nan")
    pa, qa = pa / pa.sum(), qa / qa.sum()
    m = (pa + qa) / 2

    def kl(x: np.ndarray) -> float:
        mask = x > 0
        return float(np.sum(x[mask] * np.log2(x[mask] / m[mask])))

    return max(0.0, 0.5 * kl(pa) + 0.5 * kl(qa))


def unigrams(texts: Iterable[str]) -> Counter[str]:
    """Lower-case word counts over ``texts``.

    Example:
        >>> unigrams(["Hi there", "hi"])
        Counter({'hi': 2, 'there': 1})
    """
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(_WORD.findall(text.lower()))
    return counts


# -- replay ----------------------------------------------------------------------------------

_IDENTITY: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "name",
        r"(?i:your name is|your name:|you are|your are|you \()\s*([A-Z][a-z]+(?: [A-Z][a-z]+)?)",
        ("your name", "full name", "your first name", "your last name"),
    ),
    ("origin", r"(?i:from) '([^']{2,40})'", ("depart", "where are you", "pick you up", "leaving from", "start")),
    (
        "destination",
        r"(?i:to|somewhere near) '?(?![A-Z]{2,}\b|\d+(?:st|nd|rd|th)\b)"
        r"([A-Z0-9][\w']*(?: [A-Z0-9][\w']*)*(?: and [A-Z][\w']*(?: [A-Z][\w']*)*)?)",
        ("where do you", "where to", "destination", "where would you like to go", "want to go", "need to go"),
    ),
    ("account_number", r"(?i:account)(?: number)?(?: is|:)?\s*(\d{4,})", ("account",)),
    ("pin", r"\bPIN\b.{0,60}?(\d{4}(?: or \d{4})?)", ("pin",)),  # 'either 7402 or 3941': the role-player was unsure
    ("date_of_birth", r"(?i:date of birth|born)(?: is| on|:)?\s*([\d/.-]{6,10})", ("birth", "dob", "born")),
    ("maiden_name", r"(?i:maiden name)[^A-Z]{0,40}([A-Z][a-z]+)", ("maiden",)),
    ("pet_name", r"(?i:pet)(?:'s name)?(?: is|:)\s*([A-Z][a-z]+)", ("pet",)),
    ("rank", r"(?i:you are the ship's|your rank is)\s*([A-Z]?[a-z]+)", ("rank",)),
    ("access_code", r"(?i:code is)\s*(\d+)", ("code",)),
)
_BOILERPLATE = re.compile(r"Follow the instructions[^.]*\.|Do not end the dialogue[^.]*\.", re.IGNORECASE)
_TASK_STOP = frozenset(
    [
        "the",
        "and",
        "you",
        "your",
        "are",
        "would",
        "like",
        "want",
        "with",
        "for",
        "that",
        "this",
        "will",
        "have",
        "has",
        "can",
        "also",
        "from",
        "about",
        "then",
        "into",
        "which",
        "what",
        "when",
        "where",
        "there",
        "their",
        "they",
        "them",
        "need",
        "needs",
        "just",
        "only",
    ]
)


def _stem(word: str) -> str:
    return word[:5]


_TASK_STATEMENTS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"you (?:do not|don't) need ([a-z ]{3,30})", re.IGNORECASE), "no"),
    (re.compile(r"you have no ([a-z ]{3,30})", re.IGNORECASE), "no"),
    (re.compile(r"you have not (?:paid|payed) ([a-z ]{3,30})", re.IGNORECASE), "no"),
    (re.compile(r"you need ([a-z ]{3,30})", re.IGNORECASE), "yes"),
    (re.compile(r"you have (?:paid|payed) ([a-z ]{3,30})", re.IGNORECASE), "yes"),
    (re.compile(r"you cannot remember (?:if|whether) you (?:had )?(?:paid|payed) ([a-z ]{3,30})", re.I), "unsure"),
    (re.compile(r"you can only (?:eat|have|drink) ([a-z]+) ([a-z ]{3,20})", re.IGNORECASE), "only"),
    (re.compile(r"you have had ([a-z ,]{3,80}?),? for ([a-z0-9 ]{3,30})", re.IGNORECASE), "had"),
)
"""STAR task sentences that tell the role-player an answer no entity span holds, each a whole sentence: a yes or a no
('You don't need parking.', 'You have paid the application fee.'), a restriction ('You can only eat vegetarian
food.'), what the role-player cannot remember ('You cannot remember if you had payed the application fee.') and what has
happened ('You have had a cough and a sore throat, for two days now.')."""

_SENTENCE = re.compile(r"[^.!?]+[.!?]?")

_DOCTOR = re.compile(r"(?i)(?:dr|doctor)\b")
"""A name with a doctor's title ('Dr. Johnson'): the agent asks for it as the doctor ('What doctor would you like?')."""


def task_statements(task: str) -> list[Fact]:
    """The answers a STAR task states in whole sentences (:data:`_TASK_STATEMENTS`), as facts.

    A yes or a no is asked for by the stems of its object's words ('parking', 'dietary restrictions'); a restriction
    by its object's and by *restrict*, said 'I can only eat vegetarian food.'; what has happened by *symptom*,
    *feel* and *wrong* and its own words, said in the first person.

    Example:
        >>> [(f.key, f.value, f.asked_by, f.say) for f in task_statements(
        ...     "You are Ben. You don't need parking. You can only eat halal food.")]  # doctest: +NORMALIZE_WHITESPACE
        [('yes_no_1', 'no', ['parki'], None),
         ('statement_1', 'halal', ['halal', 'food', 'restr'], 'I can only eat halal food.')]
    """
    facts: list[Fact] = []
    counts: Counter[str] = Counter()
    for sentence in _SENTENCE.findall(task):
        sentence = sentence.strip()
        for pattern, answer in _TASK_STATEMENTS:
            match = pattern.fullmatch(sentence.rstrip(".!? "))
            if match is None:
                continue
            words = [w for w in re.findall(r"[a-z]+", match.group(1).lower()) if len(w) >= 3 and w not in _TASK_STOP]
            asked = [_stem(w) for w in words]
            if answer in ("yes", "no"):
                key, value, said = "yes_no", answer, None
            elif answer == "unsure":
                key, value, said = "statement", "not sure", f"I can't remember if I paid {match.group(1).strip()}."
            elif answer == "only":
                verb = re.search(r"only (\w+)", sentence, re.IGNORECASE)
                key, value = "statement", match.group(1)
                asked = [_stem(w) for w in [match.group(1).lower(), *re.findall(r"[a-z]{3,}", match.group(2).lower())]]
                asked.append("restr")
                said = f"I can only {verb.group(1) if verb else 'eat'} {match.group(1)} {match.group(2)}."
            else:
                key, value = "statement", " ".join(match.group(1).split())
                asked = ["sympt", "feel", "wrong", *asked]
                said = f"I have had {value} for {match.group(2).strip()}."
            asked = list(dict.fromkeys(asked))
            if asked:
                counts[key] += 1
                facts.append(Fact(key=f"{key}_{counts[key]}", value=value, asked_by=asked, say=said))
            break
    return facts


def task_facts(conversation: Conversation, names: Names | None = None) -> list[Fact]:
    """The details the role-playing user was given (STAR task and instructions), as scenario facts.

    Identity details (name, origin and destination of a trip, account number, PIN, date of
    birth, maiden name, pet, rank, access code) by pattern in the task and instructions, asked
    for by their own words; every other entity
    span of the task text
    (:func:`~envsim.user.transcript.entity_spans`) by the stems of the two content words before
    it and of the common nouns in it (``the Hyatt Hotel`` is asked for by *hotel*), plus *time*
    / *when* for a time, *day* / *date* / *when* for a date (never by a date's or a time's own words), *how many*
    for a quantity; a name with a doctor's title by *doctor* alone; and the answers the task states in sentences
    (:func:`task_statements`). (The
    transcript user counts them only in the agent's questions and requests.) The user says
    each as the bare value.

    Example:
        >>> from envsim.transcripts.schema import Turn
        >>> c = Conversation(corpus="star", id="1", turns=[], labels={"user_task": "Your name is Ann Lee. "
        ...     "Book a table for 4 people at 7 pm.", "persona_instructions": []})
        >>> [(f.key, f.value, f.asked_by) for f in task_facts(c)]
        [('name', 'Ann Lee', ['your name', 'full name', 'your first name', 'your last name']), \
('quantity_1', '4 people', ['table', 'peopl', 'how many', 'number of']), ('time_1', '7 pm', ['peopl', 'time', 'when'])]
    """
    labels = conversation.labels
    task = _BOILERPLATE.sub(" ", str(labels.get("user_task") or ""))
    text = re.sub(
        r"\s*\[instruction \d+ of \d+\]", "", "\n".join([task, *map(str, labels.get("persona_instructions") or [])])
    )
    facts: list[Fact] = []
    values: set[str] = set()
    for key, pattern, asked in _IDENTITY:
        match = re.search(pattern, text)
        value = match.group(1).strip(" '") if match else ""
        if value and value not in values:
            values.add(value)
            facts.append(Fact(key=key, value=value, asked_by=list(asked), say="{{ value }}"))
    for fact in task_statements(task):
        values.add(fact.value)
        facts.append(fact)
    counts: Counter[str] = Counter()
    text = task
    names = names or Names()
    for start, end, kind in entity_spans(text, names):
        value = text[start:end].strip(" '\"")
        if not value or value in values or any(value in v for v in values):
            continue
        values.add(value)
        before = [w for w in re.findall(r"[a-z]+", text[max(0, start - 60) : start].lower()) if w not in _TASK_STOP]
        inner = [  # a date's or a time's own words do not ask for it ('May I have your name?' is no date)
            w
            for w in re.findall(r"[a-z]+", value.lower())
            if len(w) >= 3 and not names.is_name(w.title()) and kind not in ("date", "time")
        ]
        by_kind = {"time": ["time", "when"], "date": ["day", "date", "when"], "quantity": ["how many", "number of"]}
        words = [_stem(w) for w in [*before[-2:], *inner] if len(w) >= 3] + by_kind.get(kind, [])
        if _DOCTOR.match(value) or re.search(r"(?i)\b(?:dr|doctor)\.?\s*$", text[max(0, start - 10) : start]):
            words = ["doctor"]  # as the doctor: 'an appointment with Dr. Morgan' is not asked for by 'appointment'
        words = list(dict.fromkeys(words))
        if not words:
            continue
        counts[kind] += 1
        facts.append(Fact(key=f"{kind}_{counts[kind]}", value=value, asked_by=words, say="{{ value }}"))
    instructions = " ".join(map(str, labels.get("persona_instructions") or []))
    return [_as_recalled(fact, instructions) for fact in facts]


_ACTUALLY = re.compile(r"\b(?i:the ([a-z]+(?: [a-z]+)?) (?:was|is) actually) '?([A-Za-z0-9][\w-]*(?: [A-Z][\w-]*)*)")
"""A STAR instruction that changes a task value ('The flight ID was actually 704.')."""

_MOVED = re.compile(r"\b(?i:you are actually (?:closer to|at|near)) '?([A-Z0-9][\w-]*(?: (?:and )?[A-Z0-9][\w-]*)*)")
"""A STAR instruction that moves the role-player's starting point ('You realize that you are actually closer to
University right now... change your departure location to there'): the origin changes."""

_FORGOT = re.compile(r"(?i)\byou forgot your ([a-z]+(?: [a-z]+)?)")
"""A STAR instruction that the role-player has forgotten a detail ('you forgot your PIN'), remembered later."""


def _as_recalled(fact: Fact, instructions: str) -> Fact:
    """``fact`` as the STAR instructions have the role-player give it: a value 'actually' another (or a starting point
    the role-player turns out to be closer to) is said wrongly first and corrected (``said_first``), a forgotten one
    that a later instruction gives is found when asked again (``found_after``).

    Example:
        >>> flight = Fact(key="number_1", value="761", asked_by=["fligh"])
        >>> changed = _as_recalled(flight, "The flight ID was actually 704. Once you've booked the flight 704...")
        >>> changed.value, changed.said_first
        ('704', '761')
        >>> origin = Fact(key="origin", value="Hospital", asked_by=["depart"])
        >>> _as_recalled(origin, "You realize that you are actually closer to Broadway and Main right now.").value
        'Broadway and Main'
        >>> pin = Fact(key="pin", value="7402 or 3941", asked_by=["pin"])
        >>> _as_recalled(pin, "You forgot your PIN. Now you remember you PIN. It was either 7402 or 3941.").found_after
        1
    """
    words = [_stem(w) for k in fact.asked_by for w in k.lower().split()] + [fact.key.split("_")[0]]
    for match in _ACTUALLY.finditer(instructions):
        named = [_stem(w) for w in match.group(1).lower().split()]
        value = match.group(2)
        if value != fact.value and any(n in words for n in named):
            return fact.model_copy(update={"value": value, "said_first": fact.value})
    moved = _MOVED.search(instructions)
    if fact.key == "origin" and moved is not None and moved.group(1) != fact.value:
        return fact.model_copy(update={"value": moved.group(1), "said_first": fact.value})
    for match in _FORGOT.finditer(instructions):
        named = [_stem(w) for w in match.group(1).lower().split()]
        if any(n in words for n in named) and fact.value.split()[0] in instructions[match.end() :]:
            return fact.model_copy(update={"found_after": 1})
    return fact


_REQUEST = re.compile(
    r"\b(?i:compare|check (?:whether|if)|ask (?:your|the) (?:ai )?assistant (?:what|about|whether|if|for)|"
    r"you (?:also )?want to (?:make|book|know|find|schedule|order|reserve)|schedule a second)\b"
)
"""Where a STAR instruction makes a further request ('Now compare ...', 'you also want to ...')."""

_NO_REQUEST = re.compile(
    r"(?i:small ?talk|joke|natural (?:close|end)|end the (?:conversation|dialogue)|goodbye|"
    r"if you like|at any point|at any time)"
)
"""An instruction that is no request: small talk, how to end, something optional."""

_TOPICS = re.compile(r"(?i:about the topics) (.+?) \((?i:in any order)\)")
"""The topics of a STAR dialogue of several ('about the topics 'A', 'B' and 'C' (in any order)')."""


def follow_ups(conversation: Conversation) -> list[str]:
    """The further requests STAR's instructions gave the role-player after the first (one per instruction), or the
    topics after the first of a dialogue of several ('a conversation about the topics 'Reserving a table at a
    restaurant' and 'Bank balance checking' (in any order)')."""
    instructions = list(map(str, conversation.labels.get("persona_instructions") or []))
    topics = _TOPICS.search(instructions[0]) if instructions else None
    if topics is not None:
        return re.findall(r"'([^']+)'", topics.group(1))[1:]
    out = []
    for text in instructions[1:]:
        text = re.sub(r"\s*\[instruction \d+ of \d+\]", "", text)
        asks = [m for m in map(_REQUEST.search, re.split(r"(?<=[.!?])\s+", text)) if m is not None]
        if asks and not _NO_REQUEST.search(text):
            out.append(" ".join(m.string[m.start() :] for m in asks))
    return out


def replay_scenario(conversation: Conversation, persona: str, facts: Sequence[Fact]) -> Scenario:
    """The scenario a mock user plays when replaying ``conversation`` (see the module docstring)."""
    domains = [str(d) for d in conversation.labels.get("domains") or [] if d]
    opening = next((t.text.strip() for t in conversation.turns if t.role == "user" and t.text.strip()), "Hi")
    goal = " ".join(str(conversation.labels.get("user_task") or "").split())[:300] or "Get help with my request."
    return Scenario(
        id="Replay" + re.sub(r"[^A-Za-z0-9]", "", conversation.id),
        domain=domains[0] if domains else "general",
        description=f"Replay of {conversation.corpus} dialogue {conversation.id}.",
        toolkits=[TOOLKIT],
        agent=AgentSpec(guidelines="Help the user."),
        user=UserSpec(
            goal=goal,
            opening=opening,
            facts=list(facts),
            follow_ups=follow_ups(conversation),
            persona=PersonaSpec(ref=persona),
        ),
        expected=Expected(),
        tags=domains,
    )


@dataclass
class Replay:
    """One replayed dialogue: the human's replies and the mock user's, in order.

    ``pairs`` holds one ``(agent message, human reply, simulated reply)`` per human reply that
    answered agent turns: the agent message is the wizard turns since the previous user turn,
    joined (what the mock user was given); the simulated reply is ``None`` once the mock user
    has ended the conversation.
    """

    dialogue_id: str
    human: list[str] = field(default_factory=list)
    simulated: list[str] = field(default_factory=list)
    pairs: list[tuple[str, str, str | None]] = field(default_factory=list)


def replay(user: UserSimulator, conversation: Conversation, scenario: Scenario, rng: np.random.Generator) -> Replay:
    """Drive ``user`` with the agent side of ``conversation`` (see the module docstring)."""
    result = Replay(conversation.id)
    turns = conversation.turns
    first = next((i for i, t in enumerate(turns) if t.role == "user" and t.text.strip()), None)
    if first is None:
        return result
    opening = user.reset(scenario, rng)
    messages: list[dict[str, Any]] = [{"role": "user", "content": opening}]
    pending: list[str] = []
    done = False
    calls = 0

    def answer() -> str:
        nonlocal done
        message = " ".join(pending)
        messages.append({"role": "assistant", "content": message})
        turn = user.reply(message, messages)
        messages.append({"role": "user", "content": turn.text})
        result.simulated.append(turn.text)
        done = turn.done
        return turn.text

    for turn in turns[first + 1 :]:
        if turn.role == "agent" and turn.text.strip():
            pending.append(turn.text.strip())
        elif turn.role == "tool" and turn.tool is not None and not done:
            calls += 1
            call_id = f"call_{calls}"
            arguments = json.dumps(turn.tool.arguments, default=str)
            messages.append(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": call_id,
                            "type": "function",
                            "function": {"name": turn.tool.name, "arguments": arguments},
                        }
                    ],
                }
            )
            messages.append(
                {"role": "tool", "tool_call_id": call_id, "content": json.dumps(turn.tool.result, default=str)}
            )
        elif turn.role == "user" and turn.text.strip():
            result.human.append(turn.text)
            if pending:
                simulated = None if done else answer()
                result.pairs.append((" ".join(pending), turn.text, simulated))
            pending.clear()
    if pending and not done:
        answer()
    return result


# -- the report ------------------------------------------------------------------------------


class PersonaFidelity(BaseModel):
    """The fidelity figures of one persona (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    category: str = Field(description="The STAR persona category whose held-out dialogues were replayed.")
    dialogues: int = Field(description="Held-out dialogues replayed.")
    human_turns: int
    simulated_turns: int
    context_auc: float | None = Field(
        description="AUC of the classifier that sees (agent turn, reply), on held-out folds (0.5: indistinguishable)."
    )
    context_auc_shuffled: float | None = Field(description="The same with the labels shuffled: chance.")
    context_pairs: int = Field(description="(agent turn, reply) pairs per side the context figures are computed on.")
    near_duplicates_removed: int = Field(
        description="Pairs left out because the human reply is within the copy distance of a pool turn."
    )
    copy_rate_sim: float = Field(description="Share of simulated replies within the copy distance of a pool turn.")
    copy_rate_human: float = Field(description="The same share for the held-out human replies.")
    misfit_sim: float | None = Field(description="Coherence model's misfit rate on simulated replies.")
    misfit_human: float | None = Field(description="The same on the human replies to the same agent turns.")
    turn_auc: float = Field(description="AUC of the classifier that sees a reply alone (style only).")
    length_ks: float = Field(description="KS distance of words per turn.")
    length_wasserstein: float = Field(description="Wasserstein-1 distance of words per turn (in words).")
    words_human: float = Field(description="Mean words per human turn.")
    words_sim: float = Field(description="Mean words per simulated turn.")
    question_rate_human: float
    question_rate_sim: float
    affect_ks: dict[str, float] = Field(description="KS distance of each affect score.")
    distress_human: float = Field(description="Mean distress of human turns.")
    distress_sim: float = Field(description="Mean distress of simulated turns.")
    lexical_js: float = Field(description="Jensen-Shannon divergence (bits) of the unigram distributions.")
    lexical_js_human: float | None = Field(description="The same between two halves of the human turns (by dialogue).")
    plot: str | None = Field(None, description="The SVG plot written, if any.")


class DialogueLevel(BaseModel):
    """The dialogue-level test: which of a human and a simulated dialogue of the same task is human?"""

    model_config = ConfigDict(extra="forbid")

    pairs: int = Field(description="(human, simulated) dialogue pairs, over every persona.")
    accuracy: float | None = Field(description="Out-of-fold accuracy of picking the human one (0.5: chance).")
    accuracy_shuffled: float | None = Field(description="The same with the sides shuffled: chance.")


class CopyRate(BaseModel):
    """Shares of replies within normalised edit distance ``distance`` of a pool turn, over every persona."""

    model_config = ConfigDict(extra="forbid")

    distance: float
    pool_turns: int = Field(description="Distinct pool user turns compared against.")
    simulated: float
    human: float


class ContextFit(BaseModel):
    """The coherence model's misfit rates, fitted on pool dialogues only, over every persona."""

    model_config = ConfigDict(extra="forbid")

    fitted_pairs: int = Field(description="Human (agent turn, reply) pairs of pool dialogues fitted.")
    threshold: float = Field(description="Scores below it are misfits.")
    misfit_sim: float | None
    misfit_human: float | None
    gap: float | None = Field(description="misfit_sim - misfit_human.")
    note: str


class Target(BaseModel):
    """One figure against its target (issue 19)."""

    model_config = ConfigDict(extra="forbid")

    figure: str
    value: float | None
    target: str
    passed: bool | None = Field(None, description="None: reported or a reference, no pass/fail (or not measured).")


class HumanReference(BaseModel):
    """The measures applied to a stand-in for a perfect simulator: another held-out human answering the same turn.

    At each evaluated (agent turn, reply) position (near-duplicates left out, as for the context
    figures), the stand-in's reply is a human reply to the same agent turn (same normalised text;
    else the same agent act, :func:`~envsim.fidelity_measures.agent_act_of`) from *another*
    replayed dialogue of the persona, drawn whether or not it is a near-duplicate. Where no other
    dialogue has that act, a reply of any other dialogue of the persona is drawn. A user at these
    figures is as distinguishable as another human answering the same turn.
    """

    model_config = ConfigDict(extra="forbid")

    context_auc: dict[str, float | None] = Field(description="The context-aware AUC of the stand-in, per persona.")
    context_auc_all: float | None = Field(description="The same over every persona.")
    dialogue_accuracy: float | None = Field(description="The dialogue-level test's accuracy on the stand-in.")
    dialogue_pairs: int = Field(description="(human, stand-in) dialogue pairs of the dialogue-level test.")
    positions: int = Field(description="Evaluated positions given a stand-in reply, over every persona.")
    exact_matches: int = Field(description="Positions whose stand-in answered the same agent turn (normalised text).")
    act_fallbacks: int = Field(description="Positions whose stand-in answered an agent turn of the same act.")
    any_fallbacks: int = Field(
        description="Positions where no other dialogue had that act: a reply of any other dialogue of the persona."
    )
    note: str


class FidelityReport(BaseModel):
    """The result of :func:`evaluate`: figures per persona and over all, and how they were obtained."""

    model_config = ConfigDict(extra="forbid")

    user: str
    model: str | None
    corpus: str
    seed: int
    split: str
    split_counts: dict[str, int]
    personas: dict[str, PersonaFidelity]
    context_auc_all: float | None = Field(description="The context-aware discriminator's AUC over every persona.")
    context_auc_all_shuffled: float | None = Field(description="The same with shuffled labels: chance.")
    dialogue_level: DialogueLevel
    copy_rate: CopyRate
    context_fit: ContextFit | None
    human_reference: HumanReference | None = Field(
        None, description="The same measures on another held-out human's reply to the same agent turn (a reference)."
    )
    wall_seconds: float


def _r(value: float, digits: int = 4) -> float:
    return round(float(value), digits)


def _r_or_none(value: float | None, digits: int = 4) -> float | None:
    return None if value is None or math.isnan(value) else _r(value, digits)


def _halves(replays: Sequence[Replay]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The human turns of the even and of the odd replays, as (dialogue id, text)."""
    a = [(r.dialogue_id, t) for i, r in enumerate(replays) if i % 2 == 0 for t in r.human]
    b = [(r.dialogue_id, t) for i, r in enumerate(replays) if i % 2 == 1 for t in r.human]
    return a, b


def _halves_js(replays: Sequence[Replay]) -> float | None:
    a, b = _halves(replays)
    return _r(js_divergence(unigrams(t for _, t in a), unigrams(t for _, t in b))) if a and b else None


@dataclass
class ContextRows:
    """The (agent turn, reply) rows of one persona the context figures use, near-duplicates of pool turns left out."""

    human: list[tuple[str, str, str]] = field(default_factory=list)
    """(dialogue id, agent turn, human reply)."""
    simulated: list[tuple[str, str, str]] = field(default_factory=list)
    """(dialogue id, agent turn, simulated reply)."""
    removed: int = 0


def context_rows(replays: Sequence[Replay], pool: NearDuplicates | None) -> ContextRows:
    """Every pair of the replays whose human reply is no near-duplicate of a pool turn, both sides at that position."""
    rows = ContextRows()
    for r in replays:
        for agent, human, simulated in r.pairs:
            if pool is not None and pool.within(human):
                rows.removed += 1
                continue
            rows.human.append((r.dialogue_id, agent, human))
            if simulated is not None:
                rows.simulated.append((r.dialogue_id, agent, simulated))
    return rows


def _context_x(rows: Sequence[tuple[str, str, str]], scorer: AffectScorer) -> np.ndarray:
    return context_features([a for _, a, _ in rows], [t for _, _, t in rows], scorer)


def persona_figures(
    category: str,
    replays: Sequence[Replay],
    scorer: AffectScorer | None = None,
    *,
    pool: NearDuplicates | None = None,
    coherence: CoherenceModel | None = None,
    seed: int = 0,
    context: tuple[float | None, float | None] | None = None,
) -> PersonaFidelity:
    """The figures of one persona from its replays.

    ``pool``: the near-duplicates to leave out and to copy against; ``coherence``: the model of the
    misfit rates; ``context``: the context-aware AUC and its shuffled baseline when already computed
    over several personas (:func:`context_aucs`), else computed from these replays alone.
    """
    scorer = scorer or default_scorer()
    human = [t for r in replays for t in r.human]
    sim = [t for r in replays for t in r.simulated]
    if not human or not sim:
        raise EnvsimError(f"{category}: no turns to compare ({len(human)} human, {len(sim)} simulated)")
    groups = [r.dialogue_id for r in replays for _ in r.human] + [r.dialogue_id for r in replays for _ in r.simulated]
    x = turn_features([*human, *sim], scorer)
    y = np.r_[np.ones(len(human), dtype=int), np.zeros(len(sim), dtype=int)]
    words_h = np.array([len(t.split()) for t in human], dtype=float)
    words_s = np.array([len(t.split()) for t in sim], dtype=float)
    first = FEATURES.index(AFFECTS[0])
    aff_h, aff_s = x[: len(human), first : first + len(AFFECTS)], x[len(human) :, first : first + len(AFFECTS)]
    distress = AFFECTS.index("distress")
    rows = context_rows(replays, pool)
    context_auc, shuffled = context if context is not None else context_aucs({category: rows}, scorer, seed)[category]
    misfit_h = misfit_s = None
    if coherence is not None and rows.human and rows.simulated:
        misfit_h = _r(coherence.misfit_rate((a, t) for _, a, t in rows.human))
        misfit_s = _r(coherence.misfit_rate((a, t) for _, a, t in rows.simulated))
    return PersonaFidelity(
        category=category,
        dialogues=len(replays),
        human_turns=len(human),
        simulated_turns=len(sim),
        context_auc=context_auc,
        context_auc_shuffled=shuffled,
        context_pairs=min(len(rows.human), len(rows.simulated)),
        near_duplicates_removed=rows.removed,
        copy_rate_sim=_r(pool.rate(sim)) if pool is not None else 0.0,
        copy_rate_human=_r(pool.rate(human)) if pool is not None else 0.0,
        misfit_sim=misfit_s,
        misfit_human=misfit_h,
        turn_auc=_r(cv_auc(x, y, groups, repeats=TURN_AUC_REPEATS)),
        length_ks=_r(ks_distance(words_h, words_s)),
        length_wasserstein=_r(wasserstein(words_h, words_s)),
        words_human=_r(words_h.mean(), 2),
        words_sim=_r(words_s.mean(), 2),
        question_rate_human=_r(float(np.mean(["?" in t for t in human]))),
        question_rate_sim=_r(float(np.mean(["?" in t for t in sim]))),
        affect_ks={a: _r(ks_distance(aff_h[:, i], aff_s[:, i])) for i, a in enumerate(AFFECTS)},
        distress_human=_r(float(aff_h[:, distress].mean())),
        distress_sim=_r(float(aff_s[:, distress].mean())),
        lexical_js=_r(js_divergence(unigrams(human), unigrams(sim))),
        lexical_js_human=_halves_js(replays),
    )


def context_aucs(
    rows_of: Mapping[str, ContextRows], scorer: AffectScorer | None = None, seed: int = 0
) -> dict[str, tuple[float | None, float | None]]:
    """The context-aware discriminator: one model over every persona's rows, its AUC within each persona.

    One logistic regression on :func:`~envsim.fidelity_measures.context_features` plus a persona
    indicator, cross-validated with folds by dialogue (a dialogue's human and simulated rows, under
    every persona, are in one fold); per persona the AUC of its rows' out-of-fold scores, averaged
    over :data:`~envsim.fidelity_classifier.CV_REPEATS` splits, and the same with the labels
    shuffled (seeded, :data:`~envsim.fidelity_measures.SHUFFLED_REPEATS` splits). ``"*"``: over every row.
    A persona with no row on a side, or fewer dialogues than folds, gets ``None``.
    """
    scorer = scorer or default_scorer()
    names = list(rows_of)
    blocks, labels, groups, parts = [], [], [], []
    for name, rows in rows_of.items():
        for side, label in ((rows.human, 1), (rows.simulated, 0)):
            if not side:
                continue
            indicator = np.zeros((len(side), len(names)))
            indicator[:, names.index(name)] = 1.0
            blocks.append(np.hstack([_context_x(side, scorer), indicator]))
            labels += [label] * len(side)
            groups += [d for d, _, _ in side]
            parts += [name] * len(side)
    y = np.asarray(labels, dtype=int)
    empty: tuple[float | None, float | None] = (None, None)
    out = {name: empty for name in [*names, "*"]}
    if len(set(groups)) < FOLDS or len(set(labels)) < 2:
        return out
    x = np.vstack(blocks)
    real = cv_aucs_by(x, y, groups, parts)
    permuted = np.random.default_rng(seed).permutation(y)
    chance = cv_aucs_by(x, permuted, groups, parts, repeats=SHUFFLED_REPEATS)
    for name in [*names, "*"]:
        part = rows_of.get(name)
        dialogues = {d for d, _, _ in part.human + part.simulated} if part is not None else set(groups)
        if len(dialogues) < FOLDS or np.all(np.isnan(real[name])):
            continue
        out[name] = (_r(float(np.nanmean(real[name]))), _r(float(np.nanmean(chance[name]))))
    return out


def dialogue_level(
    replays: Sequence[Replay], pool: NearDuplicates | None, scorer: AffectScorer | None = None, seed: int = 0
) -> DialogueLevel:
    """The dialogue-level test over ``replays`` (every persona's): features are each side's mean context row.

    A dialogue's side is described by the mean of its :func:`context_features` rows (near-duplicate
    positions left out, as for the per-turn figures) and the log of their number; a replay whose
    sides have no row each is left out.
    """
    scorer = scorer or default_scorer()
    kept = [rows for rows in (context_rows([r], pool) for r in replays) if rows.human and rows.simulated]
    x = _context_x([row for rows in kept for row in (*rows.human, *rows.simulated)], scorer)  # one batch: rows alone
    sides: list[tuple[np.ndarray, np.ndarray]] = []
    start = 0
    for rows in kept:
        middle, end = start + len(rows.human), start + len(rows.human) + len(rows.simulated)
        h, s = x[start:middle], x[middle:end]
        sides.append((np.r_[h.mean(axis=0), math.log1p(len(h))], np.r_[s.mean(axis=0), math.log1p(len(s))]))
        start = end
    if len(sides) < FOLDS:
        return DialogueLevel(pairs=len(sides), accuracy=None, accuracy_shuffled=None)
    human, simulated = np.array([h for h, _ in sides]), np.array([s for _, s in sides])
    return DialogueLevel(
        pairs=len(sides),
        accuracy=_r(pair_accuracy(human, simulated, seed=seed)),
        accuracy_shuffled=_r(pair_accuracy(human, simulated, seed=seed, shuffle=True, repeats=SHUFFLED_REPEATS)),
    )


# -- the human reference ---------------------------------------------------------------------


@dataclass
class StandIn:
    """Replays whose simulated side is another held-out human's reply to the same agent turn (:class:`HumanReference`).

    ``replays`` mirror the originals: the same agent turns and human replies, the stand-in reply at
    each evaluated position and ``None`` elsewhere; ``sources`` gives, per stand-in reply, the dialogue it came from.
    """

    replays: list[Replay] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    exact: int = 0
    act: int = 0
    other: int = 0


def stand_in(replays: Sequence[Replay], pool: NearDuplicates | None, rng: np.random.Generator) -> StandIn:
    """The stand-in of one persona's replays: at each position :func:`context_rows` keeps, a reply of another dialogue.

    Candidates are every human reply of the other replays (near-duplicates included) to the same
    normalised agent turn, else to one of the same act, else any; one is drawn with ``rng``, in
    order. A position with no other dialogue at all gets no stand-in (``None``).

    Example:
        >>> a = Replay("a", pairs=[("What time?", "7 pm", None), ("Anything else?", "no", None)])
        >>> b = Replay("b", pairs=[("What time?", "at 8", None)])
        >>> out = stand_in([a, b], None, np.random.default_rng(0))
        >>> [[s for _, _, s in r.pairs] for r in out.replays], out.sources, (out.exact, out.act, out.other)
        ([['at 8', 'at 8'], ['7 pm']], ['b', 'b', 'a'], (2, 0, 1))
    """
    by_text: dict[str, list[tuple[str, str]]] = {}
    by_act: dict[str, list[tuple[str, str]]] = {}
    every: list[tuple[str, str]] = []
    for r in replays:
        for agent, human, _ in r.pairs:
            by_text.setdefault(normalise(agent), []).append((r.dialogue_id, human))
            by_act.setdefault(agent_act_of(agent), []).append((r.dialogue_id, human))
            every.append((r.dialogue_id, human))
    out = StandIn()
    for r in replays:
        pairs: list[tuple[str, str, str | None]] = []
        for agent, human, _ in r.pairs:
            if pool is not None and pool.within(human):
                pairs.append((agent, human, None))
                continue
            exact = [c for c in by_text.get(normalise(agent), []) if c[0] != r.dialogue_id]
            act = [] if exact else [c for c in by_act.get(agent_act_of(agent), []) if c[0] != r.dialogue_id]
            other = [] if exact or act else [c for c in every if c[0] != r.dialogue_id]
            candidates = exact or act or other
            if not candidates:
                pairs.append((agent, human, None))
                continue
            out.exact, out.act, out.other = out.exact + bool(exact), out.act + bool(act), out.other + bool(other)
            source, text = candidates[int(rng.integers(len(candidates)))]
            out.sources.append(source)
            pairs.append((agent, human, text))
        out.replays.append(Replay(r.dialogue_id, human=list(r.human), simulated=[], pairs=pairs))
    return out


def human_reference(
    replays_of: Mapping[str, Sequence[Replay]],
    pool: NearDuplicates | None,
    scorer: AffectScorer | None = None,
    seed: int = 0,
) -> HumanReference:
    """The context AUCs and the dialogue-level test of the stand-in (:func:`stand_in`): where real people sit.

    The same kept positions, features, classifiers and seed as the simulated figures
    (:func:`context_aucs`, :func:`dialogue_level`); each persona's draws are seeded by ``seed``
    and the persona's name, so they do not depend on which other personas are measured.
    """
    scorer = scorer or default_scorer()
    stand_ins = {
        name: stand_in(replays, pool, np.random.default_rng([seed, zlib.crc32(f"reference/{name}".encode())]))
        for name, replays in replays_of.items()
    }
    aucs = context_aucs({name: context_rows(s.replays, pool) for name, s in stand_ins.items()}, scorer, seed)
    level = dialogue_level([r for s in stand_ins.values() for r in s.replays], pool, scorer, seed)
    exact, act, other = (sum(getattr(s, k) for s in stand_ins.values()) for k in ("exact", "act", "other"))
    return HumanReference(
        context_auc={name: aucs[name][0] for name in stand_ins},
        context_auc_all=aucs["*"][0],
        dialogue_accuracy=level.accuracy,
        dialogue_pairs=level.pairs,
        positions=exact + act + other,
        exact_matches=exact,
        act_fallbacks=act,
        any_fallbacks=other,
        note=(
            "a stand-in for a perfect simulator: at each evaluated position, another held-out human's reply (another "
            "dialogue of the persona) to the same agent turn, else to one of the same act; a user at these figures is "
            "as distinguishable as another human answering the same turn"
        ),
    )


def _by_category(
    conversations: Iterable[Conversation], categories: Iterable[str], limit: int | None
) -> dict[str, list[Conversation]]:
    """The dialogues of each persona category, in id order (the first ``limit`` of each)."""
    from envsim.calibrate import classify

    wanted = set(categories)
    found: dict[str, list[Conversation]] = {c: [] for c in wanted}
    for conversation in conversations:
        group = classify(conversation)
        if group in wanted:
            found[group].append(conversation)
    key = lambda c: (not c.id.isdigit(), int(c.id) if c.id.isdigit() else 0, c.id)  # noqa: E731
    return {g: sorted(cs, key=key)[:limit] if limit is not None else sorted(cs, key=key) for g, cs in found.items()}


def default_personas() -> list[str]:
    """The calibrated personas (one per STAR persona category) that are in the persona library."""
    from envsim.calibrate import GROUPS
    from envsim.user.persona import persona_library

    library = persona_library()
    return [g.name for g in GROUPS if g.name in library]


def _star_source(where: Path) -> Path:
    from envsim.user.transcript.corpus import star_file

    location = star_file(where)
    names = ("dialogues.jsonl.gz", "dialogues.jsonl")
    source = next((location / n for n in names if (location / n).is_file()), location)
    if not source.is_file():
        raise EnvsimError(f"{where}: no STAR dialogues.jsonl(.gz) here")
    return source


@lru_cache(maxsize=2)
def _split(source: str, modified: int) -> Split:
    """The template split of a STAR file, once per process (``modified``: its mtime, so an edit is seen)."""
    from envsim.calibrate import CORPUS, is_heldout
    from envsim.user.transcript.corpus import read_star

    return split_by_template(read_star(source), lambda i: is_heldout(CORPUS, i))


@lru_cache(maxsize=2)
def _pool_folder(source: str, modified: int) -> Path:
    """The pool side of a STAR file's split written for the transcript user (a temporary folder, once per process).

    Removed at exit; kept meanwhile so the transcript user's index of it is built once per process.
    """
    folder = Path(tempfile.mkdtemp(prefix="envsim-fidelity-pool-"))
    atexit.register(shutil.rmtree, folder, True)
    return write_pool(Path(source), {c.id for c in _split(source, modified).pool}, folder)


@lru_cache(maxsize=2)
def _pool_index(source: str, modified: int) -> NearDuplicates:
    """The pool's user turns of a STAR file's split, indexed for near-duplicates, once per process."""
    pool = _split(source, modified).pool
    return NearDuplicates(t.text for c in pool for t in c.turns if t.role == "user" and t.text.strip())


@lru_cache(maxsize=4)
def _coherence(source: str, modified: int, seed: int) -> CoherenceModel:
    """The coherence model fitted on the pool dialogues of a STAR file's split, once per process and seed."""
    from envsim.user.transcript.coherence import CoherenceModel, corpus_pairs

    return CoherenceModel.fit(corpus_pairs(_split(source, modified).pool), seed=seed)


def evaluate(
    user: str = "transcript",
    *,
    model: str | None = None,
    corpus: str | Path | None = None,
    personas: Sequence[str] | None = None,
    dialogues: int | None = DEFAULT_DIALOGUES,
    seed: int = 0,
    plot_dir: str | Path | None = None,
    user_options: Mapping[str, Any] | None = None,
    coherence: bool = True,
) -> FidelityReport:
    """Replay held-out dialogues with a mock user and measure, per persona and over all, how human it is.

    The split is by scenario template (:mod:`envsim.fidelity_split`); the transcript user
    retrieves from the pool side only (written to a temporary folder it is pointed at).

    Args:
        user: The mock user, by registry name (``transcript`` or ``llm``).
        model: The litellm model of the LLM user.
        corpus: The transcripts folder (default :func:`~envsim.transcripts.corpus.corpus_dir`).
        personas: Library persona names (default :func:`default_personas`).
        dialogues: Held-out dialogues per persona (``None``: all).
        seed: Seed of the replays, of the coherence model's fit and of the chance baselines.
        plot_dir: Write one SVG plot per persona here.
        user_options: Further keyword arguments of the user's constructor.
        coherence: Measure context fit (fits the coherence model on the pool, a few seconds).
    """
    from envsim.calibrate import CORPUS, HELDOUT_BUCKETS, classify
    from envsim.transcripts.corpus import CORPUS_ENV, corpus_dir
    from envsim.user.persona import load_persona
    from envsim.user.registry import make_user
    from envsim.user.transcript.index import load_index
    from envsim.user.transcript.user import persona_group

    started = time.perf_counter()
    where = corpus_dir(corpus)
    if where is None:
        raise EnvsimError(f"no transcripts folder: pass --corpus DIR or set {CORPUS_ENV}")
    if not Path(where).is_dir():
        raise EnvsimError(f"{where}: no such folder")
    source = _star_source(Path(where))
    names = list(personas) if personas else default_personas()
    loaded = {name: load_persona(name) for name in names}
    version = (str(source), source.stat().st_mtime_ns)
    split = _split(*version)
    pool_dir = _pool_folder(*version)
    index = load_index(pool_dir)
    categories = {name: persona_group(p, index) for name, p in loaded.items()}
    held = _by_category(split.evaluation, set(categories.values()), dialogues)
    options: dict[str, Any] = dict(user_options or {})
    if user == "transcript":
        options["corpus"] = pool_dir
    elif user == "llm":  # exemplar turns from the pool only, of the categories measured
        wanted = set(categories.values())
        options.setdefault("exemplars", [c for c in split.pool if classify(c) in wanted])
    if model is not None:
        options["model"] = model
    sim = make_user(user, **options)
    name_rule = index.names if index is not None else Names()
    replays_of: dict[str, list[Replay]] = {}
    for name in names:
        replays = []
        for conversation in held[categories[name]]:
            scenario = replay_scenario(conversation, name, task_facts(conversation, name_rule))
            rng = np.random.default_rng([seed, zlib.crc32(f"{name}/{conversation.id}".encode())])
            replays.append(replay(sim, conversation, scenario, rng))
        replays_of[name] = replays
    pool = _pool_index(*version)
    fitted = _coherence(*version, seed) if coherence else None
    scorer = default_scorer()
    aucs = context_aucs({name: context_rows(r, pool) for name, r in replays_of.items()}, scorer, seed)
    figures: dict[str, PersonaFidelity] = {}
    for name, replays in replays_of.items():
        result = persona_figures(
            categories[name], replays, scorer, pool=pool, coherence=fitted, seed=seed, context=aucs[name]
        )
        if plot_dir is not None:
            path = Path(plot_dir) / f"{name}.svg"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(plot_svg(name, result, replays, scorer), encoding="utf-8")
            result = result.model_copy(update={"plot": str(path)})
        figures[name] = result
    everything = [r for replays in replays_of.values() for r in replays]
    every_rows = context_rows(everything, pool)
    fit = None
    if fitted is not None:
        misfit_h = fitted.misfit_rate((a, t) for _, a, t in every_rows.human) if every_rows.human else None
        misfit_s = fitted.misfit_rate((a, t) for _, a, t in every_rows.simulated) if every_rows.simulated else None
        gap = None if misfit_h is None or misfit_s is None else misfit_s - misfit_h
        note = (
            "the transcript user rejects misfit replies with a coherence model of the same family "
            "(envsim.user.transcript.coherence), so its misfit rate is a lower bound; the context-aware discriminator "
            "is the independent check"
            if user == "transcript"
            else "the coherence model is fitted on pool dialogues only; the user does not consult it"
        )
        fit = ContextFit(
            fitted_pairs=fitted.n_pairs,
            threshold=_r(fitted.threshold),
            misfit_sim=_r_or_none(misfit_s),
            misfit_human=_r_or_none(misfit_h),
            gap=_r_or_none(gap),
            note=note,
        )
    return FidelityReport(
        user=user,
        model=model,
        corpus=str(where),
        seed=seed,
        split=(
            f"by scenario template: evaluation = dialogues held out by sha256('{CORPUS}/<dialogue id>') % "
            f"{HELDOUT_BUCKETS} == 0 (as envsim calibrate); pool = dialogues whose task text and instructions no "
            "evaluated dialogue has; near-duplicates of pool turns (edit distance <= "
            f"{COPY_DISTANCE}) left out of the context figures"
        ),
        split_counts=split.summary(),
        personas=figures,
        context_auc_all=aucs["*"][0],
        context_auc_all_shuffled=aucs["*"][1],
        dialogue_level=dialogue_level(everything, pool, scorer, seed),
        copy_rate=CopyRate(
            distance=COPY_DISTANCE,
            pool_turns=len(pool),
            simulated=_r(pool.rate([t for r in everything for t in r.simulated])),
            human=_r(pool.rate([t for r in everything for t in r.human])),
        ),
        context_fit=fit,
        human_reference=human_reference(replays_of, pool, scorer, seed),
        wall_seconds=_r(time.perf_counter() - started, 2),
    )


CONTEXT_AUC_TARGET = 0.65
"""Target: the context-aware AUC of every persona at most this."""

DIALOGUE_ACCURACY_TARGET = 0.70
"""Target: the dialogue-level accuracy at most this."""

MISFIT_GAP_TARGET = 0.02
"""Target: the simulated misfit rate within this of the human one."""


def targets(report: FidelityReport | None, taus: Mapping[str, float | None] | None = None) -> list[Target]:
    """Every figure of issue 19's targets against its target.

    ``report``: the replay figures (``None``: not run); ``taus``: Kendall's tau per user of the
    outcome calibration (``None``: not run). A figure that could not be measured has ``passed`` None;
    so has each figure of the human reference (target ``reference``): it shows where real people sit, it is no target.
    """
    out: list[Target] = []

    def at_most(figure: str, value: float | None, bound: float) -> None:
        out.append(
            Target(figure=figure, value=value, target=f"<= {bound:g}", passed=None if value is None else value <= bound)
        )

    if report is not None:
        for name, f in report.personas.items():
            at_most(f"context_auc[{name}]", f.context_auc, CONTEXT_AUC_TARGET)
        at_most("dialogue_accuracy", report.dialogue_level.accuracy, DIALOGUE_ACCURACY_TARGET)
        fit = report.context_fit
        gap = fit.gap if fit is not None else None
        out.append(
            Target(
                figure="misfit_gap",
                value=gap,
                target=f"|sim - human| <= {MISFIT_GAP_TARGET:g}",
                passed=None if gap is None else abs(gap) <= MISFIT_GAP_TARGET + 1e-9,
            )
        )
    for user, tau in (taus or {}).items():
        out.append(Target(figure=f"tau[{user}]", value=tau, target="= 1", passed=tau is not None and tau >= 1.0))
    if report is not None:
        out.append(Target(figure="copy_rate_sim", value=report.copy_rate.simulated, target="reported", passed=None))
        out.append(Target(figure="copy_rate_human", value=report.copy_rate.human, target="reported", passed=None))
        reference = report.human_reference
        if reference is not None:  # where real people sit under the same measures: no pass, no fail
            for name, value in reference.context_auc.items():
                out.append(Target(figure=f"human_reference.context_auc[{name}]", value=value, target="reference"))
            out.append(
                Target(figure="human_reference.context_auc_all", value=reference.context_auc_all, target="reference")
            )
            out.append(
                Target(
                    figure="human_reference.dialogue_accuracy", value=reference.dialogue_accuracy, target="reference"
                )
            )
    return out


# -- the plot --------------------------------------------------------------------------------

HUMAN_COLOUR = "#1f77b4"
"""Bar colour of the human turns in the plots."""

SIM_COLOUR = "#d62728"
"""Bar colour of the simulated turns in the plots."""


def _histogram_panel(
    x0: float,
    y0: float,
    width: float,
    height: float,
    title: str,
    human: np.ndarray,
    sim: np.ndarray,
    edges: np.ndarray,
    labels: Sequence[str],
) -> list[str]:
    """SVG elements of one panel: the two samples' histograms (shares per bin) as outlined bars."""
    h = np.histogram(human, bins=edges)[0] / max(len(human), 1)
    s = np.histogram(sim, bins=edges)[0] / max(len(sim), 1)
    top = max(float(h.max(initial=0)), float(s.max(initial=0)), 1e-9)
    bins = len(edges) - 1
    bar = width / bins
    out = [
        f'<text x="{x0 + width / 2:.1f}" y="{y0 - 8:.1f}" text-anchor="middle" font-size="13">{title}</text>',
        f'<line x1="{x0}" y1="{y0 + height}" x2="{x0 + width}" y2="{y0 + height}" stroke="#444"/>',
        f'<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y0 + height}" stroke="#444"/>',
        f'<text x="{x0 - 4}" y="{y0 + 4}" text-anchor="end" font-size="10">{top:.0%}</text>',
        f'<text x="{x0 - 4}" y="{y0 + height}" text-anchor="end" font-size="10">0</text>',
    ]
    for i in range(bins):
        for share, colour, offset in ((h[i], HUMAN_COLOUR, 0.1), (s[i], SIM_COLOUR, 0.5)):
            bar_height = height * share / top
            out.append(
                f'<rect x="{x0 + bar * (i + offset):.1f}" y="{y0 + height - bar_height:.1f}" '
                f'width="{bar * 0.4:.1f}" height="{bar_height:.1f}" fill="{colour}" fill-opacity="0.7"/>'
            )
        if i % max(1, bins // 8) == 0:
            out.append(
                f'<text x="{x0 + bar * (i + 0.5):.1f}" y="{y0 + height + 14:.1f}" text-anchor="middle" '
                f'font-size="10">{labels[i]}</text>'
            )
    return out


def plot_svg(
    persona: str, figures: PersonaFidelity, replays: Sequence[Replay], scorer: AffectScorer | None = None
) -> str:
    """A self-contained SVG: words per turn and distress, human vs simulated, with the figures in the title."""
    scorer = scorer or default_scorer()
    human = [t for r in replays for t in r.human]
    sim = [t for r in replays for t in r.simulated]
    words_h = np.array([len(t.split()) for t in human], dtype=float)
    words_s = np.array([len(t.split()) for t in sim], dtype=float)
    distress_h = scorer.score_many(human)["distress"].to_numpy() if human else np.zeros(0)
    distress_s = scorer.score_many(sim)["distress"].to_numpy() if sim else np.zeros(0)
    word_edges = np.array([*range(0, 31, 2), 1e9], dtype=float)
    word_labels = [f"{int(a)}" for a in word_edges[:-2]] + ["30+"]
    top = max(
        0.5, float(np.quantile(np.r_[distress_h, distress_s], 0.98)) if len(distress_h) + len(distress_s) else 0.5
    )
    distress_edges = np.linspace(0.0, top, 13)
    distress_edges[-1] = 1.0
    distress_labels = [f"{a:.2f}" for a in distress_edges[:-1]]
    width, height = 760, 330
    context = "-" if figures.context_auc is None else f"{figures.context_auc:.2f}"
    title = (
        f"{persona} ({figures.category}): context AUC {context}, turn AUC {figures.turn_auc:.2f}, copy rate "
        f"{figures.copy_rate_sim:.2f}; {figures.human_turns} human vs {figures.simulated_turns} simulated turns"
    )
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'font-family="sans-serif">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="22" text-anchor="middle" font-size="14" font-weight="bold">{_escape(title)}</text>',
        *_histogram_panel(
            50, 70, 310, 200, "words per turn (share of turns)", words_h, words_s, word_edges, word_labels
        ),
        *_histogram_panel(
            430,
            70,
            310,
            200,
            "distress score (share of turns)",
            distress_h,
            distress_s,
            distress_edges,
            distress_labels,
        ),
        f'<rect x="260" y="{height - 28}" width="12" height="12" fill="{HUMAN_COLOUR}"/>',
        f'<text x="278" y="{height - 18}" font-size="12">human (held out)</text>',
        f'<rect x="420" y="{height - 28}" width="12" height="12" fill="{SIM_COLOUR}"/>',
        f'<text x="438" y="{height - 18}" font-size="12">simulated</text>',
        "</svg>",
    ]
    return "\n".join(parts) + "\n"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
