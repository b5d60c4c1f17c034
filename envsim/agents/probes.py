"""Probe agents of the scenario factory's gate: what a scenario must not reward.

- :class:`DoNothingAgent` only sends polite, non-committal text: no tool call, no promise, no
  question about the customer's details. A scenario it solves checks nothing.
- :class:`TrapAgent` plays the reference plan (:class:`~envsim.agents.scripted.ScriptedAgent`)
  but also makes one of the scenario's forbidden calls before it ends. A scenario it solves
  does not punish the trap.

Example:
    >>> from envsim.env import ScenarioEnv
    >>> from envsim.rollout import run_episode
    >>> env = ScenarioEnv("RetailRefundDamagedMug")
    >>> run_episode(env, DoNothingAgent(), seed=0)[1].outcome
    'failure'
    >>> run_episode(env, TrapAgent(0), seed=0)[1].outcome
    'failure'
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from envsim.agents.base import Policy
from envsim.agents.scripted import ScriptedAgent, _complete
from envsim.scenario import Scenario, ToolCallSpec

NON_COMMITTAL: tuple[str, ...] = (
    "I understand.",
    "Thank you for your patience.",
    "I see, thank you for explaining.",
    "Okay.",
)
"""What the do-nothing agent says, in turn."""


class DoNothingAgent(Policy):
    """An agent that never acts: it cycles through :data:`NON_COMMITTAL` lines."""

    def __init__(self) -> None:
        self._turn = 0

    def reset(self, scenario: Scenario, rng: np.random.Generator) -> None:
        """Start over (it draws nothing)."""
        self._turn = 0

    def act(self, observation: str, info: dict[str, Any]) -> str:
        """The next non-committal line."""
        line = NON_COMMITTAL[self._turn % len(NON_COMMITTAL)]
        self._turn += 1
        return line


class TrapAgent(ScriptedAgent):
    """The reference plan plus the scenario's forbidden call number ``forbidden`` before the plan ends.

    The forbidden call's arguments are its pattern's own, then those of the expected actions where
    the names match, then plausible values for any other required argument (as the scripted
    agent's own mistakes are made).
    """

    def __init__(self, forbidden: int = 0) -> None:
        super().__init__()
        self.forbidden = forbidden

    def reset(self, scenario: Scenario, rng: np.random.Generator) -> None:
        """The reference plan with the forbidden call inserted before its last step (or its hand-off)."""
        super().reset(scenario, rng)
        patterns = scenario.expected.forbidden_actions
        if not patterns:
            return
        pattern = patterns[self.forbidden % len(patterns)]
        known: dict[str, Any] = {}
        for action in scenario.expected.actions:
            known.update(action.arguments)
        arguments = _complete(
            pattern.name, ToolCallSpec(name=pattern.name, arguments=known), pattern.arguments, scenario.toolkits
        )
        call = json.dumps({"name": pattern.name, "arguments": arguments}, ensure_ascii=False)
        final = next((i for i, step in enumerate(self._plan) if isinstance(step, dict)), len(self._plan) - 1)
        self._plan.insert(max(final, 0), call)
