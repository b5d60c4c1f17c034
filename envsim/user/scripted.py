"""The offline scripted user: driven by the scenario, no model needed.

It opens with the scenario's opening line, reveals a fact only when the agent's message
asks for it (one of the fact's ``asked_by`` words), closes when the agent says one of the
``satisfied_by`` phrases, and otherwise nudges (persona and scenario lines, chosen with the
environment's generator) until its persona's patience runs out and it gives up. Being asked
again for a fact it already gave costs patience too ("I already told you. ...").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from envsim.prompts import render, render_string
from envsim.scenario import Fact, Scenario
from envsim.user.base import UserSimulator, UserTurn
from envsim.user.persona import Persona, load_persona


def _say(fact: Fact) -> str:
    if fact.say is not None:
        return render_string(fact.say, value=fact.value, key=fact.key)
    return render("user_fact.j2", key=fact.key, value=fact.value)


class ScriptedUser(UserSimulator):
    """A deterministic, scenario-driven mock user.

    Example:
        >>> import numpy as np
        >>> from envsim.registration import load_registered
        >>> user = ScriptedUser()
        >>> opening = user.reset(load_registered("MedicalSupplyPanicCaller"), np.random.default_rng(0))
        >>> user.reply("What is your phone number?", []).text
        'My phone number is 555-0142.'
    """

    def __init__(self) -> None:
        self._facts: list[tuple[Fact, tuple[str, ...], str]] = []
        self._revealed: set[str] = set()
        self._unhelpful = 0
        self._satisfied: tuple[str, ...] = ()
        self._nudges: list[str] = []
        self._persona: Persona | None = None
        self._closing = ""
        self._goal = ""
        self._rng: np.random.Generator | None = None
        self._scenario_id: str | None = None

    def reset(self, scenario: Scenario, rng: np.random.Generator) -> str:
        """Start a conversation and return the opening line."""
        if self._scenario_id != scenario.id:  # prepare once per scenario
            spec = scenario.user
            self._persona = spec.persona.inline or load_persona(spec.persona.ref or "calm")
            self._facts = [(f, tuple(k.lower() for k in f.asked_by), _say(f)) for f in spec.facts]
            self._satisfied = tuple(p.lower() for p in spec.satisfied_by)
            self._nudges = [*spec.nudges, *self._persona.nudges] or [f"I still need help: {spec.goal}"]
            self._closing = spec.closing
            self._goal = spec.goal
            self._scenario_id = scenario.id
            self._opening = spec.opening
        self._rng = rng
        self._revealed = set()
        self._unhelpful = 0
        return self._opening

    def reply(self, agent_message: str, messages: Sequence[dict[str, Any]]) -> UserTurn:
        """Reveal asked-for facts, close when satisfied, else nudge or give up."""
        assert self._persona is not None and self._rng is not None, "call reset() first"
        text = agent_message.lower()
        asked = [(fact, said) for fact, keys, said in self._facts if any(k in text for k in keys)]
        new = [(fact, said) for fact, said in asked if fact.key not in self._revealed]
        if new:
            self._revealed.update(fact.key for fact, _ in new)
            self._unhelpful = 0
            return UserTurn(" ".join(said for _, said in new))
        if any(p in text for p in self._satisfied):
            return UserTurn(self._closing, done=True)
        self._unhelpful += 1  # asked again for what it already said, or no help at all
        if self._unhelpful > self._persona.patience:
            return UserTurn(self._persona.give_up, done=True)
        if asked:
            return UserTurn("I already told you. " + " ".join(said for _, said in asked))
        return UserTurn(self._nudges[int(self._rng.integers(len(self._nudges)))])
