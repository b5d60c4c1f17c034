"""Clean slot filling: whole spans only, nothing glued, no half names, no word left hanging."""

from __future__ import annotations

import pytest

from envsim.user.transcript.fill import clean_span, dangling, droppable


def _span(text: str, part: str) -> tuple[int, int]:
    start = text.index(part)
    return start, start + len(part)


@pytest.mark.parametrize(
    ("text", "part", "kind", "clean"),
    [
        ("Only 2% of the crew died", "2", "number", False),  # the 'Only% of'
        ("Only 2% of the crew died", "2%", "quantity", True),
        ("call me on 555-0142 today", "555-0142", "number", True),
        ("order W12b please", "W12", "number", False),
        ("it is B12-4 I think", "B12", "number", False),
        ("mail ann@x.org now", "ann@x.org", "email", True),
        ("I'm Ann Lee from here", "Ann", "name", False),  # half a name
        ("I'm Ann Lee from here", "Ann Lee", "name", True),
        ("Hi Ann, it is me", "Ann", "name", True),  # a sentence's first word says nothing
        ("ask Dr Ann please", "Ann", "name", False),
        ("(4321) is it", "4321", "number", True),
    ],
)
def test_clean_span(text: str, part: str, kind: str, clean: bool) -> None:
    assert clean_span(text, *_span(text, part), kind) is clean


@pytest.mark.parametrize(
    ("text", "part", "ok"),
    [
        ("Yeah, do you like the Ritz?", "Ritz", False),
        ("My PIN is 4321.", "4321", False),
        ("I was thinking 5 pm would be perfect", "5 pm", False),
        ("Someone took money at 5 pm from my account", "5 pm", True),
        ("It was either 0314 or 1596.", "0314", True),
        ("It was either 0314 or 1596.", "1596", True),
        ("Sure, 4321, I think.", "4321", True),
        ("4321", "4321", True),
        ("book a table at the Ritz today", "Ritz", False),
        ("The flight ID was actually 731.", "731", False),  # not 'The flight ID was actually.'
        ("It should be around 5 pm.", "5 pm", False),
    ],
)
def test_droppable(text: str, part: str, ok: bool) -> None:
    assert droppable(text, *_span(text, part)) is ok


def test_dangling() -> None:
    assert dangling("Yeah, do you like the?") == "the?"
    assert dangling("my name is, I think") == "is,"
    assert dangling("It is 4321, thanks.") is None
    assert dangling("Lets try") == "try" and dangling("a place near.") == "near."  # a verb or place without its object
    assert dangling("Let's try it.") is None
