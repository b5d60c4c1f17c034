"""The interface every mock user implements, and the rule that ends a conversation.

**Endings are rules.** A mock user is satisfied when the scenario's goal is verifiably met, not
when a phrase appears (:func:`satisfied`): the environment attaches a goal check to the user
(:meth:`UserSimulator.attach_goal`, :meth:`envsim.env.ScenarioEnv.goal_met`) that compares the
session's state hash with the expected final state (the scenario's expected actions replayed on a
fresh world, the hash the ``final_state`` reward compares with). While the world is not in that
state the user is not satisfied, whatever the agent says; the scenario's ``satisfied_by`` phrases,
when it lists any, must also be said. A scenario whose expected state is its initial state (nothing
to write: ``expected.no_change``, or only reads) gives no evidence in the world: there the phrase
rule decides (and the world must still be as it was). Otherwise the user follows its persona's
patience (nudge, demand a person, give up). A hand-off or dispatch that ends the episode ends it on
the environment's side.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
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


GoalCheck = Callable[[], bool | None]
"""The world's verdict on a scenario's goal (:meth:`envsim.env.ScenarioEnv.goal_met`): ``True``: the
expected writes are done (the state is the expected final state, which differs from the initial
one); ``False``: the state is not the expected final state; ``None``: no evidence (the expected
final state is the initial state, and the world is in it)."""


def satisfied(world: bool | None, phrases: Sequence[str], heard: str) -> bool:
    """Whether the user is satisfied: the ending rule of the offline mock users (see the module docstring).

    Args:
        world: The world's verdict (:data:`GoalCheck`; ``None`` also when no check is attached).
        phrases: The scenario's ``satisfied_by`` phrases, lower-cased.
        heard: What the user read of the agent's message, lower-cased.

    Never while the world says the goal is unmet; with phrases, one of them must be in ``heard``;
    without phrases, the world must say the goal is met.

    Example:
        >>> satisfied(False, ("help is on the way",), "help is on the way!")
        False
        >>> satisfied(True, ("anything else",), "is there anything else?"), satisfied(True, ("anything else",), "done")
        (True, False)
        >>> satisfied(None, ("already refunded",), "it was already refunded"), satisfied(None, (), "bye")
        (True, False)
        >>> satisfied(True, (), "done")
        True
    """
    if world is False:
        return False
    if phrases:
        return any(p in heard for p in phrases)
    return world is True


class UserSimulator(ABC):
    """A mock user: opens the conversation, then answers each agent message.

    All randomness must come from the ``rng`` given to :meth:`reset` (the environment's
    seeded generator), so that episodes are reproducible. The environment attaches its goal
    check (:meth:`attach_goal`) before each :meth:`reset`; a user decides its ending with
    :meth:`goal_met` and :func:`satisfied`.
    """

    _world_goal: GoalCheck | None = None

    def attach_goal(self, goal: GoalCheck | None) -> None:
        """Let the user see whether the scenario's goal is met in the world (``None``: detach; the phrases decide)."""
        self._world_goal = goal

    def goal_met(self) -> bool | None:
        """The attached goal check's verdict now (:data:`GoalCheck`); ``None`` when none is attached."""
        return None if self._world_goal is None else self._world_goal()

    @abstractmethod
    def reset(self, scenario: Scenario, rng: np.random.Generator) -> str:
        """Start a conversation; return the user's opening message."""

    @abstractmethod
    def reply(self, agent_message: str, messages: Sequence[dict[str, Any]]) -> UserTurn:
        """Answer one agent message (``messages`` is the conversation so far)."""

    async def areply(self, agent_message: str, messages: Sequence[dict[str, Any]]) -> UserTurn:
        """The async form of :meth:`reply`, for asyncio runners; users backed by a model override it."""
        return self.reply(agent_message, messages)
