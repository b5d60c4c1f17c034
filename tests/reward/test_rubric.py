"""The rubric: gates, weights, metrics, outcomes, measures, custom and judge components."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator

import pytest

from envsim.env import ScenarioEnv
from envsim.registration import load_registered
from envsim.reward import COMPONENTS, ComponentScore, RewardBreakdown, RewardContext, RewardFn, Rubric, custom
from envsim.scenario import RewardSpec
from envsim.trajectory import Trajectory, Usage
from tests.conftest import DISPATCH, LOOKUP
from tests.reward.builders import context, say, tiny, trajectory


def fixed(score: float, why: str = "fixed", usage: Usage | None = None) -> ComponentScore:
    return ComponentScore(score, why, usage=usage)


def constant(score: ComponentScore) -> RewardFn:
    def component(trajectory: Trajectory, context: RewardContext) -> ComponentScore:
        return score

    return component


@pytest.fixture
def reset_allowed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(custom.ENV_VAR, raising=False)
    monkeypatch.setattr(custom, "_ALLOWED", set())
    yield


def test_a_panic_call_completed_as_a_sale_fails_the_escalation_gate() -> None:
    env = ScenarioEnv(load_registered("MedicalSupplyPanicCaller"))
    env.reset(seed=0)
    prescriptions = env.session.world.to_dict()["prescriptions"]
    rx = next(k for k, p in prescriptions.items() if p["status"] == "active" and p["refills_left"] > 0)
    env.step(
        json.dumps(
            {
                "name": "create_equipment_order",
                "arguments": {"patient_id": prescriptions[rx]["patient_id"], "prescription_id": rx},
            }
        )
    )
    terminated = truncated = False
    while not (terminated or truncated):  # the phrase without a dispatch never satisfies the caller (issue 19)
        *_, terminated, truncated, info = env.step("Your order is placed. Help is on the way. Anything else?")
    breakdown = env.score()
    assert env.trajectory().tool_calls[0].ok  # the sale went through
    assert breakdown.gates["escalation"] is False and breakdown.gates["forbidden_actions"] is False
    assert info["end_reason"] != "user_done" or info["outcome"] == "failure"  # no satisfied close without dispatch
    assert breakdown.total == 0.0 and breakdown.outcome in ("failure", "truncated") and breakdown.carries_reward
    assert breakdown.components["escalation"].gate and breakdown.components["escalation"].score == 0.0


def test_the_reference_path_passes_every_gate(tiny_env: ScenarioEnv) -> None:
    tiny_env.reset(seed=0)
    tiny_env.step(LOOKUP)
    obs, reward, *_, info = tiny_env.step(
        {
            "role": "assistant",
            "content": "Help is on the way.",
            "tool_calls": [{"id": "x", "function": json.loads(DISPATCH)}],
        }
    )
    breakdown = tiny_env.score()
    assert breakdown.gates == {"final_state": True, "forbidden_actions": True, "escalation": True}
    assert reward == breakdown.total == 1.0 and breakdown.outcome == "success"
    assert breakdown.measures["resolution"] == 1.0 and breakdown.measures["tool_calls"] == 2.0


def test_a_failed_gate_zeroes_an_otherwise_high_total() -> None:
    rubric = Rubric({"a": 3.0, "b": 1.0}, {"a": constant(fixed(1.0)), "b": constant(fixed(0.0))})
    ctx = context(tiny())
    assert rubric.evaluate(trajectory(), ctx).total == 0.75
    gated = Rubric({"a": 3.0}, {"a": constant(fixed(1.0)), "b": constant(fixed(0.99))}, gates=["b"])
    result = gated.evaluate(trajectory(), ctx)
    assert result.total == 0.0 and result.gates == {"b": False} and result.outcome == "failure"
    assert result.components["b"].weight == 0.0 and result.components["b"].gate


def test_gates_only_give_a_binary_reward() -> None:
    ctx = context(tiny())
    rubric = Rubric({}, {"g": constant(fixed(1.0))}, gates=["g"])
    assert rubric.evaluate(trajectory(), ctx).total == 1.0
    assert Rubric({}, {"m": constant(fixed(1.0))}, metrics=["m"]).evaluate(trajectory(), ctx).total == 0.0


def test_metrics_are_reported_with_weight_zero_and_do_not_move_the_total() -> None:
    rubric = Rubric({"a": 1.0}, {"a": constant(fixed(1.0)), "m": constant(fixed(0.0, "low"))}, metrics=["m"])
    result = rubric.evaluate(trajectory(), context(tiny()))
    assert result.total == 1.0 and result.components["m"].model_dump() == {
        "score": 0.0,
        "weight": 0.0,
        "explanation": "low",
        "gate": False,
        "judged": True,
    }


def test_the_success_threshold_decides_success_below_one() -> None:
    rubric = Rubric(
        {"a": 1.0, "b": 1.0}, {"a": constant(fixed(1.0)), "b": constant(fixed(0.5))}, success_threshold=0.75
    )
    assert rubric.evaluate(trajectory(), context(tiny())).outcome == "success"
    assert Rubric(rubric.weights, rubric.functions).evaluate(trajectory(), context(tiny())).outcome == "failure"


def test_a_judge_that_could_not_judge_makes_a_judge_error_and_its_usage_is_measured() -> None:
    spent = Usage(prompt_tokens=50, completion_tokens=5, cost=0.001, calls=2)
    judge = constant(ComponentScore.could_not_judge("the judge timed out", usage=spent))
    ctx = context(tiny())
    weighted = Rubric({"a": 1.0, "judge": 1.0}, {"a": constant(fixed(1.0)), "judge": judge})
    result = weighted.evaluate(trajectory(), ctx)
    assert result.outcome == "judge_error" and not result.carries_reward
    assert result.total == 0.5  # the missing judgement counts 0 (but the outcome says not to use it)
    assert math.isnan(result.components["judge"].score) and not result.components["judge"].judged
    assert result.measures["judge.prompt_tokens"] == 50 and result.measures["judge.calls"] == 2
    as_metric = Rubric({"a": 1.0}, {"a": constant(fixed(1.0)), "judge": judge}, metrics=["judge"])
    assert as_metric.evaluate(trajectory(), ctx).outcome == "success"
    as_gate = Rubric({"a": 1.0}, {"a": constant(fixed(1.0)), "judge": judge}, gates=["judge"])
    gated = as_gate.evaluate(trajectory(), ctx)
    assert gated.outcome == "judge_error" and gated.gates == {"judge": False}


def test_a_breakdown_with_nan_round_trips_through_json() -> None:
    judge = constant(ComponentScore.could_not_judge("no verdict"))
    result = Rubric({"judge": 1.0}, {"judge": judge}).evaluate(trajectory(), context(tiny()))
    again = RewardBreakdown.model_validate_json(result.model_dump_json())
    assert math.isnan(again.components["judge"].score) and again.outcome == "judge_error"


def test_faults_and_truncation_reach_the_outcome() -> None:
    rubric = Rubric({"a": 1.0}, {"a": constant(fixed(1.0))})
    ctx = context(tiny())
    assert rubric.evaluate(trajectory(fault="user revealed a fact"), ctx).outcome == "sim_fault"
    assert rubric.evaluate(trajectory(infra_error="API 500"), ctx).outcome == "infra_error"
    assert rubric.evaluate(trajectory(end_reason="max_turns"), ctx).outcome == "truncated"


def test_component_scores_must_be_in_range() -> None:
    for bad in (1.5, -0.1, math.inf):
        with pytest.raises(ValueError, match=r"must be in \[0, 1\]"):
            ComponentScore(bad, "x")


def test_a_component_returning_something_else_is_an_error() -> None:
    rubric = Rubric({"bad": 1.0}, {"bad": lambda t, c: 1.0})  # type: ignore[dict-item, return-value]
    with pytest.raises(TypeError, match="reward component 'bad' returned float, not a ComponentScore"):
        rubric.evaluate(trajectory(), context(tiny()))


def test_unknown_names_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown reward components: nope"):
        Rubric({"final_state": 1.0}, gates=["nope"])


def test_a_scenario_custom_component_from_an_allowed_module(reset_allowed: None) -> None:
    custom.allow_reward_module("tests.reward.custom_rewards")
    scenario = tiny(
        "", '  custom: {polite: "tests.reward.custom_rewards:polite"}\n  components: {final_state: 1, polite: 1}\n'
    )
    rubric = Rubric.for_scenario(scenario)
    assert list(rubric.functions) == ["final_state", "polite", "forbidden_actions", "escalation"]
    result = rubric.evaluate(trajectory(say("One moment please.")), context(scenario))
    assert result.components["polite"].score == 1.0
    custom.revoke_reward_module("tests.reward.custom_rewards")
    with pytest.raises(custom.RewardModuleError, match="is not allowed"):
        Rubric.for_scenario(scenario)


def test_the_scenario_rubric_uses_the_domain_gates(tiny_env: ScenarioEnv) -> None:
    assert tiny_env.rubric.gates == ("final_state", "forbidden_actions", "escalation")
    assert set(tiny_env.rubric.functions) <= set(COMPONENTS)


FAILING = {
    "raises": "raised ZeroDivisionError: division by zero",
    "bare_nan": "returned nan, not a ComponentScore(score, explanation)",
    "a_string": "returned 'excellent', not a ComponentScore(score, explanation)",
    "out_of_range": r"raised ValueError: a component score must be in [0, 1] (or NaN: could not judge), got 1.5",
    "bad_explanation": "returned an explanation that is not a string: "
    "ComponentScore(score=1.0, explanation={'why': 'ok'}, usage=None)",
    "not_a_score": "returned 1.0, not a ComponentScore(score, explanation)",
}


@pytest.mark.parametrize("role", ["gates: [tone]", "components: {final_state: 1, tone: 1}", "metrics: [tone]"])
@pytest.mark.parametrize("function", sorted(FAILING))
def test_a_failing_custom_reward_is_a_reward_error_whatever_its_role(
    reset_allowed: None, function: str, role: str
) -> None:
    custom.allow_reward_module("tests.reward.custom_rewards")
    scenario = tiny("", f'  custom: {{tone: "tests.reward.custom_rewards:{function}"}}\n  {role}\n')
    result = Rubric.for_scenario(scenario).evaluate(trajectory(say("Help is on the way.")), context(scenario))
    assert result.outcome == "reward_error" and not result.carries_reward
    part = result.components["tone"]
    assert math.isnan(part.score) and not part.judged
    assert part.explanation == f"reward_error: tests.reward.custom_rewards:{function} {FAILING[function]}"
    assert result.components["final_state"].judged  # the other components are still scored
    json.loads(result.model_dump_json())  # and the breakdown stays serialisable


def test_a_custom_judge_that_could_not_judge_is_a_judge_error(reset_allowed: None) -> None:
    custom.allow_reward_module("tests.reward.custom_rewards")
    scenario = tiny("", '  custom: {tone: "tests.reward.custom_rewards:cannot_judge"}\n  gates: [tone]\n')
    result = Rubric.for_scenario(scenario).evaluate(trajectory(), context(scenario))
    assert result.outcome == "judge_error" and result.components["tone"].explanation == "the model timed out"


def test_a_custom_component_with_no_role_is_refused(reset_allowed: None) -> None:
    custom.allow_reward_module("tests.reward.custom_rewards")
    spec = RewardSpec(custom={"tone": "tests.reward.custom_rewards:polite"}, gates=["final_state"])
    with pytest.raises(ValueError, match=r"reward\.custom\.tone: custom reward component 'tone' is never called"):
        Rubric.from_spec(spec)
