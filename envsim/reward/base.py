"""The reward signature and its result types.

Every component has one signature, ``(trajectory, context) -> ComponentScore``: a score in
[0, 1] and why. A component that cannot give a score (an LLM judge whose model failed)
returns a NaN score, :meth:`ComponentScore.could_not_judge`; the rubric then reports the
episode as ``judge_error`` instead of reading the NaN as a number. A component that was not
run at all (a scenario's judge, ``reward.judges``, in a run with no judge model) returns
:meth:`ComponentScore.not_run`: no score, left out of the total, and no error either.

Example:
    >>> ComponentScore(0.5, "half the statements said").judged
    True
    >>> ComponentScore.could_not_judge("the judge model timed out").judged
    False
    >>> skipped = ComponentScore.not_run("no judge model configured")
    >>> skipped.ran, skipped.judged
    (False, False)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from envsim.reward.outcome import Outcome, carries_reward
from envsim.runtime import ScenarioRuntime, Session, recalled_expected_hash
from envsim.scenario import Scenario
from envsim.tools import ToolFlags
from envsim.trajectory import Trajectory, Usage


@dataclass(frozen=True)
class ComponentScore:
    """A component's score in [0, 1] and why; a NaN score means it could not judge.

    ``usage`` is the model usage spent on computing the score (an LLM judge's tokens and
    cost); the rubric adds it to the breakdown's measures under the role ``judge``. ``ran`` is
    False for a component that was not run (:meth:`not_run`): its NaN score is no verdict at all.
    """

    score: float
    explanation: str
    usage: Usage | None = field(default=None, kw_only=True)
    ran: bool = field(default=True, kw_only=True, repr=False)

    def __post_init__(self) -> None:
        if not (math.isnan(self.score) or 0.0 <= self.score <= 1.0):
            raise ValueError(f"a component score must be in [0, 1] (or NaN: could not judge), got {self.score!r}")

    @property
    def judged(self) -> bool:
        """False when the component could not judge (a NaN score)."""
        return not math.isnan(self.score)

    @classmethod
    def could_not_judge(cls, explanation: str, *, usage: Usage | None = None) -> ComponentScore:
        """A result saying the component could not judge this trajectory (and why)."""
        return cls(math.nan, explanation, usage=usage)

    @classmethod
    def not_run(cls, explanation: str) -> ComponentScore:
        """A result saying the component was not run (and why): not a score, not an error."""
        return cls(math.nan, explanation, ran=False)


@dataclass
class RewardContext:
    """What a reward component may consult besides the trajectory: the scenario and its runtime."""

    runtime: ScenarioRuntime
    _replay: Session | None = field(default=None, repr=False)
    _expected_hash: str | None = field(default=None, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        """Everything but the replay session (a cache of :meth:`expected_final_hash`, built again when needed)."""
        state = dict(vars(self))
        state["_replay"] = None
        return state

    @property
    def scenario(self) -> Scenario:
        """The scenario being scored."""
        return self.runtime.scenario

    def expected_final_hash(self) -> str:
        """Replay the expected actions on a fresh initial world and hash the result (computed once)."""
        if self._expected_hash is not None:
            return self._expected_hash
        remembered = recalled_expected_hash(self.scenario)  # the lint's replay of this same scenario object
        if remembered is not None:
            self._expected_hash = remembered
            return remembered
        if self._replay is None:
            self._replay = self.runtime.session()
        session = self._replay
        session.reset()
        session.replay(self.scenario.expected.actions)
        self._expected_hash = session.world.state_hash()
        return self._expected_hash

    def tool_flags(self, name: str) -> ToolFlags | None:
        """The flags (write, escalation, ends_episode) of the scenario's tool ``name``; None if it has none."""
        for toolkit in self.runtime.toolkit_classes:
            spec = toolkit.tool_specs.get(name)
            if spec is not None:
                return spec.flags
        return None


RewardFn = Callable[[Trajectory, RewardContext], ComponentScore]
"""The one reward signature: ``(trajectory, context) -> ComponentScore``."""


class ComponentResult(BaseModel):
    """One component in a breakdown: its score, its weight, and whether it is a gate.

    ``score`` is NaN (and ``judged`` False) when the component could not judge, or was not run
    (``ran`` False: a scenario's judge without a judge model; left out of the total and the gates);
    in JSON the NaN is written as the string ``"NaN"``, which reads back as NaN.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, ser_json_inf_nan="strings")

    score: float
    weight: float
    explanation: str
    gate: bool = False
    judged: bool = True
    ran: bool = Field(
        True,
        exclude_if=lambda ran: ran is True,  # written only when False: records of components that ran are unchanged
        description="False when the component was not run (a judge without a judge model): no verdict at all.",
    )

    def shown(self, digits: int = 2) -> str:
        """The score for people: ``0.50``, ``could not judge`` or ``not run``.

        Example:
            >>> ComponentResult(score=float("nan"), weight=0.0, explanation="", judged=False, ran=False).shown()
            'not run'
        """
        if not self.ran:
            return "not run"
        return f"{self.score:.{digits}f}" if self.judged else "could not judge"


class RewardBreakdown(BaseModel):
    """The total reward, every component that went into it, which gates held, and the outcome.

    ``measures`` are numbers recorded about the episode, not scores (turns, tool calls, tokens
    and cost per role; see :func:`envsim.reward.kpis.measures`). A trainer uses ``total`` only
    when :attr:`carries_reward` (see :mod:`envsim.reward.outcome`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    total: float
    components: dict[str, ComponentResult]
    gates: dict[str, bool] = Field(default_factory=dict, description="Per gate, whether it held.")
    outcome: Outcome
    measures: dict[str, float | None] = Field(default_factory=dict, description="KPIs recorded as numbers.")

    @property
    def carries_reward(self) -> bool:
        """Whether ``total`` is evidence about the agent (success, failure or truncated)."""
        return carries_reward(self.outcome)
