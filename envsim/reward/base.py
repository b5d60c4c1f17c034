"""The reward signature and its result types."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict

from envsim.runtime import ScenarioRuntime, Session
from envsim.scenario import Scenario
from envsim.trajectory import Trajectory


@dataclass(frozen=True)
class ComponentScore:
    """A component's score in [0, 1] and why."""

    score: float
    explanation: str


@dataclass
class RewardContext:
    """What a reward component may consult besides the trajectory: the scenario and its runtime."""

    runtime: ScenarioRuntime
    _replay: Session | None = field(default=None, repr=False)

    @property
    def scenario(self) -> Scenario:
        """The scenario being scored."""
        return self.runtime.scenario

    def expected_final_hash(self) -> str:
        """Replay the expected actions on a fresh initial world and hash the result."""
        if self._replay is None:
            self._replay = self.runtime.session()
        session = self._replay
        session.reset()
        session.replay(self.scenario.expected.actions)
        return session.world.state_hash()


RewardFn = Callable[[Trajectory, RewardContext], ComponentScore]
"""The one reward signature: ``(trajectory, context) -> ComponentScore``."""


class ComponentResult(BaseModel):
    """One component in a breakdown."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    score: float
    weight: float
    explanation: str


class RewardBreakdown(BaseModel):
    """The total reward and every component that went into it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    total: float
    components: dict[str, ComponentResult]
