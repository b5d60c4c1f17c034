"""Business KPIs: containment, resolution, customer effort, and the measures of every breakdown."""

from __future__ import annotations

import math

import pytest

from envsim.env import ScenarioEnv
from envsim.reward import kpis
from envsim.scenario import Scenario
from envsim.trajectory import Usage
from tests.conftest import DISPATCH, LOOKUP
from tests.reward.builders import DISPATCH_OK, LOOKUP_OK, call, calls, context, say, tiny, trajectory

HANDOFF = call("transfer_to_human", escalation=True, reason="other", summary="Needs a person.")


def test_containment() -> None:
    required = context(tiny())
    optional = context(tiny(escalation="optional"))
    assert kpis.containment(trajectory(calls(DISPATCH_OK)), required).score == 1.0
    assert kpis.containment(trajectory(say("Calm down.")), optional).explanation == (
        "contained: ended without a hand-off"
    )
    handed_off = kpis.containment(trajectory(calls(HANDOFF), end_reason="agent_ended"), optional)
    assert handed_off.score == 0.0
    assert handed_off.explanation == "handed off (transfer_to_human) though no hand-off was required"


def test_resolution_through_the_environment(tiny_env: ScenarioEnv) -> None:
    tiny_env.reset(seed=0)
    tiny_env.step(LOOKUP)
    tiny_env.step(DISPATCH)
    resolved = kpis.resolution(tiny_env.trajectory(), tiny_env._reward_context)
    assert resolved.score == 1.0 and resolved.explanation == "resolved: expected state, ended by the required hand-off"
    tiny_env.reset(seed=0)
    tiny_env.step(LOOKUP)
    unresolved = kpis.resolution(tiny_env.trajectory(), tiny_env._reward_context)
    assert unresolved.score == 0.0
    assert unresolved.explanation == "not resolved: the final state differs from the expected state"


def test_resolution_needs_a_satisfied_user_when_the_user_closes() -> None:
    scenario = tiny("", "", escalation="optional").model_copy(deep=True)
    scenario.expected.actions = scenario.expected.actions[:1]  # a read only: the world must stay unchanged
    ctx = context(scenario)
    unchanged = ctx.expected_final_hash()
    assert kpis.resolution(trajectory(say("Done."), final_state_hash=unchanged), ctx).score == 1.0
    gave_up = trajectory(say("Please hold."), final_state_hash=unchanged, affects=["calm", "frustrated"])
    assert kpis.resolution(gave_up, ctx).explanation == "not resolved: the user left frustrated"
    relieved = trajectory(say("Done."), final_state_hash=unchanged, affects=["angry", "relieved"])
    assert kpis.resolution(relieved, ctx).score == 1.0
    cut = trajectory(say("Done."), final_state_hash=unchanged, end_reason="max_turns")
    assert kpis.resolution(cut, ctx).explanation == "not resolved: the episode ended by max_turns"


@pytest.mark.parametrize(
    ("affects", "score"),
    [
        (["angry", "frustrated", "calm"], 1.0),
        (["calm", "relieved"], 1.0),
        (["panicked", "calm", "panicked"], 0.5),
        (["panicked", "angry"], 0.5),  # equally distressed
        (["calm", "confused"], 0.0),
        (["relieved", "angry"], 0.0),
    ],
)
def test_customer_effort_compares_the_last_affect_with_the_first(affects: list[str], score: float) -> None:
    assert kpis.customer_effort(trajectory(affects=affects), context(tiny())).score == score


@pytest.mark.parametrize(
    ("affects", "why"),
    [
        ([], "0 affect(s) recorded: nothing to compare"),
        (["calm"], "1 affect(s) recorded: nothing to compare"),
        (["calm", "elated"], "unknown affect 'elated'"),
    ],
)
def test_customer_effort_cannot_judge_without_two_known_affects(affects: list[str], why: str) -> None:
    result = kpis.customer_effort(trajectory(affects=affects), context(tiny()))
    assert not result.judged and math.isnan(result.score) and result.explanation == why


def test_the_distress_scale_covers_the_persona_affects() -> None:
    from typing import get_args

    from envsim.user.persona import Affect

    assert set(kpis.DISTRESS) == set(get_args(Affect))


def test_measures_count_turns_calls_errors_and_usage_per_role(tiny_scenario: Scenario) -> None:
    ctx = context(tiny_scenario)
    t = trajectory(
        calls(call("lookup_patient", ok=False, phone="1")),
        calls(LOOKUP_OK),
        calls(DISPATCH_OK),
        end_reason="agent_ended",
        affects=["panicked", "calm"],
        usage={
            "agent": Usage(prompt_tokens=1000, completion_tokens=200, cost=0.01, calls=3),
            "user": Usage(prompt_tokens=500, completion_tokens=50, cost=0.002, calls=2),
        },
    )
    judge = {
        "judge": Usage(prompt_tokens=300, completion_tokens=30, cost=0.003, calls=1),
        "user": Usage(prompt_tokens=100, calls=1),
    }
    m = kpis.measures(t, ctx, judge)
    assert m["turns"] == 3.0 and m["tool_calls"] == 3.0 and m["tool_errors"] == 1.0
    assert m["tool_error_rate"] == pytest.approx(1 / 3)
    assert m["resolution"] == 0.0 and m["turns_to_resolution"] is None  # the hash is not the expected one
    assert m["containment"] == 1.0 and m["customer_effort"] == 1.0
    assert m["agent.prompt_tokens"] == 1000 and m["agent.cost"] == 0.01 and m["agent.calls"] == 3
    assert m["user.prompt_tokens"] == 600 and m["user.calls"] == 3  # the extra usage adds to the trajectory's
    assert m["judge.completion_tokens"] == 30
    assert m["tokens"] == 1200 + 650 + 330 and m["cost"] == pytest.approx(0.015)


def test_measures_of_an_empty_episode() -> None:
    m = kpis.measures(trajectory(end_reason="running"), context(tiny()))
    assert m["tool_error_rate"] is None and m["customer_effort"] is None and m["tokens"] == 0.0 and m["cost"] == 0.0


def test_turns_to_resolution_when_resolved(tiny_env: ScenarioEnv) -> None:
    tiny_env.reset(seed=0)
    tiny_env.step("What is your phone number?")
    tiny_env.step(LOOKUP)
    tiny_env.step(DISPATCH)
    m = kpis.measures(tiny_env.trajectory(), tiny_env._reward_context)
    assert m["resolution"] == 1.0 and m["turns_to_resolution"] == 3.0
