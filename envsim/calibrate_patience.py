"""Patience calibrated on STAR: the longest run of unhelpful agent turns STAR's humans sat through.

A persona's ``patience`` (:mod:`envsim.user.affect`) is the number of unhelpful agent turns in a row
the user tolerates; one more and it gives up. STAR's role-playing users were told not to end the
dialogue, and none did, so each STAR dialogue shows a run its human tolerated, not one that made
them leave: a lower bound of their patience.

:func:`tolerated_streak` measures that run on one dialogue with envsim's own rules: the wizard's
turns are given to :func:`~envsim.user.affect.classify_agent_turn` exactly as the fidelity replay
gives them to a mock user (:func:`envsim.fidelity.replay`: the wizard turns since the last user
turn joined into one agent message, the knowledge-base queries as successful tool calls, the
scenario of :func:`envsim.fidelity.replay_scenario` with the task's facts), a fact counting as
given once the human's own text states its value, and the turns go through the affect state
machine (:func:`~envsim.user.affect.transition`) of the group's persona, whose unhelpful streak
does not depend on the patience. Only turns the human answered count: the wizard's last turns,
after the human's last reply, were sat through by nobody.

:func:`fit_patience` turns a group's runs into its patience: the :data:`PATIENCE_QUANTILE`
quantile of the runs (an observed value), so that about 99% of the group's calibration
humans would not have given up under it, and a few dialogues whose run is long through a
misread turn do not set it. Only the STAR-calibrated personas are fitted this way; the core
personas keep their designed patience. :func:`with_patience` adds the fit to a
:class:`~envsim.calibrate.Calibration` (``envsim calibrate`` runs it after
:func:`~envsim.calibrate.calibrate`); it reads the fitting dialogues only, never the held-out fifth.

Example:
    >>> fit_patience([0, 1, 1, 2, 2, 2, 3, 9])
    PatienceFit(dialogues=8, quantile=0.99, patience=9, median=2.0, longest=9)
    >>> fit_patience([0, 1, 1, 2, 2, 2, 3, 9], quantile=0.75).patience  # the run at or above the quantile
    3
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from envsim.calibrate import CORPUS, Calibration, PatienceFit, classify, is_heldout, persona_entries
from envsim.errors import EnvsimError
from envsim.fidelity import replay, replay_scenario, task_facts
from envsim.scenario import PersonaSpec, Scenario
from envsim.transcripts.schema import Conversation
from envsim.user.affect import AffectState, classify_agent_turn, is_emergency
from envsim.user.base import UserSimulator, UserTurn
from envsim.user.persona import Persona
from envsim.user.transcript.text import Names

PATIENCE_QUANTILE = 0.99
"""The quantile of a group's tolerated runs that becomes its patience (see the module docstring)."""

MEASURE_PATIENCE = 50
"""The patience a persona is measured with: the most a persona may have, so that nobody gives up while measured."""


class _Listener(UserSimulator):
    """Says the human's own turns, in order, and records the unhelpful streak before each one it says."""

    def __init__(self, persona: Persona, human: Sequence[str]) -> None:
        self._persona = persona.model_copy(update={"patience": MEASURE_PATIENCE})
        self._human = list(human)
        self._said = 0
        self._revealed: set[str] = set()
        self._scenario: Scenario | None = None
        self._state: AffectState | None = None
        self.streaks: list[int] = []

    def reset(self, scenario: Scenario, rng: np.random.Generator) -> str:
        self._scenario = scenario
        self._state = AffectState.start(self._persona, emergency=is_emergency(scenario))
        return self._say()

    def _say(self) -> str:
        assert self._scenario is not None
        text = self._human[self._said]
        self._said += 1
        low = text.lower()
        self._revealed.update(f.key for f in self._scenario.user.facts if f.value.strip().lower() in low)
        return text

    def reply(self, agent_message: str, messages: Sequence[dict[str, Any]]) -> UserTurn:
        assert self._scenario is not None and self._state is not None, "call reset() first"
        events = classify_agent_turn(agent_message, messages, self._scenario, self._revealed)
        self._state = self._state.observe(events, self._persona).after
        if self._said >= len(self._human):  # the wizard's closing turns: nobody answered them
            return UserTurn("", done=True)
        self.streaks.append(self._state.unhelpful_streak)
        return UserTurn(self._say())


def tolerated_streak(conversation: Conversation, persona: Persona, names: Names | None = None) -> int:
    """The longest run of unhelpful wizard turns the human of ``conversation`` answered (see the module docstring).

    ``persona`` is the group's (its emergency and escalation traits decide what counts as help; its
    patience does not matter).
    """
    human = [t.text for t in conversation.turns if t.role == "user" and t.text.strip()]
    if not human:
        return 0
    scenario = replay_scenario(conversation, persona.name, task_facts(conversation, names))
    scenario = scenario.model_copy(
        update={"user": scenario.user.model_copy(update={"persona": PersonaSpec(inline=persona)})}
    )
    listener = _Listener(persona, human)
    replay(listener, conversation, scenario, np.random.default_rng(0))
    return max(listener.streaks, default=0)


def fit_patience(streaks: Sequence[int], quantile: float = PATIENCE_QUANTILE) -> PatienceFit:
    """A group's patience from the runs its humans tolerated: their ``quantile`` quantile (an observed run)."""
    if not streaks:
        raise EnvsimError("no dialogues to fit patience on")
    runs = np.asarray(streaks, dtype=int)
    return PatienceFit(
        dialogues=len(runs),
        quantile=quantile,
        patience=min(MEASURE_PATIENCE, int(np.quantile(runs, quantile, method="higher"))),
        median=float(np.median(runs)),
        longest=int(runs.max()),
    )


def with_patience(calibration: Calibration, corpus_dir: str | Path) -> Calibration:
    """``calibration`` with each group's :class:`~envsim.calibrate.PatienceFit`, measured on its fitting dialogues."""
    from envsim.transcripts.importers import read

    personas = {p.name: p for p in persona_entries(calibration, patience=MEASURE_PATIENCE)}
    names = Names()
    runs: dict[str, list[int]] = {name: [] for name in calibration.groups}
    for conversation in read(CORPUS, Path(corpus_dir) / CORPUS):
        if is_heldout(conversation.corpus, conversation.id):
            continue
        group = classify(conversation)
        if group in runs and any(t.role == "user" for t in conversation.turns):  # the dialogues the fit counts
            runs[group].append(tolerated_streak(conversation, personas[group], names))
    groups = {
        name: fit.model_copy(update={"patience": fit_patience(runs[name])}) for name, fit in calibration.groups.items()
    }
    return calibration.model_copy(update={"groups": groups})
