"""One MCP session's episode (no MCP here): calls, the end of the episode, and what its reward judges."""

from __future__ import annotations

from envsim.reward import COMPONENTS, ComponentScore, Rubric
from envsim.reward.custom import GuardedReward
from envsim.serve.mcp_episode import McpScenario, not_applicable


def test_a_dispatch_ends_the_episode_and_the_reward_judges_the_tool_calls() -> None:
    """The reference solution of the panic call ends with a dispatch: success over the tool calls; later calls
    are not executed; the conversation parts (required statements, the empathy judge) are not applicable."""
    scenario = McpScenario.load("MedicalSupplyPanicCaller")
    episode = scenario.episode()
    for action in scenario.scenario.expected.actions:
        assert episode.call(action.name, action.arguments).ok
    assert episode.end_reason == "agent_ended"
    after = episode.call("lookup_patient", {"phone": "555-0142"})
    assert (after.ok, after.error_type) == (False, "not_executed")
    assert "dispatch_emergency_services ended it" in after.content
    reward = episode.reward()
    assert reward["end_reason"] == "agent_ended" and reward["tool_calls"] == 3
    assert reward["expected_state_reached"]
    breakdown = reward["breakdown"]
    assert breakdown["outcome"] == "success" and breakdown["total"] == 1.0
    assert set(reward["not_applicable"]) == {"required_statements", "empathy"}
    assert all(breakdown["components"][name]["ran"] is False for name in reward["not_applicable"])
    assert breakdown["measures"]["tool_errors"] == 1.0


def test_a_fresh_episode_of_the_same_scenario_starts_from_the_initial_world() -> None:
    scenario = McpScenario.load("RetailCancelPendingOrder")
    first = scenario.episode()
    assert first.call("cancel_order", {"order_id": "#W0001", "reason": "no_longer_needed"}).ok
    assert '"status":"pending"' in scenario.episode().call("get_order", {"order_id": "#W0001"}).content


def test_arguments_that_are_not_an_object_are_a_typed_error_and_recorded() -> None:
    episode = McpScenario.load("RetailCancelPendingOrder").episode()
    result = episode.call("get_order", ["#W0001"])
    assert result.error_type == "invalid_arguments"
    assert episode.trajectory().tool_calls[0].arguments == {}


def test_custom_components_are_not_applicable() -> None:
    """A custom component (user code) is given the conversation, which MCP does not carry."""
    custom = GuardedReward("acme:tone", lambda trajectory, context: ComponentScore(1.0, "fine"))
    rubric = Rubric({"final_state": 0.5, "tone": 0.5}, {**COMPONENTS, "tone": custom})
    assert list(not_applicable(rubric)) == ["tone"]
    assert "custom reward component" in not_applicable(rubric)["tone"]
