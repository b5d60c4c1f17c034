"""pass@k, pass^k and flakiness: closed forms, brute force over k-subsets, and the pandas helpers."""

from __future__ import annotations

import math
from fractions import Fraction
from itertools import combinations

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from envsim.reward.trials import flakiness, overall, pass_at_k, pass_hat_k, summarize_trials, trial_table


@st.composite
def trials(draw: st.DrawFn) -> tuple[list[bool], int]:
    """A list of trial results (success or not) and a k between 1 and its length."""
    results = draw(st.lists(st.booleans(), min_size=1, max_size=12))
    return results, draw(st.integers(min_value=1, max_value=len(results)))


@given(trials())
def test_pass_hat_k_is_the_share_of_k_subsets_that_all_succeed(case: tuple[list[bool], int]) -> None:
    results, k = case
    subsets = list(combinations(results, k))
    brute = Fraction(sum(all(s) for s in subsets), len(subsets))
    assert pass_hat_k(len(results), sum(results), k) == float(brute)


@given(trials())
def test_pass_at_k_is_the_share_of_k_subsets_with_a_success(case: tuple[list[bool], int]) -> None:
    results, k = case
    subsets = list(combinations(results, k))
    brute = Fraction(sum(any(s) for s in subsets), len(subsets))
    assert pass_at_k(len(results), sum(results), k) == float(brute)


@given(st.lists(st.booleans(), min_size=2, max_size=12))
def test_flakiness_is_the_share_of_disagreeing_pairs(results: list[bool]) -> None:
    pairs = list(combinations(results, 2))
    brute = Fraction(sum(a != b for a, b in pairs), len(pairs))
    assert flakiness(len(results), sum(results)) == pytest.approx(float(brute), abs=1e-15)


@pytest.mark.parametrize(
    ("n", "c", "k"), [(10, 3, 1), (10, 3, 2), (10, 3, 3), (10, 3, 4), (8, 8, 5), (8, 0, 2), (20, 17, 7), (5, 4, 5)]
)
def test_pass_hat_k_matches_the_closed_form(n: int, c: int, k: int) -> None:
    assert pass_hat_k(n, c, k) == math.comb(c, k) / math.comb(n, k)
    assert pass_at_k(n, c, k) == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k))


def test_known_values() -> None:
    assert pass_hat_k(10, 3, 2) == pytest.approx(3 / 45)  # C(3,2)/C(10,2)
    assert pass_at_k(10, 3, 2) == pytest.approx(1 - 21 / 45)  # 1 - C(7,2)/C(10,2)
    assert pass_at_k(4, 1, 4) == 1.0 and pass_hat_k(4, 3, 4) == 0.0
    assert flakiness(4, 4) == 0.0 and flakiness(2, 1) == 1.0


@pytest.mark.parametrize(
    ("n", "c", "k", "message"),
    [
        (0, 0, 1, "at least one trial"),
        (3, 4, 1, "successes must be between"),
        (3, 1, 0, "k must be between"),
        (3, 1, 4, "k must be between"),
    ],
)
def test_bad_arguments(n: int, c: int, k: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        pass_at_k(n, c, k)
    with pytest.raises(ValueError, match=message):
        pass_hat_k(n, c, k)


def test_flakiness_needs_two_trials() -> None:
    with pytest.raises(ValueError, match="at least two trials"):
        flakiness(1, 1)


def test_summary_per_scenario_with_nan_where_k_exceeds_the_trials() -> None:
    frame = pd.DataFrame(
        {
            "scenario_id": ["A", "A", "A", "B", "B", "C"],
            "seed": [0, 1, 2, 0, 1, 0],
            "success": [True, False, True, True, True, False],
        }
    )
    summary = summarize_trials(frame, ks=(1, 3))
    assert summary["trials"].to_dict() == {"A": 3, "B": 2, "C": 1}
    assert summary.loc["A", "pass^3"] == 0.0 and summary.loc["A", "pass@3"] == 1.0
    assert summary.loc["A", "pass^1"] == pytest.approx(2 / 3) and summary.loc["A", "flakiness"] == pytest.approx(2 / 3)
    assert summary["pass^3"].isna().to_dict() == {"A": False, "B": True, "C": True}
    assert summary["flakiness"].isna().to_dict() == {"A": False, "B": False, "C": True}
    assert overall(summary)["pass^1"] == pytest.approx((2 / 3 + 1 + 0) / 3)


def test_identical_runs_group_by_scenario_and_seed() -> None:
    frame = pd.DataFrame({"scenario_id": ["A"] * 4, "seed": [0, 0, 1, 1], "success": [True, False, True, True]})
    summary = summarize_trials(frame, by=["scenario_id", "seed"])
    assert summary["flakiness"].to_dict() == {("A", 0): 1.0, ("A", 1): 0.0}


def test_outcomes_that_carry_no_reward_are_not_trials() -> None:
    frame = pd.DataFrame(
        {
            "scenario_id": ["A"] * 5,
            "outcome": ["success", "failure", "truncated", "sim_fault", "judge_error"],
        }
    )
    kept = trial_table(frame)
    assert kept["outcome"].tolist() == ["success", "failure", "truncated"]
    summary = summarize_trials(frame)
    assert summary.loc["A", "trials"] == 3 and summary.loc["A", "successes"] == 1


def test_a_table_needs_a_boolean_success_or_an_outcome() -> None:
    with pytest.raises(ValueError, match="needs an 'outcome' or a 'success' column"):
        summarize_trials(pd.DataFrame({"scenario_id": ["A"]}))
    with pytest.raises(ValueError, match="must be boolean"):
        summarize_trials(pd.DataFrame({"scenario_id": ["A"], "success": [1]}))
