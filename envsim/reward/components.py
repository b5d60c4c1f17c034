"""The verifiable reward components of the core."""

from __future__ import annotations

import re

from envsim.reward.base import ComponentScore, RewardContext
from envsim.trajectory import Trajectory

_SPACE = re.compile(r"\s+")


def _normalise(text: str) -> str:
    return _SPACE.sub(" ", text.lower()).strip()


def final_state(trajectory: Trajectory, context: RewardContext) -> ComponentScore:
    """1 when the final world equals the expected actions replayed on a fresh world (any path counts)."""
    expected = context.expected_final_hash()
    if trajectory.final_state_hash == expected:
        return ComponentScore(1.0, "final state matches the expected state")
    return ComponentScore(0.0, "final state differs from the expected state")


def required_statements(trajectory: Trajectory, context: RewardContext) -> ComponentScore:
    """The share of required statements the agent said (any accepted phrasing, case-insensitive)."""
    statements = context.scenario.expected.required_statements
    if not statements:
        return ComponentScore(1.0, "no required statements")
    said = " \n ".join(_normalise(t) for t in trajectory.agent_texts())
    missing = [s.any_of[0] for s in statements if not any(_normalise(p) in said for p in s.any_of)]
    score = 1.0 - len(missing) / len(statements)
    if not missing:
        return ComponentScore(score, f"all {len(statements)} required statements said")
    return ComponentScore(score, "not said: " + "; ".join(repr(m) for m in missing))


def forbidden_actions(trajectory: Trajectory, context: RewardContext) -> ComponentScore:
    """0 when the agent attempted any forbidden call, else 1."""
    patterns = context.scenario.expected.forbidden_actions
    hits = [c for c in trajectory.tool_calls if any(p.matches(c.name, c.arguments) for p in patterns)]
    if hits:
        return ComponentScore(0.0, "forbidden: " + ", ".join(f"{c.name} (turn {c.turn})" for c in hits))
    return ComponentScore(1.0, "no forbidden action taken")


def escalation(trajectory: Trajectory, context: RewardContext) -> ComponentScore:
    """Whether the episode escalated (hand-off or dispatch) exactly when the scenario requires it."""
    rule = context.scenario.expected.escalation
    done = [c.name for c in trajectory.tool_calls if c.ok and c.escalation]
    if rule == "required":
        return ComponentScore(1.0, f"escalated ({done[0]})") if done else ComponentScore(0.0, "did not escalate")
    if rule == "forbidden":
        return ComponentScore(0.0, f"escalated ({done[0]}) needlessly") if done else ComponentScore(1.0, "contained")
    return ComponentScore(1.0, "escalation optional")
