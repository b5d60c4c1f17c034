"""Typed episode outcomes: whether a reward is evidence about the agent, and what kind.

An episode ends in exactly one :data:`Outcome`:

- ``infra_error``: the infrastructure failed (a model API, a timeout): ``trajectory.infra_error``;
- ``sim_fault``: the simulation failed (the user simulator broke character, leaked a fact):
  ``trajectory.fault``;
- ``reward_error``: a custom reward function (``reward.custom``) failed: it raised, or returned
  something other than a :class:`~envsim.reward.ComponentScore` with a score in [0, 1] (a bug
  in the reward, not in the agent; the explanation is in the breakdown);
- ``judge_error``: a reward component that counts (a gate, or weighted) could not judge (a judge
  that ran and failed; a scenario's judge that was not run, for want of a judge model, is no
  error: it is left out of the total, see :mod:`envsim.reward.judges`);
- ``truncated``: the turn limit ended the episode (``end_reason`` ``max_turns``), or it was
  scored before it ended (``running``, e.g. cut by Gymnasium's ``TimeLimit``);
- ``success``: every gate held and the total reached the scenario's ``success_threshold``;
- ``failure``: otherwise.

They are checked in that order: a broken episode says nothing about the agent, whatever else
happened. Only success, failure and truncated carry a reward (:func:`carries_reward`); a
trainer drops (masks) the others rather than learning from them.

Example:
    >>> from envsim.trajectory import Trajectory
    >>> t = Trajectory(scenario_id="X", seed=0, messages=[], end_reason="user_done")
    >>> decide_outcome(t, gates_held=True, total=1.0, success_threshold=1.0)
    'success'
    >>> decide_outcome(t.model_copy(update={"fault": "user revealed a fact unasked"}),
    ...                gates_held=True, total=1.0, success_threshold=1.0)
    'sim_fault'
    >>> carries_reward("sim_fault"), carries_reward("truncated")
    (False, True)
"""

from __future__ import annotations

from typing import Literal

from envsim.trajectory import Trajectory

Outcome = Literal["success", "failure", "sim_fault", "judge_error", "reward_error", "infra_error", "truncated"]
"""How an episode ended, for the purpose of learning from it."""

REWARD_CARRYING: frozenset[Outcome] = frozenset({"success", "failure", "truncated"})
"""The outcomes whose reward is evidence about the agent."""

THRESHOLD_TOLERANCE = 1e-9
"""Slack for float rounding when comparing the total with the success threshold."""


def decide_outcome(
    trajectory: Trajectory,
    *,
    gates_held: bool,
    total: float,
    success_threshold: float,
    unjudged: bool = False,
    reward_failed: bool = False,
) -> Outcome:
    """The outcome of an episode (see the module docstring for the order of the checks).

    Args:
        trajectory: The episode; its ``infra_error``, ``fault`` and ``end_reason`` are read.
        gates_held: Whether every gate held.
        total: The reward total.
        success_threshold: The scenario's ``reward.success_threshold``.
        unjudged: Whether a gate or weighted component could not judge.
        reward_failed: Whether a custom reward function failed.
    """
    if trajectory.infra_error is not None:
        return "infra_error"
    if trajectory.fault is not None:
        return "sim_fault"
    if reward_failed:
        return "reward_error"
    if unjudged:
        return "judge_error"
    if trajectory.end_reason in ("max_turns", "running"):
        return "truncated"
    if gates_held and total >= success_threshold - THRESHOLD_TOLERANCE:
        return "success"
    return "failure"


def carries_reward(outcome: Outcome) -> bool:
    """Whether an episode with this outcome gives a usable reward (success, failure, truncated)."""
    return outcome in REWARD_CARRYING
