"""Rewards: components scoring a trajectory, combined by the scenario's weights.

One signature for every component: ``(trajectory, context) -> ComponentScore``.
"""

from envsim.reward.base import ComponentScore, RewardBreakdown, RewardContext, RewardFn
from envsim.reward.rubric import COMPONENTS, Rubric

__all__ = ["COMPONENTS", "ComponentScore", "RewardBreakdown", "RewardContext", "RewardFn", "Rubric"]
