"""A scenario's runtime: its initial world and sessions (a world fork plus its tools).

A :class:`Session` is made once and reset per episode: resetting drops the world's
changes in microseconds and keeps the toolkit objects and their table views.

Example:
    >>> from envsim.scenario import Scenario
    >>> from envsim.registration import load_registered
    >>> runtime = ScenarioRuntime(load_registered("RetailCancelPendingOrder"))
    >>> session = runtime.session()
    >>> results = session.replay(runtime.scenario.expected.actions)
    >>> all(r.ok for r in results)
    True
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from dataclasses import dataclass

import pydantic_core

from envsim.scenario import Scenario, ToolCallSpec
from envsim.toolkits import get_toolkit, initial_world
from envsim.tools import ToolRegistry, ToolResult
from envsim.world import World


@dataclass
class Session:
    """One world and the tools bound to it."""

    world: World
    tools: ToolRegistry

    def reset(self) -> None:
        """Back to the scenario's initial state."""
        self.world.reset()

    def replay(self, actions: Iterable[ToolCallSpec]) -> list[ToolResult]:
        """Run tool calls in order on this session (without resetting first)."""
        return [self.tools.call(action.name, action.arguments) for action in actions]


_EXPECTED_HASHES: dict[int, tuple[bytes, str]] = {}
"""Per live scenario object (by ``id``, dropped when it is collected): the replay's inputs and final hash."""


def _replay_inputs(scenario: Scenario) -> bytes:
    """What the expected actions' replay depends on: the toolkits, the world spec and the actions, as JSON."""
    return pydantic_core.to_json((scenario.toolkits, scenario.world, scenario.expected.actions))


def remember_expected_hash(scenario: Scenario, final_hash: str) -> None:
    """Record ``final_hash``, the state hash after replaying ``scenario``'s expected actions on a fresh initial
    world, so that :func:`recalled_expected_hash` answers for this scenario object until it changes.

    The lint replays the expected actions and the reward replays them again when the same scenario is
    then played (the factory's gate does both); one replay serves both.
    """
    key = id(scenario)
    if key not in _EXPECTED_HASHES:
        weakref.finalize(scenario, _EXPECTED_HASHES.pop, key, None)
    _EXPECTED_HASHES[key] = (_replay_inputs(scenario), final_hash)


def recalled_expected_hash(scenario: Scenario) -> str | None:
    """The hash :func:`remember_expected_hash` recorded for this very object, or ``None`` when there is none
    or its toolkits, world or expected actions changed since (scenarios are mutable models).

    Example:
        >>> from envsim.registration import load_registered
        >>> scenario = load_registered("RetailCancelPendingOrder").model_copy(deep=True)
        >>> remember_expected_hash(scenario, "ab")
        >>> recalled_expected_hash(scenario)
        'ab'
        >>> scenario.expected.actions[0].arguments["note"] = "changed"
        >>> recalled_expected_hash(scenario) is None
        True
    """
    remembered = _EXPECTED_HASHES.get(id(scenario))
    if remembered is None or remembered[0] != _replay_inputs(scenario):
        return None
    return remembered[1]


class ScenarioRuntime:
    """Builds a scenario's initial world once; hands out sessions on it."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        # a fork of the world every runtime of an equal scenario shares: changes to it stay here
        self.initial_world = initial_world(tuple(scenario.toolkits), scenario.world).fork()
        self.toolkit_classes = [get_toolkit(name) for name in scenario.toolkits]

    def session(self) -> Session:
        """A new session on a fresh fork of the initial world."""
        world = self.initial_world.fork()
        return Session(world, ToolRegistry([cls(world) for cls in self.toolkit_classes]))
