"""Reward functions for the custom-component tests (the module is allowed by the tests that use it)."""

from __future__ import annotations

import math
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


def raises(trajectory: Trajectory, context: RewardContext) -> ComponentScore:
    """A reward with a bug: it raises."""
    return ComponentScore(len(trajectory.agent_texts()) / 0, "never")


def bare_nan(trajectory: Trajectory, context: RewardContext) -> float:
    """Returns NaN instead of a ComponentScore."""
    return math.nan


def a_string(trajectory: Trajectory, context: RewardContext) -> str:
    """Returns a string."""
    return "excellent"


def out_of_range(trajectory: Trajectory, context: RewardContext) -> ComponentScore:
    """Builds a score of 1.5: ComponentScore refuses it, so the function raises."""
    return ComponentScore(1.5, "too good")


def bad_explanation(trajectory: Trajectory, context: RewardContext) -> ComponentScore:
    """A score with an explanation that is not text."""
    return ComponentScore(1.0, {"why": "ok"})  # type: ignore[arg-type]


def cannot_judge(trajectory: Trajectory, context: RewardContext) -> ComponentScore:
    """A custom judge whose model did not answer: a judge_error, as for the built-in judge."""
    return ComponentScore.could_not_judge("the model timed out")
