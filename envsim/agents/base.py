"""The policy interface the runners use, whatever drives the agent."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from envsim.scenario import Scenario


class Policy(ABC):
    """An agent: reset per episode, then one action per observation.

    An action is a string (a message, or a JSON tool call) or an OpenAI assistant message
    dict; see :mod:`envsim.actions`.
    """

    @abstractmethod
    def reset(self, scenario: Scenario, rng: np.random.Generator) -> None:
        """Prepare for an episode of ``scenario``; draw randomness only from ``rng``."""

    @abstractmethod
    def act(self, observation: str, info: dict[str, Any]) -> str | dict[str, Any]:
        """The next action."""

    def reseed(self, seed: int | None) -> None:
        """Take the episode seed a runner plans (reproducible sampling); agents without sampling ignore it."""
        return None

    async def aact(self, observation: str, info: dict[str, Any]) -> str | dict[str, Any]:
        """The async form of :meth:`act`, for asyncio runners; model-backed agents override it."""
        return self.act(observation, info)
