"""Located errors for the reward section and the reward criteria of ``expected``.

Each case is the tiny emergency scenario with a few lines added (``expected`` extras after
line 28, then a ``reward:`` section); the expectations are the exact ``envsim validate`` lines.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from envsim.errors import ScenarioError
from envsim.loader import load_scenario_text
from envsim.reward import custom
from tests.reward.builders import tiny_text


@pytest.fixture(autouse=True)
def only_the_test_module_allowed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(custom.ENV_VAR, raising=False)
    monkeypatch.setattr(custom, "_ALLOWED", {"tests.reward.custom_rewards"})
    yield


def problems(expected: str = "", reward: str = "") -> list[str]:
    with pytest.raises(ScenarioError) as info:
        load_scenario_text(tiny_text(expected, reward))
    return [str(p) for p in info.value.problems]


def test_a_gate_naming_an_unknown_component() -> None:
    assert problems(reward="  gates: [final_state, escalaton]\n") == [
        "<string>:30:24: reward.gates.1: unknown reward component 'escalaton' (did you mean 'escalation'?)",
    ]


def test_an_unknown_weighted_component_with_did_you_mean() -> None:
    assert problems(reward="  components: {final_stat: 1, escalation: 1}\n") == [
        "<string>:30:16: reward.components.final_stat: unknown reward component 'final_stat' "
        "(did you mean 'final_state'?)",
    ]


def test_an_unknown_metric_without_a_close_name() -> None:
    assert problems(reward="  metrics: [happiness]\n") == [
        "<string>:30:13: reward.metrics.0: unknown reward component 'happiness'",
    ]


def test_a_component_listed_twice() -> None:
    assert problems(reward="  gates: [final_state, final_state]\n") == [
        "<string>:30:24: reward.gates.1: final_state is listed twice",
    ]


def test_the_old_weights_keep_their_message() -> None:
    assert problems(reward="  weights: {final_state: 1, escalaton: 1}\n") == [
        "<string>:30:29: reward.weights.escalaton: unknown key 'escalaton' (did you mean 'escalation'?)",
    ]


def test_weights_and_components_together() -> None:
    assert problems(reward="  weights: {final_state: 1}\n  components: {final_state: 1}\n") == [
        "<string>:30:3: reward: give 'components' or the older 'weights', not both",
    ]


def test_a_disallowed_module_reference() -> None:
    assert problems(reward='  custom: {policy: "os:system"}\n  metrics: [policy]\n') == [
        "<string>:30:20: reward.custom.policy: module 'os' is not allowed to provide reward functions; "
        "allow it with ENVSIM_REWARD_MODULES=os or envsim.reward.allow_reward_module('os')",
    ]


def test_a_malformed_reference_and_a_wrong_signature() -> None:
    reward = (
        '  custom:\n    a: "tests.reward.custom_rewards"\n    b: "tests.reward.custom_rewards:three"\n'
        "  metrics: [a, b]\n"
    )
    assert problems(reward=reward) == [
        "<string>:31:8: reward.custom.a: must be a 'module:function' reference (e.g. acme.rewards:policy), "
        "got 'tests.reward.custom_rewards'",
        "<string>:32:8: reward.custom.b: reward function tests.reward.custom_rewards:three must take exactly "
        "(trajectory, context) and return a ComponentScore; it takes (trajectory: 'Trajectory', "
        "context: 'RewardContext', scenario: 'Any') -> 'ComponentScore'",
    ]


def test_custom_names_must_be_new_and_snake_case() -> None:
    reward = (
        '  custom:\n    final_state: "tests.reward.custom_rewards:polite"\n'
        '    Polite: "tests.reward.custom_rewards:polite"\n'
    )
    assert problems(reward=reward) == [
        "<string>:31:5: reward.custom.final_state: custom component 'final_state' has the name of a built-in component",
        "<string>:32:5: reward.custom.Polite: custom component name 'Polite' must be snake_case",
    ]


def test_a_custom_component_without_a_role_is_never_called() -> None:
    reward = '  custom: {polite: "tests.reward.custom_rewards:polite"}\n'
    assert problems(reward=reward) == [
        "<string>:30:12: reward.custom.polite: custom component 'polite' is never called: name it in "
        "reward.gates, reward.components or reward.metrics",
    ]


def test_an_allowed_custom_component_is_valid() -> None:
    reward = '  custom: {polite: "tests.reward.custom_rewards:polite"}\n  metrics: [polite]\n'
    assert load_scenario_text(tiny_text(reward=reward)).reward.custom == {
        "polite": "tests.reward.custom_rewards:polite"
    }


def test_criteria_no_component_reads() -> None:
    assert problems("  required_actions: [lookup_patient]\n") == [
        "<string>:29:3: expected.required_actions: no reward component reads it: add required_actions to "
        "reward.gates, reward.components or reward.metrics",
    ]


def test_a_required_action_the_reference_solution_does_not_take() -> None:
    assert problems("  required_actions: [find_patient]\n", "  gates: [required_actions]\n") == [
        "<string>:29:22: expected.required_actions.0: required action find_patient() is not among the expected "
        "actions: the reference solution would fail it",
    ]


def test_required_actions_out_of_the_expected_order() -> None:
    expected = "  required_actions: [dispatch_emergency_services, lookup_patient]\n  required_actions_in_order: true\n"
    assert problems(expected, "  gates: [required_actions]\n") == [
        "<string>:29:51: expected.required_actions.1: required action lookup_patient() is not among the expected "
        "actions in this order: the reference solution would fail it",
    ]


def test_an_unknown_tool_in_the_reward_criteria() -> None:
    expected = (
        "  required_actions: [lookup_patinet]\n  claims: [{phrases: [sent], requires: [dispatch_emergency_service]}]\n"
    )
    assert problems(expected, "  metrics: [required_actions, no_false_claims]\n") == [
        "<string>:29:22: expected.required_actions.0.name: unknown tool 'lookup_patinet' "
        "(did you mean 'lookup_patient'?)",
        "<string>:30:41: expected.claims.0.requires.0.name: unknown tool 'dispatch_emergency_service' "
        "(did you mean 'dispatch_emergency_services'?)",
    ]


def test_an_argument_check_the_expected_action_fails() -> None:
    expected = (
        "  argument_checks:\n    - name: dispatch_emergency_services\n"
        "      checks: {emergency: {equals: cardiac_arrest}}\n"
    )
    assert problems(expected, "  metrics: [argument_checks]\n") == [
        "<string>:30:7: expected.argument_checks.0: expected action dispatch_emergency_services fails this check: "
        "emergency='unresponsive' (want equals 'cardiac_arrest')",
    ]


def test_bad_argument_rules() -> None:
    expected = (
        "  argument_checks:\n    - name: dispatch_emergency_services\n"
        '      checks: {details: {regex: "(unclosed"}, emergency: {equals: a, one_of: [b]}}\n'
    )
    assert problems(expected, "  metrics: [argument_checks]\n") == [
        "<string>:31:33: expected.argument_checks.0.checks.details.regex: invalid regular expression: "
        "missing ), unterminated subpattern at position 0",
        "<string>:31:58: expected.argument_checks.0.checks.emergency: give exactly one of 'equals', 'one_of' "
        "or 'regex'",
    ]


def test_a_regex_that_can_backtrack_for_ever() -> None:
    expected = (
        "  argument_checks:\n    - name: dispatch_emergency_services\n"
        '      checks: {details: {regex: "^(\\\\w+\\\\s?)*$"}}\n'
    )
    assert problems(expected, "  metrics: [argument_checks]\n") == [
        "<string>:31:33: expected.argument_checks.0.checks.details.regex: a repeated group that itself repeats "
        "(like (a+)+) can take exponential time; rewrite it",
    ]


def test_a_gated_hand_off_summary_the_expected_dispatch_fails() -> None:
    assert problems(reward="  gates: [handoff_summary]\n") == [
        "<string>:24:7: expected.actions.1: the expected dispatch_emergency_services fails the handoff_summary "
        "reward: the summary has 1 words (want at least 4)",
    ]


def test_components_without_criteria() -> None:
    assert problems(reward="  gates: []\n  components: {argument_checks: 1}\n") == [
        "<string>:31:3: reward.components: no gate or weighted component has criteria: every reward would be 1",
    ]


def test_nothing_counted() -> None:
    assert problems(reward="  gates: []\n  components: {}\n  metrics: [final_state]\n") == [
        "<string>:31:3: reward.components: no gate and no weighted component: every reward would be 0",
    ]


def test_the_success_threshold_is_a_share() -> None:
    assert problems(reward="  success_threshold: 1.5\n") == [
        "<string>:30:22: reward.success_threshold: Input should be less than or equal to 1",
    ]
