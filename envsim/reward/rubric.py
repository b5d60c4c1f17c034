"""A rubric: named reward components and their weights, combined into one reward."""

from __future__ import annotations

from collections.abc import Mapping

from envsim.reward import components
from envsim.reward.base import ComponentResult, RewardBreakdown, RewardContext, RewardFn
from envsim.scenario import Scenario
from envsim.trajectory import Trajectory

COMPONENTS: dict[str, RewardFn] = {
    "final_state": components.final_state,
    "required_statements": components.required_statements,
    "forbidden_actions": components.forbidden_actions,
    "escalation": components.escalation,
}
"""Reward components by the name scenario files use in ``reward.weights``."""


class Rubric:
    """Weighted reward components; the total is the weighted mean of their scores.

    Components with weight 0 are still computed and reported (metrics).
    """

    def __init__(self, weights: Mapping[str, float], functions: Mapping[str, RewardFn] | None = None) -> None:
        table = dict(functions or COMPONENTS)
        unknown = [name for name in weights if name not in table]
        if unknown:
            raise ValueError(f"unknown reward components: {', '.join(unknown)}")
        self.weights = dict(weights)
        self.functions = {name: table[name] for name in weights}
        self._norm = sum(self.weights.values())

    @classmethod
    def for_scenario(cls, scenario: Scenario) -> Rubric:
        """The rubric a scenario's ``reward`` section describes."""
        return cls({str(name): weight for name, weight in scenario.reward.weights.items()})

    def evaluate(self, trajectory: Trajectory, context: RewardContext) -> RewardBreakdown:
        """Score every component and combine them."""
        parts: dict[str, ComponentResult] = {}
        total = 0.0
        for name, fn in self.functions.items():
            result = fn(trajectory, context)
            weight = self.weights[name]
            parts[name] = ComponentResult(score=result.score, weight=weight, explanation=result.explanation)
            total += weight * result.score
        return RewardBreakdown(total=total / self._norm if self._norm else 0.0, components=parts)
