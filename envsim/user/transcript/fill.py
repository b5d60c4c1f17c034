"""Clean slot filling: an entity span is replaced or dropped whole, or the retrieved turn is not used.

The transcript user (:mod:`envsim.user.transcript`) puts the scenario's fact values into the
entity spans of a retrieved human turn, and drops the spans it cannot fill. Either is *clean*
only when the span is a whole token run (:func:`clean_span`): nothing glued to it on either side
(a letter, a digit, ``%``, a hyphen or a slash: "Only 2% of" must not become "Only% of"), and for
a name, no capitalised word right beside it that would leave half a name ("Ann *Lee*" detected
as "Ann" only). A span is dropped only where no word leads to it (:func:`droppable`); after a
drop, the text must not end a phrase on a word that needs what was dropped (:func:`dangling`:
"do you like the?", "my PIN is."), nor keep the first half of a pair whose second went with it
(:func:`unpaired`: "either 7402." from "either 7402 or 3941"). A turn that cannot be adapted cleanly is not
used: retrieval takes the next candidate.

Example:
    >>> text = "Only 2% of the crew died"
    >>> clean_span(text, 5, 6, "number"), clean_span(text, 5, 7, "quantity")
    (False, True)
    >>> dangling("Yeah, do you like the?"), dangling("My PIN is."), dangling("It is 4321, I think.")
    ('the?', 'is.', None)
"""

from __future__ import annotations

import re

_GLUE = "%-/@_&+=*#^~"
"""Characters that join a span to its neighbour into one token."""

_OPEN = "(\"'“‘[$£€#"
"""Characters that may open a span (a quote, a bracket, a currency sign, a number sign)."""

_CLOSE = ".,!?;:)\"'”’]…"
"""Characters that may close a span."""

_NAME_WORD = re.compile(r"[A-Z][a-z'’]+")

DANGLING = re.compile(
    r"\b(?:the|a|an|my|your|his|her|our|their|its|this|these|those|is|are|was|were|be|am|at|of|from|to|with"
    r"|about|either|or|and|by|on|in|for|as|than|between|i|near|into|called|named|try|want|need|visit|reserve)"
    r"\s*(?:[.,!?;:]|$)",
    re.IGNORECASE,
)
"""A word that cannot end a phrase after a span was dropped (an article, possessive, copula, preposition, connector
or a verb that wants its object: 'Lets try <venue>' loses its venue) right before punctuation or the end."""

ARTICLE_END = re.compile(r"\b(?:the|a|an|my|your|our|their)\s*(?:[.,!?;:]|$)", re.IGNORECASE)
"""A determiner right before punctuation or the end: never written by a person (what a bad drop leaves)."""


def clean_span(text: str, start: int, end: int, kind: str) -> bool:
    """Whether ``text[start:end]`` can be replaced or dropped whole: nothing glued to it, no half name.

    Example:
        >>> clean_span("call 555-0142 now", 5, 13, "number"), clean_span("B12-vitamin", 0, 3, "number")
        (True, False)
        >>> clean_span("I'm Ann Lee", 4, 7, "name"), clean_span("I'm Ann Lee", 4, 11, "name")
        (False, True)
    """
    before = text[start - 1] if start > 0 else " "
    after = text[end] if end < len(text) else " "
    if before.isalnum() or after.isalnum() or before in _GLUE or after in _GLUE:
        return False
    if not (before.isspace() or before in _OPEN) or not (after.isspace() or after in _CLOSE):
        return False
    if kind == "name":
        prev = re.search(r"(\S+)\s+$", text[:start])
        nxt = re.match(r"\s+(\S+)", text[end:])
        if prev is not None and _name_like(prev.group(1)) and not _sentence_initial(text, prev.start(1)):
            return False
        if nxt is not None and _name_like(nxt.group(1).rstrip(_CLOSE)):
            return False
    return True


def _name_like(word: str) -> bool:
    """A capitalised word that may be part of a name (not ``I``, ``I'm``, ...)."""
    return _NAME_WORD.fullmatch(word) is not None and not word.startswith(("I'", "I’"))


def _sentence_initial(text: str, position: int) -> bool:
    """Whether the word at ``position`` starts its sentence (its capital says nothing)."""
    before = text[:position].rstrip()
    return not before or before[-1] in ".!?\n"


NEEDS_OBJECT = frozenset(
    ("the", "a", "an", "my", "your", "his", "her", "our", "their", "its", "it's", "is", "are", "was", "were", "am",
     "be", "been", "named", "called", "i", "to", "with", "for", "by", "than", "as", "like", "on", "in", "into",
     "under", "until", "till", "before", "after", "between", "number", "code", "pin", "name", "email", "actually",
     "around", "about", "approximately", "roughly", "exactly")
)  # fmt: skip
"""Words that cannot stand right before a dropped span (the span was what they lead to: 'the flight ID was
actually 731' does not become 'the flight ID was actually.')."""

CUT_WITH = frozenset(("at", "of"))
"""Prepositions that go with a span dropped mid-sentence (:func:`envsim.user.transcript.text.drop_span`)."""


def droppable(text: str, start: int, end: int) -> bool:
    """Whether the span ``text[start:end]`` can be dropped and leave a sentence.

    Only a span that ends its clause (punctuation or the end follows), whose word before does not
    lead to it (:data:`NEEDS_OBJECT`); or one that goes with its preposition (:data:`CUT_WITH`:
    "took money at 5 pm from my account"); or one of a list ("either 0314 or 1596"). A span in the
    middle of a clause ("I was thinking 5 pm would be perfect") is not droppable.

    Example:
        >>> text = "I was thinking 5 pm would be perfect"
        >>> droppable(text, 15, 19), droppable("Took money at 5 pm from me", 14, 18)
        (False, True)
        >>> droppable("It was 4321.", 7, 11), droppable("Sure, 4321, I think.", 6, 10), droppable("4321", 0, 4)
        (False, True, True)
        >>> droppable("My PIN is 7402 or 3941", 10, 14), droppable("My name is Ann Lee and I want a ride", 11, 18)
        (True, False)
    """
    prev = re.search(r"([A-Za-z'’]+)\W*$", text[:start])
    gap = text[prev.end(1) : start] if prev is not None else ""
    word = prev.group(1).lower() if prev is not None and not gap.strip() else None
    after = text[end:].lstrip()
    if not after or after[0] in ".,!?;:)":
        return word not in NEEDS_OBJECT
    if word in CUT_WITH:
        return True
    pair = re.match(r"(?:or|and)\s+(\S+)", after, re.IGNORECASE)  # one of a list: 'either 0314 or 1596', 'is 7402 or
    # 3941'; never 'My name is Brian White and I want ...' ('My name is I want ...')
    return pair is not None and (word not in NEEDS_OBJECT or pair.group(1)[:1].isdigit())


def dangling(text: str) -> str | None:
    """The word left hanging by a dropped span (before punctuation or the end), or ``None``."""
    match = DANGLING.search(text)
    return " ".join(match.group().split()) if match is not None else None


_UNPAIRED = re.compile(r"\beither\b(?![^.!?]*\bor\b)|\bbetween\b(?![^.!?]*\band\b)|\bneither\b(?![^.!?]*\bnor\b)", re.I)


def unpaired(text: str) -> int:
    """How many first words of a pair have no second in their sentence ('either' with no 'or' after it).

    Example:
        >>> unpaired("It's either 7402."), unpaired("It's either 7402 or 3941."), unpaired("Between 5 and 6 pm.")
        (1, 0, 0)
    """
    return len(_UNPAIRED.findall(text))
