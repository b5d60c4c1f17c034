"""The interface every mock user implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from envsim.scenario import Scenario


@dataclass(frozen=True)
class UserTurn:
    """What the user says, whether the conversation is over for them, and how they feel.

    ``affect`` is the user's affect after this turn (an :data:`~envsim.user.persona.Affect`
    name), for simulators that track it; ``None`` when they do not. ``fault`` says why the
    turn is still a simulator fault after regeneration (see :mod:`envsim.user.faults`);
    ``None`` for a good turn. An episode with a faulty user turn is a ``sim_fault``.
    """

    text: str
    done: bool = False
    affect: str | None = None
    fault: str | None = None


class UserSimulator(ABC):
    """A mock user: opens the conversation, then answers each agent message.

    All randomness must come from the ``rng`` given to :meth:`reset` (the environment's
    seeded generator), so that episodes are reproducible.
    """

    @abstractmethod
    def reset(self, scenario: Scenario, rng: np.random.Generator) -> str:
        """Start a conversation; return the user's opening message."""

    @abstractmethod
    def reply(self, agent_message: str, messages: Sequence[dict[str, Any]]) -> UserTurn:
        """Answer one agent message (``messages`` is the conversation so far)."""

    async def areply(self, agent_message: str, messages: Sequence[dict[str, Any]]) -> UserTurn:
        """The async form of :meth:`reply`, for asyncio runners; users backed by a model override it."""
        return self.reply(agent_message, messages)
