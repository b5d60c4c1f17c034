"""Reward functions for the custom-component tests (the module is allowed by the tests that use it)."""

from __future__ import annotations

from typing import Any

from envsim.reward import ComponentScore, RewardContext
from envsim.trajectory import Trajectory


def polite(trajectory: Trajectory, context: RewardContext) -> ComponentScore:
    """1 when the agent said please at least once."""
    said = any("please" in text.lower() for text in trajectory.agent_texts())
    return ComponentScore(1.0 if said else 0.0, "said please" if said else "never said please")


def positional_only(trajectory: Trajectory, context: RewardContext, /) -> ComponentScore:
    """The signature with positional-only parameters is fine too."""
    return ComponentScore(1.0, "ok")


def three(trajectory: Trajectory, context: RewardContext, scenario: Any) -> ComponentScore:
    """Asks for an injected argument: refused."""
    return ComponentScore(1.0, "ok")


def keywords(**kwargs: Any) -> ComponentScore:
    """Takes anything by name: refused."""
    return ComponentScore(1.0, "ok")


def defaulted(trajectory: Trajectory, context: RewardContext | None = None) -> ComponentScore:
    """A default on the context: refused."""
    return ComponentScore(1.0, "ok")


def not_a_score(trajectory: Trajectory, context: RewardContext) -> float:
    """Returns a bare number: the rubric refuses it when scoring."""
    return 1.0


NOT_CALLABLE = 3
