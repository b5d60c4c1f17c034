"""The transcript user: every reply is a human-written user turn, retrieved and adapted.

An offline mock user that needs no model and no API key. Its replies are user turns of STAR
(human-written, role-played task dialogues), retrieved from the turn index
(:mod:`envsim.user.transcript.index`). The conversation logic is the scripted user's
(:mod:`envsim.user.scripted`): the scenario's opening line, a fact only when the agent asks for it
(its ``asked_by`` words), the end when the scenario's goal is met (:func:`~envsim.user.base.satisfied`),
affect as state (:mod:`envsim.user.affect`), a demand for a person and giving up after the persona's
patience. What differs is the text of each reply.

A reply has an *intent* (:data:`Intent`: answer, reanswer, close, give_up, unknown, question, greet,
react, insist, follow_up (the scenario's next further request where it would close), other, nudge), decided
from the agent's message and the affect state. Index rows are
weighted for it (:meth:`TranscriptUser._weights`: the intent's acts, :data:`INTENT_ACTS`; the context
act, topics and details asked; how much the row's agent turn reads like the message; the fit of its
entity spans to the facts to give; its mood; the persona's verbosity, with the lengths and the share
of questions of the act-and-context pool kept, :func:`keep_lengths`), from the first pool with
:data:`MIN_CANDIDATES` rows that fit: the persona's category (:func:`persona_group`) in the
scenario's STAR domain, the category's rows of that domain or generic, every category's (for a need stated, the
domain of the turn itself, ``TurnIndex.own_domains``, not of its dialogue). Candidates
are drawn with the environment's generator without replacement, up to :data:`MAX_TRIES`; one whose
adaptation is unclean (:mod:`envsim.user.transcript.fill`) or whose reply the coherence model calls
a misfit (below its :data:`REJECT_SHARE` quantile) is rejected. The retrieved turn's entity spans
are replaced by the values of the facts asked (same kind only, never where the words before the
span name another detail), then by facts already given where the turn names them, or dropped
(:func:`~envsim.user.transcript.text.drop_span`); asked facts with no span left are said after it
(:func:`~envsim.user.recall.say`). A fact not yet given never appears, unless a persona that volunteers says it
where a turn names it, or in a span of its kind that no other unsaid fact could take (:data:`VOLUNTEER_INTENTS`,
:meth:`TranscriptUser._by_kind`). Stating the need prefers turns that read like the goal (:data:`GOAL_GAIN`); a
yes/no question that merely names a detail does not ask for it (:func:`asks_for`); a rejected candidate is
replaced from the first draw's length stratum. When every candidate is rejected the reply falls
back to the scenario's own lines; :attr:`TranscriptUser.trace` and :attr:`TranscriptUser.stats` say
which replies did. A yes or a no is given by the act of the turn retrieved (:func:`~envsim.user.recall.polarity`),
a statement fact (:func:`~envsim.user.transcript.text.fact_kind`) in its own line; facts found late (given in the
next reply, asked or not, in a turn that does not say it cannot remember) and slips follow :mod:`envsim.user.recall`.
The persona's traits are applied to the text (:mod:`envsim.user.transcript.style`).

Where no corpus is present, the user falls back to :class:`~envsim.user.scripted.ScriptedUser`
(the persona's template lines) and logs one warning line per process. ``docs/users.md`` ("The
transcript user") gives the full account and the reasons for each rule.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from envsim.prompts import render
from envsim.scenario import Fact, Scenario
from envsim.transcripts.corpus import corpus_dir
from envsim.user.affect import (
    SETBACK,
    AffectMachine,
    AffectState,
    asking_text,
    classify_agent_turn,
    is_emergency,
    read_part,
    scenario_persona,
    unknown_details,
)
from envsim.user.base import UserSimulator, UserTurn, satisfied
from envsim.user.persona import Exemplar, Persona
from envsim.user.recall import Recall, correction_line, found_line, polarity, say
from envsim.user.scripted import DONT_KNOW_LINES, ScriptedUser
from envsim.user.transcript.corpus import CORPUS
from envsim.user.transcript.fill import clean_span, dangling, droppable, unpaired
from envsim.user.transcript.index import LENGTH_BINS, TurnIndex, forget_indexes, load_index
from envsim.user.transcript.style import Style, length_tilt, talkativeness
from envsim.user.transcript.text import (
    AGENT_ACTS,
    DATE,
    FACT_CLASS,
    QUANTITY,
    TIME,
    TOPIC_MASK,
    USER_ACTS,
    WHEN_MASK,
    AgentAct,
    Names,
    SpanKind,
    UserAct,
    agent_act,
    cue_mask,
    drop_span,
    entity_spans,
    fact_kind,
    sentence_tail,
    tidy,
    user_act,
)

MIN_CANDIDATES = 5
"""Rows with a positive weight a retrieval tier needs before it is used (else it backs off)."""

MOOD_GAIN = 4.0
"""How fast the preference for turns of the user's mood grows with intensity above the resting one."""

MOOD_MAX = 2.0
"""The largest weight of a turn whose mood matches the user's."""

CUE_BOOST = 3.0
"""Weight of a row whose context asked about a topic the agent's message asks about."""

LAST_TURN_BOOST = 3.0
"""Weight of a dialogue's last human turn when the user gives up (it ends the conversation)."""

UNSURE_BOOST = 4.0
"""Weight of a turn that says the user does not know or have something (:data:`~.text.UNSURE`), when asked for a
detail it does not have (the ``unknown`` intent)."""


REUSE_WEIGHT = 0.01
"""Weight of a row already used in the episode."""

APPEND_WEIGHT = 0.15
"""Weight factor per asked fact that finds no span in a retrieved turn (it is said after the turn)."""

DROP_WEIGHT = 0.1
"""Weight factor per entity span of a retrieved turn that must be dropped."""


Intent = Literal[
    "answer", "reanswer", "unknown", "question", "react", "greet", "insist", "follow_up", "other", "close", "nudge",
    "give_up",
]  # fmt: skip
"""What a reply has to do (decided from the agent's message and the affect state)."""


INTENT_ACTS: dict[Intent, dict[UserAct, float]] = {
    "answer": {"greet": 0.05, "thanks": 0.2, "affirm": 1, "deny": 0.1, "complain": 0.5, "question": 0.3, "inform": 1},
    "reanswer": {"greet": 0.05, "thanks": 0.1, "affirm": 0.5, "deny": 0.2, "complain": 1, "question": 0.5, "inform": 1},
    "unknown": {"greet": 0.05, "thanks": 0.1, "affirm": 0.1, "deny": 1, "complain": 0.5, "question": 0.5, "inform": 1},
    "question": {"greet": 0.1, "thanks": 1, "affirm": 1, "deny": 1, "complain": 1, "question": 1, "inform": 1},
    "react": {"greet": 0.2, "thanks": 1, "affirm": 1, "deny": 1, "complain": 1, "question": 1, "inform": 1},
    "greet": {"greet": 1, "thanks": 0.2, "affirm": 1, "deny": 1, "complain": 1, "question": 1, "inform": 1},
    "insist": {"greet": 0, "thanks": 0, "affirm": 0.3, "deny": 1, "complain": 1, "question": 0.3, "inform": 1},
    "follow_up": {"greet": 0, "thanks": 0.3, "affirm": 0.3, "deny": 0.3, "complain": 0.3, "question": 1, "inform": 1},
    "close": {"greet": 0, "thanks": 1, "affirm": 0.3, "deny": 1, "complain": 0, "question": 0, "inform": 0},
    "nudge": {"greet": 0.05, "thanks": 0, "affirm": 0.05, "deny": 0.3, "complain": 1, "question": 0.6, "inform": 0.15},
    "give_up": {"greet": 0, "thanks": 0, "affirm": 0, "deny": 0.3, "complain": 1, "question": 0.2, "inform": 0.1},
    "other": {"greet": 0, "thanks": 0, "affirm": 0.1, "deny": 0.3, "complain": 0.5, "question": 1, "inform": 1},
}
"""Per intent, the weight of each user act (0: never)."""

CORE_GROUPS: dict[str, str] = {
    "calm": "star_calm",
    "annoyed": "star_annoyed",
    "demanding_escalator": "star_annoyed",
    "confused": "star_confused",
    "panicked_caller": "star_panicked",
    "fraud_victim": "star_worried",
}
"""The STAR persona category of each hand-written library persona."""

AFFECT_GROUPS: dict[str, str] = {
    "calm": "star_calm",
    "relieved": "star_calm",
    "confused": "star_confused",
    "frustrated": "star_annoyed",
    "angry": "star_annoyed",
    "panicked": "star_worried",
}
"""The category of any other persona without provenance, by its initial affect (panicked: see
:func:`persona_group`)."""


REJECT_SHARE = 0.01
"""A candidate is rejected as a misfit when its coherence score is below this quantile of held-out human replies'
scores (:meth:`~envsim.user.transcript.coherence.CoherenceModel.quantile`): clear misfits only, not the model's
own threshold (:data:`~envsim.user.transcript.coherence.MISFIT_SHARE`); ``docs/users.md`` says why."""

MAX_TRIES = 12
"""Candidates a reply draws at most before its fallback (each rejected: unclean adaptation or a misfit)."""

CONTENT_GAIN = 3.0
"""How strongly a row whose agent turn shares words with the agent's message is preferred:
``exp(CONTENT_GAIN * similarity)`` (cosine of idf-weighted word sets, 0..1)."""

ASK_BOOST = 3.0
"""Weight of a row whose agent turn asked for a detail the agent's message asks for."""

ASK_MISMATCH_WEIGHT = 0.2
"""Weight of a row whose agent turn asked for details the agent's message does not ask for."""

OFF_TOPIC_WEIGHT = 0.1
"""Weight of a retrieved answer that mentions a detail other than the facts it gives."""

ON_TOPIC_BOOST = 2.0
"""Weight of a retrieved answer that mentions the detail it gives."""

TOPIC_WEIGHT = 0.3
"""Weight of a turn mentioning a detail, when the reply gives none."""

GOAL_GAIN = 10.0
"""How strongly a turn that reads like the scenario's goal is preferred when the user states its need (a greeting's
answer, or the need again): ``exp(GOAL_GAIN * similarity)`` (cosine of idf-weighted word sets of the turn and the
goal, 0..1). People answer 'How can I help?' with their own request ('I'd like to RSVP to Mark's party'), not with
any request of their business's. Most turns share no word with a goal (similarity 0, against about 0.6 for the best
ones), so a gain of 3 (at most 6 times the weight) left the unrelated many to outweigh the few: an RSVP answered 'I
need to plan a surprise party', an apartment viewing 'Call a taxi'. At 10 a turn of similarity 0.4 weighs about 50
times one of 0."""

FOLLOW_UP_SIMILARITY = 0.15
"""The least similarity to a further request (``UserSpec.follow_ups``) of a turn that says it. With the goal's gain
alone, the many turns of no similarity outweighed the few that make the request: 'Check whether there is a Hilton
Hotel in the West part of town' was said as 'We can't wait to go to the art museum in town' (small talk of that
domain); above 0.15 the turns ask for a hotel's rating ('I'd like the rating on that hotel.')."""

NEED_INTENTS: frozenset[Intent] = frozenset(("greet", "insist", "follow_up"))
"""Replies that state the user's need: retrieval prefers turns that read like the goal (:data:`GOAL_GAIN`)."""

VOLUNTEER_INTENTS: frozenset[Intent] = frozenset(
    ("greet", "question", "react", "insist", "follow_up", "nudge", "answer", "reanswer")
)
"""Replies in which a persona that volunteers (``disclosure: volunteers``) may say a detail it was not asked for,
where the retrieved human turn has a place for it (:meth:`TranscriptUser._adapt`): saying what it needs, reacting,
insisting, and answering (STAR's role-players of those categories add details to an answer: 'I plan on showing up at
1pm. Oh, and I'll be bringing 6 guests'). Never in a closing, giving up or saying it does not know."""

REPLY_INTENTS: frozenset[Intent] = frozenset(
    ("answer", "reanswer", "question", "react", "greet", "insist", "follow_up", "other", "nudge")
)
"""Replies whose lengths and share of questions are those of people's replies to turns of the agent's act
(:func:`keep_lengths` over the context pool), whatever acts the intent prefers among them. People answer in a
question ('Could we do Thursday at 12pm?') and at length; with the intent's act weights in the lengths kept,
star_calm's replies held a question half as often as people's. The other intents have a set kind of turn to say ('I
don't know', thanks and goodbye, giving up): their lengths are those of such turns."""

_log = logging.getLogger("envsim.user.transcript")  # the package's logger, as before the split
_warned = False


_HOLDS = re.compile(
    r"\b(?:do|did|does|have|has) (?:you|he|she|they) (?:still |already |now )?(?:have|know|remember|recall|got)\b"
    r"|\bhave you got\b|\bis (?:that|this|it|your|his|her|their)\b|\bare (?:those|these|they|your)\b"
    r"|\b(?:can|could|may) (?:i|we) (?:please )?(?:have|get|take|ask for|confirm) (?:your|the)\b",
    re.IGNORECASE,
)
"""A yes/no question about a detail itself: whether the user has, knows or remembers it, whether a value is it, or a
request for it in a question's form ('Do you have your flight ID?', 'Is that your PIN?', 'Can I have your flight ID,
please?'); such a question asks for the detail (:func:`asks_for`)."""

_PROPOSES = re.compile(
    r"\b(?:do|does|did|can|could|may|shall|should|will|would|are|were|have|has)\s+(?:you|i|we)\b", re.IGNORECASE
)
"""A yes/no question with its own verb ('Do you require...?', 'Can I book...?', 'Would you like...?'); an elliptical
one ('And your date of birth, please?') is a request for the detail it names."""

_REQUEST_FORM = re.compile(
    r"\b(?:can|could|would|will) you\b|\bplease\b|\bi (?:need|want|would like|'d like)\b|\bis it possible\b",
    re.IGNORECASE,
)
"""A request ('can you...', 'I need...'): the only kind of question that insists on the need ('anything else?' with
the goal not met); another question ('what am I supposed to do now?') does not answer the offer."""


_ACT_NAMES = np.array(USER_ACTS)  # the user act of each index code, for vectorised lookups

_NO_LEAD_IN: frozenset[UserAct] = frozenset(("question", "greet", "thanks"))
"""User acts of a turn that cannot lead in to a detail said after it ('Can you lend me some money? 7402', 'Hi. 7402'); a
question that holds the detail in its own words is another matter ('Could we do Thursday at 12pm?')."""

_ALTERNATIVE = re.compile(r"\s*,?\s*(?:or|and/or|or maybe|or perhaps)\s+", re.IGNORECASE)


def _all_topics(facts: Sequence[tuple[Fact, SpanKind]]) -> int:
    """The :data:`~.text.FACT_TOPICS` bits of all of ``facts``."""
    mask = 0
    for fact, _ in facts:
        mask |= _fact_topics(fact)
    return mask


_CLAUSE_BREAK = re.compile(r"[,;:]|\b(?:but|and|so|or)\b", re.IGNORECASE)


def _lead_topics(before: str) -> int:
    """The detail topics named by the words leading up to a span: those of its clause when it names one ('I forgot my
    PIN, but my account number is': the account number), else of its sentence.

    Example:
        >>> _lead_topics("I forgot my pin, but my account number is ") == _lead_topics("My account number is ")
        True
    """
    tail = sentence_tail(before)
    return cue_mask(_CLAUSE_BREAK.split(tail)[-1]) & TOPIC_MASK or cue_mask(tail) & TOPIC_MASK


def _fact_topics(fact: Fact) -> int:
    """The :data:`~.text.FACT_TOPICS` bits of a fact's key and ``asked_by`` words."""
    return cue_mask(" ".join([*fact.asked_by, fact.key.replace("_", " ")])) & TOPIC_MASK


def keep_lengths(weights: np.ndarray, base: np.ndarray, bins: np.ndarray) -> np.ndarray:
    """``weights`` rescaled per stratum (``bins``) so that the strata drawn follow ``base``'s distribution.

    With strata of length and question mark (the index's ``stratum`` column), the fit preferences (spans,
    topics, mood) choose among turns of each length instead of favouring short ones (a short
    turn has fewer spans to drop), and keep the share of questions.

    Example:
        >>> keep_lengths(np.array([1.0, 0.1, 1.0]), np.array([1.0, 1.0, 1.0]), np.array([0, 0, 1])).round(3).tolist()
        [1.273, 0.127, 0.7]
    """
    total_w, total_base = float(weights.sum()), float(base.sum())
    if total_w <= 0 or total_base <= 0:
        return weights
    n = int(bins.max()) + 1 if len(bins) else 0
    mass_w = np.bincount(bins, weights=weights, minlength=n) / total_w
    mass_base = np.bincount(bins, weights=base, minlength=n) / total_base
    scale = np.divide(mass_base, mass_w, out=np.zeros(n), where=mass_w > 0)
    return np.asarray(weights * scale[bins], dtype=float)


def _names(lead: int, topics: int) -> bool:
    """Whether the detail words before a span (``lead``, :data:`~.text.FACT_TOPICS` bits) name a fact of ``topics``
    and no other detail: 'my phone number is' names a phone, 'my account number is' does not.

    Example:
        >>> phone, account, number = (cue_mask(w) & TOPIC_MASK for w in ("phone number", "account", "number"))
        >>> _names(phone, phone), _names(account | number, phone), _names(number, phone), _names(0, phone)
        (True, False, True, False)
    """
    return bool(lead & topics) and not lead & ~topics


def _without_echo(text: str, start: int, end: int, value: str) -> tuple[int, int]:
    """The span ``text[start:end]`` widened over a word beside it that ``value`` already says: 'the <Hyatt> hotel'
    filled with 'Hyatt Hotel' is 'the Hyatt Hotel', not 'the Hyatt Hotel hotel'; 'Dr. <Lee>' with 'Dr. Morgan' is
    'Dr. Morgan'.

    Example:
        >>> text = "I'd like the rating for the Hyatt hotel"
        >>> start, end = _without_echo(text, 28, 33, "Hyatt Hotel")
        >>> text[:start] + "Hyatt Hotel" + text[end:]
        "I'd like the rating for the Hyatt Hotel"
        >>> _without_echo("see Dr. Lee", 8, 11, "Dr. Morgan"), _without_echo("at 5 pm", 3, 4, "6 pm")
        ((4, 11), (3, 7))
    """
    words = value.split()
    after = re.match(r"[ \t]+([A-Za-z.]+)(?![\w-])", text[end:])
    if len(words) > 1 and after is not None and after.group(1).lower() == words[-1].lower():
        end += after.end()
    before = re.search(r"(?<![\w-])([A-Za-z.]+)[ \t]+$", text[:start])
    if len(words) > 1 and before is not None and before.group(1).lower() == words[0].lower():
        start = before.start()
    return start, end


def asks_for(fact: Fact, keys: Sequence[str], asking: str, act: AgentAct) -> bool:
    """Whether the agent's questions and requests (``asking``, lower case) ask for ``fact`` (its ``asked_by`` words,
    ``keys``).

    A yes/no question that names a detail in proposing or offering something (:data:`_PROPOSES`) asks for a yes or
    a no, not for the detail ('Do you require parking at the venue?', 'Dr. Johnson is free at 9 pm. Can I book
    it?'): people answer it, they do not say the venue or the doctor again. It asks for the fact only when the fact
    is itself a yes, a no or a statement (:func:`~.text.fact_kind`), or the question is about the detail
    (:data:`_HOLDS`: 'Do you have your flight ID?');
    an elliptical one ('And your date of birth, please?') asks for what it names.

    Example:
        >>> venue = Fact(key="venue", value="West Bay Venue", asked_by=["venue"])
        >>> asks_for(venue, ["venue"], "do you require parking at the venue?", "ask_yesno")
        False
        >>> asks_for(venue, ["venue"], "which venue is it?", "ask_info")
        True
        >>> asks_for(venue, ["venue"], "do you know the venue?", "ask_yesno")
        True
        >>> asks_for(venue, ["venue"], "and the venue, please?", "ask_yesno")
        True
        >>> asks_for(venue, ["venue"], "can i have the venue, please?", "ask_yesno")
        True
        >>> fee = Fact(key="fee", value="not sure", asked_by=["fee"], say="I can't remember if I paid it.")
        >>> asks_for(fee, ["fee"], "have you paid the application fee?", "ask_yesno")
        True
    """
    if not any(k in asking for k in keys):
        return False
    if act != "ask_yesno" or fact_kind(fact.value) == "statement" or _HOLDS.search(asking) is not None:
        return True  # a yes, a no or a statement answers the question ('Have you paid the fee?': 'I can't remember')
    return _PROPOSES.search(asking) is None


def _stray_digits(text: str, spans: Sequence[tuple[int, int, SpanKind]]) -> bool:
    """Whether ``text`` holds a digit outside its entity spans (a number glued to a word, 'either3941').

    Example:
        >>> _stray_digits("my PIN is either3941 or 7402", [(24, 28, "number")])
        True
        >>> _stray_digits("my PIN is either 3941 or 7402", [(17, 21, "number"), (25, 29, "number")])
        False
    """
    inside = bytearray(len(text))
    for start, end, _ in spans:
        inside[start:end] = b"\x01" * (end - start)
    return any(ch.isdigit() and not inside[i] for i, ch in enumerate(text))


_IS_MY = re.compile(r"^\s*(?:is|was|are|were|'s)\s+(?:my|the|our|his|her|their)\s+([^.!?,]{1,30})", re.IGNORECASE)


def _named_after(text: str) -> int:
    """The :data:`~.text.FACT_TOPICS` bits a span is named by in the words after it ('<value> is my account
    number'; 0 when they do not name it).

    Example:
        >>> account = cue_mask("account number") & TOPIC_MASK
        >>> _named_after(" is my account number, and I forgot") == account, _named_after(" please")
        (True, 0)
    """
    match = _IS_MY.match(text)
    return cue_mask(match.group(1).lower()) & TOPIC_MASK if match else 0


def _last_word(text: str) -> str:
    """The last word of ``text`` but an article (lower case; '' when it ends in a mark or has none): what leads to a
    span after it.

    Example:
        >>> _last_word("I need a ride from "), _last_word("to get to the "), _last_word("It is. "), _last_word("")
        ('from', 'to', '', '')
    """
    match = re.search(r"([A-Za-z]+)(?:\s+(?:the|a|an|my|our))?\s*$", text, flags=re.IGNORECASE)
    return match.group(1).lower() if match else ""


_PLACE_WORDS = frozenset(("in", "at", "from", "near", "into", "inside", "towards", "around"))
"""Words before a span that make it a place: no person's name goes there ('check the weather in <name>')."""

_ARTICLE_BEFORE = re.compile(r"\b(?:the|an?)\s+$", re.IGNORECASE)
"""An article right before a span makes it a thing: no person's name goes there ('the <name> is nice')."""

_NAME_TOPIC = cue_mask("name") & TOPIC_MASK
"""The topic bit of a person's name (a fact asked for by 'your name')."""


def lead_words(fact: Fact) -> frozenset[str]:
    """The last words of a fact's ``asked_by`` phrases: the words that lead to its value in a sentence.

    Example:
        >>> sorted(lead_words(Fact(key="origin", value="Airport", asked_by=["leaving from", "depart", "pick you up"])))
        ['depart', 'from', 'up']
    """
    return frozenset(w.split()[-1].lower() for w in fact.asked_by if w.split() and w.split()[-1].isalpha())


def _compatible(fact: SpanKind, span: SpanKind, value: str = "", written: str = "") -> bool:
    """Whether a fact of kind ``fact`` (its ``value``) reads right in a span of kind ``span`` (its ``written`` text):
    only the same kind (a date of birth is no amount: 'keep that extra 50' must not become 'keep that extra
    1991-01-23'), and a number only where a number of about its length was written ('I am 93, after all' is an age,
    no place for a phone number; people write their 8-digit account where a 4-digit one was).

    Example:
        >>> _compatible("number", "number", "720-555-0193", "93"), _compatible("number", "number", "7402", "0314")
        (False, True)
    """
    if fact != span or FACT_CLASS[span] == "none":
        return False
    if span == "number" and value and written:
        short, long = sorted(sum(c.isdigit() for c in t) for t in (value, written))
        return long <= 2 * short + 2  # an age or a count (2 digits) never takes a phone (10) or an account (8)
    return True


# -- the user --------------------------------------------------------------------------------


def persona_group(persona: Persona, index: TurnIndex | None = None) -> str:
    """The STAR persona category a persona's replies are retrieved from.

    A calibrated persona's own name; else the category most of its provenance and exemplar
    dialogues fall in (when ``index`` knows them); else :data:`CORE_GROUPS` for the
    hand-written library personas; else by initial affect (:data:`AFFECT_GROUPS`; a panicked
    persona with ``panic_intensity`` of 0.5 or more is ``star_panicked``).

    Example:
        >>> from envsim.user.persona import load_persona
        >>> persona_group(load_persona("annoyed")), persona_group(load_persona("star_lost"))
        ('star_annoyed', 'star_lost')
    """
    from envsim.calibrate import GROUPS

    names = {g.name for g in GROUPS}
    if persona.name in names:
        return persona.name
    if index is not None:
        ids = [e.dialogue_id for e in persona.exemplars if e.corpus == index.corpus]
        if persona.provenance is not None and persona.provenance.corpus == index.corpus:
            ids += persona.provenance.dialogue_ids
        votes = Counter(index.dialogue_groups[i] for i in ids if i in index.dialogue_groups)
        if votes:
            return sorted(votes.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
    if persona.name in CORE_GROUPS:
        return CORE_GROUPS[persona.name]
    if persona.initial_affect == "panicked" and persona.panic_intensity >= 0.5:
        return "star_panicked"
    return AFFECT_GROUPS[persona.initial_affect]


def need_of(scenario: Scenario, need: str | None = None) -> str:
    """The scenario's goal without its details (the facts' values and the words they are asked by): what the user
    needs, not who it is or which. With ``need`` (a further request, ``UserSpec.follow_ups``), that request without
    the facts' values: its own words (*rating*, *hotel*) are what a turn that makes it shares.

    Retrieval prefers need statements that read like it (:data:`GOAL_GAIN`); with the details in, a turn sharing
    only the user's name ('I was told to follow up on my doctor appointment, my name is Angela') read like a goal
    of getting a ride.

    Example:
        >>> from envsim.registration import load_registered
        >>> scenario = load_registered("RetailRefundDamagedMug")
        >>> need_of(scenario.model_copy(update={"user": scenario.user.model_copy(update={
        ...     "goal": "You want a ride from 'Hospital' to 'Airport'. Your name is Angela.",
        ...     "facts": [Fact(key="name", value="Angela", asked_by=["your name"]),
        ...               Fact(key="origin", value="Hospital", asked_by=["where from"])]})}))
        "You want a ride from '' to 'Airport'.  is ."
    """
    goal = scenario.user.goal if need is None else need
    details = {f.value.strip() for f in scenario.user.facts}
    if need is None:
        details |= {k.strip() for f in scenario.user.facts for k in f.asked_by}
    for detail in sorted(details, key=lambda d: (-len(d), d)):
        if len(detail) >= 2:
            goal = re.sub(rf"(?<!\w){re.escape(detail)}(?!\w)", "", goal, flags=re.IGNORECASE)
    return goal


_ARTICLES = frozenset(("the", "this", "that", "these", "those", "your", "our", "their", "his", "her", "its"))


def request_details(request: str, names: Names) -> list[tuple[Fact, SpanKind]]:
    """The details a further request names (``UserSpec.follow_ups``: its entity spans, not the scenario's facts), as
    facts to say in the turn that makes it, each asked for by the last word before it, articles aside ('the status of
    order #W0002': *order*; 'the rating of the Shadyside Inn': *rating*).

    Example:
        >>> [(f.value, f.asked_by, kind) for f, kind in request_details("Can you also check order #W0002?", Names())]
        [('#W0002', ['order'], 'number')]
    """
    found = []
    for n, (start, end, kind) in enumerate(entity_spans(request, names)):
        before = [
            w for w in re.findall(r"[a-z]{3,}", request[max(0, start - 30) : start].lower()) if w not in _ARTICLES
        ]
        value = request[start:end].strip(" '\"")
        if value and FACT_CLASS[kind] != "none":
            found.append((Fact(key=f"request_{n + 1}", value=value, asked_by=before[-1:] or [kind]), kind))
    return found


@dataclass(frozen=True)
class TurnSource:
    """Where one reply came from and how it was adapted.

    ``ref`` is the human turn retrieved (``None`` for a persona line: giving up, demanding a
    person, or a fact said on its own); ``filled`` the fact keys put into its entity spans (or given by its act: a
    yes or a no, :func:`~envsim.user.recall.polarity`),
    ``appended`` those said after it, ``dropped`` how many of its spans were removed, ``rejected``
    how many candidates were rejected before it (unclean adaptation or a misfit), ``volunteered`` the fact keys
    said unasked (a persona that volunteers, :data:`VOLUNTEER_INTENTS`).
    """

    intent: Intent
    ref: Exemplar | None
    filled: tuple[str, ...] = ()
    appended: tuple[str, ...] = ()
    dropped: int = 0
    rejected: int = 0
    volunteered: tuple[str, ...] = ()


def _warn_once(message: str) -> None:
    global _warned
    if not _warned:
        _warned = True
        _log.warning(message)


class TranscriptUser(UserSimulator):
    """The offline user whose replies are retrieved, adapted human user turns (see the module docstring).

    Args:
        corpus: The transcripts folder (or a STAR folder or file); default
            :func:`~envsim.transcripts.corpus.corpus_dir`. Without one, the user speaks the
            persona's template lines (:class:`~envsim.user.scripted.ScriptedUser`).

    Attributes:
        trace: One :class:`TurnSource` per reply of the current episode.
        stats: Counts since the user was made: ``replies`` (retrieved or fallback), ``retrieved``,
            ``fallback`` (no candidate accepted: the scenario's or persona's own lines),
            ``persona_line`` (a demand for a person: the persona's own line, by design), ``fact_line`` (details no
            human turn has a place for, said in the scenario's words, :func:`~envsim.user.recall.say`),
            ``rejected_misfit`` (candidates the coherence model called misfits) and
            ``rejected_unclean`` (candidates whose slots could not be adapted cleanly).

    Example:
        >>> import numpy as np
        >>> from envsim.registration import load_registered
        >>> user = TranscriptUser()
        >>> scenario = load_registered("RetailAlreadyRefundedAnnoyed")
        >>> user.reset(scenario, np.random.default_rng(0)) == scenario.user.opening
        True
        >>> turn = user.reply("Could you give me your email address?", [])
        >>> "tom.keller@example.org" in turn.text, turn.done
        (True, False)
    """

    def __init__(self, corpus: str | Path | None = None) -> None:
        self.corpus = corpus
        self.trace: list[TurnSource] = []
        self._index: TurnIndex | None = None
        self._fallback: ScriptedUser | None = None
        self._loaded = False
        self._scenario: Scenario | None = None
        self._persona: Persona | None = None
        self._group = ""
        self._facts: list[tuple[Fact, tuple[str, ...], SpanKind]] = []
        self._lead_words: dict[str, frozenset[str]] = {}
        self._satisfied: tuple[str, ...] = ()
        self._emergency = False
        self._keep_quantities = False
        self._keep_when = False
        self._volunteers = False
        self._goal_sim: np.ndarray | None = None
        self._follow_ups: list[str] = []
        self._need_sim: np.ndarray | None = None
        self._follow_up = ""
        self._rest = 0.0
        self._tiers: list[np.ndarray] = []
        self._need_tiers: list[np.ndarray] = []
        self._request_tiers: list[np.ndarray] = []
        self._rng: np.random.Generator | None = None
        self._machine: AffectMachine | None = None
        self._revealed: set[str] = set()
        self._recall = Recall()
        self._used: set[int] = set()
        self._ended: str | None = None
        self._style: Style | None = None
        self._length_factor = np.ones(len(LENGTH_BINS))
        self._episode_length = self._length_factor
        self._heard = ""
        self._sim: np.ndarray | None = None
        self._asks = 0
        self._asks_when = False
        self._back: set[str] = set()
        self._polarity: UserAct | None = None
        self._missing = False
        self._rejected = 0
        self.stats: Counter[str] = Counter()

    # -- UserSimulator ---------------------------------------------------------------------

    def reset(self, scenario: Scenario, rng: np.random.Generator) -> str:
        """Start a conversation: the scenario's opening line (with the first fact if the persona volunteers)."""
        if not self._loaded:
            self._index = load_index(self.corpus)
            self._loaded = True
            if self._index is None:
                where = corpus_dir(self.corpus)
                _warn_once(
                    f"transcript user: no {CORPUS} transcripts at {where or '(no transcripts folder)'}; "
                    "replying with the persona's template lines (set ENVSIM_TRANSCRIPTS or pass corpus=)"
                )
        if self._index is None:
            self._fallback = self._fallback or ScriptedUser(typos=False)
            self._fallback.attach_goal(self._world_goal)
            return self._fallback.reset(scenario, rng)
        if self._scenario is not scenario:
            self._prepare(scenario, self._index)
        assert self._persona is not None
        self._rng = rng
        self._revealed = set()
        self._used = set()
        self._ended = None
        self._follow_ups = list(scenario.user.follow_ups)
        self._recall.reset()
        self.trace = []
        self._machine = AffectMachine(self._persona, emergency=self._emergency)
        opening = scenario.user.opening
        if self._persona.disclosure == "volunteers" and self._facts and not self._facts[0][0].found_after:
            fact = self._recall.giving(self._facts[0][0])
            opening = f"{opening} {render('user_fact.j2', key=fact.key, value=fact.value)}"
            self._revealed.add(fact.key)
        shift = talkativeness(rng)  # this conversation's own length (style.py)
        self._episode_length = self._length_factor * length_tilt(shift, self._persona.verbosity.sigma, LENGTH_BINS)
        return opening

    @property
    def group(self) -> str:
        """The persona category replies are retrieved from (empty before :meth:`reset` or without a corpus)."""
        return self._group

    @property
    def uses_corpus(self) -> bool:
        """Whether replies come from the corpus (``False``: template fallback, or before :meth:`reset`)."""
        return self._index is not None

    @property
    def affect(self) -> str | None:
        """The user's current affect (``None`` before :meth:`reset`)."""
        if self._fallback is not None:
            return self._fallback.affect
        return self._machine.affect if self._machine is not None else None

    @property
    def affect_state(self) -> AffectState | None:
        """The user's full affect state (``None`` before :meth:`reset`)."""
        if self._fallback is not None:
            return self._fallback.affect_state
        return self._machine.state if self._machine is not None else None

    def reply(self, agent_message: str, messages: Sequence[dict[str, Any]]) -> UserTurn:
        """Reveal asked-for facts, close when the goal is met, else a retrieved human turn that fits (see module).

        A fact given wrongly in the last reply (``said_first``, :mod:`envsim.user.recall`) is corrected first."""
        if self._fallback is not None:
            return self._fallback.reply(agent_message, messages)
        slips = self._recall.corrections()
        turn = self._respond(agent_message, messages)
        if slips and not turn.done:
            said = turn.text.lower()  # the reply gives the value itself (asked again): the apology alone
            lead = " ".join(self._styled(correction_line(f, restate=f.value.lower() not in said)) for f in slips)
            turn = replace(turn, text=f"{lead} {turn.text}")
        return turn

    def _respond(self, agent_message: str, messages: Sequence[dict[str, Any]]) -> UserTurn:
        persona, machine, scenario = self._persona, self._machine, self._scenario
        assert persona is not None and machine is not None and scenario is not None, "call reset() first"
        if self._ended is not None:
            return UserTurn(self._ended, done=True, affect=machine.affect)
        world = self.goal_met()  # claims without the goal met are no resolution (affect) and no ending
        step = machine.observe(classify_agent_turn(agent_message, messages, scenario, self._revealed, goal_met=world))
        state = step.after
        heard = read_part(agent_message)  # what the user reads of it
        low = heard.lower()
        act = agent_act(heard)
        cues = cue_mask(heard)
        asking = asking_text(heard)
        self._heard, self._sim, self._asks, self._rejected = heard, None, cue_mask(asking) & TOPIC_MASK, 0
        self._asks_when = cue_mask(asking) & WHEN_MASK != 0
        self._polarity, self._missing = None, False
        asked = [(fact, kind) for fact, keys, kind in self._facts if asks_for(fact, keys, asking, act)]
        new = [(fact, kind) for fact, kind in asked if fact.key not in self._revealed]
        back = [  # what it went looking for after the last reply and found: it says so, asked or not ('Oh, I remember
            (fact, fact_kind(fact.value))  # my PIN now')
            for fact in self._recall.announcements(exclude={*self._revealed, *(f.key for f, _ in new)})
        ]
        at_hand = [(fact, kind) for fact, kind in new if self._recall.at_hand(fact)]
        if back and not at_hand and satisfied(world, self._satisfied, low):
            back = []  # the goal is met: it closes
        self._back = {fact.key for fact, _ in back}
        if (at_hand or back) and not state.gives_up:
            if not at_hand:  # nothing asked that it gives: a turn that fits the fact, whatever the agent asked
                self._asks, self._asks_when = 0, False
            at_hand = [*at_hand, *back]
            self._revealed.update(fact.key for fact, _ in at_hand)
            giving = [(slip, fact_kind(slip.value)) for slip in (self._recall.giving(f) for f, _ in at_hand)]
            text = self._answer("answer", giving, act, cues, state)
            if state.wants_human:
                text = f"{text} {self._pick(persona.human_demands)}"
            return UserTurn(text, affect=state.affect)
        if satisfied(world, self._satisfied, low) and self._follow_ups and not state.gives_up:
            assert self._index is not None  # the next request instead of goodbye, in its own words
            self._follow_up = self._follow_ups.pop(0)
            self._need_sim = self._index.said.similarity(need_of(scenario, self._follow_up))
            return UserTurn(self._request(act, cues, state), affect=state.affect)
        if satisfied(world, self._satisfied, low):
            self._ended = self._retrieve_text("close", act if act in ("offer", "close") else "close", cues, state)
            return UserTurn(self._ended, done=True, affect=state.affect)
        if state.gives_up:
            self._ended = self._retrieve_text("give_up", act, cues, state)
            return UserTurn(self._ended, done=True, affect=state.affect)
        asked = [(fact, kind) for fact, kind in asked if fact.key in self._revealed]
        if asked:
            text = self._answer("reanswer", asked, act, cues, state)
            if state.wants_human:
                text = f"{text} {self._pick(persona.human_demands)}"
            return UserTurn(text, affect=state.affect)
        if state.wants_human:
            self._note(TurnSource("nudge", None), unmatched="persona_line")
            return UserTurn(self._pick(persona.human_demands), affect=state.affect)
        intent: Intent = "greet" if act == "greet" else "question" if act in ("ask_info", "ask_yesno") else "react"
        if act in ("offer", "close"):  # the goal is not met: not a goodbye, the need again (or a new request)
            intent = "insist"
        elif intent == "react" and SETBACK.search(heard) and world is not True:  # 'Dr. Morgan has no appointment
            intent = "other"  # at 5 pm': it asks for another ('What about 6?'), unless asked something
        ignored = step.before.requires_emergency and "ignores_emergency" in step.events
        self._missing = bool(new)  # asked for a fact it has not found yet
        if new or (not ignored and unknown_details(agent_message, scenario)):  # it does not have it (yet): says so
            intent = "unknown"
        elif not step.helped and intent not in ("question", "insist", "greet", "other"):
            intent = "nudge"
        return UserTurn(self._retrieve_text(intent, act, cues, state), affect=state.affect)

    # -- internals -----------------------------------------------------------------------

    def _prepare(self, scenario: Scenario, index: TurnIndex) -> None:
        persona = scenario_persona(scenario)
        self._persona = persona
        self._group = persona_group(persona, index)
        self._facts = [(f, tuple(k.lower() for k in f.asked_by), fact_kind(f.value)) for f in scenario.user.facts]
        self._lead_words = {f.key: lead_words(f) for f in scenario.user.facts}
        self._satisfied = tuple(p.lower() for p in scenario.user.satisfied_by)
        self._emergency = is_emergency(scenario)
        self._keep_quantities = not any(
            QUANTITY.search(t) for t in [scenario.user.goal, *(f.value for f in scenario.user.facts)]
        )
        self._keep_when = not any(kind in ("date", "time") for _, _, kind in self._facts) and not any(
            p.search(scenario.user.goal) for p in (DATE, TIME)
        )
        self._volunteers = persona.disclosure == "volunteers"
        self._goal_sim = index.said.similarity(need_of(scenario))
        self._rest = AffectState.start(persona, emergency=self._emergency).intensity
        self._style = Style.for_persona(persona, self._group)
        self._length_factor = self._style.length_factors(LENGTH_BINS)
        allowed = index.domain_mask([scenario.domain, *scenario.tags])
        same_domain = (index.domains & allowed) != 0
        eligible = index.generic | same_domain
        mine = index.group == (index.groups.index(self._group) if self._group in index.groups else -1)
        pools = [mine & same_domain] if allowed else []
        self._tiers = [np.flatnonzero(p) for p in (*pools, mine & eligible, eligible)]
        # a need is said in the words of its own task: in a dialogue of several tasks (a bank check, then a
        # restaurant), 'Can I check my bank balance?' is no restaurant request
        own = (index.own_domains & allowed) != 0
        need = [mine & own] if allowed else []
        self._need_tiers = [np.flatnonzero(p) for p in (*need, mine & (index.generic | own), index.generic | own)]
        # a further request is a request of the scenario's own business: no generic turn makes it, and a business
        # STAR has no turns of gets the request as written ('Well, I'll just tell them you said it was okay' was
        # 'Can you also tell me when my other order ships?' in a retail scenario)
        self._request_tiers = [np.flatnonzero(p) for p in (mine & own, own)] if allowed else []
        self._scenario = scenario

    def _pick(self, lines: Sequence[str]) -> str:
        assert self._rng is not None
        return lines[int(self._rng.integers(len(lines)))]

    def _weights(
        self,
        rows: np.ndarray,
        intent: Intent,
        act: AgentAct,
        cues: int,
        state: AffectState,
        facts: Sequence[tuple[Fact, SpanKind]],
        same_context: bool,
        volunteer: bool = False,
    ) -> np.ndarray:
        index = self._index
        assert index is not None
        table = np.array([INTENT_ACTS[intent][a] for a in USER_ACTS])
        if intent == "nudge":  # ignored once, a patient user still mostly replies in kind; near its patience, it nudges
            assert self._persona is not None
            alpha = min(1.0, state.unhelpful_streak / (self._persona.patience + 1))
            table = (1 - alpha) * np.array([INTENT_ACTS["react"][a] for a in USER_ACTS]) + alpha * table
        w = table[index.act[rows]]
        if intent == "close":  # a dialogue's last human turn closes it, whatever its act ('Great, I feel good
            # about it'), unless it asks for something more ('Yes, I'd like some room service')
            last = np.flatnonzero(index.last[rows] & (_ACT_NAMES[index.act[rows]] == "inform"))
            closing = [i for i in last if not _REQUEST_FORM.search(index.texts[rows[i]])]
            w = w.copy()
            w[closing] = 1.0
        allowed = np.ones(len(rows), dtype=bool)
        if same_context:
            allowed &= index.context[rows] == AGENT_ACTS.index(act)
        if not facts:  # a turn that is nothing but a detail cannot answer without one
            allowed &= ~index.bare[rows]
        if intent == "unknown" and self._missing:  # a fact it has not found yet (found_after): a turn that says so
            # ('I forgot it', 'not sure'), naming no other detail ('I don't know my PIN' is no answer to 'your email?')
            topics = index.topics[rows]
            allowed &= index.unsure[rows] & ((topics == 0) | ((topics & self._asks) != 0))
        if self._polarity is not None:  # a yes or a no to give: a turn of that act ('Yes, please.', 'Nope.')
            allowed &= index.polar[rows] == USER_ACTS.index(self._polarity)
        w = w * allowed
        base = allowed.astype(float) if intent in REPLY_INTENTS else w  # the lengths kept (REPLY_INTENTS)
        if cues:
            w = w * np.where((index.cues[rows] & cues) != 0, CUE_BOOST, 1.0)
        asks = self._asks
        row_asks = index.asks[rows]
        if asks:  # asked for the same detail as the agent's message asks for, or for another one
            w = w * np.where((row_asks & asks) != 0, ASK_BOOST, np.where(row_asks != 0, ASK_MISMATCH_WEIGHT, 1.0))
        else:
            w = w * np.where(row_asks != 0, ASK_MISMATCH_WEIGHT, 1.0)
        if intent != "unknown":  # a detail it does not have: saying so matters, not what the turn was about
            w = w * np.exp(CONTENT_GAIN * self._similarity()[rows])
        need = self._need_sim if intent == "follow_up" else self._goal_sim
        if intent in NEED_INTENTS and need is not None:  # its own need, not any of its business's
            w = w * np.exp(GOAL_GAIN * need[rows])
            if intent == "follow_up":  # a turn that shares the request's words, never small talk
                w = w * (need[rows] >= FOLLOW_UP_SIMILARITY)
        n_text = index.n_text[rows].astype(float)
        n_digits = index.n_digits[rows].astype(float)
        spare = self._spare(facts)
        asked = known = 0
        for fact, _ in facts:
            asked |= _fact_topics(fact)
        for fact, _ in spare:
            known |= _fact_topics(fact)
        unsaid = self._unsaid(facts) if volunteer else []
        offered = _all_topics(unsaid)
        topics = index.topics[rows]
        want_text = sum(FACT_CLASS[kind] == "text" for _, kind in facts)
        want_digits = sum(FACT_CLASS[kind] == "digits" for _, kind in facts)
        if self._keeps_when():  # asked when, and the scenario has no date or time: the turn's stay as written
            n_digits = n_digits - index.n_when[rows]
        placed = np.minimum(n_text, want_text) + np.minimum(n_digits, want_digits)
        # a turn that names a detail already given ('my PIN is ...') may say it again
        reused = np.where((topics & known) != 0, np.minimum(n_text + n_digits - placed, len(spare)), 0)
        other = 0 if self._keep_quantities else index.n_other[rows]
        dropped = n_text + n_digits + other - placed - reused
        if offered:  # a turn that names a detail the user volunteers says it instead of dropping it
            dropped = dropped - np.where(
                (topics & offered) != 0, np.minimum(n_text + n_digits - placed - reused, len(unsaid)), 0
            )
        w = w * APPEND_WEIGHT ** (len(facts) - placed) * DROP_WEIGHT**dropped
        if facts:
            on = np.where((topics & asked) != 0, ON_TOPIC_BOOST, 1.0)
            w = w * np.where((topics & ~(asked | known)) != 0, OFF_TOPIC_WEIGHT, on)
        else:
            w = w * np.where((topics & ~(known | offered)) != 0, TOPIC_WEIGHT, 1.0)
        target = {"confused": 1, "frustrated": 2, "angry": 2, "panicked": 3}.get(state.affect)
        if state.affect == "relieved":
            w = w * np.where(index.mood[rows] == 0, 2.0, 1.0)
        elif target is not None:
            gain = float(np.clip(1.0 + MOOD_GAIN * (state.intensity - self._rest), 1.0, MOOD_MAX))
            w = w * np.where(index.mood[rows] == target, gain, 1.0)
        if intent == "unknown":  # asked for a detail it does not have: 'I don't know', 'I forgot'
            w = w * np.where(index.unsure[rows], UNSURE_BOOST, 1.0)
        strata = index.stratum[rows]
        w = keep_lengths(w, base * self._episode_length[strata // 2], strata)  # the persona's and conversation's
        if intent == "give_up":  # the turns that ended a dialogue
            w = w * np.where(index.last[rows], LAST_TURN_BOOST, 1.0)
        if self._used:
            used = np.fromiter(self._used, dtype=np.int64)
            w = w * np.where(np.isin(rows, used), REUSE_WEIGHT, 1.0)
        return np.asarray(w, dtype=float)

    def _keeps_when(self) -> bool:
        """Whether a retrieved turn's dates and times stay: the agent asks when (a day, a date, a time) and the
        scenario has no date or time of its own."""
        return self._keep_when and self._asks_when

    def _similarity(self) -> np.ndarray:
        """Per index row, how much its agent turn reads like the agent's message (computed once per reply)."""
        index = self._index
        assert index is not None
        if self._sim is None:
            self._sim = index.content.similarity(self._heard)
        return self._sim

    def _candidates(
        self,
        intent: Intent,
        act: AgentAct,
        cues: int,
        state: AffectState,
        facts: Sequence[tuple[Fact, SpanKind]],
        volunteer: bool = False,
    ) -> Iterator[int]:
        """Rows drawn with the environment's generator, without replacement, from the first tier with enough
        candidates (at most :data:`MAX_TRIES`).

        The first draw picks the reply's length and question stratum (the index's ``stratum``: the lengths
        :func:`keep_lengths` keeps); a candidate rejected after it is replaced from the same stratum while one is
        left, else from the nearest (the same length with or without a question mark, then the next lengths).
        Otherwise the rejections would shape the lengths: a long human turn has more spans, so more ways to fail a
        clean adaptation, and the replies taken would be shorter than the turns people write."""
        rng = self._rng
        index = self._index
        assert rng is not None and index is not None
        tiers = (
            self._request_tiers
            if intent == "follow_up"
            else self._need_tiers
            if intent in NEED_INTENTS
            else self._tiers
        )
        contexts = (False,) if intent == "follow_up" else (True, False)  # a new request: whatever the agent said
        for rows, same_context in ((rows, same) for rows in tiers for same in contexts):
            if not len(rows):
                continue
            w = self._weights(rows, intent, act, cues, state, facts, same_context, volunteer)
            if int((w > 0).sum()) >= MIN_CANDIDATES:
                strata = index.stratum[rows]
                gap = np.zeros(len(rows), dtype=np.int64)  # from the first draw's stratum: 0 until it is drawn
                used = (
                    np.isin(rows, np.fromiter(self._used, dtype=np.int64)) if self._used else np.zeros(len(rows), bool)
                )
                for _ in range(MAX_TRIES):
                    alive = w > 0
                    if not alive.any():
                        return
                    if (alive & ~used).any():  # a turn used in the episode only when nothing else is left
                        alive &= ~used
                    p = np.where(alive & (gap == gap[alive].min()), w, 0.0)  # the nearest stratum left
                    k = int(rng.choice(len(rows), p=p / float(p.sum())))
                    if not gap.any():
                        gap = 2 * np.abs(strata // 2 - strata[k] // 2) + (strata % 2 != strata[k] % 2)
                    yield int(rows[k])
                    w[k] = 0.0
                return

    def _retrieve(
        self,
        intent: Intent,
        act: AgentAct,
        cues: int,
        state: AffectState,
        facts: Sequence[tuple[Fact, SpanKind]],
        compose: Callable[[str, list[Fact]], str],
    ) -> tuple[int, str, tuple[str, ...], tuple[str, ...], int, tuple[str, ...]] | None:
        """The first candidate row that adapts cleanly and fits the agent's message, with its final text.

        ``compose`` turns the adapted text and the facts left over into the reply. A candidate whose
        adaptation is unclean (:mod:`envsim.user.transcript.fill`), that says the user does not know or remember
        (:data:`~.text.UNSURE`) while a fact it gives would be said after it, that would have every fact it gives
        said after it while it is a question, a greeting or thanks (:data:`_NO_LEAD_IN`), or whose reply the coherence
        model calls a misfit (:class:`~envsim.user.transcript.coherence.CoherenceModel`) is rejected (counted in
        :attr:`stats`).
        A persona that volunteers may say facts it was not asked for in the spans of a turn that names them
        (:data:`VOLUNTEER_INTENTS`); they count as given once the reply is taken.
        Returns the row, the reply, the fact keys filled and appended, the spans dropped and the fact keys
        volunteered; ``None`` when every candidate was rejected or none could be drawn.
        """
        index = self._index
        assert index is not None
        model = index.coherence()
        reject = model.quantile(REJECT_SHARE) if model is not None else 0.0
        volunteer = self._volunteers and intent in VOLUNTEER_INTENTS
        for row in self._candidates(intent, act, cues, state, facts, volunteer):
            adapted = self._adapt(row, facts, volunteer=volunteer)
            if adapted is None or not self._discreet(adapted[0], adapted[4]):
                self.stats["rejected_unclean"] += 1
                self._rejected += 1
                continue
            text, filled, left, dropped, volunteered = adapted
            if ((left or self._back) and index.unsure[row]) or (
                left and not filled and USER_ACTS[index.act[row]] in _NO_LEAD_IN
            ):
                # 'I forgot it! Is there another way?' or 'Can you lend me some money?' and then the PIN; nor 'I can't
                # remember my PIN' with the PIN it has just found
                self.stats["rejected_unclean"] += 1
                self._rejected += 1
                continue
            reply = compose(text, left)
            off = intent == "insist" and user_act(reply) == "question" and not _REQUEST_FORM.search(reply)
            if (
                not reply
                or off
                or (model is not None and self._heard.strip() and model.score(self._heard, reply) < reject)
            ):
                self.stats["rejected_misfit"] += 1
                self._rejected += 1
                continue
            self._used.add(row)
            self._revealed.update(volunteered)
            return row, reply, tuple(filled), tuple(f.key for f in left), dropped, tuple(volunteered)
        return None

    def _spare(self, facts: Sequence[tuple[Fact, SpanKind]]) -> list[tuple[Fact, SpanKind]]:
        """Facts already given (and not among ``facts``): a retrieved turn may say them again."""
        giving = {fact.key for fact, _ in facts}
        return [(f, kind) for f, _, kind in self._facts if f.key in self._revealed and f.key not in giving]

    def _unsaid(self, facts: Sequence[tuple[Fact, SpanKind]]) -> list[tuple[Fact, SpanKind]]:
        """Facts not yet given (and not among ``facts``) that it has at hand: what a persona that volunteers may say
        unasked."""
        giving = {fact.key for fact, _ in facts}
        return [
            (f, kind)
            for f, _, kind in self._facts
            if f.key not in self._revealed and f.key not in giving and self._recall.has(f)
        ]

    def _adapt(
        self, row: int, facts: Sequence[tuple[Fact, SpanKind]], *, volunteer: bool = False
    ) -> tuple[str, list[str], list[Fact], int, list[str]] | None:
        """The row's text with its spans filled by ``facts`` (then by facts already given, then, with
        ``volunteer``, by facts not yet given) or dropped.

        A fact given before, or volunteered, goes only where the turn names it: the words before the span (or,
        for one given before, the turn) name its topic ('my name is'), or, for one volunteered, one of the words
        it is asked by ('a flight to <destination>'). Returns the text, the keys of ``facts`` placed, the facts of
        ``facts`` left over, the number of spans dropped and the keys volunteered; ``None`` when a span to fill
        or drop is not a whole token run
        (:func:`~envsim.user.transcript.fill.clean_span`) or a drop leaves a word hanging
        (:func:`~envsim.user.transcript.fill.dangling`): the turn cannot be adapted cleanly.
        """
        index = self._index
        assert index is not None
        text = index.texts[row]
        spans = index.spans(row)
        lead = [_lead_topics(text[max(0, s - 40) : s]) for s, _, _ in spans]
        own = cue_mask(text) & TOPIC_MASK
        fill: dict[int, Fact] = {}
        left: list[Fact] = []
        giving = {fact.key for fact, _ in facts}
        before_word = [_last_word(text[max(0, s - 20) : s]) for s, _, _ in spans]
        thing = [_ARTICLE_BEFORE.search(text[max(0, s - 6) : s]) is not None for s, _, _ in spans]
        trail = [_named_after(text[e : e + 40]) for _, e, _ in spans]
        spare = self._spare(facts)

        def clear(i: int, fact: Fact) -> bool:
            """No other detail's words around span ``i``: never 'get to <origin>', '<PIN> is my account number', nor
            a person's name where a place or a thing goes ('the weather in <name>', 'the <name> is nice')."""
            if (before_word[i] in _PLACE_WORDS or thing[i]) and _fact_topics(fact) & _NAME_TOPIC:
                return False
            return not self._led_to_another(fact, before_word[i]) and (
                not trail[i] or bool(trail[i] & _fact_topics(fact))
            )

        for fact, kind in [*facts, *spare]:
            topics = _fact_topics(fact)
            free = [
                i for i, (s, e, k) in enumerate(spans) if i not in fill and _compatible(kind, k, fact.value, text[s:e])
            ]
            # never 'my PIN is <phone>', nor a place that other words mark as another detail's
            free = [i for i in free if (not lead[i] or lead[i] & topics) and clear(i, fact)]
            if fact.key not in giving:  # a fact given before: only where the turn names it ('my name is', 'PIN'),
                # and nothing else ('my account number is' is no place for a phone number)
                free = [i for i in free if _names(lead[i], topics) or (not lead[i] and own & topics)]
            ranked = sorted(free, key=lambda i: (not lead[i] & topics, spans[i][2] != kind, i))
            if ranked:
                fill[ranked[0]] = fact
            elif fact.key in giving:
                left.append(fact)
        for i, fact in self._by_kind(text, spans, lead, fill, spare):  # said before: 'see you at <its venue>'
            if clear(i, fact):
                fill[i] = fact
        unsaid = self._unsaid(facts) if volunteer else []
        if unsaid:
            before = [" ".join(sentence_tail(text[max(0, s - 40) : s]).lower().split()[-3:]) for s, _, _ in spans]
            for fact, kind in unsaid:
                topics = _fact_topics(fact)
                named = [re.compile(rf"\b{re.escape(k.lower())}") for k in fact.asked_by if k.strip()]
                free = [
                    i
                    for i, span in enumerate(spans)
                    if i not in fill
                    and _compatible(kind, span[2], fact.value, text[span[0] : span[1]])
                    and clear(i, fact)
                    and (_names(lead[i], topics) or (not lead[i] and any(n.search(before[i]) for n in named)))
                ]
                if free:
                    fill[free[0]] = fact
            for i, fact in self._by_kind(text, spans, lead, fill, unsaid):
                if clear(i, fact):
                    fill[i] = fact
        if facts and own & ~_all_topics([*facts, *spare]):
            return None  # it names a detail it does not give ('my PIN is' before a phone number)
        if any(FACT_CLASS[kind] != "text" for _, kind in facts) and _stray_digits(text, spans):
            return None  # another number it cannot replace ('either3941 or <PIN>'): it would contradict the one given
        placed = sorted(fill)
        for i, j in itertools.pairwise(placed):
            if fill[i].key != fill[j].key and _ALTERNATIVE.fullmatch(text[spans[i][1] : spans[j][0]]):
                return None  # two different details as alternatives ('either <phone> or <date of birth>')
        dropped = 0
        original = text
        for i in reversed(range(len(spans))):
            start, end, kind = spans[i]
            if i not in fill and (
                (kind == "quantity" and self._keep_quantities) or (kind in ("date", "time") and self._keeps_when())
            ):
                continue
            if not clean_span(original, start, end, kind) or (i not in fill and not droppable(original, start, end)):
                return None
            if i in fill:
                start, end = _without_echo(text, start, end, fill[i].value)
                text = text[:start] + fill[i].value + text[end:]
            else:
                text = drop_span(text, start, end)
                dropped += 1
        text = tidy(text)
        if dropped and dangling(text) is not None and dangling(text) != dangling(tidy(original)):
            return None
        if dropped and unpaired(text) > unpaired(tidy(original)):
            return None  # 'either 7402.': the other half of 'either 7402 or 3941' went with the span dropped
        said = {fact.key for fact, _ in unsaid}
        volunteered = list(dict.fromkeys(fill[i].key for i in sorted(fill) if fill[i].key in said))
        return text, [fill[i].key for i in sorted(fill) if fill[i].key in giving], left, dropped, volunteered

    @staticmethod
    def _by_kind(
        text: str,
        spans: Sequence[tuple[int, int, SpanKind]],
        lead: Sequence[int],
        fill: dict[int, Fact],
        unsaid: Sequence[tuple[Fact, SpanKind]],
    ) -> list[tuple[int, Fact]]:
        """Spans a volunteered fact takes by its kind alone, where nothing names it: the span's words are the fact's
        ('the Southside Venue' for 'West Bay Venue'), or it is the only unsaid fact of that kind ('for 10 pm' for the
        user's own 7 pm; a time, a date or an email only: 'from Airport' is no place for the user's one destination,
        'transferred 2000' none for its account number).

        People state their need with its details ('I'd like to RSVP to a party at the West Bay Venue for 7 pm'); a
        retrieved need whose details are another task's is taken with the user's own in their place, one span per
        fact, never where the words before the span name another detail.

        Example:
            >>> venue = Fact(key="venue", value="West Bay Venue", asked_by=["where"])
            >>> host, at = Fact(key="host", value="Ben", asked_by=["host"]), Fact(key="t", value="7 pm", asked_by=["x"])
            >>> text = "I'd like to RSVP a party at the Southside Venue for 10 pm"
            >>> spans = [(32, 47, "name"), (52, 57, "time")]
            >>> unsaid = [(host, "name"), (venue, "name"), (at, "time")]
            >>> found = TranscriptUser._by_kind(text, spans, [0, 0], {}, unsaid)
            >>> [(text[spans[i][0] : spans[i][1]], f.value) for i, f in found]
            [('Southside Venue', 'West Bay Venue'), ('10 pm', '7 pm')]
            >>> account = [(Fact(key="account", value="85731890", asked_by=["account"]), "number")]
            >>> TranscriptUser._by_kind("someone took 2000 from me", [(13, 17, "number")], [0], {}, account)
            []
        """
        taken = {f.key for f in fill.values()}
        left = [(f, kind) for f, kind in unsaid if f.key not in taken]
        found: list[tuple[int, Fact]] = []
        for i, (start, end, span_kind) in enumerate(spans):
            if i in fill or lead[i]:
                continue
            same = [f for f, kind in left if _compatible(kind, span_kind, f.value, text[start:end])]
            words = set(re.findall(r"[a-z]{4,}", text[start:end].lower()))
            shared = [f for f in same if words & set(re.findall(r"[a-z]{4,}", f.value.lower()))]
            alone = len(same) == 1 and span_kind in ("time", "date", "email")
            pick = shared if len(shared) == 1 else same if alone and not shared else []
            if pick:
                found.append((i, pick[0]))
                left = [(f, kind) for f, kind in left if f.key != pick[0].key]
        return found

    def _led_to_another(self, fact: Fact, word: str) -> bool:
        """Whether ``word``, right before a span, is how another fact of the scenario is asked for and not how
        ``fact`` is (the last word of an ``asked_by`` phrase: 'a ride to <destination>', 'leaving from <origin>'):
        the span is the other fact's place ('I need to get to <origin> from ...' would send the user the wrong way).
        """
        if not word:
            return False
        mine = self._lead_words.get(fact.key, frozenset())
        return word not in mine and any(word in words for key, words in self._lead_words.items() if key != fact.key)

    def _discreet(self, text: str, volunteered: Sequence[str] = ()) -> bool:
        """Whether ``text`` holds no fact value not yet given (as a whole word), ``volunteered`` ones aside.

        A human turn may happen to hold one ('I'd like to RSVP', a 5 where the scenario's code is 5): the turn is
        not used (cutting the value out would garble it: 'I'd like to to a party')."""
        for fact, _, _ in self._facts:
            if fact.key in self._revealed or fact.key in volunteered or not fact.value.strip():
                continue
            if re.search(rf"(?<!\w){re.escape(fact.value)}(?!\w)", text, flags=re.IGNORECASE):
                return False
        return True

    def _answer(
        self,
        intent: Intent,
        facts: Sequence[tuple[Fact, SpanKind]],
        act: AgentAct,
        cues: int,
        state: AffectState,
    ) -> str:
        def compose(text: str, left: list[Fact]) -> str:
            extra = " ".join(self._said(f) for f in left)
            if not text:
                return extra
            if extra:  # tidied: 'today, <friday>' with the day dropped is 'today. 3 pm', never 'today,. 3 pm'
                return tidy(f"{text if text[-1] in '.!?' else f'{text}.'} {extra}")
            return text

        answers = {polarity(f) for f, _ in facts} - {None}
        if len(answers) == 1:  # a yes or a no is the act of the turn retrieved, not words said after it
            self._polarity = answers.pop()
            given = [(f, kind) for f, kind in facts if polarity(f) is None]
        else:
            given = list(facts)
        if given and self._polarity is None and all(kind == "statement" for _, kind in given):
            # what happened, a restriction, 'a few weeks': no human turn has a place for it, and one said after
            # another's turn would follow that turn's own symptoms or wishes
            self._note(TurnSource(intent, None, appended=tuple(f.key for f, _ in given)), unmatched="fact_line")
            return self._styled(" ".join(self._said(f) for f, _ in given))
        found = self._retrieve(intent, act, cues, state, given, compose)
        self._polarity = None
        if found is None:  # the fallback: the facts said by the scenario's own lines
            self._note(TurnSource(intent, None, appended=tuple(f.key for f, _ in facts)))
            return self._styled(" ".join(self._said(f) for f, _ in facts))
        row, text, filled, appended, dropped, _ = found
        by_act = tuple(f.key for f, _ in facts if polarity(f) is not None) if len(given) < len(facts) else ()
        ref = self._index.ref(row) if self._index else None
        self._note(TurnSource(intent, ref, (*filled, *by_act), appended, dropped))
        return self._styled(text)

    def _said(self, fact: Fact) -> str:
        """A fact said on its own after a turn: as it was found (:func:`~envsim.user.recall.found_line`) when the user
        comes back with it unasked, else its ``say`` line."""
        return found_line(fact) if fact.key in self._back else say(fact)

    def _request(self, act: AgentAct, cues: int, state: AffectState) -> str:
        """The next further request (``UserSpec.follow_ups``) in a human turn that makes it, with the details the
        request names in that turn's places (:func:`request_details`: never a detail of another's request, never one
        said after the turn); as written when no turn does."""
        assert self._index is not None
        details = request_details(self._follow_up, self._index.names)
        found = self._retrieve("follow_up", act, cues, state, details, lambda text, left: "" if left else text)
        if found is None:
            self._note(TurnSource("follow_up", None))
            return self._follow_up
        row, text, filled, _, dropped, volunteered = found
        self._note(TurnSource("follow_up", self._index.ref(row), filled, dropped=dropped, volunteered=volunteered))
        return self._styled(text)

    def _retrieve_text(self, intent: Intent, act: AgentAct, cues: int, state: AffectState) -> str:
        persona = self._persona
        assert persona is not None and self._scenario is not None
        found = self._retrieve(intent, act, cues, state, (), lambda text, _: text)
        if found is not None:
            row, text, _, _, dropped, volunteered = found
            ref = self._index.ref(row) if self._index else None
            self._note(TurnSource(intent, ref, dropped=dropped, volunteered=volunteered))
            return self._styled(text)
        self._note(TurnSource(intent, None))
        if intent == "close":
            return self._scenario.user.closing
        if intent == "give_up":
            return persona.give_up
        if intent == "unknown":
            return self._pick(DONT_KNOW_LINES)
        return self._pick([*self._scenario.user.nudges, *persona.nudges] or [self._scenario.user.opening])

    def _note(self, source: TurnSource, unmatched: str = "fallback") -> None:
        """Record where a reply came from (:attr:`trace`, :attr:`stats`), with the candidates it rejected.

        ``unmatched`` names the count of a reply with no corpus turn (``fallback``: none accepted).
        """
        if self._rejected:
            source = replace(source, rejected=self._rejected)
        self.trace.append(source)
        self.stats["replies"] += 1
        self.stats["retrieved" if source.ref is not None else unmatched] += 1

    def _styled(self, text: str) -> str:
        """A retrieved or fallback reply with the persona's traits applied (:mod:`envsim.user.transcript.style`)."""
        assert self._rng is not None and self._style is not None
        return self._style.apply(text, self._rng, protected=[f.value for f, _, _ in self._facts])


def clear_cache() -> None:
    """Forget the indexes built in this process, and that the missing-corpus warning was given."""
    global _warned
    forget_indexes()
    _warned = False
