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

from collections.abc import Iterable
from dataclasses import dataclass

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
