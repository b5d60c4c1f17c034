"""The reward section: domain defaults merged under a scenario's own keys."""

from __future__ import annotations

from typing import get_args

import pytest

from envsim.errors import ScenarioError
from envsim.registration import discover, load_registered
from envsim.reward import COMPONENTS
from envsim.reward.spec import domain_defaults, effective_reward_spec, parse_domain_defaults
from envsim.scenario import DEFAULT_WEIGHTS, RewardComponentName, RewardSpec
from tests.reward.builders import tiny


def test_the_schema_names_exactly_the_builtin_components() -> None:
    assert set(get_args(RewardComponentName)) == set(COMPONENTS)


def test_the_shipped_defaults_are_valid_and_name_known_components() -> None:
    defaults = domain_defaults()
    assert {"retail", "banking", "medical_supply"} <= set(defaults)
    for spec in defaults.values():
        names = [*(spec.gates or []), *spec.weighted(), *(spec.metrics or [])]
        assert set(names) <= set(COMPONENTS)
        assert spec.custom is None


@pytest.mark.parametrize("scenario_id", sorted(discover()))
def test_every_shipped_scenario_gets_its_domain_gates(scenario_id: str) -> None:
    scenario = load_registered(scenario_id)
    spec = effective_reward_spec(scenario)
    assert spec.gates == domain_defaults()[scenario.domain].gates
    assert spec.weighted() == {str(k): v for k, v in DEFAULT_WEIGHTS.items()}


def test_a_scenarios_keys_replace_the_domains_key_by_key() -> None:
    base = RewardSpec(
        gates=["final_state"], components={"final_state": 1.0}, metrics=["containment"], success_threshold=0.9
    )
    own = RewardSpec.model_validate({"gates": [], "metrics": ["resolution", "customer_effort"]})
    merged = own.over(base)
    assert merged.gates == [] and merged.weighted() == {"final_state": 1.0}
    assert merged.metrics == ["resolution", "customer_effort"] and merged.success_threshold == 0.9
    assert RewardSpec(success_threshold=1.0).over(base).success_threshold == 1.0  # given, even if the default


def test_old_weights_count_as_components_in_the_merge() -> None:
    own = RewardSpec.model_validate({"weights": {"final_state": 2, "escalation": 1}})
    merged = own.over(RewardSpec(components={"required_statements": 1.0}, gates=["escalation"]))
    assert merged.weighted() == {"final_state": 2.0, "escalation": 1.0} and merged.gates == ["escalation"]
    assert merged.weights is None


def test_nothing_given_anywhere_falls_back_to_the_default_weights() -> None:
    assert RewardSpec().over(RewardSpec()).weighted() == {str(k): v for k, v in DEFAULT_WEIGHTS.items()}


def test_an_unknown_domain_has_no_defaults() -> None:
    scenario = tiny().model_copy(update={"domain": "insurance"})
    assert effective_reward_spec(scenario).gates is None


def test_defaults_can_be_given_for_a_test() -> None:
    spec = effective_reward_spec(tiny(), {"medical_supply": RewardSpec(gates=["escalation"])})
    assert spec.gates == ["escalation"]


def test_a_bad_defaults_file_is_located() -> None:
    with pytest.raises(ScenarioError) as info:
        parse_domain_defaults("retail:\n  gatse: [final_state]\nbanking:\n  success_threshold: 2\n")
    assert [str(p) for p in info.value.problems] == [
        "<string>:2:3: retail.gatse: unknown field (did you mean 'gates'?)",
        "<string>:4:22: banking.success_threshold: Input should be less than or equal to 1",
    ]
    with pytest.raises(ScenarioError, match="a domain name starts with a letter"):
        parse_domain_defaults("_retail: {}\n")
    with pytest.raises(ScenarioError, match="must be a mapping of domain to reward section"):
        parse_domain_defaults("- retail\n")


FULL = """\
  required_actions:
    - find_customer_by_phone
    - {name: refund_items, arguments: {order_id: "#W0004"}}
  required_actions_in_order: true
  argument_checks:
    - name: refund_items
      checks: {reason: {one_of: [damaged, defective]}}
  claims:
    - phrases: ["return label has been emailed"]
      requires: [create_return, exchange_item]
  handoff_summary: {min_words: 8, keywords: ["#W0004"]}
reward:
  gates: [final_state, forbidden_actions, required_actions, no_false_claims]
  components: {final_state: 0.6, required_statements: 0.2, argument_checks: 0.2}
  metrics: [containment, resolution, customer_effort, handoff_summary]
  success_threshold: 0.9
"""


def test_the_documented_reward_section_loads_on_a_shipped_scenario_and_its_reference_succeeds() -> None:
    from envsim.agents import ScriptedAgent
    from envsim.env import ScenarioEnv
    from envsim.loader import load_scenario_text
    from envsim.rollout import run_episode
    from tests.conftest import REPO

    text = (REPO / "scenarios/retail/retail_refund_damaged_mug.yaml").read_text(encoding="utf-8")
    text = text.replace("  escalation: forbidden\n", "  escalation: forbidden\n" + FULL)
    scenario = load_scenario_text(text)
    assert scenario.reward.success_threshold == 0.9
    trajectory, breakdown = run_episode(ScenarioEnv(scenario), ScriptedAgent(), seed=0)
    assert breakdown.outcome == "success" and breakdown.total == 1.0
    assert breakdown.gates == dict.fromkeys(
        ["final_state", "forbidden_actions", "required_actions", "no_false_claims"], True
    )
    assert list(breakdown.components) == [
        "final_state",
        "required_statements",
        "argument_checks",
        "forbidden_actions",
        "required_actions",
        "no_false_claims",
        "containment",
        "resolution",
        "customer_effort",
        "handoff_summary",
    ]
