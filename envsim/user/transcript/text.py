"""Text analysis for the transcript user: dialogue acts, question topics, entity spans and names, by rules.

The same rules read the corpus' turns when the index is built (:mod:`envsim.user.transcript.index`)
and the agent's live messages when the user replies (:mod:`envsim.user.transcript.user`):

- :func:`agent_act`: what an agent turn does (greet, ask_info, ask_yesno, inform, apology, offer,
  close); :func:`user_act`: the act of a user turn (greet, thanks, affirm, deny, complain,
  question, inform);
- :func:`cue_mask`: the question topics (:data:`CUES`) a text mentions, as bits; :data:`FACT_TOPICS`
  those that name a detail a user gives;
- :func:`entity_spans`: emails, times, dates, quantities, numbers and names (:class:`Names`, learnt
  from a corpus' capitalisation by :func:`learn_names`); :func:`fact_kind`: the span kind a fact
  value fills;
- :func:`drop_span` and :func:`tidy`: a span removed with the connectors it leaves dangling, and the
  punctuation and spacing put right after;
- :data:`UNSURE`: a turn saying the user does not know or have something.

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

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, get_args

from envsim.user.affect import REQUEST, SENTENCE

UNSURE = re.compile(
    r"\b(?:do ?n[o']?t|dont|can ?n?[o']?t|cant|could ?n[o']?t) (?:really |even |quite |seem to )?"
    r"(?:know|rem[ea]m?b[ea]?r|recall|have|find|think of)\b(?! (?:the |much |enough )?time\b)"
    r"|\bnot (?:sure|certain)\b|\bno (?:idea|clue)\b|\bforgot|\bi (?:\w+ )?forget\b|\bdunno\b|\bunsure\b"
)
"""A user turn that says the user does not know, remember (or 'remeber', as typed) or have something (on lower-cased
text); not an order to forget something ('Forget the price') nor a lack of time ('I don't have time')."""


AgentAct = Literal["none", "greet", "ask_info", "ask_yesno", "inform", "apology", "offer", "close"]
"""What an agent turn does, for retrieval: the context a human user turn answers."""
AGENT_ACTS: tuple[AgentAct, ...] = get_args(AgentAct)
"""Every :data:`AgentAct`; ``none`` is the context of a dialogue's first user turn."""

UserAct = Literal["greet", "thanks", "affirm", "deny", "complain", "question", "inform"]
"""The dialogue act of a human user turn."""
USER_ACTS: tuple[UserAct, ...] = get_args(UserAct)
"""Every :data:`UserAct`."""


SpanKind = Literal["email", "time", "date", "quantity", "number", "name", "statement"]
"""The kind of an entity span, or of a fact's value (``statement``: a fact no span holds, said in its own words)."""


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
    questions = [s for s in SENTENCE.findall(low) if s.strip().endswith("?")]
    if questions or REQUEST.search(low):
        asked = questions[-1] if questions else low
        return "ask_info" if _WH.search(asked) or REQUEST.search(asked) else "ask_yesno"
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
_YES_START = re.compile(r"^\W*(?:yes|yeah|yea|yep|yup|sure|of course|absolutely|definitely|i do|we do|i will)\b")
_NO_START = re.compile(r"^\W*(?:no|nope|nah|not really|i (?:do not|don't|have not|haven't)|we (?:do not|don't))\b")


def answer_polarity(text: str) -> UserAct | None:
    """Whether a user turn answers a yes/no question with a yes (``affirm``) or a no (``deny``), at any length: by
    its first words ('Yes, please. Also, I'm vegetarian', 'We do not.', 'Nah we got it'); else ``None``.

    Example:
        >>> answer_polarity("Yes, please. Also, I'm strictly vegetarian too!"), answer_polarity("We do not.")
        ('affirm', 'deny')
        >>> answer_polarity("Great, book it"), answer_polarity("Nobody told me")
        (None, None)
    """
    low = " ".join(text.lower().split())
    if _NO_START.search(low):  # first: 'we do not' is a no
        return "deny"
    if _YES_START.search(low):
        return "affirm"
    return None


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
    for cue in CUE.findall(_THING_NAME.sub(r"\1 thingname", text.lower())):
        mask |= _CUE_BITS[cue]
    return mask


_THING_NAME = re.compile(
    r"\b(?!(?:full|first|last|given|family|middle|user|sur|my|your|his|her|their|our|the|a|its|whose|what|which)\b)"
    r"([a-z]+)(?:'s|’s)? name\b"
)
CUE = re.compile(r"\b(" + "|".join(sorted(CUES, key=len, reverse=True)) + ")")
"""A word starting with one of the :data:`CUES` (the longest first), on lower-cased text."""
_CUE_BITS = {cue: 1 << bit for bit, cue in enumerate(CUES)}
TOPIC_MASK = sum(_CUE_BITS[cue] for cue in FACT_TOPICS)
"""The :func:`cue_mask` bits of the :data:`FACT_TOPICS`."""
WHEN_MASK = sum(_CUE_BITS[cue] for cue in ("date", "day", "time", "when"))
"""The :func:`cue_mask` bits of a question about when (a date, a day, a time)."""
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
TIME = re.compile(
    r"(?i)\b\d{1,2}(?::\d{2})?\s?(?:am|pm|a\.m\.|p\.m\.)(?![a-z])|\b\d{1,2}:\d{2}\b|\b(?:noon|midnight)\b"
)
"""A time of day (5 pm, 10:30, noon): an entity span of kind ``time``."""
_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
DATE = re.compile(
    rf"(?i)\b\d{{4}}-\d{{1,2}}-\d{{1,2}}\b|\b\d{{1,2}}/\d{{1,2}}(?:/\d{{2,4}})?\b"
    rf"|\b{_MONTH} \d{{1,2}}(?:st|nd|rd|th)?(?:,? \d{{4}})?\b"
    rf"|\b\d{{1,2}}(?:st|nd|rd|th)?(?: of)? {_MONTH}(?:,? \d{{4}})?"
    rf"|\b\d{{1,2}}(?:st|nd|rd|th)\b|\b(?:mon|tues|wednes|thurs|fri|satur|sun)day\b"
)
"""A date (2026-03-07, 3/7, May 9th, 19th, Friday): an entity span of kind ``date``."""
_UNITS = (
    r"guests?|people|persons?|minutes?|mins?|hours?|hrs?|days?|weeks?|months?|years?|nights?|credits?|dollars?"
    r"|degrees?|stars?|rooms?|adults?|kids?|children|seats?|tickets?|times?|steps?|blocks?|miles?|km|percent"
)
QUANTITY = re.compile(rf"(?i)\b\d+(?:[.,]\d+)?(?:\s+(?:{_UNITS})\b|\s?%)|[$£€]\s?\d[\d,]*(?:\.\d+)?")
"""A number with its unit (5 guests, 20 minutes, 10%) or an amount of money ($300): an entity span of kind
``quantity``."""
_NUMBER = re.compile(r"#?\b[A-Za-z]{0,2}\d+(?:[-./ ]\d+)*\b")
_WORD_AT = re.compile(r"[A-Za-z][A-Za-z'’]*")
_NAME_JOIN = re.compile(r"^(?:\.?\s|\s?&\s|\s(?:of|de|van|von)\s)$")
_ABBREVIATION = re.compile(r"^(?:[A-Z]|Dr|Mr|Mrs|Ms|Mx|St|Mt|Ft|Jr|Sr|Prof)$")
"""A word a full stop may follow inside a name (``Dr. Lee``, ``Ann L. Lee``); after any other, it ends the sentence."""


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
    dots (after a title or an initial only: a full stop after any other word ends the name), with any
    capitalised words right after them.

    Example:
        >>> text = "Mark Stone, mark@x.org, 2 guests, order #W0010"
        >>> [(text[a:b], kind) for a, b, kind in entity_spans(text, frozenset({"mark"}))]
        [('Mark Stone', 'name'), ('mark@x.org', 'email'), ('2 guests', 'quantity'), ('#W0010', 'number')]
        >>> text = "Meet Ann L. Lee at the Shadyside Inn. You pay."
        >>> [text[a:b] for a, b, _ in entity_spans(text, frozenset({"ann", "shadyside"}))]
        ['Ann L. Lee', 'Shadyside Inn']
    """
    rule = names if isinstance(names, Names) else Names(names)
    found: list[tuple[int, int, SpanKind]] = []

    def free(start: int, end: int) -> bool:
        return all(end <= s or start >= e for s, e, _ in found)

    def add(start: int, end: int, kind: SpanKind) -> None:
        if end > start and free(start, end):
            found.append((start, end, kind))

    for pattern, kind in ((_EMAIL, "email"), (TIME, "time"), (DATE, "date"), (QUANTITY, "quantity")):
        for m in pattern.finditer(text):
            add(m.start(), m.end(), kind)  # type: ignore[arg-type]
    for m in _NUMBER.finditer(text):
        if any(ch.isdigit() for ch in m.group()):
            add(m.start(), m.end(), "number")
    run: list[tuple[int, int]] = []
    for m in _WORD_AT.finditer(text):
        word = m.group()
        gap = text[run[-1][1] : m.start()] if run else ""
        joined = bool(run) and _NAME_JOIN.match(gap) is not None
        if joined and "." in gap:  # 'Ann L. Lee' is one name; 'the Venue. You' ends a sentence
            joined = _ABBREVIATION.match(text[run[-1][0] : run[-1][1]]) is not None
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


FACT_CLASS: dict[SpanKind, str] = {
    "email": "text",
    "name": "text",
    "number": "digits",
    "date": "digits",
    "time": "digits",
    "quantity": "none",
    "statement": "none",
}
"""The class of value each span kind holds: a fact fills a span of its own kind only, and never a quantity or a
statement (``none``); ``text`` and ``digits`` are counted apart in the index."""


def fact_kind(value: str) -> SpanKind:
    """The span kind a fact value fills: email, time, date, number (any digit), name (a capital letter), else
    ``statement``, which fills no span (a yes or a no, 'vegetarian', 'a few weeks': a human turn holds no place
    for it; it is said in the fact's own words).

    Example:
        >>> [fact_kind(v) for v in ("a@b.co", "5 pm", "1942-03-07", "555-0142", "Harbor Hotel", "a few weeks")]
        ['email', 'time', 'date', 'number', 'name', 'statement']
    """
    if "@" in value:
        return "email"
    for pattern, kind in ((TIME, "time"), (DATE, "date")):
        match = pattern.search(value)
        if match and len(match.group()) >= 0.6 * len(value.strip()):
            return kind  # type: ignore[return-value]
    if any(ch.isdigit() for ch in value):
        return "number"
    if not any(ch.isupper() for ch in value):
        return "statement"
    return "name"


_SENTENCE_TAIL = re.compile(r"[^.!?\n]*$")


def sentence_tail(text: str) -> str:
    """The last (unfinished) sentence of ``text``: the words that lead up to what follows it."""
    match = _SENTENCE_TAIL.search(text)
    return match.group() if match else ""


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


_CONNECTOR_BEFORE = re.compile(r"(?:\s*\b(?:either|or|and|of|from|about|around|at)\b)+\s*$", re.IGNORECASE)
_CONNECTOR_AFTER = re.compile(r"^\s*\b(?:or|and)\b", re.IGNORECASE)


def drop_span(text: str, start: int, end: int) -> str:
    """``text`` without the span ``[start, end)`` and the connectors it leaves dangling.

    A word such as *or*, *either*, *of* that led to the span goes with it when nothing but
    punctuation follows, and an *or* / *and* after it goes when it led from the span (so
    "either 0314 or 1596" without its second number is "either 0314", without its first "1596").

    Example:
        >>> drop_span("It was either 0314 or 1596.", 22, 26)
        'It was either 0314.'
        >>> drop_span("It was either 0314 or 1596.", 14, 18)
        'It was 1596.'
        >>> drop_span("transfers of $10 over the week", 13, 16)
        'transfers over the week'
        >>> drop_span("For my friend Mark.  39 guests.", 21, 30)  # a sentence that was the span alone goes whole
        'For my friend Mark.'
    """
    before, after = text[:start], text[end:]
    lead = _CONNECTOR_BEFORE.search(before)
    if lead is not None and (re.match(r"\s*(?:[.,!?;:]|$)", after) or lead.group().strip().lower() in ("of", "at")):
        before = before[: lead.start()]
    elif _CONNECTOR_AFTER.match(after):
        after = _CONNECTOR_AFTER.sub("", after, count=1)
        before = re.sub(r"\beither\s*$", "", before, flags=re.IGNORECASE)
    if re.search(r"[.!?]\s*$", before) and re.match(r"\s*[.!?](?![.!?])", after):
        after = after.lstrip()[1:]
    return (
        f"{before.rstrip()} {after.lstrip()}"
        if before.strip() and after.strip() and after.lstrip()[:1].isalnum()
        else before.rstrip() + after
    )


def tidy(text: str) -> str:
    """``text`` with its spacing and punctuation put right after an edit: no space before a mark, no run of
    commas, no comma before the end of a sentence or at the start of one, no leading punctuation, no empty brackets.

    Example:
        >>> tidy(", It was ,, 0314 ."), tidy("It was () 0314 ."), tidy("A party for my friend ,. Is it free?")
        ('It was, 0314.', 'It was 0314.', 'A party for my friend. Is it free?')
        >>> tidy("I hope I'm not late. , she will kill me.")
        "I hope I'm not late. she will kill me."
    """
    text = re.sub(r"\s+([,.!?;:])", r"\1", text)
    text = re.sub(r"([,;:])(?:\s*[,;:])+", r"\1", text)
    text = re.sub(r"[,;:]+(?=[.!?])", "", text)
    text = re.sub(r"(?<=[.!?])[,;:]+", "", text)  # a sentence's first word dropped: 'late. <Kimmie>, aka ...'
    text = re.sub(r"^[\s,;:.]+", "", text)
    text = re.sub(r"\(\s*\)", "", text)
    return " ".join(text.split())
