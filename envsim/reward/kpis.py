"""Business KPIs: containment, resolution, customer effort, and numbers recorded per episode.

Three KPIs are reward components (usable as gates, weighted, or listed under ``metrics``):

- ``containment``: 1 when the episode ended without a hand-off (or dispatch) that was not
  needed; 0 for a needless one; 1 when the scenario requires one (containment is not
  expected then);
- ``resolution``: 1 when the final state is the expected one and the episode ended well: the
  user closed the conversation (and, where affects are recorded, not in distress), or the
  required hand-off ended it;
- ``customer_effort``: from the mock user's affect trajectory (``trajectory.affects``): 1 when
  the user ended calmer than they began, 0.5 the same, 0 more distressed (:data:`DISTRESS`);
  it cannot judge (NaN) with fewer than two affects or an affect it does not know.

:func:`measures` records numbers, not scores, for every episode: these three KPIs, turns,
turns to resolution, tool calls and their error rate, and tokens, cost and model calls per
role (``trajectory.usage``, plus the usage reported by judge components).

Example:
    >>> from envsim.trajectory import Trajectory
    >>> t = Trajectory(scenario_id="X", seed=0, messages=[], affects=["angry", "frustrated", "calm"])
    >>> effort(t)
    ComponentScore(score=1.0, explanation='ended calmer than it began (angry -> calm)', usage=None)
"""

from __future__ import annotations

from collections.abc import Mapping

from envsim.reward.base import ComponentScore, RewardContext
from envsim.reward.components import final_state
from envsim.trajectory import Trajectory, Usage

DISTRESS: dict[str, int] = {
    "relieved": 0,
    "calm": 1,
    "confused": 2,
    "frustrated": 3,
    "angry": 4,
    "panicked": 4,
}
"""How distressed each user affect is (the persona affects of :mod:`envsim.user.persona`)."""

UNRESOLVED_AFFECTS = frozenset({"confused", "frustrated", "angry", "panicked"})
"""Affects in which a user who closed the conversation did not leave satisfied (e.g. gave up)."""


def _escalations(trajectory: Trajectory) -> list[str]:
    return [c.name for c in trajectory.tool_calls if c.ok and c.escalation]


def containment(trajectory: Trajectory, context: RewardContext) -> ComponentScore:
    """1 unless the episode handed off (or dispatched) when no hand-off was required."""
    if context.scenario.expected.escalation == "required":
        return ComponentScore(1.0, "a hand-off was required (containment not expected)")
    done = _escalations(trajectory)
    if done:
        return ComponentScore(0.0, f"handed off ({done[0]}) though no hand-off was required")
    return ComponentScore(1.0, "contained: ended without a hand-off")


def resolution(trajectory: Trajectory, context: RewardContext) -> ComponentScore:
    """1 when the final state matches and the user closed satisfied (or the required hand-off ended it)."""
    if final_state(trajectory, context).score < 1.0:
        return ComponentScore(0.0, "not resolved: the final state differs from the expected state")
    if trajectory.end_reason == "user_done":
        last = trajectory.affects[-1] if trajectory.affects else None
        if last in UNRESOLVED_AFFECTS:
            return ComponentScore(0.0, f"not resolved: the user left {last}")
        return ComponentScore(1.0, "resolved: expected state, and the user closed the conversation")
    required = context.scenario.expected.escalation == "required"
    if trajectory.end_reason == "agent_ended" and required and _escalations(trajectory):
        return ComponentScore(1.0, "resolved: expected state, ended by the required hand-off")
    return ComponentScore(0.0, f"not resolved: the episode ended by {trajectory.end_reason}")


def effort(trajectory: Trajectory) -> ComponentScore:
    """Customer effort from the affect trajectory alone (see :func:`customer_effort`)."""
    affects = trajectory.affects
    unknown = [a for a in affects if a not in DISTRESS]
    if unknown:
        return ComponentScore.could_not_judge(f"unknown affect {unknown[0]!r}")
    if len(affects) < 2:
        return ComponentScore.could_not_judge(f"{len(affects)} affect(s) recorded: nothing to compare")
    first, last = affects[0], affects[-1]
    change = DISTRESS[last] - DISTRESS[first]
    if change < 0:
        return ComponentScore(1.0, f"ended calmer than it began ({first} -> {last})")
    if change == 0:
        return ComponentScore(0.5, f"ended as it began ({first} -> {last})")
    return ComponentScore(0.0, f"ended more distressed than it began ({first} -> {last})")


def customer_effort(trajectory: Trajectory, context: RewardContext) -> ComponentScore:
    """1 when the user ended calmer than they began, 0.5 the same, 0 more distressed; NaN without affects."""
    return effort(trajectory)


def _judged(score: ComponentScore) -> float | None:
    return score.score if score.judged else None


def measures(
    trajectory: Trajectory, context: RewardContext, extra_usage: Mapping[str, Usage] | None = None
) -> dict[str, float | None]:
    """Numbers about an episode (None where one is undefined), recorded in every breakdown.

    Keys: ``containment``, ``resolution``, ``customer_effort`` (the KPI scores), ``turns``,
    ``turns_to_resolution`` (None unless resolved), ``tool_calls``, ``tool_errors``,
    ``tool_error_rate`` (None without calls), and per role in ``trajectory.usage`` and
    ``extra_usage`` (added to it): ``<role>.prompt_tokens``, ``<role>.completion_tokens``,
    ``<role>.cost``, ``<role>.calls``; then ``tokens`` and ``cost`` over all roles.
    """
    resolved = resolution(trajectory, context).score
    calls = len(trajectory.tool_calls)
    errors = sum(not c.ok for c in trajectory.tool_calls)
    out: dict[str, float | None] = {
        "containment": containment(trajectory, context).score,
        "resolution": resolved,
        "customer_effort": _judged(effort(trajectory)),
        "turns": float(trajectory.turns),
        "turns_to_resolution": float(trajectory.turns) if resolved == 1.0 else None,
        "tool_calls": float(calls),
        "tool_errors": float(errors),
        "tool_error_rate": errors / calls if calls else None,
    }
    usage = dict(trajectory.usage)
    for role, more in (extra_usage or {}).items():
        usage[role] = usage[role] + more if role in usage else more
    for role, used in usage.items():
        out[f"{role}.prompt_tokens"] = float(used.prompt_tokens)
        out[f"{role}.completion_tokens"] = float(used.completion_tokens)
        out[f"{role}.cost"] = used.cost
        out[f"{role}.calls"] = float(used.calls)
    out["tokens"] = float(sum(u.total_tokens for u in usage.values()))
    out["cost"] = sum(u.cost for u in usage.values())
    return out
