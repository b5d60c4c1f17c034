"""The verifiable reward components: what the agent did, said, claimed and handed off.

Each is a :data:`~envsim.reward.base.RewardFn` reading the scenario's ``expected`` section:

- ``final_state``: the final world equals the expected actions replayed (any path counts);
- ``required_statements``: the share of required statements said;
- ``forbidden_actions``: no forbidden call attempted;
- ``escalation``: handed off (or dispatched) exactly when required;
- ``required_actions``: the share of required calls that succeeded (optionally in order);
- ``argument_checks``: successful calls satisfy per-argument rules (equals, one_of, regex);
- ``no_false_claims``: no claim of an action that was not taken (:mod:`envsim.reward.claims`);
- ``handoff_summary``: a needed hand-off was made with a useful summary.

The business KPIs (containment, resolution, customer effort) are in :mod:`envsim.reward.kpis`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from envsim.reward.base import ComponentScore, RewardContext
from envsim.reward.claims import false_claims
from envsim.scenario import CallPattern, HandoffSummary
from envsim.trajectory import ToolCallRecord, Trajectory

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


# -- verifiable components beyond the final state ------------------------------------------


def _succeeded(trajectory: Trajectory) -> list[ToolCallRecord]:
    return [c for c in trajectory.tool_calls if c.ok]


def _near_miss(pattern: CallPattern, calls: Sequence[ToolCallRecord]) -> str:
    """Why no call counted for ``pattern``: out of order, or a failed check ('' when none came close)."""
    if any(pattern.matches(call.name, call.arguments) for call in calls):
        return " (called, but out of order)"
    for call in calls:
        if pattern.selects(call.name, call.arguments):
            return f" (called with {'; '.join(pattern.failed_checks(call.arguments))})"
    return ""


def required_actions(trajectory: Trajectory, context: RewardContext) -> ComponentScore:
    """The share of ``expected.required_actions`` that succeeded (in order, with ``required_actions_in_order``).

    Any path counts: other calls before, between and after are fine. Without order, one call may
    satisfy several patterns; in order, the patterns are matched as a subsequence of the successful
    calls (earliest match first), and the share is the matched prefix.
    """
    expected = context.scenario.expected
    patterns = expected.required_actions
    if not patterns:
        return ComponentScore(1.0, "no required actions")
    done = _succeeded(trajectory)
    if expected.required_actions_in_order:
        matched = 0
        for call in done:
            if matched < len(patterns) and patterns[matched].matches(call.name, call.arguments):
                matched += 1
        missing = list(patterns[matched:])
    else:
        missing = [p for p in patterns if not any(p.matches(c.name, c.arguments) for c in done)]
    score = 1.0 - len(missing) / len(patterns)
    if not missing:
        order = " in order" if expected.required_actions_in_order else ""
        return ComponentScore(score, f"all {len(patterns)} required actions succeeded{order}")
    first = missing[0]
    what = "next in order" if expected.required_actions_in_order else "missing"
    return ComponentScore(score, f"{what}: {first.describe()}{_near_miss(first, done)}; {len(missing)} not done")


def argument_checks(trajectory: Trajectory, context: RewardContext) -> ComponentScore:
    """The share of ``expected.argument_checks`` that every successful call they select passes.

    A pattern selects calls by tool name and equal ``arguments``; each selected successful call
    must satisfy every rule in ``checks``. A pattern that selects no call passes (whether the call
    had to happen is for ``required_actions`` or ``final_state`` to say).
    """
    patterns = context.scenario.expected.argument_checks
    if not patterns:
        return ComponentScore(1.0, "no argument checks")
    done = _succeeded(trajectory)
    failures: list[str] = []
    for pattern in patterns:
        for call in done:
            if pattern.selects(call.name, call.arguments):
                failed = pattern.failed_checks(call.arguments)
                if failed:
                    failures.append(f"{call.name} (turn {call.turn}): {'; '.join(failed)}")
                    break
    score = 1.0 - len(failures) / len(patterns)
    if not failures:
        return ComponentScore(score, f"all {len(patterns)} argument checks hold")
    return ComponentScore(score, "failed: " + " | ".join(failures))


def no_false_claims(trajectory: Trajectory, context: RewardContext) -> ComponentScore:
    """0 when an agent message claims an action no successful call backs (see :mod:`envsim.reward.claims`)."""
    expected = context.scenario.expected
    problems = false_claims(trajectory, expected.claims, builtin=expected.builtin_claims)
    if problems:
        return ComponentScore(0.0, "false claim: " + " | ".join(problems))
    return ComponentScore(1.0, "every claimed action was taken")


_SUMMARY_ARGUMENTS = ("summary", "details")


def summary_text(arguments: Mapping[str, Any], argument: str | None = None) -> str:
    """The free text of a hand-off: ``argument``, else ``summary`` or ``details``, else the longest string.

    Example:
        >>> summary_text({"reason": "complaint", "summary": "Earbuds failed twice.", "subject_id": "C9005"})
        'Earbuds failed twice.'
    """
    if argument is not None:
        value = arguments.get(argument)
        return value if isinstance(value, str) else ""
    for name in _SUMMARY_ARGUMENTS:
        value = arguments.get(name)
        if isinstance(value, str):
            return value
    texts = [v for k, v in arguments.items() if isinstance(v, str) and not k.endswith("id")]
    return max(texts, key=len, default="")


def expected_subjects(context: RewardContext) -> list[str]:
    """The ids (string arguments named ``*_id``) of the scenario's expected hand-off or dispatch calls."""
    subjects: list[str] = []
    for action in context.scenario.expected.actions:
        flags = context.tool_flags(action.name)
        if flags is not None and flags.escalation:
            subjects += [v for k, v in action.arguments.items() if k.endswith("_id") and isinstance(v, str) and v]
    return subjects


def summary_problems(arguments: Mapping[str, Any], spec: HandoffSummary, subjects: Sequence[str]) -> list[str]:
    """What a hand-off with ``arguments`` lacks to be useful (empty: nothing).

    Example:
        >>> from envsim.scenario import HandoffSummary
        >>> summary_problems({"summary": "Customer angry.", "subject_id": "C1"}, HandoffSummary(), ["C1"])
        ['the summary has 2 words (want at least 4)']
    """
    text = summary_text(arguments, spec.argument)
    problems: list[str] = []
    words = len(text.split())
    if words < spec.min_words:
        where = f"the {spec.argument!r} argument" if spec.argument else "the summary"
        problems.append(f"{where} has {words} words (want at least {spec.min_words})")
    if spec.keywords:
        said = _normalise(text)
        if not any(_normalise(k) in said for k in spec.keywords):
            problems.append("the summary mentions none of " + ", ".join(repr(k) for k in spec.keywords))
    else:
        carried = _normalise(" ".join(str(v) for v in arguments.values()))
        missing = [s for s in subjects if _normalise(s) not in carried]
        if missing:
            problems.append(f"the hand-off does not name {missing[0]!r}")
    return problems


def handoff_summary(trajectory: Trajectory, context: RewardContext) -> ComponentScore:
    """1 for a hand-off (or dispatch) made when needed with a useful summary; 0 for one missing or needless.

    Useful: the summary has ``expected.handoff_summary.min_words`` words and mentions one of its
    ``keywords`` (without keywords: the hand-off names the expected subject ids). No hand-off when
    none is required scores 1.
    """
    expected = context.scenario.expected
    calls = [c for c in trajectory.tool_calls if c.ok and c.escalation]
    if not calls:
        if expected.escalation == "required":
            return ComponentScore(0.0, "did not hand off or dispatch")
        return ComponentScore(1.0, "no hand-off, none needed")
    call = calls[0]
    if expected.escalation == "forbidden":
        return ComponentScore(0.0, f"handed off ({call.name}) needlessly")
    problems = summary_problems(call.arguments, expected.handoff_summary, expected_subjects(context))
    if problems:
        return ComponentScore(0.0, f"{call.name}: " + "; ".join(problems))
    return ComponentScore(1.0, f"{call.name} with a useful summary")
