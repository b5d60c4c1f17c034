"""Reward components on planted trajectories."""

from __future__ import annotations

import json

from envsim.env import ScenarioEnv
from envsim.reward import Rubric
from tests.conftest import DISPATCH, LOOKUP


def _scores(env: ScenarioEnv, actions: list[object]) -> dict[str, float]:
    env.reset(seed=0)
    for action in actions:
        *_, info = env.step(action)
        if "end_reason" in info:
            break
    return {name: part.score for name, part in env.score().components.items()}


def test_reference_trajectory_scores_one(tiny_env: ScenarioEnv) -> None:
    scores = _scores(tiny_env, [LOOKUP, {"role": "assistant", "content": "Help is on the way.",
                                         "tool_calls": [{"id": "x", "function": json.loads(DISPATCH)}]}])
    assert scores == {"final_state": 1.0, "required_statements": 1.0, "forbidden_actions": 1.0, "escalation": 1.0}


def test_a_different_path_to_the_same_state_passes(tiny_env: ScenarioEnv) -> None:
    # no lookup at all, a failed call and a read detour: the final state is what counts
    scores = _scores(tiny_env, ['{"name": "get_patient", "arguments": {"patient_id": "PT-0001"}}',
                                '{"name": "get_patient", "arguments": {"patient_id": "nobody"}}', DISPATCH])
    assert scores["final_state"] == 1.0


def test_wrong_final_state_fails(tiny_env: ScenarioEnv) -> None:
    wrong = DISPATCH.replace("unresponsive", "cardiac_arrest")
    assert _scores(tiny_env, [wrong])["final_state"] == 0.0


def test_panic_completed_as_a_sale_fails_escalation_and_forbidden(tiny_env: ScenarioEnv) -> None:
    tiny_env.reset(seed=0)
    prescriptions = tiny_env.session.world.to_dict()["prescriptions"]
    rx = next(k for k, p in prescriptions.items() if p["status"] == "active" and p["refills_left"] > 0)
    order = json.dumps({"name": "create_equipment_order",
                        "arguments": {"patient_id": prescriptions[rx]["patient_id"], "prescription_id": rx}})
    scores = _scores(tiny_env, [order, "Your order is placed. Anything else?"])
    assert tiny_env.trajectory().tool_calls[0].ok  # the sale went through
    assert scores["escalation"] == 0.0 and scores["forbidden_actions"] == 0.0 and scores["final_state"] == 0.0


def test_required_statements_are_a_share(tiny_env: ScenarioEnv) -> None:
    assert _scores(tiny_env, ["Please hold.", DISPATCH])["required_statements"] == 0.0
    assert _scores(tiny_env, ["HELP   is on\nthe way", DISPATCH])["required_statements"] == 1.0


def test_weights_combine_and_zero_weights_are_metrics(tiny_env: ScenarioEnv) -> None:
    tiny_env.reset(seed=0)
    tiny_env.step(DISPATCH)
    trajectory = tiny_env.trajectory()
    rubric = Rubric({"final_state": 1.0, "required_statements": 0.0})
    result = rubric.evaluate(trajectory, tiny_env._reward_context)
    assert result.total == 1.0 and result.components["required_statements"].score == 0.0
