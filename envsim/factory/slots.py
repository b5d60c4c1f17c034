"""The facts a customer gave in a conversation: slot values the agent asked for.

When an agent turn asks for a slot (its ``asked_by`` phrases, as whole words, any case), the
customer's next few turns are searched for a value of that slot's shape (an email address, a
phone number, an order id, a date...); the first value found, in a span no other slot took,
becomes a :class:`~envsim.scenario.Fact` with the turn it came from. Slots with a distinctive
shape are matched first, so that a phone number is not also read as an order id.

Example:
    >>> from envsim.transcripts.schema import Turn
    >>> turns = [Turn(role="user", text="I need to return an item"),
    ...          Turn(role="agent", text="Sure, may I have your username, email address and order ID?"),
    ...          Turn(role="user", text="Username: ada77"), Turn(role="user", text="ada77@example.com"),
    ...          Turn(role="user", text="Order ID: 3348917502")]
    >>> [(fact.key, fact.value, turn) for fact, turn in customer_facts(turns)]
    [('username', 'ada77', 2), ('email', 'ada77@example.com', 3), ('order_id', '3348917502', 4)]
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from envsim.scenario import Fact
from envsim.transcripts.schema import Turn

Span = tuple[int, int]

WINDOW = 4
"""How many of the customer's turns after a question are searched for its answer."""


def _pattern(regex: str) -> Callable[[str], Span | None]:
    compiled = re.compile(regex, re.IGNORECASE)

    def find(text: str) -> Span | None:
        match = compiled.search(text)
        if match is None:
            return None
        group = "v" if "v" in compiled.groupindex else 0
        return match.span(group)

    return find


_NAME_PREFIX = re.compile(
    r"^\s*(?:(?:hi|hello|hey)[,!.]?\s+)?(?:my name is|my name's|name is|it's|it is|i'm|i am|this is)\s+", re.I
)
_NAME_WORD = re.compile(r"[A-Za-z][A-Za-z'.-]*")
_NAME_STOP = frozenset({"with", "and", "here", "please", "thanks", "thank", "from", "but", "is", "a", "the", "sure"})


def _name(text: str) -> Span | None:
    """A person's name at the start of a short reply: up to three words, stopping at a joining word."""
    prefix = _NAME_PREFIX.match(text)
    start = prefix.end() if prefix else 0
    words: list[Span] = []
    for match in _NAME_WORD.finditer(text, start):
        if match.group().lower() in _NAME_STOP or len(words) == 3:
            break
        if words and text[words[-1][1] : match.start()].strip():  # punctuation between words ends the name
            break
        words.append(match.span())
    if not words or (prefix is None and len(_NAME_WORD.findall(text)) > 6):
        return None
    return words[0][0], words[-1][1]


@dataclass(frozen=True)
class Slot:
    """A kind of fact: its key, the phrases that ask for it, and how its value is found in a reply."""

    key: str
    asked_by: tuple[str, ...]
    find: Callable[[str], Span | None]

    def asked_in(self, text: str) -> bool:
        """Whether an agent message asks for this slot."""
        lowered = text.lower()
        return any(re.search(rf"(?<![a-z]){re.escape(p)}(?![a-z])", lowered) for p in self.asked_by)


SLOTS: tuple[Slot, ...] = (
    Slot("email", ("email", "e-mail"), _pattern(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")),
    Slot(
        "phone",
        ("phone", "phone number", "telephone", "callback number", "mobile number"),
        _pattern(r"(?<!\d)(?:\+?1[\s.-]?)?\(?\d{3}\)?[\s.-]?\d{3}[\s.-]?\d{4}(?!\d)"),
    ),
    Slot(
        "date_of_birth",
        ("date of birth", "birth date", "birthday", "dob"),
        _pattern(
            r"\b(?:\d{4}-\d{1,2}-\d{1,2}|\d{1,2}[/.]\d{1,2}[/.]\d{2,4}|"
            r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.? \d{1,2}(?:st|nd|rd|th)?,? \d{4}|"
            r"\d{1,2}(?:st|nd|rd|th)? (?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]* \d{4})\b"
        ),
    ),
    Slot("order_id", ("order id", "order number", "order #", "order no"), _pattern(r"#?\b[A-Z]{0,2}\d{4,}\b")),
    Slot("account_number", ("account number", "account id", "account no"), _pattern(r"\b\d{6,}\b")),
    Slot("zip_code", ("zip", "zip code", "postal code", "postcode"), _pattern(r"\b\d{5}(?:-\d{4})?\b")),
    Slot("card_last4", ("last four", "last 4", "last four digits"), _pattern(r"(?<!\d)\d{4}(?!\d)")),
    Slot("pin", ("pin", "pin code", "pin number"), _pattern(r"(?<!\d)\d{4,6}(?!\d)")),
    Slot(
        "username", ("username", "user name", "user id"), _pattern(r"(?:user\s?name\s*:?\s*)?(?P<v>\b[a-z][\w.-]{2,})")
    ),
    Slot("name", ("your name", "full name", "first and last name", "name please", "your first name"), _name),
)
"""The slots looked for, most distinctive shape first."""


def customer_facts(turns: Sequence[Turn], slots: Sequence[Slot] = SLOTS) -> list[tuple[Fact, int]]:
    """The facts the customer gave when the agent asked, each with the index of the turn it came from,
    in the order they were given (the first value of each key)."""
    claimed: dict[int, list[Span]] = {}
    found: list[tuple[Fact, int, int]] = []
    for rank, slot in enumerate(slots):
        for index in _answers(turns, slot):
            text = turns[index].text
            span = slot.find(text)
            if span is None or any(_overlap(span, other) for other in claimed.get(index, [])):
                continue
            value = text[span[0] : span[1]].strip()
            if value:
                claimed.setdefault(index, []).append(span)
                found.append((Fact(key=slot.key, value=value, asked_by=list(slot.asked_by)), index, rank))
                break
    return [(fact, index) for fact, index, _ in sorted(found, key=lambda item: (item[1], item[2]))]


def _answers(turns: Sequence[Turn], slot: Slot) -> list[int]:
    """Indexes of the customer turns after each question for ``slot`` (up to :data:`WINDOW` per question)."""
    answers: dict[int, None] = {}
    for asked, turn in enumerate(turns):
        if turn.role != "agent" or not slot.asked_in(turn.text):
            continue
        replies = [i for i in range(asked + 1, len(turns)) if turns[i].role == "user"]
        answers.update(dict.fromkeys(replies[:WINDOW]))
    return list(answers)


def _overlap(a: Span, b: Span) -> bool:
    return a[0] < b[1] and b[0] < a[1]
