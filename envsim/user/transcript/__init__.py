"""The transcript user: every reply is a human-written user turn, retrieved and adapted.

An offline mock user that needs no model and no API key. Its replies are user turns of STAR
(human-written, role-played task dialogues; see ``../shared/transcripts/README.md``), read
at run time from :func:`envsim.transcripts.corpus.corpus_dir`; no corpus text is in this
repository. The conversation logic is the scripted user's (:mod:`envsim.user.scripted`): the
scenario's opening line, a fact only when the agent asks for it (its ``asked_by`` words), the
end when the scenario's goal is met (:func:`~envsim.user.base.satisfied`: the expected writes
done, and a ``satisfied_by`` phrase said when the scenario lists any), affect as state
(:mod:`envsim.user.affect`), a demand for a person and giving up after the persona's patience.
What differs is the text of each reply.

**The index.** On first use the process reads the corpus once (lazily; cached per corpus
path) into a compact :class:`TurnIndex`: one row per human user turn of the *fitting* STAR
dialogues (the calibration's split, :func:`envsim.calibrate.is_heldout`; held-out dialogues
are never retrieved, so ``envsim fidelity`` compares against turns the user cannot copy),
grouped by persona category (:func:`envsim.calibrate.classify`). Dialogues outside every
persona instruction (the calm pool) are sampled, :data:`CALM_SAMPLE_SHARE` of them, by a hash
of their id. Each row holds small codes, all from simple rules:

- the *context*: the agent (wizard) turn it answers, kept as its act (:func:`agent_act`: greet,
  ask_info, ask_yesno, inform, apology, offer, close), its question topics (:data:`CUES`), the
  details its questions and requests ask for (``asks``: :data:`FACT_TOPICS` bits), and its
  content words in an inverted index (:class:`~envsim.user.transcript.context.ContentIndex`);
- the turn's own dialogue act (:func:`user_act`: greet, thanks, affirm, deny, complain,
  question, inform);
- its mood (calm, confused, hostile, panicky) from :mod:`envsim.user.affect_scorer`: the
  affect whose score is highest relative to the calm group's 90th percentile, when above it;
- its entity spans (:func:`entity_spans`: emails, times, dates, numbers, quantities, names
  learnt from the corpus' capitalisation, :func:`learn_names`), by kind;
- whether it says the user does not know or have something (:data:`UNSURE`);
- whether it is *generic*: no content word (detail words such as name or number aside) is
  concentrated in one STAR domain (:data:`GENERIC_MAX_SHARE`), so it reads right in any business.

The index also fits, once, a coherence model on its (agent turn, reply) pairs
(:meth:`TurnIndex.coherence`, :class:`~envsim.user.transcript.coherence.CoherenceModel`).

**A reply.** The agent's message is classified (:func:`agent_act`) and the affect state
advanced; then the *intent* follows, as in the scripted user: ``answer`` (new facts asked:
an ``asked_by`` word in one of the message's questions or requests, :func:`asking_text`),
``reanswer`` (facts asked again), ``close`` (the goal is met: the user ends),
``give_up`` (patience ran out: the user ends), ``unknown`` (asked for a detail the user does
not have, :func:`~envsim.user.affect.unknown_details`, outside an ignored emergency: it says it
does not know or have it, preferring turns that say so, :data:`UNSURE_BOOST`, or the scripted
user's :data:`~envsim.user.scripted.DONT_KNOW_LINES` when none can be retrieved), or else
``question``, ``greet`` or ``react`` by the agent's act, ``insist`` when the agent offers more
help or says goodbye while the goal is not met (the need again or a new request, never a
goodbye), ``nudge`` for an unhelpful statement (mixed towards complaints as the unhelpful streak
nears the persona's patience). Retrieval is keyed on the agent's message: rows are weighted by
the intent's preferred acts (:data:`INTENT_ACTS`), the same context act, shared question topics,
the details asked for (:data:`ASK_BOOST` when the row's agent turn asked for one the message
asks for, :data:`ASK_MISMATCH_WEIGHT` when it asked for others), how much that agent turn reads
like the message (``exp(CONTENT_GAIN * cosine)`` over content words), the fit of its entity
spans to the facts to give (:data:`APPEND_WEIGHT`, :data:`DROP_WEIGHT`, :data:`FACT_TOPICS`),
its mood (at the persona's resting intensity the category's own mix; a user more upset than
that prefers turns of its mood, up to :data:`MOOD_MAX` times), and for ``unknown`` whether it
says so. These preferences are then rescaled so that the
lengths and the share of questions drawn stay those of the act-and-context pool
(:func:`_keep_lengths`): a short turn has fewer spans to drop, and would otherwise win too
often. A row already used in the episode is avoided. Candidates are drawn with the environment's
generator without replacement, up to :data:`MAX_TRIES`: one whose adaptation is unclean (below)
or whose reply the coherence model calls a misfit is rejected and the next is drawn; when all
are, the reply falls back to the scenario's own lines (the facts' ``say`` lines, its closing or
nudges). :attr:`TranscriptUser.stats` counts the rejections and fallbacks. The pools, tried in order until one has
:data:`MIN_CANDIDATES` rows that fit (first with the same context act, then any): the persona's
category (:func:`persona_group`) in the scenario's STAR domain (its ``domain`` or a tag naming
one, e.g. ``bank``); the category's rows of that domain or generic; every category's.
Businesses STAR lacks (retail, medical supply) get generic rows only.

**Adaptation.** The retrieved turn's entity spans are replaced by the values of the facts
asked (of the same kind only; never where the words before the span name another detail, "my
PIN is"), then by facts already given where the turn names them ("my name is"), or dropped,
together with a connector that led to it ("either 0314 or" loses its "or"; :func:`_drop_span`).
It is *clean* or the turn is not used (:mod:`envsim.user.transcript.fill`): whole spans only, nothing glued
to them and no half name (:func:`~envsim.user.transcript.fill.clean_span`), a span dropped only where no
word leads to it (:func:`~envsim.user.transcript.fill.droppable`: never "do you like the?"), no two
different facts as alternatives ("either <phone> or <date of birth>"), and for an answer no
detail named that it does not give. Quantities and amounts ("$300", "20
minutes") stay as written when neither the scenario's goal nor its facts name one: another
customer's amount contradicts nothing there, and the human turns of a category are full of them;
so do dates and times ("Thursday", "5 pm") in answer to a question about when, when the scenario
has no date or time fact and its goal names none.
Asked facts with no span left are said after it with their ``say`` line. A fact not yet given
never appears. Demanding a person uses the persona's own lines; a turn that cannot be
retrieved falls back to the persona's lines too (:attr:`TranscriptUser.trace` says which
replies did). The persona's traits are applied to the text (:mod:`envsim.user.transcript.style`): typos
at its rate over its category's, its register, and its verbosity as a preference for human
turns of its lengths.

Where no corpus is present, the user falls back to :class:`~envsim.user.scripted.ScriptedUser`
(the persona's template lines) and logs one warning line per process.

Example:
    >>> agent_act("Could you tell me your date of birth?"), agent_act("Is there anything else?")
    ('ask_info', 'offer')
    >>> user_act("yes please"), user_act("Why is this taking so long?!")
    ('affirm', 'complain')
    >>> text = "It's 4321, at 5 pm on Friday"
    >>> [(text[a:b], kind) for a, b, kind in entity_spans(text)]
    [('4321', 'number'), ('5 pm', 'time'), ('Friday', 'date')]
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import json
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from envsim.prompts import render, render_scenario_text
from envsim.scenario import Fact, Scenario
from envsim.transcripts.corpus import corpus_dir
from envsim.transcripts.schema import Conversation
from envsim.user.affect import (
    _REQUEST,
    _SENTENCE,
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
from envsim.user.transcript.coherence import CoherenceModel
from envsim.user.transcript.context import ContentIndex
from envsim.user.transcript.fill import clean_span, dangling, droppable
from envsim.user.persona import Exemplar, Persona
from envsim.user.scripted import DONT_KNOW_LINES, ScriptedUser
from envsim.user.transcript.style import Style

CORPUS = "star"
"""The corpus the transcript user retrieves from (its folder under the transcripts folder)."""

CALM_SAMPLE_SHARE = 0.15
"""Share of the dialogues without a persona instruction (the calm pool) that are indexed."""

GENERIC_MAX_SHARE = 0.3
"""A word is domain-specific when one STAR domain has this share or more of its use (rates per dialogue,
normalised over the domains); a turn is generic when none of its content words is, nor rare."""

GENERIC_MIN_DIALOGUES = 3
"""A content word used in fewer indexed dialogues than this counts as domain-specific (too rare to tell)."""

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
"""Weight of a turn that says the user does not know or have something (:data:`UNSURE`), when asked for a
detail it does not have (the ``unknown`` intent)."""

UNSURE = re.compile(
    r"\b(?:do ?n[o']?t|dont|can ?n?[o']?t|cant|could ?n[o']?t) (?:really |even |quite |seem to )?(?:know|remember"
    r"|recall|have|find|think of)\b|\bnot (?:sure|certain)\b|\bno (?:idea|clue)\b|\bforg[oe]t|\bdunno\b|\bunsure\b"
)
"""A user turn that says the user does not know, remember or have something (on lower-cased text)."""

REUSE_WEIGHT = 0.01
"""Weight of a row already used in the episode."""

APPEND_WEIGHT = 0.15
"""Weight factor per asked fact that finds no span in a retrieved turn (it is said after the turn)."""

DROP_WEIGHT = 0.1
"""Weight factor per entity span of a retrieved turn that must be dropped."""

AgentAct = Literal["none", "greet", "ask_info", "ask_yesno", "inform", "apology", "offer", "close"]
"""What an agent turn does, for retrieval: the context a human user turn answers."""
AGENT_ACTS: tuple[AgentAct, ...] = get_args(AgentAct)
"""Every :data:`AgentAct`; ``none`` is the context of a dialogue's first user turn."""

UserAct = Literal["greet", "thanks", "affirm", "deny", "complain", "question", "inform"]
"""The dialogue act of a human user turn."""
USER_ACTS: tuple[UserAct, ...] = get_args(UserAct)
"""Every :data:`UserAct`."""

Mood = Literal["calm", "confused", "hostile", "panicky"]
"""The mood of a human user turn, from its affect scores."""
MOODS: tuple[Mood, ...] = get_args(Mood)
"""Every :data:`Mood`."""

Intent = Literal[
    "answer", "reanswer", "unknown", "question", "react", "greet", "insist", "close", "nudge", "give_up"
]  # fmt: skip
"""What a reply has to do (decided from the agent's message and the affect state)."""

SpanKind = Literal["email", "time", "date", "quantity", "number", "name"]
"""The kind of an entity span."""

INTENT_ACTS: dict[Intent, dict[UserAct, float]] = {
    "answer": {"greet": 0.05, "thanks": 0.2, "affirm": 1, "deny": 0.1, "complain": 0.5, "question": 0.3, "inform": 1},
    "reanswer": {"greet": 0.05, "thanks": 0.1, "affirm": 0.5, "deny": 0.2, "complain": 1, "question": 0.5, "inform": 1},
    "unknown": {"greet": 0.05, "thanks": 0.1, "affirm": 0.1, "deny": 1, "complain": 0.5, "question": 0.5, "inform": 1},
    "question": {"greet": 0.1, "thanks": 1, "affirm": 1, "deny": 1, "complain": 1, "question": 1, "inform": 1},
    "react": {"greet": 0.2, "thanks": 1, "affirm": 1, "deny": 1, "complain": 1, "question": 1, "inform": 1},
    "greet": {"greet": 1, "thanks": 0.2, "affirm": 1, "deny": 1, "complain": 1, "question": 1, "inform": 1},
    "insist": {"greet": 0, "thanks": 0, "affirm": 0.3, "deny": 1, "complain": 1, "question": 0.3, "inform": 1},
    "close": {"greet": 0, "thanks": 1, "affirm": 0.3, "deny": 1, "complain": 0, "question": 0, "inform": 0},
    "nudge": {"greet": 0.05, "thanks": 0, "affirm": 0.05, "deny": 0.3, "complain": 1, "question": 0.6, "inform": 0.15},
    "give_up": {"greet": 0, "thanks": 0, "affirm": 0, "deny": 0.3, "complain": 1, "question": 0.2, "inform": 0.1},
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

CUES: tuple[str, ...] = (
    "name", "email", "phone", "number", "account", "pin", "code", "birth", "born", "date", "day", "time",
    "when", "where", "address", "order", "card", "digit", "which", "who", "how many", "reason", "id",
    "maiden", "pet", "symptom", "guest", "people", "price", "detail", "thingname",
)  # fmt: skip
"""Question topics (word prefixes) an agent turn can ask about, matched between contexts and messages."""

FACT_TOPICS: tuple[str, ...] = (
    "name", "email", "phone", "number", "account", "pin", "code", "birth", "born", "date", "address", "order",
    "card", "digit", "id", "maiden", "pet", "thingname",
)  # fmt: skip
"""The :data:`CUES` that name a detail a user gives: a retrieved turn that mentions one the facts to give do
not is avoided (it would say 'my PIN is' before a phone number)."""

COHERENCE_MIN_PAIRS = 50
"""Distinct agent turns an index needs before its coherence model is fitted (a smaller one rejects nothing)."""

REJECT_SHARE = 0.01
"""A candidate is rejected as a misfit when its coherence score is below this quantile of held-out human replies'
scores: clear misfits only. Rejecting at the model's own threshold (:data:`~envsim.user.transcript.coherence.MISFIT_SHARE`)
makes the user more coherent than people are: in ``envsim fidelity`` (3 STAR personas, 60 dialogues each, seed 0)
the simulated misfit rate was 3.2% at 0.05, 5.1% at 0.02, 6.2% at 0.01 and 6.5% without rejecting, against 8.3%
for the held-out human replies (target: within 2 points); 12.7% before replies were conditioned on the turn."""

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

_log = logging.getLogger(__name__)
_warned = False


# -- rules -----------------------------------------------------------------------------------

_OFFER = re.compile(
    r"anything else|(?:something|one thing) else|any(?:thing| other thing)? more|other (?:questions?|requests?)"
    r"|(?:help|assist) (?:you )?with (?:anything|something) else"
)
_CLOSE = re.compile(
    r"good ?bye|\bbye\b|have a (?:nice|good|great|wonderful|lovely|safe)"
    r"|you(?:'re| are) (?:very )?welcome|thank(?:s| you) for (?:contacting|calling|using|choosing|your patience)"
)
_GREET = re.compile(
    r"^\W*(?:hello|hi|hey|good (?:morning|afternoon|evening)|welcome|greetings)\b"
    r"|how (?:can|may|could) i (?:help|assist)|what can i do for you"
)
_WH = re.compile(r"\b(?:what|when|where|which|who|whom|whose|how|why)\b|\b(?:provide|tell|give|spell|describe)\b")
_APOLOGY = re.compile(
    r"\b(?:sorry|unfortunately|unable|unavailable|not available|cannot|can't|couldn't|apologi[sz]e|failed"
    r"|not (?:possible|able)|no (?:rooms?|flights?|results?|slots?|availability))\b"
)


def agent_act(text: str) -> AgentAct:
    """The act of an agent turn, by rules (the same for corpus wizard turns and live agent messages).

    ``offer`` (anything else?), ``close`` (goodbye, you're welcome), ``greet`` (hello, how can I help), a
    question or request: ``ask_info`` (what/when/..., provide/tell/...) or ``ask_yesno``;
    then ``apology`` (sorry, unfortunately, not available) and otherwise ``inform``.

    Example:
        >>> agent_act("Hello, how can I help?"), agent_act("Should I book it for you?")
        ('greet', 'ask_yesno')
        >>> agent_act("Sorry, that flight is full."), agent_act("Your ride is confirmed.")
        ('apology', 'inform')
    """
    low = " ".join(text.lower().split())
    if not low:
        return "none"
    if _OFFER.search(low):
        return "offer"
    if _CLOSE.search(low):
        return "close"
    if _GREET.search(low):
        return "greet"
    questions = [s for s in _SENTENCE.findall(low) if s.strip().endswith("?")]
    if questions or _REQUEST.search(low):
        asked = questions[-1] if questions else low
        return "ask_info" if _WH.search(asked) or _REQUEST.search(asked) else "ask_yesno"
    if _APOLOGY.search(low):
        return "apology"
    return "inform"


_U_THANKS = re.compile(
    r"\b(?:thanks?|thank you|thx|ty|bye|goodbye|good ?night|have a (?:good|nice|great))\b|that'?s (?:all|it)\b"
    r"|^\W*no,? (?:thanks|thank you)"
)
_U_GREET = re.compile(r"^\W*(?:hi|hello|hey|hiya|howdy|good (?:morning|afternoon|evening)|greetings)\b")
_U_AFFIRM = re.compile(
    r"^\W*(?:yes|yeah|yea|yep|yup|sure|ok|okay|k|alright|all right|correct|right|perfect|great|sounds good"
    r"|that works|please do|go ahead|absolutely|definitely|of course|cool|fine|awesome|excellent)\b"
)
_U_DENY = re.compile(r"^\W*(?:no|nope|nah|not really|never ?mind)\b")
_U_COMPLAIN = re.compile(
    r"\b(?:hurry|come on|seriously|ridiculous|useless|stupid|annoy\w*|frustrat\w*|waiting|taking (?:so )?long"
    r"|too (?:long|slow)|slow|what'?s taking|are you (?:still )?there|ugh|wtf|damn|hell|idiot\w*|terrible|awful"
    r"|worst|incompetent|i (?:already|just) (?:told|said|gave)|i said|hate|pathetic|nonsense|rubbish|why (?:is|are"
    r"|can'?t|won'?t|do|does|did|would|isn'?t|aren'?t))\b|^\W*hello\s*\?|!{2,}"
)
_CAPS_WORD = re.compile(r"\b[A-Z]{3,}\b")


def user_act(text: str) -> UserAct:
    """The dialogue act of a user turn, by rules.

    ``thanks`` (thanks, bye, that's all; up to 15 words), ``greet`` (hi, hello; up to 4
    words), ``complain`` (hurry, ridiculous, still waiting, why is..., !!, two shouted words),
    ``affirm``/``deny`` (starts with yes/ok/sure... or no/nope; up to 8 words), ``question``
    (a question mark), else ``inform``.

    Example:
        >>> user_act("no thanks, that's all"), user_act("Hi there"), user_act("No, the other one")
        ('thanks', 'greet', 'deny')
        >>> user_act("What time is it there?"), user_act("My name is Ann")
        ('question', 'inform')
    """
    low = " ".join(text.lower().split())
    words = len(low.split())
    if words <= 15 and _U_THANKS.search(low):
        return "thanks"
    if words <= 4 and _U_GREET.search(low):
        return "greet"
    if _U_COMPLAIN.search(low) or len(_CAPS_WORD.findall(text)) >= 2:
        return "complain"
    if words <= 8 and _U_AFFIRM.search(low):
        return "affirm"
    if words <= 8 and _U_DENY.search(low):
        return "deny"
    if "?" in low:
        return "question"
    return "inform"


@lru_cache(maxsize=65536)
def cue_mask(text: str) -> int:
    """Bit ``i`` set when ``text`` mentions question topic :data:`CUES` ``[i]`` (a word starting with it).

    The name of something else ("the merchant's name", "company name") is the topic ``thingname``,
    not ``name`` (the person's own name).

    Example:
        >>> cue_mask("What is your name?") == 1 << CUES.index("name")
        True
        >>> cue_mask("And the merchant's name?") == 1 << CUES.index("thingname")
        True
    """
    mask = 0
    for cue in _CUE.findall(_THING_NAME.sub(r"\1 thingname", text.lower())):
        mask |= _CUE_BITS[cue]
    return mask


_THING_NAME = re.compile(
    r"\b(?!(?:full|first|last|given|family|middle|user|sur|my|your|his|her|their|our|the|a|its|whose|what|which)\b)"
    r"([a-z]+)(?:'s|’s)? name\b"
)
_CUE = re.compile(r"\b(" + "|".join(sorted(CUES, key=len, reverse=True)) + ")")
_CUE_BITS = {cue: 1 << bit for bit, cue in enumerate(CUES)}
_TOPIC_MASK = sum(_CUE_BITS[cue] for cue in FACT_TOPICS)
_WHEN_MASK = sum(_CUE_BITS[cue] for cue in ("date", "day", "time", "when"))
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_TIME = re.compile(
    r"(?i)\b\d{1,2}(?::\d{2})?\s?(?:am|pm|a\.m\.|p\.m\.)(?![a-z])|\b\d{1,2}:\d{2}\b|\b(?:noon|midnight)\b"
)
_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
_DATE = re.compile(
    rf"(?i)\b\d{{4}}-\d{{1,2}}-\d{{1,2}}\b|\b\d{{1,2}}/\d{{1,2}}(?:/\d{{2,4}})?\b"
    rf"|\b{_MONTH} \d{{1,2}}(?:st|nd|rd|th)?(?:,? \d{{4}})?\b"
    rf"|\b\d{{1,2}}(?:st|nd|rd|th)?(?: of)? {_MONTH}(?:,? \d{{4}})?"
    rf"|\b\d{{1,2}}(?:st|nd|rd|th)\b|\b(?:mon|tues|wednes|thurs|fri|satur|sun)day\b"
)
_UNITS = (
    r"guests?|people|persons?|minutes?|mins?|hours?|hrs?|days?|weeks?|months?|years?|nights?|credits?|dollars?"
    r"|degrees?|stars?|rooms?|adults?|kids?|children|seats?|tickets?|times?|steps?|blocks?|miles?|km|percent"
)
_QUANTITY = re.compile(rf"(?i)\b\d+(?:[.,]\d+)?(?:\s+(?:{_UNITS})\b|\s?%)|[$£€]\s?\d[\d,]*(?:\.\d+)?")
_NUMBER = re.compile(r"#?\b[A-Za-z]{0,2}\d+(?:[-./ ]\d+)*\b")
_WORD_AT = re.compile(r"[A-Za-z][A-Za-z'’]*")
_NAME_JOIN = re.compile(r"^(?:\.?\s|\s?&\s|\s(?:of|de|van|von)\s)$")


@dataclass(frozen=True)
class Names:
    """Which words are (parts of) names: learnt from a corpus' capitalisation (:func:`learn_names`).

    A word is a name when its lower-case form is in ``proper`` (written capitalised in most
    of its mid-sentence uses), or, when ``common`` is given, when it is capitalised (not all
    capitals) and its lower-case form is not in ``common`` (words seen in lower case): a rare
    capitalised word such as an invented name.
    """

    proper: frozenset[str] = frozenset()
    common: frozenset[str] | None = None

    def is_name(self, word: str) -> bool:
        """Whether ``word`` (as written) is a name word.

        Example:
            >>> Names(frozenset({"ann"}), frozenset({"hello"})).is_name("Ann"), Names(common=frozenset()).is_name("Zed")
            (True, True)
            >>> Names(frozenset({"ann"}), frozenset({"hello"})).is_name("Hello")
            False
        """
        key = _key(word)
        if key in self.proper:
            return True
        return (
            self.common is not None
            and word[:1].isupper()
            and not (len(word) > 1 and word.isupper())
            and key not in self.common
            and key not in _NOT_NAMES
        )


_NOT_NAMES = frozenset({"i", "i'm", "i'd", "i'll", "i've", "ok", "okay"})


def _key(word: str) -> str:
    key = word.lower().rstrip("'’")
    return key[:-2] if key.endswith(("'s", "’s")) else key


def entity_spans(text: str, names: Names | frozenset[str] = frozenset()) -> list[tuple[int, int, SpanKind]]:
    """The entity-like spans of ``text``: ``(start, end, kind)``, in order, not overlapping.

    Kinds, first match wins: ``email``; ``time`` (5 pm, 10:30); ``date`` (2026-03-07, 3/7,
    May 9th, 19th, Friday); ``quantity`` (a number and its unit: 5 guests, 20 minutes; and
    money: $300); ``number`` (4321, #W0010, 555-0142); ``name``: runs of name words
    (:class:`Names`, or a set of lower-case proper nouns), joined by spaces or ``Dr.``-style
    dots, with any capitalised words right after them.

    Example:
        >>> text = "Mark Stone, mark@x.org, 2 guests, order #W0010"
        >>> [(text[a:b], kind) for a, b, kind in entity_spans(text, frozenset({"mark"}))]
        [('Mark Stone', 'name'), ('mark@x.org', 'email'), ('2 guests', 'quantity'), ('#W0010', 'number')]
    """
    rule = names if isinstance(names, Names) else Names(names)
    found: list[tuple[int, int, SpanKind]] = []

    def free(start: int, end: int) -> bool:
        return all(end <= s or start >= e for s, e, _ in found)

    def add(start: int, end: int, kind: SpanKind) -> None:
        if end > start and free(start, end):
            found.append((start, end, kind))

    for pattern, kind in ((_EMAIL, "email"), (_TIME, "time"), (_DATE, "date"), (_QUANTITY, "quantity")):
        for m in pattern.finditer(text):
            add(m.start(), m.end(), kind)  # type: ignore[arg-type]
    for m in _NUMBER.finditer(text):
        if any(ch.isdigit() for ch in m.group()):
            add(m.start(), m.end(), "number")
    run: list[tuple[int, int]] = []
    for m in _WORD_AT.finditer(text):
        word = m.group()
        joined = bool(run) and _NAME_JOIN.match(text[run[-1][1] : m.start()]) is not None
        capital = word[:1].isupper() and _key(word) not in _NOT_NAMES
        if free(m.start(), m.end()) and (rule.is_name(word) or (joined and capital)):
            if joined:
                run.append((m.start(), m.end()))
                continue
            if run:
                add(run[0][0], run[-1][1], "name")
            run = [(m.start(), m.end())]
        elif run:
            add(run[0][0], run[-1][1], "name")
            run = []
    if run:
        add(run[0][0], run[-1][1], "name")
    return sorted(found)


_FACT_CLASS: dict[SpanKind, str] = {
    "email": "text",
    "name": "text",
    "number": "digits",
    "date": "digits",
    "time": "digits",
    "quantity": "none",
}


def fact_kind(value: str) -> SpanKind:
    """The span kind a fact value fills: email, time, date, number (any digit) or name.

    Example:
        >>> [fact_kind(v) for v in ("a@b.co", "5 pm", "1942-03-07", "555-0142", "Harbor Hotel")]
        ['email', 'time', 'date', 'number', 'name']
    """
    if "@" in value:
        return "email"
    for pattern, kind in ((_TIME, "time"), (_DATE, "date")):
        match = pattern.search(value)
        if match and len(match.group()) >= 0.6 * len(value.strip()):
            return kind  # type: ignore[return-value]
    if any(ch.isdigit() for ch in value):
        return "number"
    return "name"


_SENTENCE_TAIL = re.compile(r"[^.!?\n]*$")


def _sentence_tail(text: str) -> str:
    """The last (unfinished) sentence of ``text``: the words that lead up to what follows it."""
    match = _SENTENCE_TAIL.search(text)
    return match.group() if match else ""


_ALTERNATIVE = re.compile(r"\s*,?\s*(?:or|and/or|or maybe|or perhaps)\s+", re.IGNORECASE)


def _all_topics(facts: Sequence[tuple[Fact, SpanKind]]) -> int:
    """The :data:`FACT_TOPICS` bits of all of ``facts``."""
    mask = 0
    for fact, _ in facts:
        mask |= _fact_topics(fact)
    return mask


def _fact_topics(fact: Fact) -> int:
    """The :data:`FACT_TOPICS` bits of a fact's key and ``asked_by`` words."""
    return cue_mask(" ".join([*fact.asked_by, fact.key.replace("_", " ")])) & _TOPIC_MASK


LENGTH_BINS = (1, 2, 3, 5, 8, 12, 18, 27)
"""Lower edges (in words) of the length bins: with and without a question mark, the strata whose
shares retrieval keeps (:func:`_keep_lengths`)."""


def _stratum(text: str) -> int:
    """The length bin (:data:`LENGTH_BINS`) of a turn, times two, plus one for a question."""
    length = max(0, int(np.searchsorted(LENGTH_BINS, len(text.split()), side="right")) - 1)
    return 2 * length + ("?" in text)


def _keep_lengths(weights: np.ndarray, base: np.ndarray, bins: np.ndarray) -> np.ndarray:
    """``weights`` rescaled per stratum (``bins``) so that the strata drawn follow ``base``'s distribution.

    With strata of length and question mark (:func:`_stratum`), the fit preferences (spans,
    topics, mood) choose among turns of each length instead of favouring short ones (a short
    turn has fewer spans to drop), and keep the share of questions.

    Example:
        >>> _keep_lengths(np.array([1.0, 0.1, 1.0]), np.array([1.0, 1.0, 1.0]), np.array([0, 0, 1])).round(3).tolist()
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


def _compatible(fact: SpanKind, span: SpanKind) -> bool:
    """Whether a fact of kind ``fact`` reads right in a span of kind ``span``: only the same kind (a date of
    birth is no amount: 'keep that extra 50' must not become 'keep that extra 1991-01-23')."""
    return fact == span and _FACT_CLASS[span] != "none"


# -- reading STAR ----------------------------------------------------------------------------

_DIALOGUE_ID = re.compile(rb'"DialogueID"\s*:\s*"?([^",}\s]+)')
PERSONA_HINT = re.compile(
    r"grumpy|riddle|explosion|forget what|memory|orientation|wrong bus|contact the bank|typos"
    r"|cannot remember|be there soon|under attack|life support",
    re.IGNORECASE,
)
"""Words of every persona instruction (a superset of :data:`envsim.calibrate.GROUPS`' rules): dialogues
whose raw text has none are in the calm pool, which is sampled."""
_HINT_WORDS = tuple(word.encode() for word in PERSONA_HINT.pattern.split("|"))


def star_file(path: str | Path) -> Path:
    """The STAR location under ``path``: a transcripts folder's ``star/``, else ``path`` itself."""
    path = Path(path)
    return path / CORPUS if (path / CORPUS).exists() else path


def read_star(
    path: str | Path, select: Callable[[str], bool] | None = None, calm_share: float = 1.0
) -> Iterator[Conversation]:
    """Stream the STAR dialogues of ``path`` whose id ``select`` accepts (default: all).

    With ``calm_share`` below 1, a dialogue whose raw text has no :data:`PERSONA_HINT` word
    (the calm pool) is kept only when a hash of its id falls in that share. For the shared
    ``dialogues.jsonl(.gz)`` both checks run on the raw line, before any JSON parsing (which
    makes a selective read fast); other layouts are read whole with the importer
    (:func:`envsim.transcripts.importers.read`) and filtered after.
    """
    from envsim.transcripts.importers import read
    from envsim.transcripts.importers.star import convert

    def wanted(dialogue_id: str, hinted: Callable[[], bool]) -> bool:
        if select is not None and not select(dialogue_id):
            return False
        return calm_share >= 1.0 or _sampled(dialogue_id, calm_share) or hinted()

    location = star_file(path)
    jsonl = next((location / n for n in ("dialogues.jsonl.gz", "dialogues.jsonl") if (location / n).is_file()), None)
    if jsonl is None and location.is_file() and location.name.endswith((".jsonl", ".jsonl.gz")):
        jsonl = location
    if jsonl is None:
        for conversation in read(CORPUS, location):
            labels = conversation.labels
            hint = " ".join([*map(str, labels.get("persona_instructions", [])), str(labels.get("user_task"))])
            if wanted(conversation.id, _constant(PERSONA_HINT.search(hint) is not None)):
                yield conversation
        return
    opener = gzip.open if jsonl.name.endswith(".gz") else open
    with opener(jsonl, "rb") as handle:
        raw: bytes = handle.read()
    for line in raw.split(b"\n"):
        if not line.strip():
            continue
        match = _DIALOGUE_ID.search(line)
        hinted = _hint_check(line)
        if match is not None and not wanted(match.group(1).decode(), hinted):
            continue
        conversation = convert(json.loads(line))
        if match is not None or wanted(conversation.id, hinted):
            yield conversation


def _constant(value: bool) -> Callable[[], bool]:
    return lambda: value


def _hint_check(line: bytes) -> Callable[[], bool]:
    """A deferred check for a :data:`PERSONA_HINT` word in a raw line (run only when needed)."""
    return lambda: any(word in line.lower() for word in _HINT_WORDS)


def _sampled(dialogue_id: str, share: float) -> bool:
    digest = hashlib.sha256(f"{CORPUS}/pool/{dialogue_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


# -- the index -------------------------------------------------------------------------------

_WORDS = re.compile(r"[a-z]+")
_STOP = frozenset(
    [
        "the",
        "a",
        "an",
        "and",
        "or",
        "but",
        "to",
        "of",
        "in",
        "on",
        "at",
        "for",
        "with",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "it",
        "its",
        "it's",
        "this",
        "that",
        "i",
        "i'm",
        "i'd",
        "i'll",
        "me",
        "my",
        "you",
        "your",
        "we",
        "our",
        "us",
        "he",
        "she",
        "they",
        "them",
        "his",
        "her",
        "do",
        "does",
        "did",
        "can",
        "could",
        "would",
        "will",
        "should",
        "have",
        "has",
        "had",
        "not",
        "no",
        "yes",
        "so",
        "just",
        "what",
        "when",
        "where",
        "which",
        "who",
        "how",
        "there",
        "here",
        "then",
        "than",
        "please",
        "ok",
        "okay",
    ]
)


_WORD_START = re.compile(r"(?:(^|[.!?\n])[^A-Za-z.!?\n]*)?([A-Za-z][A-Za-z'’]*)")


def learn_names(texts: Iterable[str], min_count: int = 3, share: float = 0.8, min_lower: int = 2) -> Names:
    """The :class:`Names` of a corpus: ``proper`` are lower-cased words written capitalised in at least
    ``share`` of their mid-sentence uses (and ``min_count`` times); ``common`` those seen in lower case
    ``min_lower`` times or more.

    Example:
        >>> names = learn_names(["I met Ann and Bob.", "Then Ann left.", "So Ann and Bob ate an apple."], 2)
        >>> sorted(names.proper), "apple" in (names.common or ())
        (['ann', 'bob'], False)
    """
    capital: Counter[str] = Counter()
    lower: Counter[str] = Counter()
    for text in texts:
        for m in _WORD_START.finditer(text):
            if m.start(1) >= 0:  # the first word of a sentence
                continue
            word = m.group(2)
            key = _key(word)
            if word[0].isupper() and not word.isupper():
                capital[key] += 1
            elif word.islower():
                lower[key] += 1
    proper = frozenset(
        w for w, n in capital.items() if n >= min_count and n >= share * (n + lower[w]) and w not in _NOT_NAMES
    )
    return Names(proper, frozenset(w for w, n in lower.items() if n >= min_lower))


@dataclass
class TurnIndex:
    """Human user turns of a corpus as compact arrays (one row per turn), for retrieval.

    ``texts`` are read from the corpus at run time and kept only in memory; ``contexts`` are the agent
    (wizard) turns they answer, ``asks`` the details those turns ask for (:data:`FACT_TOPICS` bits of
    their questions and requests), ``content`` their words (:class:`~envsim.user.transcript.context.ContentIndex`).
    """

    _coherence: CoherenceModel | None = field(default=None, init=False, repr=False)
    _spans: dict[int, list[tuple[int, int, SpanKind]]] = field(default_factory=dict, init=False, repr=False)

    texts: list[str]
    contexts: list[str]
    asks: np.ndarray
    content: ContentIndex
    dialogue_ids: list[str]
    turn_index: np.ndarray
    group: np.ndarray
    context: np.ndarray
    cues: np.ndarray
    topics: np.ndarray
    act: np.ndarray
    mood: np.ndarray
    n_text: np.ndarray
    n_digits: np.ndarray
    n_other: np.ndarray
    n_when: np.ndarray
    stratum: np.ndarray
    last: np.ndarray
    bare: np.ndarray
    unsure: np.ndarray
    generic: np.ndarray
    domains: np.ndarray
    groups: tuple[str, ...]
    domain_names: tuple[str, ...]
    names: Names
    dialogue_groups: dict[str, str] = field(default_factory=dict)
    corpus: str = CORPUS

    def __len__(self) -> int:
        """The number of indexed turns."""
        return len(self.texts)

    def coherence(self) -> CoherenceModel | None:
        """The coherence model fitted on this index's (agent turn, reply) pairs (fitted once; ``None``: too few)."""
        if self._coherence is None:
            pairs = [(c, t) for c, t in zip(self.contexts, self.texts, strict=True) if c.strip()]
            if len({c for c, _ in pairs}) >= COHERENCE_MIN_PAIRS:
                self._coherence = CoherenceModel.fit(pairs, seed=0)
        return self._coherence

    def spans(self, row: int) -> list[tuple[int, int, SpanKind]]:
        """The entity spans of row ``row``'s text (:func:`entity_spans` with the corpus' names; kept once found)."""
        found = self._spans.get(row)
        if found is None:
            found = self._spans[row] = entity_spans(self.texts[row], self.names)
        return found

    def ref(self, row: int) -> Exemplar:
        """The corpus reference (corpus, dialogue id, turn index) of row ``row``."""
        return Exemplar(corpus=self.corpus, dialogue_id=self.dialogue_ids[row], turn_index=int(self.turn_index[row]))

    def domain_mask(self, names: Iterable[str]) -> int:
        """The bit mask of the corpus domains among ``names`` (``banking`` counts as ``bank``)."""
        mask = 0
        for name in names:
            low = name.lower()
            for bit, domain in enumerate(self.domain_names):
                if low == domain or low.startswith(domain):
                    mask |= 1 << bit
        return mask


def _domain_specific(rows: Sequence[tuple[Any, ...]], domain_names: Sequence[str]) -> frozenset[str]:
    """Content words too rare or too concentrated in one domain for a turn to read right elsewhere."""
    dialogues: dict[str, list[str]] = {}
    words: dict[str, set[str]] = {}
    for text, dialogue_id, *_, domains in rows:
        dialogues[dialogue_id] = domains
        words.setdefault(dialogue_id, set()).update(_WORDS.findall(text.lower()))
    sizes = np.zeros(len(domain_names))
    use: dict[str, np.ndarray] = {}
    for dialogue_id, found in words.items():
        bits = np.zeros(len(domain_names))
        bits[[domain_names.index(d) for d in set(dialogues[dialogue_id])]] = 1.0
        sizes += bits
        for word in found:
            if len(word) >= 3 and word not in _STOP and not _CUE.match(word):
                use[word] = use.get(word, 0.0) + bits
    rates = {w: u / np.maximum(sizes, 1.0) for w, u in use.items()}
    return frozenset(
        w
        for w, r in rates.items()
        if use[w].sum() < GENERIC_MIN_DIALOGUES or r.max() >= GENERIC_MAX_SHARE * max(r.sum(), 1e-12)
    )


def build_index(conversations: Iterable[Conversation], *, corpus: str = CORPUS) -> TurnIndex:
    """Index the user turns of ``conversations`` that fall in a persona category (see the module docstring)."""
    from envsim.calibrate import classify
    from envsim.user.affect_scorer import default_scorer

    rows: list[tuple[str, str, int, str, AgentAct, int, list[str]]] = []
    contexts: list[str] = []  # the agent turn each row answers ("" for a dialogue's first user turns)
    all_text: list[str] = []
    dialogue_groups: dict[str, str] = {}
    for conversation in conversations:
        group = classify(conversation)
        if group is None:
            continue
        dialogue_groups[conversation.id] = group
        domains = [str(d) for d in conversation.labels.get("domains") or [] if d]
        context: AgentAct = "none"
        cues = 0
        context_text = ""
        for position, turn in enumerate(conversation.turns):
            if turn.role == "agent":
                all_text.append(turn.text)
                context = agent_act(turn.text)
                cues = cue_mask(turn.text)
                context_text = turn.text
            elif turn.role == "user" and turn.text.strip():
                all_text.append(turn.text)
                rows.append((turn.text, conversation.id, position, group, context, cues, domains))
                contexts.append(context_text)
    names = learn_names(all_text)
    texts = [r[0] for r in rows]
    groups = tuple(sorted({r[3] for r in rows}))
    domain_names = tuple(sorted({d for r in rows for d in r[6]}))
    specific = _domain_specific(rows, domain_names)
    n = len(rows)
    n_text = np.zeros(n, dtype=np.int8)
    n_digits = np.zeros(n, dtype=np.int8)
    n_other = np.zeros(n, dtype=np.int8)
    n_when = np.zeros(n, dtype=np.int8)
    generic = np.zeros(n, dtype=bool)
    bare = np.zeros(n, dtype=bool)
    for i, text in enumerate(texts):
        spans = entity_spans(text, names)
        for _, _, kind in spans:
            cls = _FACT_CLASS[kind]
            counter = n_text if cls == "text" else n_digits if cls == "digits" else n_other
            counter[i] = min(int(counter[i]) + 1, 100)
            if kind in ("date", "time"):
                n_when[i] = min(int(n_when[i]) + 1, 100)
        rest = text
        for start, end, _ in reversed(spans):
            rest = rest[:start] + " " + rest[end:]
        generic[i] = not any(w in specific for w in _WORDS.findall(rest.lower()))
        bare[i] = not _WORDS.search(rest.lower())
    scores = default_scorer().score_many(texts) if texts else None
    mood = np.zeros(n, dtype=np.int8)
    if scores is not None:
        scores["hostility"] = scores[["anger", "annoyance"]].max(axis=1)
        scores["panic"] = scores[["fear", "nervousness"]].max(axis=1)
        group_col = np.array([r[3] for r in rows])
        calm = scores[group_col == "star_calm"] if (group_col == "star_calm").any() else scores
        thresholds = {name: float(calm[name].quantile(0.9)) for name in ("confusion", "hostility", "panic")}
        ratios = scores[["confusion", "hostility", "panic"]].to_numpy() / np.maximum(
            [thresholds["confusion"], thresholds["hostility"], thresholds["panic"]], 1e-9
        )
        mood = np.where(ratios.max(axis=1) > 1.0, ratios.argmax(axis=1) + 1, 0).astype(np.int8)
    return TurnIndex(
        texts=texts,
        contexts=contexts,
        asks=np.array([cue_mask(asking_text(read_part(c))) & _TOPIC_MASK for c in contexts], dtype=np.int64),
        content=ContentIndex.build(contexts),
        dialogue_ids=[r[1] for r in rows],
        turn_index=np.array([r[2] for r in rows], dtype=np.int32),
        group=np.array([groups.index(r[3]) for r in rows], dtype=np.int16),
        context=np.array([AGENT_ACTS.index(r[4]) for r in rows], dtype=np.int8),
        cues=np.array([r[5] for r in rows], dtype=np.int64),
        topics=np.array([cue_mask(t) & _TOPIC_MASK for t in texts], dtype=np.int64),
        act=np.array([USER_ACTS.index(user_act(t)) for t in texts], dtype=np.int8),
        mood=mood,
        n_text=n_text,
        n_digits=n_digits,
        n_other=n_other,
        n_when=n_when,
        last=np.array([i + 1 == len(rows) or rows[i + 1][1] != r[1] for i, r in enumerate(rows)], dtype=bool),
        stratum=np.array([_stratum(t) for t in texts], dtype=np.int64),
        generic=generic,
        bare=bare,
        unsure=np.array([UNSURE.search(t.lower()) is not None for t in texts], dtype=bool),
        domains=np.array([sum(1 << domain_names.index(d) for d in set(r[6])) for r in rows], dtype=np.int64),
        groups=groups,
        domain_names=domain_names,
        names=names,
        dialogue_groups=dialogue_groups,
        corpus=corpus,
    )


def _fitting(dialogue_id: str) -> bool:
    from envsim.calibrate import is_heldout

    return not is_heldout(CORPUS, dialogue_id)


@lru_cache(maxsize=4)
def _load(location: str) -> TurnIndex | None:
    path = star_file(location)
    if not path.exists():
        return None
    index = build_index(read_star(path, _fitting, CALM_SAMPLE_SHARE))
    return index if len(index) else None


def load_index(corpus: str | Path | None = None) -> TurnIndex | None:
    """The turn index of the corpus under ``corpus`` (default :func:`corpus_dir`), built once per process.

    ``None`` when there is no corpus (no folder, or no STAR dialogues in it).
    """
    where = corpus_dir(corpus)
    if where is None:
        return None
    return _load(str(Path(where).resolve()))


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


def _say(fact: Fact) -> str:
    if fact.say is not None:
        return render_scenario_text(fact.say, value=fact.value, key=fact.key)
    return render("user_fact.j2", key=fact.key, value=fact.value)


_CONNECTOR_BEFORE = re.compile(r"(?:\s*\b(?:either|or|and|of|from|about|around|at)\b)+\s*$", re.IGNORECASE)
_CONNECTOR_AFTER = re.compile(r"^\s*\b(?:or|and)\b", re.IGNORECASE)


def _drop_span(text: str, start: int, end: int) -> str:
    """``text`` without the span ``[start, end)`` and the connectors it leaves dangling.

    A word such as *or*, *either*, *of* that led to the span goes with it when nothing but
    punctuation follows, and an *or* / *and* after it goes when it led from the span (so
    "either 0314 or 1596" without its second number is "either 0314", without its first "1596").

    Example:
        >>> _drop_span("It was either 0314 or 1596.", 22, 26)
        'It was either 0314.'
        >>> _drop_span("It was either 0314 or 1596.", 14, 18)
        'It was 1596.'
        >>> _drop_span("transfers of $10 over the week", 13, 16)
        'transfers over the week'
    """
    before, after = text[:start], text[end:]
    lead = _CONNECTOR_BEFORE.search(before)
    if lead is not None and (re.match(r"\s*(?:[.,!?;:]|$)", after) or lead.group().strip().lower() in ("of", "at")):
        before = before[: lead.start()]
    elif _CONNECTOR_AFTER.match(after):
        after = _CONNECTOR_AFTER.sub("", after, count=1)
        before = re.sub(r"\beither\s*$", "", before, flags=re.IGNORECASE)
    return (
        f"{before.rstrip()} {after.lstrip()}"
        if before.strip() and after.strip() and after.lstrip()[:1].isalnum()
        else before.rstrip() + after
    )


def _tidy(text: str) -> str:
    text = re.sub(r"\s+([,.!?;:])", r"\1", text)
    text = re.sub(r"([,;:])(?:\s*[,;:])+", r"\1", text)
    text = re.sub(r"^[\s,;:.]+", "", text)
    text = re.sub(r"\(\s*\)", "", text)
    return " ".join(text.split())


@dataclass(frozen=True)
class TurnSource:
    """Where one reply came from and how it was adapted.

    ``ref`` is the human turn retrieved (``None`` for a persona line: giving up, demanding a
    person, or a fact said on its own); ``filled`` the fact keys put into its entity spans,
    ``appended`` those said after it, ``dropped`` how many of its spans were removed, ``rejected``
    how many candidates were rejected before it (unclean adaptation or a misfit).
    """

    intent: Intent
    ref: Exemplar | None
    filled: tuple[str, ...] = ()
    appended: tuple[str, ...] = ()
    dropped: int = 0
    rejected: int = 0


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
            ``persona_line`` (a demand for a person: the persona's own line, by design),
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
        self._satisfied: tuple[str, ...] = ()
        self._emergency = False
        self._keep_quantities = False
        self._keep_when = False
        self._rest = 0.0
        self._tiers: list[np.ndarray] = []
        self._rng: np.random.Generator | None = None
        self._machine: AffectMachine | None = None
        self._revealed: set[str] = set()
        self._used: set[int] = set()
        self._ended: str | None = None
        self._style: Style | None = None
        self._length_factor = np.ones(len(LENGTH_BINS))
        self._heard = ""
        self._sim: np.ndarray | None = None
        self._asks = 0
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
        self.trace = []
        self._machine = AffectMachine(self._persona, emergency=self._emergency)
        opening = scenario.user.opening
        if self._persona.disclosure == "volunteers" and self._facts:
            fact = self._facts[0][0]
            opening = f"{opening} {render('user_fact.j2', key=fact.key, value=fact.value)}"
            self._revealed.add(fact.key)
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
        """Reveal asked-for facts, close when the goal is met, else a retrieved human turn that fits (see module)."""
        if self._fallback is not None:
            return self._fallback.reply(agent_message, messages)
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
        self._heard, self._sim, self._asks, self._rejected = heard, None, cue_mask(asking) & _TOPIC_MASK, 0
        asked = [(fact, kind) for fact, keys, kind in self._facts if any(k in asking for k in keys)]
        new = [(fact, kind) for fact, kind in asked if fact.key not in self._revealed]
        if new and not state.gives_up:
            self._revealed.update(fact.key for fact, _ in new)
            text = self._answer("answer", new, act, cues, state)
            if state.wants_human:
                text = f"{text} {self._pick(persona.human_demands)}"
            return UserTurn(text, affect=state.affect)
        if satisfied(world, self._satisfied, low):
            self._ended = self._retrieve_text("close", act if act in ("offer", "close") else "close", cues, state)
            return UserTurn(self._ended, done=True, affect=state.affect)
        if state.gives_up:
            self._ended = self._retrieve_text("give_up", act, cues, state)
            return UserTurn(self._ended, done=True, affect=state.affect)
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
        ignored = step.before.requires_emergency and "ignores_emergency" in step.events
        if not ignored and unknown_details(agent_message, scenario):  # asked for what it does not have: it says so
            intent = "unknown"
        elif not step.helped and intent not in ("question", "insist"):
            intent = "nudge"
        return UserTurn(self._retrieve_text(intent, act, cues, state), affect=state.affect)

    # -- internals -----------------------------------------------------------------------

    def _prepare(self, scenario: Scenario, index: TurnIndex) -> None:
        persona = scenario_persona(scenario)
        self._persona = persona
        self._group = persona_group(persona, index)
        self._facts = [(f, tuple(k.lower() for k in f.asked_by), fact_kind(f.value)) for f in scenario.user.facts]
        self._satisfied = tuple(p.lower() for p in scenario.user.satisfied_by)
        self._emergency = is_emergency(scenario)
        self._keep_quantities = not any(
            _QUANTITY.search(t) for t in [scenario.user.goal, *(f.value for f in scenario.user.facts)]
        )
        self._keep_when = not any(kind in ("date", "time") for _, _, kind in self._facts) and not any(
            p.search(scenario.user.goal) for p in (_DATE, _TIME)
        )
        self._rest = AffectState.start(persona, emergency=self._emergency).intensity
        self._style = Style.for_persona(persona, self._group)
        self._length_factor = self._style.length_factors(LENGTH_BINS)
        allowed = index.domain_mask([scenario.domain, *scenario.tags])
        same_domain = (index.domains & allowed) != 0
        eligible = index.generic | same_domain
        mine = index.group == (index.groups.index(self._group) if self._group in index.groups else -1)
        pools = [mine & same_domain] if allowed else []
        self._tiers = [np.flatnonzero(p) for p in (*pools, mine & eligible, eligible)]
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
    ) -> np.ndarray:
        index = self._index
        assert index is not None
        table = np.array([INTENT_ACTS[intent][a] for a in USER_ACTS])
        if intent == "nudge":  # ignored once, a patient user still mostly replies in kind; near its patience, it nudges
            assert self._persona is not None
            alpha = min(1.0, state.unhelpful_streak / (self._persona.patience + 1))
            table = (1 - alpha) * np.array([INTENT_ACTS["react"][a] for a in USER_ACTS]) + alpha * table
        w = table[index.act[rows]]
        if same_context:
            w = w * (index.context[rows] == AGENT_ACTS.index(act))
        if not facts:  # a turn that is nothing but a detail cannot answer without one
            w = w * ~index.bare[rows]
        base = w
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
        n_text = index.n_text[rows].astype(float)
        n_digits = index.n_digits[rows].astype(float)
        spare = self._spare(facts)
        asked = known = 0
        for fact, _ in facts:
            asked |= _fact_topics(fact)
        for fact, _ in spare:
            known |= _fact_topics(fact)
        topics = index.topics[rows]
        want_text = sum(_FACT_CLASS[kind] == "text" for _, kind in facts)
        if self._keeps_when():  # asked when, and the scenario has no date or time: the turn's stay as written
            n_digits = n_digits - index.n_when[rows]
        placed = np.minimum(n_text, want_text) + np.minimum(n_digits, len(facts) - want_text)
        # a turn that names a detail already given ('my PIN is ...') may say it again
        reused = np.where((topics & known) != 0, np.minimum(n_text + n_digits - placed, len(spare)), 0)
        other = 0 if self._keep_quantities else index.n_other[rows]
        dropped = n_text + n_digits + other - placed - reused
        w = w * APPEND_WEIGHT ** (len(facts) - placed) * DROP_WEIGHT**dropped
        if facts:
            on = np.where((topics & asked) != 0, ON_TOPIC_BOOST, 1.0)
            w = w * np.where((topics & ~(asked | known)) != 0, OFF_TOPIC_WEIGHT, on)
        else:
            w = w * np.where((topics & ~known) != 0, TOPIC_WEIGHT, 1.0)
        target = {"confused": 1, "frustrated": 2, "angry": 2, "panicked": 3}.get(state.affect)
        if state.affect == "relieved":
            w = w * np.where(index.mood[rows] == 0, 2.0, 1.0)
        elif target is not None:
            gain = float(np.clip(1.0 + MOOD_GAIN * (state.intensity - self._rest), 1.0, MOOD_MAX))
            w = w * np.where(index.mood[rows] == target, gain, 1.0)
        if intent == "unknown":  # asked for a detail it does not have: 'I don't know', 'I forgot'
            w = w * np.where(index.unsure[rows], UNSURE_BOOST, 1.0)
        strata = index.stratum[rows]
        w = _keep_lengths(w, base * self._length_factor[strata // 2], strata)  # the persona's verbosity
        if intent == "give_up":  # the turns that ended a dialogue
            w = w * np.where(index.last[rows], LAST_TURN_BOOST, 1.0)
        if self._used:
            used = np.fromiter(self._used, dtype=np.int64)
            w = w * np.where(np.isin(rows, used), REUSE_WEIGHT, 1.0)
        return np.asarray(w, dtype=float)

    def _keeps_when(self) -> bool:
        """Whether a retrieved turn's dates and times stay: the agent asks when (a day, a date, a time) and the
        scenario has no date or time of its own."""
        return self._keep_when and cue_mask(asking_text(self._heard)) & _WHEN_MASK != 0

    def _similarity(self) -> np.ndarray:
        """Per index row, how much its agent turn reads like the agent's message (computed once per reply)."""
        index = self._index
        assert index is not None
        if self._sim is None:
            self._sim = index.content.similarity(self._heard)
        return self._sim

    def _candidates(
        self, intent: Intent, act: AgentAct, cues: int, state: AffectState, facts: Sequence[tuple[Fact, SpanKind]]
    ) -> Iterator[int]:
        """Rows drawn with the environment's generator, without replacement, from the first tier with enough
        candidates (at most :data:`MAX_TRIES`)."""
        rng = self._rng
        assert rng is not None
        for rows, same_context in ((rows, same) for rows in self._tiers for same in (True, False)):
            if not len(rows):
                continue
            w = self._weights(rows, intent, act, cues, state, facts, same_context)
            if int((w > 0).sum()) >= MIN_CANDIDATES:
                for _ in range(MAX_TRIES):
                    total = float(w.sum())
                    if total <= 0:
                        return
                    k = int(rng.choice(len(rows), p=w / total))
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
    ) -> tuple[int, str, tuple[str, ...], tuple[str, ...], int] | None:
        """The first candidate row that adapts cleanly and fits the agent's message, with its final text.

        ``compose`` turns the adapted text and the facts left over into the reply. A candidate whose
        adaptation is unclean (:mod:`envsim.user.transcript.fill`) or whose reply the coherence model calls a
        misfit (:class:`~envsim.user.transcript.coherence.CoherenceModel`) is rejected (counted in :attr:`stats`).
        Returns the row, the reply, the fact keys filled and appended, and the spans dropped; ``None``
        when every candidate was rejected or none could be drawn.
        """
        index = self._index
        assert index is not None
        model = index.coherence()
        reject = model.quantile(REJECT_SHARE) if model is not None else 0.0
        for row in self._candidates(intent, act, cues, state, facts):
            adapted = self._adapt(row, facts)
            if adapted is None:
                self.stats["rejected_unclean"] += 1
                self._rejected += 1
                continue
            text, filled, left, dropped = adapted
            reply = compose(self._scrub(text), left)
            if not reply or (model is not None and self._heard.strip() and model.score(self._heard, reply) < reject):
                self.stats["rejected_misfit"] += 1
                self._rejected += 1
                continue
            self._used.add(row)
            return row, reply, tuple(filled), tuple(f.key for f in left), dropped
        return None

    def _spare(self, facts: Sequence[tuple[Fact, SpanKind]]) -> list[tuple[Fact, SpanKind]]:
        """Facts already given (and not among ``facts``): a retrieved turn may say them again."""
        giving = {fact.key for fact, _ in facts}
        return [(f, kind) for f, _, kind in self._facts if f.key in self._revealed and f.key not in giving]

    def _adapt(self, row: int, facts: Sequence[tuple[Fact, SpanKind]]) -> tuple[str, list[str], list[Fact], int] | None:
        """The row's text with its spans filled by ``facts`` (then by facts already given) or dropped.

        Returns the text, the keys of ``facts`` placed, the facts of ``facts`` left over and the
        number of spans dropped; ``None`` when a span to fill or drop is not a whole token run
        (:func:`~envsim.user.transcript.fill.clean_span`) or a drop leaves a word hanging
        (:func:`~envsim.user.transcript.fill.dangling`): the turn cannot be adapted cleanly.
        """
        index = self._index
        assert index is not None
        text = index.texts[row]
        spans = index.spans(row)
        lead = [cue_mask(_sentence_tail(text[max(0, s - 40) : s])) & _TOPIC_MASK for s, _, _ in spans]
        own = cue_mask(text) & _TOPIC_MASK
        fill: dict[int, Fact] = {}
        left: list[Fact] = []
        giving = {fact.key for fact, _ in facts}
        for fact, kind in [*facts, *self._spare(facts)]:
            topics = _fact_topics(fact)
            free = [i for i, span in enumerate(spans) if i not in fill and _compatible(kind, span[2])]
            free = [i for i in free if not lead[i] or lead[i] & topics]  # never 'my PIN is <phone>'
            if fact.key not in giving:  # a fact given before: only where the turn names it ('my name is', 'PIN')
                free = [i for i in free if lead[i] & topics or (not lead[i] and own & topics)]
            ranked = sorted(free, key=lambda i: (not lead[i] & topics, spans[i][2] != kind, i))
            if ranked:
                fill[ranked[0]] = fact
            elif fact.key in giving:
                left.append(fact)
        if facts and own & ~_all_topics([*facts, *self._spare(facts)]):
            return None  # it names a detail it does not give ('my PIN is' before a phone number)
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
                text = text[:start] + fill[i].value + text[end:]
            else:
                text = _drop_span(text, start, end)
                dropped += 1
        text = _tidy(text)
        if dropped and dangling(text) is not None and dangling(text) != dangling(_tidy(original)):
            return None
        return text, [fill[i].key for i in sorted(fill) if fill[i].key in giving], left, dropped

    def _scrub(self, text: str) -> str:
        """Remove any unrevealed fact value that a human turn happens to contain."""
        for fact, _, _ in self._facts:
            if fact.key not in self._revealed and fact.value.lower() in text.lower():
                text = _tidy(re.sub(re.escape(fact.value), "", text, flags=re.IGNORECASE))
        return text

    def _answer(
        self,
        intent: Intent,
        facts: Sequence[tuple[Fact, SpanKind]],
        act: AgentAct,
        cues: int,
        state: AffectState,
    ) -> str:
        def compose(text: str, left: list[Fact]) -> str:
            extra = " ".join(_say(f) for f in left)
            if not text:
                return extra
            if extra:
                return f"{text if text[-1] in '.!?' else f'{text}.'} {extra}"
            return text

        found = self._retrieve(intent, act, cues, state, facts, compose)
        if found is None:  # the fallback: the facts said by the scenario's own lines
            self._note(TurnSource(intent, None, appended=tuple(f.key for f, _ in facts)))
            return self._styled(" ".join(_say(f) for f, _ in facts))
        row, text, filled, appended, dropped = found
        self._note(TurnSource(intent, self._index.ref(row) if self._index else None, filled, appended, dropped))
        return self._styled(text)

    def _retrieve_text(self, intent: Intent, act: AgentAct, cues: int, state: AffectState) -> str:
        persona = self._persona
        assert persona is not None and self._scenario is not None
        found = self._retrieve(intent, act, cues, state, (), lambda text, _: text)
        if found is not None:
            row, text, _, _, dropped = found
            self._note(TurnSource(intent, self._index.ref(row) if self._index else None, dropped=dropped))
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
    _load.cache_clear()
    _warned = False
