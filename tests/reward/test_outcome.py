"""Typed outcomes: which one an episode gets, and which carry a reward."""

from __future__ import annotations

from typing import get_args

import pytest

from envsim.reward.outcome import REWARD_CARRYING, Outcome, carries_reward, decide_outcome
from envsim.trajectory import EndReason
from tests.reward.builders import trajectory


def outcome(
    end: EndReason = "user_done",
    *,
    fault: str | None = None,
    infra: str | None = None,
    held: bool = True,
    total: float = 1.0,
    threshold: float = 1.0,
    unjudged: bool = False,
    reward_failed: bool = False,
) -> Outcome:
    t = trajectory(end_reason=end, fault=fault, infra_error=infra)
    return decide_outcome(
        t, gates_held=held, total=total, success_threshold=threshold, unjudged=unjudged, reward_failed=reward_failed
    )


def test_success_needs_the_gates_and_the_threshold() -> None:
    assert outcome() == "success"
    assert outcome("agent_ended", total=0.8, threshold=0.75) == "success"
    assert outcome(total=0.8) == "failure"
    assert outcome(held=False) == "failure"
    assert outcome(total=1.0 - 1e-12) == "success"  # float rounding of a weighted mean


def test_truncated_when_the_turn_limit_or_no_end_stopped_it() -> None:
    assert outcome("max_turns") == "truncated"
    assert outcome("running", held=False, total=0.0) == "truncated"


def test_faults_come_first_in_this_order() -> None:
    assert outcome("max_turns", fault="user broke character", infra="API timeout", unjudged=True) == "infra_error"
    assert outcome("max_turns", fault="user broke character", unjudged=True, reward_failed=True) == "sim_fault"
    assert outcome("max_turns", unjudged=True, reward_failed=True) == "reward_error"
    assert outcome("max_turns", unjudged=True) == "judge_error"


@pytest.mark.parametrize("kind", get_args(Outcome))
def test_only_success_failure_and_truncated_carry_a_reward(kind: Outcome) -> None:
    assert carries_reward(kind) == (kind in {"success", "failure", "truncated"})
    assert (kind in REWARD_CARRYING) == carries_reward(kind)


def test_every_outcome_has_its_place_and_colour_in_the_report() -> None:
    from envsim.report import OUTCOME_COLORS, OUTCOME_ORDER

    assert sorted(OUTCOME_ORDER) == sorted(OUTCOME_COLORS) == sorted(get_args(Outcome))
