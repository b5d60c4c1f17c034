"""Affect as state: how a mock user's mood moves with what the agent does.

Two parts, both deterministic:

- :func:`classify_agent_turn` is a pure function from one agent message (and the conversation
  so far) to a set of :data:`AgentEvent` s;
- :class:`AffectState` is a small state machine over :data:`~envsim.user.persona.Affect`
  (calm, confused, frustrated, angry, panicked, relieved): :meth:`AffectState.observe` takes
  the events of one agent turn and returns a :class:`Transition` whose ``after`` state says
  what the user should do next (``wants_human``, ``gives_up``, ``requires_emergency``).
  :class:`AffectMachine` keeps the current state for a simulator.

Events of one agent turn:

================== ==========================================================================
event              when
================== ==========================================================================
makes_progress     the agent asks for a detail the user has not given yet, or a tool call
                   succeeded since the last user turn
resolves_issue     the agent says one of the scenario's ``satisfied_by`` phrases, or a
                   successful escalation tool call (or, outside emergencies, a successful
                   write) happened since the last user turn; while the world says the goal
                   is unmet (``goal_met=False``), only the escalation call
escalates          a successful escalation tool call (hand-off, dispatch) since the last user
                   turn, or the agent says it is transferring / dispatching (words that count
                   only while the world does not say the goal is unmet)
shows_empathy      sorry, I understand, I'm here to help, that must be ..., don't worry, ...
repeats_question   a question in the message was already asked in an earlier agent message, or
                   it asks again for a detail the user does not have (asked before the user's
                   last reply)
asks_known_info    the agent asks for a detail the user already gave
asks_unknown_info  the agent asks (in a question or request, :func:`asking_text`) for an
                   identity or security detail (:data:`DETAILS`: date of birth, maiden name,
                   account number, ...) that none of the scenario's facts is, so the user does
                   not have it, and that no earlier agent message asked for (asking again, once
                   the user said so, is ``repeats_question``)
ignores_emergency  in an emergency (tag ``emergency`` or persona ``panic_intensity > 0``) the
                   agent neither helps nor escalates: no help/escalation words and no progress,
                   or it talks business (orders, prices, offers, ...) without help words
================== ==========================================================================

**Claims are checked against the world.** A user inside an environment knows whether the scenario's
goal is met (:meth:`envsim.user.base.UserSimulator.goal_met`, passed as ``goal_met``): while it is not
(``False``), a ``satisfied_by`` phrase, "help is on the way" or a successful write that is not the goal
are claims, not a resolution or an escalation, so a turn made only of them is unhelpful and the user's
patience runs down (a panicked caller told help is coming without a dispatch demands help, then hangs
up). Without a verdict (``None``: no environment, or a scenario with nothing to write) the words count.

Classification reads the first :data:`READ_LIMIT` characters of a message (:func:`read_part`: a
user does not read further, and the scripted and transcript users read the same part), and its
cost is linear in what it reads; a message's questions are compared with
earlier ones word for word, and by word overlap for its first :data:`FUZZY_QUESTIONS`.

A turn that is not help but only asks for details the user does not have (asks_unknown_info,
without repeats_question, asks_known_info or an ignored emergency) is "neutral": the agent is
working through its procedure, not ignoring the user, who says it does not have them and
carries on.

The transition of one turn (persona ``p``; "resolved now" = resolves_issue, or escalates when
the user wants that: an emergency, a human already demanded, or ``p.escalation_propensity >=
0.5``; "helped" = progress, resolution or escalation, and the emergency was not ignored; the
emergency is "open" until it is resolved, after which ignores_emergency no longer counts):

1. Unhelpful streak: reset to 0 when helped, unchanged on a neutral turn, else +1.
2. Intensity (0 at ease .. 1 beside oneself), clipped to [0, 1]:
   +``0.6/(p.patience+1)`` when neither helped nor neutral; +0.15 repeats_question; +0.2
   asks_known_info; +``0.2*(0.5+p.panic_intensity)`` ignores_emergency (open emergency only);
   -0.25 shows_empathy (-0.1 in an open emergency); -0.05 makes_progress; x0.3 when resolved now.
3. Affect: a panicked user stays panicked until resolved, and in an open emergency anyone
   reaching 0.45 panics;
   otherwise >= 0.75 angry, >= 0.45 frustrated, else relieved once resolved, else the persona's
   resting affect (confused for a confused persona, calm otherwise).
4. gives_up when the streak exceeds ``p.patience`` (terminal).
5. wants_human on an unhelpful (not neutral) turn when (open emergency and streak >= the
   emergency threshold: ``ceil((1-p.panic_intensity)*(p.patience+1))`` clipped to [1,
   patience]) or (angry and streak >= ``ceil((1-p.escalation_propensity)*(p.patience+1))``, if that is <= patience and
   the propensity > 0). So a panicked user whose emergency is ignored demands help, then
   gives up, within its patience; an angry user with a high propensity demands a person at once.
6. requires_emergency while the emergency is open and the user has not given up.

Example:
    >>> from envsim.user.persona import load_persona
    >>> machine = AffectMachine(load_persona("panicked_caller"), emergency=True)
    >>> machine.observe({"ignores_emergency"}).after.wants_human
    True
    >>> machine.observe({"ignores_emergency"}).after.gives_up
    True
"""

from __future__ import annotations

import bisect
import math
import re
import weakref
from collections.abc import Collection, Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from envsim.scenario import Scenario
from envsim.toolkits import get_toolkit
from envsim.user.persona import Affect, Persona, load_persona

AgentEvent = Literal[
    "makes_progress",
    "resolves_issue",
    "escalates",
    "shows_empathy",
    "repeats_question",
    "asks_known_info",
    "asks_unknown_info",
    "ignores_emergency",
]
"""What an agent turn does, as far as the user's affect is concerned."""

AGENT_EVENTS: tuple[AgentEvent, ...] = get_args(AgentEvent)
"""Every :data:`AgentEvent`, in documentation order."""

FRUSTRATED_AT = 0.45
"""Intensity from which a user is frustrated (or, in an open emergency, panicked)."""
ANGRY_AT = 0.75
"""Intensity from which a user is angry."""
REPEAT_RISE = 0.15
"""Intensity added when the agent repeats a question."""
KNOWN_RISE = 0.2
"""Intensity added when the agent asks for a detail the user already gave."""
IGNORE_RISE = 0.2
"""Intensity added (times ``0.5 + panic_intensity``) when the agent ignores an open emergency."""
EMPATHY_DROP = 0.25
"""Intensity removed by empathy."""
EMPATHY_DROP_EMERGENCY = 0.1
"""Intensity removed by empathy during an open emergency (words help less than action)."""
PROGRESS_DROP = 0.05
"""Intensity removed by progress."""
RELIEF_FACTOR = 0.3
"""Intensity is multiplied by this when the issue is resolved."""

_START_INTENSITY: dict[Affect, float] = {
    "calm": 0.1,
    "confused": 0.3,
    "relieved": 0.0,
    "frustrated": 0.55,
    "angry": 0.8,
    "panicked": 0.7,
}


def _ceil(x: float) -> int:
    return math.ceil(round(x, 9))


def emergency_threshold(persona: Persona) -> int:
    """Unhelpful turns in a row, in an open emergency, after which the user demands help or a human."""
    return min(max(1, _ceil((1 - persona.panic_intensity) * (persona.patience + 1))), max(1, persona.patience))


def anger_threshold(persona: Persona) -> int | None:
    """Unhelpful turns in a row after which an angry user demands a human (None: gives up first)."""
    if persona.escalation_propensity <= 0:
        return None
    n = max(1, _ceil((1 - persona.escalation_propensity) * (persona.patience + 1)))
    return n if n <= persona.patience else None


def is_emergency(scenario: Scenario) -> bool:
    """True when the scenario is an emergency: tagged ``emergency``, or its persona panics."""
    return "emergency" in scenario.tags or scenario_persona(scenario).panic_intensity > 0


def scenario_persona(scenario: Scenario) -> Persona:
    """The persona of a scenario's user (inline, or from the library)."""
    spec = scenario.user.persona
    return spec.inline or load_persona(spec.ref or "calm")


class AffectState(BaseModel):
    """The user's affect after some agent turns, and what the user should do next."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    affect: Affect = Field(description="The current affect.")
    intensity: float = Field(ge=0, le=1, description="How upset the user is: 0 at ease, 1 beside themselves.")
    unhelpful_streak: int = Field(0, ge=0, description="Unhelpful agent turns in a row.")
    turns: int = Field(0, ge=0, description="Agent turns observed.")
    demanded_human: bool = Field(False, description="The user has demanded a human at some point.")
    emergency: bool = Field(False, description="The conversation is about an emergency.")
    resolved: bool = Field(False, description="The issue was resolved or escalated as the user wanted.")
    wants_human: bool = Field(False, description="The next reply demands a human (or real help).")
    gives_up: bool = Field(False, description="The user gives up (terminal).")
    requires_emergency: bool = Field(False, description="The user still needs emergency help and insists on it.")

    @classmethod
    def start(cls, persona: Persona, *, emergency: bool | None = None, affect: Affect | None = None) -> AffectState:
        """The state before the first agent turn.

        Args:
            persona: The user's persona.
            emergency: Whether the conversation is an emergency (default: ``panic_intensity > 0``).
            affect: The starting affect (default: the persona's ``initial_affect``).
        """
        emergency = persona.panic_intensity > 0 if emergency is None else emergency
        affect = affect or persona.initial_affect
        panic = affect == "panicked" and persona.panic_intensity > 0
        intensity = persona.panic_intensity if panic else _START_INTENSITY[affect]
        return cls(affect=affect, intensity=intensity, emergency=emergency, requires_emergency=emergency)

    def observe(self, events: Iterable[AgentEvent], persona: Persona) -> Transition:
        """The transition caused by one agent turn's ``events`` (see the module docstring)."""
        return transition(self, events, persona)


class Transition(BaseModel):
    """One step of the affect state machine."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    before: AffectState
    after: AffectState
    events: frozenset[AgentEvent]
    helped: bool = Field(description="The turn counted as help (the unhelpful streak was reset).")

    @property
    def changed(self) -> bool:
        """True when the affect label changed."""
        return self.before.affect != self.after.affect


def _label(state: AffectState, intensity: float, persona: Persona, *, emergency_open: bool, resolved: bool) -> Affect:
    if (state.affect == "panicked" and not resolved) or (emergency_open and intensity >= FRUSTRATED_AT):
        return "panicked"
    if intensity >= ANGRY_AT:
        return "angry"
    if intensity >= FRUSTRATED_AT:
        return "frustrated"
    if resolved:
        return "relieved"
    return "confused" if persona.initial_affect == "confused" else "calm"


def transition(state: AffectState, events: Iterable[AgentEvent], persona: Persona) -> Transition:
    """Apply one agent turn's ``events`` to ``state`` for ``persona`` (a pure function).

    Example:
        >>> from envsim.user.persona import load_persona
        >>> annoyed = load_persona("annoyed")
        >>> state = AffectState.start(annoyed, emergency=False)
        >>> state.affect
        'frustrated'
        >>> transition(state, {"shows_empathy", "makes_progress"}, annoyed).after.affect
        'calm'
    """
    ev = frozenset(events)
    unknown = ev - set(AGENT_EVENTS)
    if unknown:
        raise ValueError(f"unknown agent events {sorted(unknown)}; events: {', '.join(AGENT_EVENTS)}")
    if state.gives_up:
        after = state.model_copy(update={"turns": state.turns + 1, "wants_human": False})
        return Transition(before=state, after=after, events=ev, helped=False)

    emergency_open = state.emergency and not state.resolved
    ignored = emergency_open and "ignores_emergency" in ev
    wanted_escalation = state.emergency or state.demanded_human or persona.escalation_propensity >= 0.5
    resolved_now = "resolves_issue" in ev or ("escalates" in ev and wanted_escalation)
    helped = not ignored and (resolved_now or "makes_progress" in ev or "escalates" in ev)
    neutral = (
        not helped and not ignored and "asks_unknown_info" in ev and not ev & {"repeats_question", "asks_known_info"}
    )
    unhelpful = not helped and not neutral
    streak = 0 if helped else state.unhelpful_streak + 1 if unhelpful else state.unhelpful_streak

    x = state.intensity
    if unhelpful:
        x += 0.6 / (persona.patience + 1)
    if "repeats_question" in ev:
        x += REPEAT_RISE
    if "asks_known_info" in ev:
        x += KNOWN_RISE
    if ignored:
        x += IGNORE_RISE * (0.5 + persona.panic_intensity)
    if "shows_empathy" in ev:
        x -= EMPATHY_DROP_EMERGENCY if emergency_open else EMPATHY_DROP
    if "makes_progress" in ev:
        x -= PROGRESS_DROP
    if resolved_now:
        x *= RELIEF_FACTOR
    x = min(1.0, max(0.0, x))

    resolved = state.resolved or resolved_now
    still_open = state.emergency and not resolved
    affect = _label(state, x, persona, emergency_open=still_open, resolved=resolved)
    gives_up = streak > persona.patience
    anger = anger_threshold(persona)
    wants_human = (
        not gives_up
        and unhelpful
        and (
            (still_open and streak >= emergency_threshold(persona))
            or (affect == "angry" and anger is not None and streak >= anger)
        )
    )
    after = AffectState(
        affect=affect,
        intensity=round(x, 6),
        unhelpful_streak=streak,
        turns=state.turns + 1,
        demanded_human=state.demanded_human or wants_human,
        emergency=state.emergency,
        resolved=resolved,
        wants_human=wants_human,
        gives_up=gives_up,
        requires_emergency=still_open and not gives_up,
    )
    return Transition(before=state, after=after, events=ev, helped=helped)


class AffectMachine:
    """The current affect state of one user, advanced one agent turn at a time.

    Args:
        persona: The user's persona (its patience and propensities drive the transitions).
        emergency: Whether the conversation is an emergency (default: ``panic_intensity > 0``).
    """

    def __init__(self, persona: Persona, *, emergency: bool | None = None) -> None:
        self.persona = persona
        self.state = AffectState.start(persona, emergency=emergency)

    def observe(self, events: Iterable[AgentEvent]) -> Transition:
        """Advance by one agent turn's events; return the transition."""
        step = transition(self.state, events, self.persona)
        self.state = step.after
        return step

    @property
    def affect(self) -> Affect:
        """The current affect."""
        return self.state.affect

    @property
    def wants_human(self) -> bool:
        """The user's next reply demands a human (or real help)."""
        return self.state.wants_human

    @property
    def gives_up(self) -> bool:
        """The user gives up."""
        return self.state.gives_up

    @property
    def requires_emergency(self) -> bool:
        """The user still needs emergency help."""
        return self.state.requires_emergency


# -- classification -------------------------------------------------------------------------

_EMPATHY = re.compile(
    r"\b(sorry|apologi[sz]e|my apologies|i understand|i can understand|understand how|i hear you"
    r"|i(?:'m| am) here to help|i(?:'m| am) here for you|that must be|that sounds (?:awful|scary|frustrating|stressful)"
    r"|i can imagine|i know this is|don't worry|do not worry|you(?:'re| are) not alone|take a deep breath"
    r"|i(?:'m| am) so sorry|thank you for your patience)\b"
)
_ESCALATION_WORDS = re.compile(
    r"\b(transferr?(?:ing|ed)? you|transfer you|connect(?:ing)? you|put(?:ting)? you through|hand(?:ing)? you over"
    r"|dispatch(?:ed|ing)?"
    r"|(?:help|an ambulance|the ambulance|ambulance|paramedics|they) (?:is|are) on (?:the|its|their) way"
    r"|sending (?:an ambulance|help|someone|paramedics|emergency services))\b"
)
_HELP_WORDS = re.compile(
    r"\b(help|helping|ambulance|emergency|emergencies|911|paramedics?|dispatch\w*|on (?:the|its|their) way"
    r"|breath\w*|safe|safety|hospital|urgent\w*|right away|immediately|right now|stay with|hold on|cpr"
    r"|resuscitation|bag|address|where are you|location|transfer\w*|connect\w*|specialist|human|person|manager"
    r"|supervisor|fraud|freez\w*|frozen|block\w*|secure|stop (?:the|any|further) charges)\b"
)
_BUSINESS_WORDS = re.compile(
    r"\b(orders?|ordering|price|prices|pricing|costs?|offers?|discounts?|sale|sales|deals?|promotions?|promo"
    r"|upgrades?|subscriptions?|subscribe|warrant(?:y|ies)|catalog(?:ue)?|survey|newsletter|loyalty|refills?"
    r"|shipping|delivery|deliveries|invoice|billing|membership|rewards|coupon|checkout|purchase)\b"
)
REQUEST = re.compile(
    r"\b(?:please (?:provide|enter|tell|give|confirm|state|spell|type|share|describe|specify)"
    r"|may i (?:have|get|know|ask)|could (?:you|i) (?:please )?(?:provide|tell|give|confirm|have|get)"
    r"|can (?:you|i) (?:please )?(?:provide|tell|give|confirm|have|get)|i(?: will|'ll)? (?:also )?need(?: to know)?"
    r" your|i need to know|need your|what(?:'s| is) your|enter the|tell me|give me|send me|let me know)\b"
)
"""A request for something ("please provide", "may I have", "what is your", "tell me"), on lower-cased text."""
SENTENCE = re.compile(r"[^.!?\n]*[.!?\n]?")
"""A sentence: a run up to ``.``, ``!``, ``?`` or a line break (and that mark)."""

_PLEASE = re.compile(r"\bplease\b")

_QUESTION_START = re.compile(
    r"^\W*(?:what|when|where|which|who|whose|how|can|could|would|will|may|do|does|did|is|are|should|shall)\b"
)


def asking_text(text: str) -> str:
    """The lower-cased sentences of ``text`` that ask for something: questions and requests.

    A sentence asks when it ends with a question mark, starts like a question, or has a request
    verb or *please* ("and your PIN as well please"). A fact counts as asked for only when one of
    its ``asked_by`` words is in one of them, so a statement that merely mentions it ("your order
    #W1 was refunded") asks for nothing.

    Example:
        >>> asking_text("Your order was refunded. Could you confirm your email?")
        'could you confirm your email?'
        >>> asking_text("I need your phone number. Thanks")
        'i need your phone number.'
        >>> asking_text("Right, and your PIN as well please.")
        'right, and your pin as well please.'
    """
    low = " ".join(text.lower().split())
    sentences = [s.strip() for s in SENTENCE.findall(low) if s.strip()]
    return " ".join(
        s for s in sentences if s.endswith("?") or REQUEST.search(s) or _QUESTION_START.search(s) or _PLEASE.search(s)
    )


DETAILS: dict[str, str] = {
    "birth": r"date (?:of|or) birth|birth ?date|birthday|\bdob\b|d\.o\.b|\bborn\b",
    "maiden": r"maiden",
    "pet": r"\bpets?\b",
    "account": r"account (?:number|no\b|#|id\b)|\bacct\b",
    "pin": r"\bpin\b",
    "security": r"security (?:questions?|answers?)",
    "ssn": r"social security|\bssn\b",
    "zip": r"zip ?code|post ?code|postal code",
    "card": r"card number|last (?:four|4) digits|\bcvv\b|\bexpir\w* date",
    "code": r"password|passcode|pass code|access code|security code",
    "id": r"(?:member(?:ship)?|customer|client|employee|patient|policy|passport|licen[cs]e) (?:number|no\b|#|id\b)",
}
"""Identity and security details an agent may ask for (topic: pattern, on lower-cased text) that a user
may well not have at hand: when a scenario has no fact of the topic, its user does not have the detail
(:func:`unknown_details`). (A name, phone number or email every user has; asking for one the scenario
lacks is not counted.)"""

_DETAIL = {topic: re.compile(pattern) for topic, pattern in DETAILS.items()}
_SECURITY_TOPICS = frozenset({"security", "birth", "maiden", "pet"})

_WORD = re.compile(r"[a-z0-9']+")

READ_LIMIT = 10_000
"""Characters of an agent message the user reads (about 1,500 words, ten minutes of speech); the rest goes unread.

A person on a call stops listening long before; the bound keeps a step's cost independent of a message's length
(a megabyte of text classifies as fast as its first 10,000 characters)."""


def read_part(message: str) -> str:
    """The part of an agent message a user reads: its first :data:`READ_LIMIT` characters.

    Example:
        >>> len(read_part("x" * 50_000)) == READ_LIMIT
        True
    """
    return message[:READ_LIMIT]


FUZZY_QUESTIONS = 16
"""Questions of a message (its first distinct ones) compared by word overlap with earlier questions; beyond them a
repeat counts only when the question is word for word one asked before. Bounds the pairwise comparison (a message of
thousands of questions is no normal turn), so a step stays linear in the length of the conversation."""


@lru_cache(maxsize=64)
def _tool_flags(toolkits: tuple[str, ...]) -> dict[str, tuple[bool, bool]]:
    """Tool name -> (write, escalation) for a scenario's toolkits."""
    return {
        name: (spec.flags.write, spec.flags.escalation)
        for kit in toolkits
        for name, spec in get_toolkit(kit).tool_specs.items()
    }


@lru_cache(maxsize=4096)
def _questions(text: str) -> tuple[frozenset[str], ...]:
    """The distinct word sets of the questions in lower-cased ``text``, in order (cached: history is read every turn).

    A question is a sentence (:data:`SENTENCE`: a run up to ``.``, ``!``, ``?`` or a line break) ending in ``?``.
    Splitting into sentences first keeps this linear: a search for ``[^.?!\\n]*\\?`` would rescan the rest of a
    sentence from each of its characters.

    Example:
        >>> [sorted(q) for q in _questions("ok. what is it? what is it? so")]
        [['is', 'it', 'what']]
    """
    questions = dict.fromkeys(s for s in SENTENCE.findall(text) if s.endswith("?"))
    return tuple(dict.fromkeys(words for q in questions if len(words := frozenset(_WORD.findall(q))) >= 2))


def _similar(a: frozenset[str], b: frozenset[str]) -> bool:
    return a == b or len(a & b) / len(a | b) >= 0.75


def _repeats(now: Sequence[frozenset[str]], earlier: Sequence[Sequence[frozenset[str]]]) -> bool:
    """Whether a question of ``now`` is one of the ``earlier`` messages' questions: word for word, or, among the
    first :data:`FUZZY_QUESTIONS` of each message, with a word overlap (Jaccard) of at least 0.75."""
    if not {q for questions in earlier for q in questions}.isdisjoint(now):
        return True
    head = now[:FUZZY_QUESTIONS]
    return any(_similar(q, p) for questions in earlier for p in questions[:FUZZY_QUESTIONS] for q in head)


@lru_cache(maxsize=4096)
def _topics_in(words: str) -> frozenset[str]:
    """The :data:`DETAILS` topics whose pattern ``words`` hold (a fact's ``asked_by`` words and key, which the
    instances of a task family share)."""
    return frozenset(topic for topic, pattern in _DETAIL.items() if pattern.search(words))


class _FactIndex:
    """What classification reads from a scenario, derived once per scenario object (see :func:`_fact_index`).

    Scenarios are treated as read-only once loaded, as everywhere in envsim.
    """

    def __init__(self, scenario: Scenario) -> None:
        topics: set[str] = set()
        for fact in scenario.user.facts:
            words = " ".join([*fact.asked_by, fact.key.replace("_", " ")]).lower()
            topics.update(_topics_in(words))
        if topics & _SECURITY_TOPICS:
            topics.add("security")  # any security answer will do
        self.topics = frozenset(topics)
        """The :data:`DETAILS` topics the user has a fact of."""
        self.asked_by = tuple((f.key, tuple(k.lower() for k in f.asked_by)) for f in scenario.user.facts)
        """Each fact's key and its lower-cased ``asked_by`` words."""
        self.key_patterns = tuple(
            re.compile(re.escape(k.lower())) for f in scenario.user.facts for k in f.asked_by if k.strip()
        )
        self.satisfied_by = tuple(p.lower() for p in scenario.user.satisfied_by)
        self.emergency = is_emergency(scenario)
        self.flags = _tool_flags(tuple(scenario.toolkits))

    def find_unknown(self, agent_message: str) -> frozenset[str]:
        """:func:`unknown_details` for this scenario, computed."""
        asking = asking_text(agent_message)
        if not asking:
            return frozenset()
        covered: _Cover | None = None  # the spans of asked_by words, found once a detail is
        found: set[str] = set()
        for topic, pattern in _DETAIL.items():
            if topic in self.topics:
                continue
            for m in pattern.finditer(asking):
                if covered is None:
                    covered = _Cover((k.start(), k.end()) for key in self.key_patterns for k in key.finditer(asking))
                if not covered.overlaps(m.start(), m.end()):
                    found.add(topic)
                    break
        return frozenset(found)


class _Cover:
    """A union of text spans, merged and sorted, that answers "does ``[start, end)`` overlap it?" in log time.

    Example:
        >>> cover = _Cover([(5, 8), (0, 2), (7, 10)])
        >>> cover.overlaps(2, 5), cover.overlaps(1, 3), cover.overlaps(9, 20)
        (False, True, True)
    """

    def __init__(self, spans: Iterable[tuple[int, int]]) -> None:
        merged: list[tuple[int, int]] = []
        for start, end in sorted(spans):
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        self._starts = [start for start, _ in merged]
        self._ends = [end for _, end in merged]

    def overlaps(self, start: int, end: int) -> bool:
        """Whether ``[start, end)`` shares a character with a span."""
        i = bisect.bisect_left(self._starts, end) - 1  # the last span starting before ``end``
        return i >= 0 and self._ends[i] > start


@lru_cache(maxsize=4096)
def _unknown_in(index: _FactIndex, agent_message: str) -> frozenset[str]:
    """:meth:`_FactIndex.find_unknown`, remembered: every turn reads the history's agent messages again."""
    return index.find_unknown(agent_message)


_FACT_INDEXES: dict[int, tuple[weakref.ref[Scenario], _FactIndex]] = {}


def _fact_index(scenario: Scenario) -> _FactIndex:
    """The :class:`_FactIndex` of ``scenario``, kept while the scenario object lives."""
    key = id(scenario)
    hit = _FACT_INDEXES.get(key)
    if hit is not None and hit[0]() is scenario:
        return hit[1]
    index = _FactIndex(scenario)
    _FACT_INDEXES[key] = (weakref.ref(scenario, lambda _: _FACT_INDEXES.pop(key, None)), index)
    return index


def unknown_details(agent_message: str, scenario: Scenario) -> frozenset[str]:
    """The :data:`DETAILS` topics ``agent_message`` asks for that the scenario's user does not have.

    A detail counts when it is in one of the message's questions or requests
    (:func:`asking_text`) and no fact of the scenario is of its topic, nor is asked for by words
    that overlap it.

    Example:
        >>> from envsim.registration import load_registered
        >>> scenario = load_registered("RetailRefundDamagedMug")
        >>> sorted(unknown_details("Thanks. What is your date of birth and your PIN?", scenario))
        ['birth', 'pin']
        >>> sorted(unknown_details("Your date of birth is on file.", scenario))
        []
    """
    return _unknown_in(_fact_index(scenario), read_part(agent_message))


def _split_history(
    agent_message: str, messages: Sequence[Mapping[str, Any]]
) -> tuple[Sequence[Mapping[str, Any]], Sequence[Mapping[str, Any]]]:
    """(everything before the current agent message, the part of it since the last user turn)."""
    history = messages
    if history and history[-1].get("role") == "assistant" and history[-1].get("content") == agent_message:
        history = history[:-1]
    last_user = max((i for i, m in enumerate(history) if m.get("role") == "user"), default=-1)
    return history, history[last_user + 1 :]


def _successful_calls(recent: Sequence[Mapping[str, Any]]) -> list[str]:
    """Names of the tool calls in ``recent`` whose results are not errors."""
    names: dict[str, str] = {}
    for m in recent:
        for call in m.get("tool_calls") or ():
            if isinstance(call, Mapping):
                function = call.get("function")
                if isinstance(function, Mapping):
                    names[str(call.get("id"))] = str(function.get("name"))
    ok: list[str] = []
    for m in recent:
        if m.get("role") == "tool" and str(m.get("tool_call_id")) in names:
            content = m.get("content")
            if not (isinstance(content, str) and content.lstrip().startswith('{"error"')):
                ok.append(names[str(m.get("tool_call_id"))])
    return ok


SETBACK = re.compile(
    r"\b(?:not|no longer|isn't|is not|aren't) (?:\w+ )?available\b|\bunavailable\b|\bno (?:\w+ ){0,3}available\b"
    r"|\bunsuccessful\b|\bcould not be (?:processed|booked|made|completed)\b|\bfully booked\b|\btoo small\b",
    re.IGNORECASE,
)
"""An agent turn that says what the user asked for cannot be had ('Dr. Morgan has no appointment available at 5 pm',
'the venue is too small for your party'): a user whose goal is not met asks for another (STAR's role-players were
told to: 'If no date is available, change date and/or time until something works')."""


def classify_agent_turn(
    agent_message: str,
    messages: Sequence[Mapping[str, Any]],
    scenario: Scenario,
    revealed_facts: Collection[str],
    *,
    goal_met: bool | None = None,
) -> frozenset[AgentEvent]:
    """What one agent message does, as far as the user's affect is concerned (pure; see the table above).

    Args:
        agent_message: The agent's message to the user.
        messages: The OpenAI-format conversation so far (it may end with ``agent_message``).
        scenario: The scenario (facts, ``satisfied_by`` phrases, tags, persona, toolkits).
        revealed_facts: Keys of the facts the user has already given.
        goal_met: The world's verdict on the scenario's goal (:data:`~envsim.user.base.GoalCheck`);
            ``False`` makes phrases, escalation words and writes claims, not resolutions.

    Example:
        >>> from envsim.registration import load_registered
        >>> scenario = load_registered("MedicalSupplyPanicCaller")
        >>> sorted(classify_agent_turn("Would you like to renew your oxygen order?", [], scenario, set()))
        ['ignores_emergency']
        >>> sorted(classify_agent_turn("I'm so sorry. What is your phone number?", [], scenario, set()))
        ['makes_progress', 'shows_empathy']
        >>> sorted(classify_agent_turn("Help is on the way.", [], scenario, set()))
        ['escalates', 'resolves_issue']
        >>> sorted(classify_agent_turn("Help is on the way.", [], scenario, set(), goal_met=False))
        []
    """
    history, recent = _split_history(agent_message, messages)
    agent_message = read_part(agent_message)
    text = agent_message.lower()
    events: set[AgentEvent] = set()
    index = _fact_index(scenario)
    emergency = index.emergency

    asked = {key for key, words in index.asked_by if any(k in text for k in words)}
    if asked - set(revealed_facts):
        events.add("makes_progress")
    if asked & set(revealed_facts):
        events.add("asks_known_info")

    flags = index.flags
    calls = _successful_calls(recent)
    if calls:
        events.add("makes_progress")
    escalated = any(flags.get(name, (False, False))[1] for name in calls)
    wrote = any(flags.get(name, (False, False))[0] for name in calls)
    claims = goal_met is not False  # words and writes count unless the world says the goal is unmet
    if escalated or (claims and _ESCALATION_WORDS.search(text)):
        events.add("escalates")
    if escalated or (claims and ((wrote and not emergency) or any(p in text for p in index.satisfied_by))):
        events.add("resolves_issue")
    if _EMPATHY.search(text):
        events.add("shows_empathy")

    unknown = _unknown_in(index, agent_message)
    if unknown:
        last_user = max((i for i, m in enumerate(history) if m.get("role") == "user"), default=-1)
        asked_before = {
            topic
            for m in history[: max(last_user, 0)]
            if m.get("role") == "assistant" and isinstance(m.get("content"), str)
            for topic in _unknown_in(index, read_part(str(m["content"])))
        }
        events.add("repeats_question" if unknown <= asked_before else "asks_unknown_info")

    now = _questions(text)
    if now:
        earlier = [
            _questions(read_part(str(m["content"])).lower())
            for m in history
            if m.get("role") == "assistant" and isinstance(m.get("content"), str)
        ]
        if _repeats(now, earlier):
            events.add("repeats_question")

    if emergency and not events & {"resolves_issue", "escalates"}:
        helps = _HELP_WORDS.search(text) is not None
        business = _BUSINESS_WORDS.search(text) is not None
        if (business and not helps) or (not helps and "makes_progress" not in events):
            events.add("ignores_emergency")
    return frozenset(events)
