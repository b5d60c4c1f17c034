"""What a user can give of each fact as a conversation goes: details found only after some asking, and slips.

A scenario fact may be out of reach at first or given wrongly once, as with real customers:

- ``found_after`` (:class:`~envsim.scenario.Fact`): the first N times the agent asks for it, the user does not have
  it at hand and says so (:data:`NOT_AT_HAND_LINES`, or a human turn saying it for the transcript user); the Nth
  request sends it looking, and its next reply comes back with the fact, asked or not (:meth:`Recall.announcements`,
  :func:`found_line`: 'Oh, I found it: my card is 4417.'). An agent that gives up or escalates at the first "I can't
  find it" fails.
- ``said_first``: the first time the user gives the fact, it gives that wrong value instead (a digit swapped, an
  old address); its next reply starts by correcting it (:func:`correction_line`). An agent that acts on the first
  value writes the wrong record, which the scenario's expected writes (made with ``value``) catch.

Every user (scripted, transcript, LLM) keeps one :class:`Recall` per episode, so the three agree on when a fact is at
hand and when a slip is corrected.

Example:
    >>> from envsim.scenario import Fact
    >>> card = Fact(key="card", value="4417", asked_by=["card"], found_after=1, said_first="4471")
    >>> recall = Recall()
    >>> recall.has(card), recall.at_hand(card), recall.has(card)  # asked once: it looks for it and finds it
    (False, False, True)
    >>> recall.at_hand(card)  # asked again: it gives it
    True
    >>> recall.giving(card).value, recall.giving(card).value  # the slip once, then the value
    ('4471', '4417')
    >>> [f.value for f in recall.corrections()], recall.corrections()
    (['4417'], [])
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Literal

from envsim.prompts import render_remembered, render_scenario_text
from envsim.scenario import Fact

NOT_AT_HAND_LINES: tuple[str, ...] = (
    "Hold on, I don't have that in front of me right now.",
    "I can't find it at the moment, sorry. Give me a second.",
    "I don't have it at hand right now, let me look for it.",
)
"""What a user says when asked for a fact it has not found yet (``found_after``)."""

_YES = frozenset(("yes", "y", "true"))
_NO = frozenset(("no", "n", "false"))


def polarity(fact: Fact) -> Literal["affirm", "deny"] | None:
    """The act of a turn that gives ``fact``: ``affirm`` for a yes, ``deny`` for a no, else ``None``.

    A yes or a no has no place in a turn's words; the transcript user gives it by the act of the turn it retrieves
    ('Yes, please.', 'Nope, we got it.'), never by saying the value after another turn.

    Example:
        >>> polarity(Fact(key="parking", value="No", asked_by=["parking"])), polarity(Fact(key="x", value="yes",
        ...     asked_by=["x"])), polarity(Fact(key="pin", value="7402", asked_by=["pin"]))
        ('deny', 'affirm', None)
    """
    value = fact.value.strip().lower()
    return "affirm" if value in _YES else "deny" if value in _NO else None


def say(fact: Fact) -> str:
    """How the user says ``fact`` on its own: its ``say``, a bare 'Yes.' or 'No.' for a yes or a no, else
    'My <key> is <value>.'.

    Example:
        >>> no, pin = Fact(key="parking", value="no", asked_by=["x"]), Fact(key="pin", value="7402", asked_by=["pin"])
        >>> say(no), say(pin)
        ('No.', 'My pin is 7402.')
    """
    if fact.say is not None:
        return render_scenario_text(fact.say, value=fact.value, key=fact.key)
    answer = polarity(fact)
    if answer is not None:
        return "Yes." if answer == "affirm" else "No."
    return render_remembered("user_fact.j2", key=fact.key, value=fact.value)


@dataclass
class Recall:
    """One episode's record of the requests for each fact and of the slips made (see the module docstring)."""

    asks: Counter[str] = field(default_factory=Counter)
    slipped: set[str] = field(default_factory=set)
    pending: list[Fact] = field(default_factory=list)
    found: list[Fact] = field(default_factory=list)

    def reset(self) -> None:
        """Forget the episode (a new conversation)."""
        self.asks.clear()
        self.slipped.clear()
        self.pending.clear()
        self.found.clear()

    def at_hand(self, fact: Fact) -> bool:
        """Count one request for ``fact``; whether the user has it now (asked more than ``found_after`` times).

        The request that makes it ``found_after`` sends the user looking: it finds the fact and says so in its next
        reply (:meth:`announcements`)."""
        self.asks[fact.key] += 1
        if fact.found_after and self.asks[fact.key] == fact.found_after:
            self.found.append(fact)
        return self.asks[fact.key] > fact.found_after

    def has(self, fact: Fact) -> bool:
        """Whether the user has ``fact`` at hand now, without counting a request: asked ``found_after`` times, it went
        looking and found it (a persona that volunteers may now say it unasked)."""
        return self.asks[fact.key] >= fact.found_after

    def giving(self, fact: Fact) -> Fact:
        """``fact`` as the user gives it now: with its ``said_first`` value the first time (a slip, corrected in the
        next reply: :meth:`corrections`), else as it is."""
        if fact.said_first is None or fact.key in self.slipped:
            return fact
        self.slipped.add(fact.key)
        self.pending.append(fact)
        return fact.model_copy(update={"value": fact.said_first, "said_first": None})

    def announcements(self, exclude: Collection[str] = ()) -> list[Fact]:
        """The facts found since the last call (each once), but those whose keys are in ``exclude`` (already given, or
        asked for again now and answered as asked): the user comes back with them ('Oh, I found it').

        Call it before this reply's :meth:`at_hand` counts: a request now sends the user looking for the next one."""
        out, self.found = [f for f in self.found if f.key not in exclude], []
        return out

    def corrections(self) -> list[Fact]:
        """The facts given wrongly since the last call, to correct now (each once)."""
        out, self.pending = self.pending, []
        return out


def correction_line(fact: Fact, *, restate: bool = True) -> str:
    """The words that correct a slip: 'Sorry, I got that wrong.' and the fact said right (:func:`say`); without
    ``restate`` the apology alone (the rest of the reply gives the value: never the value twice).

    Example:
        >>> phone = Fact(key="phone", value="555-0142", asked_by=["phone"])
        >>> correction_line(phone), correction_line(phone, restate=False)
        ('Sorry, I got that wrong. My phone is 555-0142.', 'Sorry, I got that wrong.')
    """
    return render_remembered("user_correction.j2", said=say(fact) if restate else "").strip()


def found_line(fact: Fact) -> str:
    """The words that bring back a fact the user went looking for (``found_after``): 'Oh, I found it: my <key> is
    <value>.' (said unasked, so it names the fact).

    Example:
        >>> found_line(Fact(key="order_number", value="W-3381", asked_by=["order"], found_after=1))
        'Oh, I found it: my order number is W-3381.'
    """
    return render_remembered("user_found.j2", key=fact.key, value=fact.value)
