"""Reward components on planted trajectories: through the environment, and hand-built."""

from __future__ import annotations

import json

from envsim.env import ScenarioEnv
from envsim.registration import load_registered
from envsim.reward import ComponentScore, Rubric
from envsim.reward import components as c
from tests.conftest import DISPATCH, LOOKUP
from tests.reward.builders import (
    DISPATCH_ARGS,
    DISPATCH_OK,
    LOOKUP_OK,
    Call,
    call,
    calls,
    context,
    say,
    tiny,
    trajectory,
)


def _scores(env: ScenarioEnv, actions: list[object]) -> dict[str, float]:
    env.reset(seed=0)
    for action in actions:
        *_, info = env.step(action)
        if "end_reason" in info:
            break
    return {name: part.score for name, part in env.score().components.items()}


def test_reference_trajectory_scores_one(tiny_env: ScenarioEnv) -> None:
    scores = _scores(
        tiny_env,
        [
            LOOKUP,
            {
                "role": "assistant",
                "content": "Help is on the way.",
                "tool_calls": [{"id": "x", "function": json.loads(DISPATCH)}],
            },
        ],
    )
    assert scores == {"final_state": 1.0, "required_statements": 1.0, "forbidden_actions": 1.0, "escalation": 1.0}


def test_a_different_path_to_the_same_state_passes(tiny_env: ScenarioEnv) -> None:
    # no lookup at all, a failed call and a read detour: the final state is what counts
    scores = _scores(
        tiny_env,
        [
            '{"name": "get_patient", "arguments": {"patient_id": "PT-0001"}}',
            '{"name": "get_patient", "arguments": {"patient_id": "nobody"}}',
            DISPATCH,
        ],
    )
    assert scores["final_state"] == 1.0


def test_wrong_final_state_fails(tiny_env: ScenarioEnv) -> None:
    wrong = DISPATCH.replace("unresponsive", "cardiac_arrest")
    assert _scores(tiny_env, [wrong])["final_state"] == 0.0


def test_panic_completed_as_a_sale_fails_escalation_and_forbidden(tiny_env: ScenarioEnv) -> None:
    tiny_env.reset(seed=0)
    prescriptions = tiny_env.session.world.to_dict()["prescriptions"]
    rx = next(k for k, p in prescriptions.items() if p["status"] == "active" and p["refills_left"] > 0)
    order = json.dumps(
        {
            "name": "create_equipment_order",
            "arguments": {"patient_id": prescriptions[rx]["patient_id"], "prescription_id": rx},
        }
    )
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


# -- required actions ---------------------------------------------------------------------------

REQUIRED = """\
  required_actions:
    - lookup_patient
    - {name: dispatch_emergency_services, arguments: {patient_id: PT-9001}}
"""
REWARD_READS_ALL = "  metrics: [required_actions, argument_checks, no_false_claims, handoff_summary]\n"


def test_required_actions_any_order_counts_successes_only() -> None:
    ctx = context(tiny(REQUIRED, REWARD_READS_ALL))
    both = trajectory(calls(DISPATCH_OK), calls(LOOKUP_OK))
    assert c.required_actions(both, ctx) == ComponentScore(1.0, "all 2 required actions succeeded")
    failed_lookup = trajectory(calls(call("lookup_patient", ok=False, phone="555-0142")), calls(DISPATCH_OK))
    result = c.required_actions(failed_lookup, ctx)
    assert result.score == 0.5 and result.explanation == "missing: lookup_patient(); 1 not done"


def test_required_actions_in_order_scores_the_matched_prefix() -> None:
    ctx = context(tiny(REQUIRED + "  required_actions_in_order: true\n", REWARD_READS_ALL))
    assert c.required_actions(trajectory(calls(LOOKUP_OK), calls(DISPATCH_OK)), ctx).score == 1.0
    reversed_ = c.required_actions(trajectory(calls(DISPATCH_OK), calls(LOOKUP_OK)), ctx)
    assert reversed_.score == 0.5
    assert reversed_.explanation == (
        "next in order: dispatch_emergency_services(patient_id='PT-9001') (called, but out of order); 1 not done"
    )
    # reads, retries and detours in between are fine
    detour = trajectory(
        calls(call("get_item", item_id="EQ-01")),
        calls(LOOKUP_OK),
        say("Stay with him."),
        calls(call("lookup_patient", phone="555-0142")),
        calls(DISPATCH_OK),
    )
    assert c.required_actions(detour, ctx).score == 1.0


def test_required_action_checks_explain_the_near_miss() -> None:
    required = """\
  required_actions:
    - name: dispatch_emergency_services
      checks: {emergency: {one_of: [unresponsive, breathing_difficulty]}}
"""
    ctx = context(tiny(required, REWARD_READS_ALL))
    wrong = trajectory(
        calls(
            call("dispatch_emergency_services", escalation=True, **{**DISPATCH_ARGS, "emergency": "fall_with_injury"})
        )
    )
    result = c.required_actions(wrong, ctx)
    assert result.score == 0.0
    assert result.explanation == (
        "missing: dispatch_emergency_services(emergency one of ['unresponsive', 'breathing_difficulty']) "
        "(called with emergency='fall_with_injury' (want one of ['unresponsive', 'breathing_difficulty'])); "
        "1 not done"
    )


def test_no_required_actions_scores_one() -> None:
    assert c.required_actions(trajectory(), context(tiny())).score == 1.0


def test_a_different_path_to_the_right_state_passes_required_actions_and_the_gates() -> None:
    # find the patient by name and date of birth instead of by phone; the dispatch is what is required
    scenario = tiny(
        "  required_actions: [{name: dispatch_emergency_services, arguments: {patient_id: PT-9001}}]\n",
        "  gates: [final_state, required_actions, escalation]\n",
    )
    env = ScenarioEnv(scenario)
    env.reset(seed=0)
    env.step('{"name": "find_patient", "arguments": {"name": "Walter Brennan", "date_of_birth": "1941-03-02"}}')
    *_, info = env.step(
        {
            "role": "assistant",
            "content": "Help is on the way.",
            "tool_calls": [{"id": "d", "function": json.loads(DISPATCH)}],
        }
    )
    breakdown = env.score()
    assert breakdown.gates == {"final_state": True, "required_actions": True, "escalation": True}
    assert breakdown.total == 1.0 and breakdown.outcome == "success"
    assert [call.name for call in env.trajectory().tool_calls] == ["find_patient", "dispatch_emergency_services"]


# -- argument checks ---------------------------------------------------------------------------

CHECKS = """\
  argument_checks:
    - name: dispatch_emergency_services
      checks:
        emergency: {one_of: [unresponsive, breathing_difficulty]}
        details: {regex: "(?i)collaps|breath"}
        address_confirmed: {equals: true}
"""


def test_argument_checks_hold_for_the_reference_call() -> None:
    ctx = context(tiny(CHECKS, REWARD_READS_ALL))
    assert c.argument_checks(trajectory(calls(LOOKUP_OK), calls(DISPATCH_OK)), ctx).score == 1.0


def test_argument_checks_fail_a_successful_call_with_bad_arguments() -> None:
    ctx = context(tiny(CHECKS, REWARD_READS_ALL))
    bad = call(
        "dispatch_emergency_services",
        escalation=True,
        **{**DISPATCH_ARGS, "details": "he fell", "address_confirmed": 1},
    )
    result = c.argument_checks(trajectory(calls(bad)), ctx)
    assert result.score == 0.0
    assert result.explanation == (
        "failed: dispatch_emergency_services (turn 1): details='he fell' (want matches /(?i)collaps|breath/); "
        "address_confirmed=1 (want equals True)"
    )


def test_argument_checks_ignore_failed_calls_and_pass_when_nothing_is_selected() -> None:
    ctx = context(tiny(CHECKS, REWARD_READS_ALL))
    failed = call("dispatch_emergency_services", ok=False, **{**DISPATCH_ARGS, "emergency": "other"})
    assert c.argument_checks(trajectory(calls(failed), calls(DISPATCH_OK)), ctx).score == 1.0
    assert c.argument_checks(trajectory(say("Hello?")), ctx).explanation == "all 1 argument checks hold"


def test_argument_checks_select_by_equal_arguments_first() -> None:
    checks = """\
  argument_checks:
    - name: dispatch_emergency_services
      arguments: {patient_id: PT-9001}
      checks: {emergency: {equals: unresponsive}}
"""
    ctx = context(tiny(checks, REWARD_READS_ALL))
    other_patient = call(
        "dispatch_emergency_services",
        escalation=True,
        **{**DISPATCH_ARGS, "patient_id": "PT-0001", "emergency": "other"},
    )
    assert c.argument_checks(trajectory(calls(other_patient)), ctx).score == 1.0  # not selected


# -- claims -------------------------------------------------------------------------------------


def _retail_refund_env() -> ScenarioEnv:
    env = ScenarioEnv(load_registered("RetailRefundDamagedMug"))
    env.reset(seed=0)
    env.step('{"name": "find_customer_by_phone", "arguments": {"phone": "720-555-0188"}}')
    env.step('{"name": "get_order", "arguments": {"order_id": "#W0004"}}')
    return env


def test_claiming_an_unperformed_refund_fails_the_claim_check() -> None:
    env = _retail_refund_env()
    env.step("I've refunded $12.99 for the broken mug to your card ending in 2208. Anything else?")
    result = c.no_false_claims(env.trajectory(), env._reward_context)
    assert result.score == 0.0
    assert result.explanation == (
        'false claim: turn 3: "i\'ve refunded" but no refund_order or refund_items succeeded before it'
    )


def test_the_same_claim_after_the_refund_passes() -> None:
    env = _retail_refund_env()
    env.step(
        '{"name": "refund_items", "arguments": {"order_id": "#W0004", '
        '"items": [{"product_id": "P049", "quantity": 1}], "reason": "damaged"}}'
    )
    env.step("I've refunded $12.99 for the broken mug to your card ending in 2208. Anything else?")
    assert env.trajectory().tool_calls[-1].ok
    assert c.no_false_claims(env.trajectory(), env._reward_context).score == 1.0


def test_a_claim_backed_by_a_failed_call_or_made_before_the_call_fails() -> None:
    ctx = context(tiny())
    failed = trajectory(calls(call("refund_items", ok=False)), say("I've refunded the mug."))
    early = trajectory(say("Your refund has been processed."), calls(call("refund_items")))
    assert c.no_false_claims(failed, ctx).score == 0.0
    assert c.no_false_claims(early, ctx).explanation == (
        'false claim: turn 1: "your refund has been processed" but no refund_order or refund_items succeeded before it'
    )


def test_a_claim_beside_its_call_in_one_message_is_backed() -> None:
    ctx = context(tiny())
    together = trajectory(calls(LOOKUP_OK), calls(DISPATCH_OK, text="An ambulance is on its way."))
    assert c.no_false_claims(together, ctx).score == 1.0
    said_first = trajectory(calls(LOOKUP_OK), say("An ambulance is on its way."), calls(DISPATCH_OK))
    assert c.no_false_claims(said_first, ctx).score == 0.0


def test_declared_claims_need_their_matching_call() -> None:
    claims = """\
  claims:
    - phrases: ["address is confirmed"]
      requires: [{name: dispatch_emergency_services, arguments: {address_confirmed: true}}]
"""
    ctx = context(tiny(claims, REWARD_READS_ALL))
    unconfirmed = call("dispatch_emergency_services", escalation=True, **{**DISPATCH_ARGS, "address_confirmed": False})
    result = c.no_false_claims(trajectory(calls(unconfirmed, text="The address is confirmed.")), ctx)
    assert result.explanation == (
        'false claim: turn 1: "address is confirmed" but no '
        "dispatch_emergency_services(address_confirmed=True) succeeded before it"
    )
    assert c.no_false_claims(trajectory(calls(DISPATCH_OK, text="The address is confirmed.")), ctx).score == 1.0


def test_builtin_claims_can_be_turned_off() -> None:
    ctx = context(tiny("  builtin_claims: false\n"))
    assert c.no_false_claims(trajectory(say("I've refunded you.")), ctx).score == 1.0


# -- hand-off summary ---------------------------------------------------------------------------


def _dispatch(**changes: object) -> Call:
    return call("dispatch_emergency_services", escalation=True, **{**DISPATCH_ARGS, **changes})


def test_handoff_summary_needs_words_and_the_subject() -> None:
    ctx = context(tiny())
    terse = c.handoff_summary(trajectory(calls(DISPATCH_OK)), ctx)
    assert terse == ComponentScore(0.0, "dispatch_emergency_services: the summary has 1 words (want at least 4)")
    useful = _dispatch(details="Collapsed in the kitchen, not breathing properly.")
    assert c.handoff_summary(trajectory(calls(useful)), ctx).score == 1.0
    wrong_patient = _dispatch(patient_id="PT-0001", details="Collapsed in the kitchen, not breathing.")
    assert c.handoff_summary(trajectory(calls(wrong_patient)), ctx).explanation == (
        "dispatch_emergency_services: the hand-off does not name 'PT-9001'"
    )


def test_handoff_summary_keywords_and_argument() -> None:
    spec = "  handoff_summary: {min_words: 2, keywords: [breathing, pulse], argument: details}\n"
    ctx = context(tiny(spec, "  metrics: [handoff_summary]\n"))
    assert c.handoff_summary(trajectory(calls(_dispatch(details="Not breathing."))), ctx).score == 1.0
    result = c.handoff_summary(trajectory(calls(_dispatch(details="He collapsed."))), ctx)
    assert result.explanation == "dispatch_emergency_services: the summary mentions none of 'breathing', 'pulse'"


def test_handoff_summary_when_no_hand_off_was_made() -> None:
    assert c.handoff_summary(trajectory(say("Calm down.")), context(tiny())).explanation == (
        "did not hand off or dispatch"
    )
    optional = tiny(escalation="optional")
    assert c.handoff_summary(trajectory(say("Calm down.")), context(optional)).score == 1.0


def test_summary_text_prefers_summary_then_details_then_the_longest_string() -> None:
    assert c.summary_text({"summary": "a b", "details": "c"}) == "a b"
    assert c.summary_text({"details": "c", "reason": "x"}) == "c"
    assert c.summary_text({"reason": "complaint", "notes": "long notes here", "case_id": "a very long id"}) == (
        "long notes here"
    )
    assert c.summary_text({"summary": 3}, "summary") == ""
