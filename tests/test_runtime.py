"""One replay of the expected actions serves the lint and the reward of the same scenario object."""

from __future__ import annotations

import gc

from envsim import runtime as runtime_module
from envsim.lint import lint_scenario
from envsim.registration import load_registered
from envsim.reward.base import RewardContext
from envsim.runtime import ScenarioRuntime, recalled_expected_hash
from envsim.scenario import Scenario, ToolCallSpec


def _replayed(scenario: Scenario) -> str:
    """The state hash after the expected actions, replayed on a fresh world (what the reward computes)."""
    session = ScenarioRuntime(scenario).session()
    session.replay(scenario.expected.actions)
    return session.world.state_hash()


def _fresh() -> Scenario:
    return load_registered("RetailCancelPendingOrder").model_copy(deep=True)


def test_the_reward_takes_the_lints_replay_of_the_same_scenario() -> None:
    scenario = _fresh()
    assert lint_scenario(scenario) == []
    context = RewardContext(runtime=ScenarioRuntime(scenario))
    assert context.expected_final_hash() == _replayed(scenario)
    assert context._replay is None  # no second replay
    assert _replayed(scenario) != ScenarioRuntime(scenario).initial_world.state_hash()  # the replay changes it


def test_a_scenario_changed_after_the_lint_is_replayed_again() -> None:
    scenario = _fresh()
    assert lint_scenario(scenario) == []
    linted = recalled_expected_hash(scenario)
    assert linted is not None
    scenario.expected.actions = [a for a in scenario.expected.actions if a.name != "cancel_order"]  # reads only
    assert recalled_expected_hash(scenario) is None
    context = RewardContext(runtime=ScenarioRuntime(scenario))
    assert context.expected_final_hash() == _replayed(scenario) == ScenarioRuntime(scenario).initial_world.state_hash()
    assert context._replay is not None and context.expected_final_hash() != linted


def test_changes_in_place_and_to_the_world_are_seen() -> None:
    scenario = _fresh()
    lint_scenario(scenario)
    scenario.expected.actions.append(ToolCallSpec(name="get_order", arguments={"order_id": "#W0001"}))
    assert recalled_expected_hash(scenario) is None
    lint_scenario(scenario)
    assert recalled_expected_hash(scenario) == _replayed(scenario)
    scenario.world.seed += 1
    assert recalled_expected_hash(scenario) is None
    scenario.world.seed -= 1
    scenario.toolkits.append("banking")
    assert recalled_expected_hash(scenario) is None


def test_only_the_linted_object_is_remembered_and_only_while_it_lives() -> None:
    scenario = _fresh()
    lint_scenario(scenario)
    assert recalled_expected_hash(scenario.model_copy(deep=True)) is None
    key = id(scenario)
    assert key in runtime_module._EXPECTED_HASHES
    del scenario
    gc.collect()
    assert key not in runtime_module._EXPECTED_HASHES
