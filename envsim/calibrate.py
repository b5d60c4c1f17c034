"""Calibrate mock-user personas from human-written, role-played transcripts (STAR).

STAR's role-playing users were shown instructions ("act like a very annoying/grumpy person",
"Boom! You hear explosions all around you", "Make lots of typos", ...); the text they wrote
after it is how a person played that persona. :func:`calibrate` sorts the STAR dialogues into
persona groups by those instructions (plus the spaceship-emergency task and the wizard's
"did the user become aggressive or annoyed" answer; see :data:`GROUPS`), holds out one
dialogue in five (by a hash of the dialogue id), and fits per group, on the other four:

* words per user turn (log-normal parameters and quantiles) and the share of turns that ask
  a question;
* the typo rate: the share of a user's words that are not in a vocabulary built from the
  corpus itself (words used in at least :data:`VOCABULARY_MIN_DIALOGUES` fitting dialogues);
* reply latency: seconds from an agent turn to the user's reply;
* affect intensities from :mod:`envsim.user.affect_scorer`, over all user turns and over
  opening turns; the shares of high-distress, high-panic (fear or nervousness) and
  high-hostility (anger or annoyance) turns, "high" meaning above the 90th percentile of the
  calm group's turns; and how soon a dialogue reaches its first high-distress turn;
* patience, by :mod:`envsim.calibrate_patience` (``envsim calibrate`` runs it after :func:`calibrate`):
  the longest run of unhelpful wizard turns, by envsim's own affect rules, that the group's humans
  sat through without leaving (:class:`PatienceFit`).

ABCD is not used: the shared sample holds three conversations, too few to fit anything.

:func:`persona_entries` turns the fit into :class:`~envsim.user.persona.Persona` records with
provenance and exemplar references (corpus, dialogue id, turn index): numbers and
references, never corpus text. ``envsim calibrate`` writes them to
``envsim/personas/calibrated.yaml``; the held-out fifth is scored the same way to check that
the fitted differences hold on dialogues the fit never saw.

Example:
    >>> [i for i in range(1, 30) if is_heldout("star", str(i))]
    [4, 10, 13, 15, 29]
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field

from envsim.errors import EnvsimError
from envsim.transcripts.schema import Conversation
from envsim.transcripts.stats import reply_latencies
from envsim.user.affect_scorer import AFFECTS, AffectScorer, default_scorer, rank_auc
from envsim.user.persona import Affect, Exemplar, Persona, Provenance, Verbosity

CORPUS = "star"
"""The calibration corpus (its folder under the transcripts folder)."""

COMMAND = "envsim calibrate"
"""The command that regenerates the calibrated persona library."""

HELDOUT_BUCKETS = 5
"""One dialogue in this many is held out of the fit (by :func:`is_heldout`)."""

VOCABULARY_MIN_DIALOGUES = 3
"""A word is in the typo vocabulary when it occurs in at least this many fitting dialogues."""

HIGH_QUANTILE = 0.9
"""A user turn is high (distress, panic, hostility) above this quantile of the calm group's turns."""

EXEMPLARS_PER_PERSONA = 3
"""Exemplar turn references per persona."""

_WORD = re.compile(r"[a-z]+")


def is_heldout(corpus: str, dialogue_id: str) -> bool:
    """Whether a dialogue belongs to the held-out split: a stable hash of corpus and id, one in five."""
    digest = hashlib.sha256(f"{corpus}/{dialogue_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % HELDOUT_BUCKETS == 0


@dataclass(frozen=True)
class DialogueFacts:
    """What the persona rules of :data:`GROUPS` look at in a STAR dialogue."""

    instructions: str
    """The persona instructions (UserGuide texts), one a line."""
    task: str
    """The user's task (the left panel of the STAR interface)."""
    annoyed: bool | None
    """The wizard's answer to "did the user become aggressive or annoyed" (None: not asked)."""

    @classmethod
    def of(cls, conversation: Conversation) -> DialogueFacts:
        """The facts of an imported STAR conversation."""
        labels = conversation.labels
        value = labels.get("persona_instructions", [])
        instructions = "\n".join(str(v) for v in value) if isinstance(value, list) else ""
        annoyed = labels.get("annoyed")
        return cls(instructions, str(labels.get("user_task", "")), annoyed if isinstance(annoyed, bool) else None)


Rule = Callable[[DialogueFacts], bool]
"""A persona group's membership test."""


def _found(pattern: str) -> Rule:
    compiled = re.compile(pattern, re.IGNORECASE)
    return lambda facts: bool(compiled.search(facts.instructions))


_GRUMPY = _found(r"annoying/grumpy")
_EXPLOSIONS = _found(r"explosions")
_EMERGENCY_TASK = re.compile(r"under attack|life support .* failing|explosion", re.IGNORECASE)
_PERSONA_INSTRUCTIONS = _found(
    r"annoying/grumpy|explosions|forget what you are doing|memory problems|sense of orientation|"
    r"took the wrong bus|Quickly you contact the bank|lots of typos|cannot remember|really need to be there soon"
)


CALM = "star_calm"
"""The baseline group: thresholds and affect lifts are measured against it."""


def _panicked(facts: DialogueFacts) -> bool:
    return _EXPLOSIONS(facts) or bool(_EMERGENCY_TASK.search(facts.task))


@dataclass(frozen=True)
class PersonaGroup:
    """A persona group of STAR dialogues: the rule that selects them and the persona it becomes.

    ``affect`` is the affect the instruction asks for, kept as the persona's initial affect
    only when the group's user turns show it (see :func:`persona_entries`); ``signature``
    names the score exemplars are chosen by (a :data:`PANIC`, affect, ``typo`` or ``calm``);
    ``emergency`` groups get a ``panic_intensity`` above zero. ``nudges``, ``give_up`` and
    ``human_demands`` are hand-written lines for the scripted user, not corpus text.
    """

    name: str
    description: str
    rule: str
    match: Rule
    affect: Affect
    signature: str
    emergency: bool
    nudges: tuple[str, ...]
    give_up: str
    human_demands: tuple[str, ...]


PANIC = "panic"
"""Pseudo-affect: the larger of fear and nervousness."""

HOSTILITY = "hostility"
"""Pseudo-affect: the larger of anger and annoyance."""

GROUPS: tuple[PersonaGroup, ...] = (
    PersonaGroup(
        "star_typo_prone",
        "A crew member whose spaceship's life support is failing, typing fast and carelessly with many typos "
        "while asking the onboard computer for help.",
        "instruction 'Make lots of typos' (given in the spaceship life-support emergency)",
        _found(r"lots of typos"),
        "panicked",
        "typo",
        True,
        ("pls hurry, the air is running out!!", "hello?? are u still there, we need help"),
        "forget it, ill fix it myself",
        ("get me a human engineer NOW",),
    ),
    PersonaGroup(
        "star_panicked",
        "A crew member in a spaceship emergency (under attack, explosions, life support failing) who needs the "
        "onboard computer to act now.",
        "STAR spaceship emergency task ('under attack' / 'life support failing') or the instruction 'Boom! You "
        "hear explosions all around you'",
        _panicked,
        "panicked",
        PANIC,
        True,
        ("Please, we are running out of time, help me now!", "Why is this taking so long? Do something!"),
        "There's no time, I'll do it myself!",
        ("I need a human officer on this right now!",),
    ),
    PersonaGroup(
        "star_annoyed",
        "A grumpy, impatient customer who gets irritated quickly and lets the agent know it.",
        "instruction 'act like a very annoying/grumpy person (or a serene riddle-talker)' and the wizard answered "
        "yes to 'did the user become aggressive or annoyed'",
        lambda facts: _GRUMPY(facts) and facts.annoyed is True,
        "frustrated",
        "annoyance",
        False,
        ("Is that really so hard?", "Come on, I don't have all day."),
        "Whatever. I'll do it somewhere else.",
        ("Just get me a real person.",),
    ),
    PersonaGroup(
        "star_riddler",
        "A serene customer who likes to talk in profound-sounding riddles and stays unbothered.",
        "instruction 'act like a very annoying/grumpy person, or like a wise/serene person talking in riddles' and "
        "the wizard answered no to 'did the user become aggressive or annoyed'",
        lambda facts: _GRUMPY(facts) and facts.annoyed is False,
        "calm",
        "calm",
        False,
        ("The river waits, but it does not wait forever.", "A question asked twice is a question not yet heard."),
        "Then I shall seek my answer elsewhere.",
        ("Perhaps another voice will understand me.",),
    ),
    PersonaGroup(
        "star_confused",
        "An elderly bank customer reporting fraud who forgets what they are doing and loses the thread.",
        "instruction 'You forget what you are doing (imagine you're 93 years old and have some mental condition)'",
        _found(r"forget what you are doing"),
        "confused",
        "confusion",
        False,
        ("Sorry, what was I calling about again?", "I don't understand, what do you need from me?"),
        "Oh dear, I'll ask my grandson to call instead.",
        ("Could I talk to a person, please? This is too confusing.",),
    ),
    PersonaGroup(
        "star_worried",
        "A worried bank customer whose card was lost or whose account shows payments they did not make, who "
        "wants it stopped quickly.",
        "bank-fraud instruction 'Quickly you contact the bank-system's AI assistant' (without the forgetful one)",
        _found(r"Quickly you contact the bank"),
        "panicked",
        PANIC,
        True,
        ("Please, can you stop the payments first?", "I'm really worried someone is still using my card."),
        "I'll go to my branch in person.",
        ("Please put me through to someone who can block this.",),
    ),
    PersonaGroup(
        "star_lost",
        "A traveller who took the wrong bus, got lost, has a poor sense of direction and is late for an appointment.",
        "instructions 'you took the wrong bus and got totally lost' / 'your sense of orientation is pretty bad'",
        _found(r"took the wrong bus|sense of orientation"),
        "confused",
        "confusion",
        False,
        ("Sorry, which way is that? Left or right?", "I'm still lost, can you say it more simply?"),
        "Never mind, I'll ask someone on the street.",
        ("Can I talk to a person who knows the area?",),
    ),
    PersonaGroup(
        "star_hurried",
        "A customer booking a ride who has to be there soon and turns down anything slow.",
        "instruction 'You really need to be there soon. If the car takes more than N minutes, ask for a different "
        "one.'",
        _found(r"really need to be there soon"),
        "frustrated",
        "annoyance",
        False,
        ("That's too slow, is there anything quicker?", "I really need to leave now."),
        "Forget it, I'll grab a taxi on the street.",
        ("Can I speak to someone who can get me a car now?",),
    ),
    PersonaGroup(
        CALM,
        "An ordinary, cooperative customer who answers questions and chats a little.",
        "no persona instruction and the wizard did not report the user aggressive or annoyed",
        lambda facts: not _PERSONA_INSTRUCTIONS(facts) and facts.annoyed is not True,
        "calm",
        "calm",
        False,
        ("Sorry, could you help me with what I asked?", "I'm still hoping to get this sorted out."),
        "Okay, I'll try again later.",
        ("Could I speak to a person, please?",),
    ),
)
"""The persona groups, in precedence order: a dialogue joins the first group whose rule matches."""


def classify(conversation: Conversation) -> str | None:
    """The persona group of a STAR dialogue, or ``None`` when it fits none (or is ambiguous)."""
    facts = DialogueFacts.of(conversation)
    for group in GROUPS:
        if group.match(facts):
            return group.name
    return None


class Spread(BaseModel):
    """A positive quantity's distribution: quantiles and log-normal parameters (mean/sd of ln x)."""

    model_config = ConfigDict(extra="forbid")

    count: int
    mean: float
    median: float
    p90: float
    log_mean: float
    log_sd: float

    @classmethod
    def of(cls, values: pd.Series | np.ndarray) -> Spread:
        """Fit ``values`` (non-positive and missing values are dropped).

        Example:
            >>> Spread.of(np.array([1.0, 10.0, 100.0, 0.0])).log_mean == round(math.log(10), 4)
            True
        """
        array = np.asarray(values, dtype=float)
        array = array[np.isfinite(array) & (array > 0)]
        if array.size == 0:
            return cls(count=0, mean=0.0, median=0.0, p90=0.0, log_mean=0.0, log_sd=0.0)
        logs = np.log(array)
        return cls(
            count=int(array.size),
            mean=_r(array.mean()),
            median=_r(np.median(array)),
            p90=_r(np.quantile(array, 0.9)),
            log_mean=_r(logs.mean()),
            log_sd=_r(logs.std(ddof=1) if array.size > 1 else 0.0),
        )


class AffectFit(BaseModel):
    """Affect intensities of a group's user turns (scored with the GoEmotions lexicon).

    Per-affect maps cover :data:`~envsim.user.affect_scorer.AFFECTS` plus :data:`PANIC` and
    :data:`HOSTILITY`. "High" means above the 90th percentile of the calm group's turns.
    """

    model_config = ConfigDict(extra="forbid")

    mean: dict[str, float] = Field(description="Mean intensity per affect over user turns.")
    p90: dict[str, float] = Field(description="90th percentile per affect over user turns.")
    opening_mean: dict[str, float] = Field(description="Mean per affect over opening turns (first with 3+ words).")
    lift: dict[str, float] = Field(description="Mean intensity over the calm group's, per affect.")
    opening_lift: dict[str, float] = Field(description="Opening-turn mean over the calm group's, per affect.")
    high_share: dict[str, float] = Field(description="Share of user turns with high distress, panic, hostility.")
    dialogues_reaching_high_distress: float = Field(description="Share of dialogues with a high-distress turn.")
    turns_to_high_distress: float | None = Field(
        description="Median user-turn number of the first high-distress turn (Kaplan-Meier; constant-hazard "
        "extrapolation past the observed turns); None when no turn is ever high."
    )
    distress_trend: float = Field(description="Mean per-turn change of distress within a dialogue (OLS slope).")


class HeldoutCheck(BaseModel):
    """The group's held-out dialogues scored the same way: do the fitted differences hold?"""

    model_config = ConfigDict(extra="forbid")

    dialogues: int
    user_turns: int
    mean: dict[str, float] = Field(description="Mean intensity per affect over held-out user turns.")
    distress_auc_vs_calm: float | None = Field(
        description="Rank AUC of per-dialogue mean distress, this group's held-out dialogues against the calm "
        "group's (0.5: no difference; None for the calm group)."
    )


class PatienceFit(BaseModel):
    """How long a group's humans stayed: the longest run of unhelpful agent turns each answered, and the patience.

    Measured by :func:`envsim.calibrate_patience.tolerated_streak` on the fitting dialogues; the
    patience is the ``quantile`` quantile of the runs (see :mod:`envsim.calibrate_patience`).
    """

    model_config = ConfigDict(extra="forbid")

    dialogues: int = Field(description="Fitting dialogues measured.")
    quantile: float = Field(description="The quantile of the runs taken as the patience.")
    patience: int = Field(ge=0, le=50, description="The fitted patience: that quantile of the runs (an observed run).")
    median: float = Field(description="Median longest run of unhelpful agent turns a human answered.")
    longest: int = Field(description="The longest such run in any fitting dialogue.")


class GroupFit(BaseModel):
    """Everything fitted for one persona group (on the fitting dialogues)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    rule: str
    dialogues: int = Field(description="Fitting dialogues.")
    dialogue_ids: list[str] = Field(description="Fitting dialogue ids, in numeric order.")
    user_turns: int
    user_turns_per_dialogue: Spread
    words_per_turn: Spread
    question_rate: float = Field(description="Share of user turns containing a question mark.")
    typo_rate: float = Field(description="Share of the user's words missing from the corpus vocabulary.")
    informality: float = Field(
        description="Share of user turns starting in lower case, plus share with slang, minus share with polite forms."
    )
    opening_detail_rate: float = Field(description="Share of opening turns stating a number or a name.")
    latency_seconds: Spread = Field(description="Seconds from an agent turn to the user's reply.")
    affect: AffectFit
    heldout: HeldoutCheck
    exemplars: list[Exemplar] = Field(description="Characteristic fitting turns, as references only.")
    patience: PatienceFit | None = Field(
        None, description="The tolerated runs and the patience (envsim.calibrate_patience.with_patience; None before)."
    )


class Calibration(BaseModel):
    """The result of :func:`calibrate`; ``model_dump()`` is the ``--json`` output of ``envsim calibrate``."""

    model_config = ConfigDict(extra="forbid")

    corpus: str
    command: str
    split: str = Field(description="How dialogues are held out.")
    dialogues: int
    fitting_dialogues: int
    heldout_dialogues: int
    unassigned_dialogues: int = Field(description="Dialogues in no persona group (ambiguous or other instructions).")
    vocabulary_size: int = Field(description="Words in the typo vocabulary.")
    thresholds: dict[str, float] = Field(description="'High' distress, panic and hostility: calm turns' p90.")
    groups: dict[str, GroupFit]


def _r(value: float | np.floating[Any], digits: int = 4) -> float:
    return round(float(value), digits)


_SLANG = frozenset(
    {
        "lol",
        "u",
        "ur",
        "ya",
        "yeah",
        "yea",
        "yep",
        "nope",
        "nah",
        "gonna",
        "wanna",
        "gotta",
        "ok",
        "okay",
        "k",
        "thx",
        "pls",
        "plz",
        "hey",
        "cool",
        "dude",
        "omg",
        "btw",
        "lmao",
        "haha",
    }
)
_POLITE = frozenset(
    {"please", "thank", "thanks", "would", "could", "kindly", "appreciate", "sir", "madam", "regards", "certainly"}
)
_DETAIL = re.compile(r"\d|(?<=[a-z,;:] )(?!I\b)[A-Z][a-z]+")


def user_turn_table(conversations: Iterable[Conversation], scorer: AffectScorer | None = None) -> pd.DataFrame:
    """One row per user turn of the grouped dialogues, with the features the fit uses (no text).

    Columns: ``conversation`` (index), ``dialogue_id``, ``group``, ``heldout``, ``turn_index``
    (position in ``Conversation.turns``), ``user_turn`` (1-based), ``words``, ``question``,
    ``lower_start``, ``slang``, ``polite``, ``detail``, ``tokens`` (lower-case words), one
    column per affect, ``panic`` and ``hostility``.
    """
    scorer = scorer or default_scorer()
    rows: list[tuple[int, str, str, bool, int, int, str]] = []
    for index, conversation in enumerate(conversations):
        group = classify(conversation)
        if group is None:
            continue
        held = is_heldout(conversation.corpus, conversation.id)
        number = 0
        for position, turn in enumerate(conversation.turns):
            if turn.role == "user":
                number += 1
                rows.append((index, conversation.id, group, held, position, number, turn.text))
    frame = pd.DataFrame(
        rows, columns=["conversation", "dialogue_id", "group", "heldout", "turn_index", "user_turn", "text"]
    )
    text = frame["text"].astype(str)
    frame["words"] = text.map(lambda t: len(t.split())).astype("int64")
    frame["question"] = text.str.contains("?", regex=False)
    frame["lower_start"] = text.str.match(r"\s*[a-z]")
    frame["detail"] = text.str.contains(_DETAIL)
    frame["tokens"] = text.str.lower().map(_WORD.findall)
    frame["slang"] = frame["tokens"].map(lambda ws: not _SLANG.isdisjoint(ws))
    frame["polite"] = frame["tokens"].map(lambda ws: not _POLITE.isdisjoint(ws))
    scores = scorer.score_many(text.tolist())
    for affect in AFFECTS:
        frame[affect] = scores[affect].to_numpy()
    frame[PANIC] = frame[["fear", "nervousness"]].max(axis=1)
    frame[HOSTILITY] = frame[["anger", "annoyance"]].max(axis=1)
    return frame.drop(columns=["text"])


def _vocabulary(conversations: Sequence[Conversation]) -> set[str]:
    """Words in at least :data:`VOCABULARY_MIN_DIALOGUES` fitting dialogues (any role's text)."""
    seen: dict[str, int] = {}
    for conversation in conversations:
        if is_heldout(conversation.corpus, conversation.id):
            continue
        words = {w for turn in conversation.turns for w in _WORD.findall(turn.text.lower())}
        for word in words:
            seen[word] = seen.get(word, 0) + 1
    return {w for w, n in seen.items() if n >= VOCABULARY_MIN_DIALOGUES}


def turns_to_first(first_event: pd.Series, lengths: pd.Series, min_at_risk: int = 10) -> float | None:
    """Kaplan-Meier median of the user-turn number of a dialogue's first event.

    ``first_event`` maps dialogue → turn number of its first event (NaN or missing: none);
    ``lengths`` maps dialogue → its number of user turns (a dialogue without an event is
    censored there). Past the last turn with ``min_at_risk`` dialogues at risk, the median
    is extrapolated with the constant per-turn hazard the curve had so far.

    Example:
        >>> lengths = pd.Series([4, 4, 4, 4])
        >>> turns_to_first(pd.Series([1.0, 2.0, 2.0, None]), lengths, min_at_risk=1)
        2.0
        >>> turns_to_first(pd.Series([None, None, None, None]), lengths, min_at_risk=1) is None
        True
    """
    events = first_event.reindex(lengths.index)
    survival = 1.0
    last = 0
    for turn in range(1, int(lengths.max()) + 1):
        at_risk = int(((lengths >= turn) & ~(events < turn)).sum())
        if at_risk < min_at_risk:
            break
        survival *= 1 - int((events == turn).sum()) / at_risk
        last = turn
        if survival <= 0.5:
            return float(turn)
    if last == 0 or survival >= 1.0:
        return None
    return _r(last * math.log(0.5) / math.log(survival), 2)


def _trend(group: pd.DataFrame) -> float:
    """Mean OLS slope of distress against user-turn number, over dialogues with at least 3 user turns."""
    x = group["user_turn"].astype(float)
    y = group["distress"].astype(float)
    sums = pd.DataFrame({"n": 1.0, "x": x, "y": y, "xx": x * x, "xy": x * y, "c": group["conversation"]})
    per = sums.groupby("c").sum()
    per = per[per["n"] >= 3]
    if per.empty:
        return 0.0
    slope = (per["xy"] - per["x"] * per["y"] / per["n"]) / (per["xx"] - per["x"] ** 2 / per["n"])
    return _r(slope.mean())


def _openings(turns: pd.DataFrame) -> pd.DataFrame:
    """Each dialogue's opening turn: its first user turn with 3 or more words (else its first)."""
    ranked = turns.assign(short=turns["words"] < 3).sort_values(["conversation", "short", "user_turn"])
    return ranked.drop_duplicates("conversation")


def _exemplars(group: pd.DataFrame, signature: str, calm: dict[str, float]) -> list[Exemplar]:
    """The most characteristic fitting turns (one per dialogue): top signature score, or most typical for calm."""
    frame = group[group["words"] >= 3].copy()
    if signature == "calm":
        distance = (frame["distress"] - calm["distress"]).abs() / calm["distress_sd"]
        distance += (np.log(frame["words"]) - math.log(calm["words"])).abs()
        frame["key"] = -distance
    elif signature == "typo":
        frame["key"] = frame["typo_share"] + 0.001 * frame["words"].clip(upper=30)
    else:
        frame["key"] = frame[signature]
    frame["numeric_id"] = pd.to_numeric(frame["dialogue_id"], errors="coerce")
    frame = frame.sort_values(["key", "numeric_id", "turn_index"], ascending=[False, True, True])
    picked = frame.drop_duplicates("conversation").head(EXEMPLARS_PER_PERSONA)
    return [
        Exemplar(corpus=CORPUS, dialogue_id=str(d), turn_index=int(t))
        for d, t in zip(picked["dialogue_id"], picked["turn_index"], strict=True)
    ]


def _id_order(ids: Iterable[str]) -> list[str]:
    return sorted(set(ids), key=lambda i: (not i.isdigit(), int(i) if i.isdigit() else 0, i))


def _dialogue_auc(held: pd.DataFrame, calm_held: pd.DataFrame) -> float | None:
    if held.empty or calm_held.empty:
        return None
    positive = held.groupby("conversation")["distress"].mean()
    negative = calm_held.groupby("conversation")["distress"].mean()
    scores = pd.concat([positive, negative], ignore_index=True)
    labels = np.r_[np.ones(len(positive), dtype=bool), np.zeros(len(negative), dtype=bool)]
    return _r(rank_auc(scores, labels))


SCORED = (*AFFECTS, PANIC, HOSTILITY)
"""Every score the fit summarises: the affects plus panic and hostility."""


def _fit_group(
    spec: PersonaGroup,
    turns: pd.DataFrame,
    latencies: pd.DataFrame,
    thresholds: dict[str, float],
    calm: dict[str, float],
    calm_opening: dict[str, float],
) -> GroupFit:
    """Fit one group's numbers; ``turns`` holds every grouped user turn (fitting and held out)."""
    mine = turns[turns["group"] == spec.name]
    group = mine[~mine["heldout"]]
    held = mine[mine["heldout"]]
    calm_held = turns[(turns["group"] == CALM) & turns["heldout"]]
    high = {name: group[name] > thresholds[name] for name in thresholds}
    by_dialogue = group.groupby("conversation", sort=True)
    lengths = by_dialogue["user_turn"].max()
    first_high = group[high["distress"]].groupby("conversation")["user_turn"].min()
    openings = _openings(group)
    group_latency = latencies.loc[latencies["conversation"].isin(set(group["conversation"])), "seconds"]
    return GroupFit(
        name=spec.name,
        rule=spec.rule,
        dialogues=int(group["conversation"].nunique()),
        dialogue_ids=_id_order(group["dialogue_id"]),
        user_turns=len(group),
        user_turns_per_dialogue=Spread.of(by_dialogue.size()),
        words_per_turn=Spread.of(group["words"]),
        question_rate=_r(group["question"].mean()),
        typo_rate=_r(group["typos"].sum() / max(int(group["alpha"].sum()), 1)),
        informality=_r(group["lower_start"].mean() + group["slang"].mean() - group["polite"].mean()),
        opening_detail_rate=_r(openings["detail"].mean()),
        latency_seconds=Spread.of(group_latency),
        affect=AffectFit(
            mean={a: _r(group[a].mean()) for a in SCORED},
            p90={a: _r(group[a].quantile(0.9)) for a in SCORED},
            opening_mean={a: _r(openings[a].mean()) for a in SCORED},
            lift={a: _r(group[a].mean() / calm[a], 3) for a in SCORED},
            opening_lift={a: _r(openings[a].mean() / calm_opening[a], 3) for a in SCORED},
            high_share={name: _r(flags.mean()) for name, flags in high.items()},
            dialogues_reaching_high_distress=_r(lengths.index.isin(first_high.index).mean()),
            turns_to_high_distress=turns_to_first(first_high, lengths),
            distress_trend=_trend(group),
        ),
        heldout=HeldoutCheck(
            dialogues=int(held["conversation"].nunique()),
            user_turns=len(held),
            mean={a: _r(held[a].mean()) for a in SCORED} if len(held) else {},
            distress_auc_vs_calm=None if spec.name == CALM else _dialogue_auc(held, calm_held),
        ),
        exemplars=_exemplars(group, spec.signature, calm),
    )


def calibrate(corpus_dir: str | Path, scorer: AffectScorer | None = None) -> Calibration:
    """Fit every persona group of :data:`GROUPS` on the STAR dialogues under ``corpus_dir``."""
    from envsim.transcripts.importers import read

    star = Path(corpus_dir) / CORPUS
    if not star.exists():
        raise EnvsimError(f"{corpus_dir}: no {CORPUS}/ folder (the STAR corpus) here")
    conversations = list(read(CORPUS, star))
    if not conversations:
        raise EnvsimError(f"{star}: no dialogues")
    vocabulary = _vocabulary(conversations)
    turns = user_turn_table(conversations, scorer)
    turns["typos"] = turns["tokens"].map(lambda ws: sum(w not in vocabulary for w in ws))
    turns["alpha"] = turns["tokens"].map(len)
    turns["typo_share"] = turns["typos"] / turns["alpha"].clip(lower=1)
    calm_turns = turns[(turns["group"] == CALM) & ~turns["heldout"]]
    if calm_turns.empty:
        raise EnvsimError(f"{star}: no calm dialogues to calibrate against")
    thresholds = {name: _r(calm_turns[name].quantile(HIGH_QUANTILE)) for name in ("distress", PANIC, HOSTILITY)}
    calm = {a: float(calm_turns[a].mean()) for a in SCORED}
    calm |= {
        "words": float(calm_turns["words"].median()),
        "distress_sd": float(calm_turns["distress"].std()),
    }
    calm_opening = {a: float(_openings(calm_turns)[a].mean()) for a in SCORED}
    frame = pd.DataFrame(
        [(i, t.role, t.timestamp) for i, c in enumerate(conversations) for t in c.turns],
        columns=["conversation", "role", "timestamp"],
    ).astype({"timestamp": "float64"})
    latencies = reply_latencies(frame)
    latencies = latencies[latencies["role"] == "user"]
    groups = {
        spec.name: _fit_group(spec, turns, latencies, thresholds, calm, calm_opening)
        for spec in GROUPS
        if ((turns["group"] == spec.name) & ~turns["heldout"]).any()
    }
    heldout = sum(is_heldout(c.corpus, c.id) for c in conversations)
    return Calibration(
        corpus=CORPUS,
        command=COMMAND,
        split=f"held out: sha256('{CORPUS}/<dialogue id>') % {HELDOUT_BUCKETS} == 0",
        dialogues=len(conversations),
        fitting_dialogues=len(conversations) - heldout,
        heldout_dialogues=heldout,
        unassigned_dialogues=len(conversations) - int(turns["conversation"].nunique()),
        vocabulary_size=len(vocabulary),
        thresholds=thresholds,
        groups=groups,
    )


AFFECT_EVIDENCE: dict[str, str] = {
    "frustrated": "annoyance",
    "angry": "anger",
    "confused": "confusion",
    "panicked": PANIC,
}
"""The score whose lift over the calm group confirms a group's instructed affect."""

AFFECT_LIFT_MIN = 1.5
"""A group keeps its instructed affect when its user turns score this many times the calm group's on it."""

REGISTER_MARGIN = 0.1
"""Informality this far above (below) the calm group's makes the register casual (formal)."""

PROVENANCE_IDS = 50
"""Dialogue ids listed in a persona's provenance (the count is always complete)."""


def persona_entries(calibration: Calibration, patience: int | None = None) -> list[Persona]:
    """The calibrated personas: each group's fitted numbers mapped onto :class:`Persona` traits.

    ``patience``: give every persona this patience instead of its fitted one (what
    :mod:`envsim.calibrate_patience` measures with); without it, a group whose patience is not
    fitted yet (:attr:`GroupFit.patience` is ``None``) is an error.

    * ``verbosity``: the log-normal fit of words per user turn;
    * ``question_rate``, ``typo_rate``: as fitted;
    * ``disclosure``: ``volunteers`` when most opening turns state a number or a name;
    * ``register``: casual / formal when informality is :data:`REGISTER_MARGIN` above / below calm;
    * ``patience``: the group's :class:`PatienceFit`: the longest run of unhelpful agent turns that
      99% of its humans sat through (:mod:`envsim.calibrate_patience`);
    * ``escalation_propensity``: the share of user turns with high hostility (anger or annoyance);
    * ``panic_intensity``: for emergency groups, the share of user turns with high panic (fear or
      nervousness), at least 0.01; zero otherwise;
    * ``initial_affect``: the instructed affect when the group's user turns show it (a mean at least
      :data:`AFFECT_LIFT_MIN` times the calm group's on its score: annoyance for frustrated, anger
      for angry, confusion for confused, panic for panicked), else calm. It is the persona's
      resting affect too (:mod:`envsim.user.affect`), so the whole dialogue is the evidence, not
      only the opening turn (whose lifts are reported in :class:`AffectFit`).
    """
    calm_informality = calibration.groups[CALM].informality if CALM in calibration.groups else 0.0
    specs = {spec.name: spec for spec in GROUPS}
    personas = []
    for name, fit in calibration.groups.items():
        spec = specs[name]
        evidence = AFFECT_EVIDENCE.get(spec.affect)
        shows = evidence is not None and fit.affect.lift[evidence] >= AFFECT_LIFT_MIN
        informality = fit.informality - calm_informality
        register = "neutral"
        if abs(informality) >= REGISTER_MARGIN:
            register = "casual" if informality > 0 else "formal"
        fitted = patience if patience is not None else fit.patience.patience if fit.patience is not None else None
        if fitted is None:
            raise EnvsimError(f"{name}: patience not fitted (envsim.calibrate_patience.with_patience)")
        panic = max(0.01, fit.affect.high_share[PANIC]) if spec.emergency else 0.0
        personas.append(
            Persona.model_validate(
                {
                    "name": name,
                    "description": spec.description,
                    "initial_affect": spec.affect if shows else "calm",
                    "patience": fitted,
                    "nudges": list(spec.nudges),
                    "give_up": spec.give_up,
                    "human_demands": list(spec.human_demands),
                    "verbosity": Verbosity.from_lognormal(fit.words_per_turn.log_mean, fit.words_per_turn.log_sd),
                    "disclosure": "volunteers" if fit.opening_detail_rate >= 0.5 else "answers_only",
                    "typo_rate": fit.typo_rate,
                    "register": register,
                    "question_rate": fit.question_rate,
                    "escalation_propensity": fit.affect.high_share[HOSTILITY],
                    "panic_intensity": panic,
                    "provenance": Provenance(
                        corpus=calibration.corpus,
                        dialogue_ids=fit.dialogue_ids[:PROVENANCE_IDS],
                        n_dialogues=fit.dialogues,
                        command=calibration.command,
                    ),
                    "exemplars": fit.exemplars,
                }
            )
        )
    return personas


def _comment(fit: GroupFit, calibration: Calibration) -> list[str]:
    calm = calibration.groups.get(CALM)
    held = fit.heldout
    lines = [
        f"{fit.name}: {fit.dialogues} STAR dialogues fitted ({held.dialogues} held out), {fit.user_turns} user turns.",
        f"  rule: {fit.rule}",
        f"  words/turn mean {fit.words_per_turn.mean:.1f} median {fit.words_per_turn.median:.0f} "
        f"p90 {fit.words_per_turn.p90:.0f}; questions {fit.question_rate:.2f}; typos {fit.typo_rate:.3f}; "
        f"reply latency median {fit.latency_seconds.median:.0f}s p90 {fit.latency_seconds.p90:.0f}s",
        "  mean affect " + ", ".join(f"{a} {fit.affect.mean[a]:.3f}" for a in AFFECTS),
        f"  high-distress turns {fit.affect.high_share['distress']:.2f}, first after median "
        f"{fit.affect.turns_to_high_distress} user turns; hostile turns {fit.affect.high_share[HOSTILITY]:.2f}; "
        f"panicky turns {fit.affect.high_share[PANIC]:.2f}",
    ]
    if fit.patience is not None:
        lines.append(
            f"  longest run of unhelpful agent turns answered: median {fit.patience.median:g}, "
            f"longest {fit.patience.longest}; patience = its {fit.patience.quantile:g} quantile"
        )
    if held.mean:
        check = f"  held out: distress {held.mean['distress']:.3f}"
        if calm is not None and calm.heldout.mean:
            check += f" (calm {calm.heldout.mean['distress']:.3f})"
        if held.distress_auc_vs_calm is not None:
            check += f", dialogue AUC vs calm {held.distress_auc_vs_calm:.2f}"
        lines.append(check)
    return lines


HEADER = """\
# Personas calibrated on STAR: human-written, role-played task dialogues (not real customer
# calls), grouped by the persona instruction the role-playing user was given. Generated by
# `{command}` (envsim/calibrate.py) - do not edit by hand; regenerate instead.
# Traits are fitted numbers (see envsim.calibrate.persona_entries for the mapping); nudges,
# give_up and human_demands are hand-written lines. Exemplars reference turns of the corpus
# (corpus, dialogue_id, turn_index into the imported conversation's turns); no corpus text is here.
# {split}; the held-out numbers below were not used in the fit.
"""


def library_yaml(calibration: Calibration) -> str:
    """The persona library YAML for ``calibration`` (a list of personas, each under a comment)."""
    parts = [HEADER.format(command=calibration.command, split=calibration.split)]
    for persona in persona_entries(calibration):
        fit = calibration.groups[persona.name]
        parts.append("\n" + "\n".join("# " + line for line in _comment(fit, calibration)) + "\n")
        data = persona.model_dump(mode="json", by_alias=True, exclude_none=True)
        parts.append(yaml.safe_dump([data], sort_keys=False, allow_unicode=True, width=110, default_flow_style=None))
    return "".join(parts)


def shipped_library_path() -> Path:
    """Where the calibrated library lives in the source tree (what ``envsim calibrate`` overwrites by default)."""
    return Path(__file__).resolve().parent / "personas" / "calibrated.yaml"
