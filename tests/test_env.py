"""The Gymnasium environment: API contract, protocol, determinism, robustness."""

from __future__ import annotations

import json
import pickle
from typing import Any

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.wrappers import TimeLimit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import envsim
from envsim.env import ScenarioEnv
from envsim.registration import discover
from tests.conftest import DISPATCH, LOOKUP

REGISTERED = sorted(discover())


@pytest.mark.parametrize("scenario_id", REGISTERED)
def test_check_env_passes_for_every_registered_scenario(scenario_id: str) -> None:
    env = gym.make(f"envsim/{scenario_id}-v0")
    check_env(env.unwrapped, skip_render_check=True)
    assert env.spec is not None and env.spec.max_episode_steps == env.unwrapped.scenario.max_turns


def test_every_scenario_file_is_registered() -> None:
    assert envsim.register_scenarios() == [f"envsim/{i}-v0" for i in discover()]
    assert len(REGISTERED) >= 15


def test_issue_example_runs() -> None:
    env = gym.make("envsim/MedicalSupplyPanicCaller-v0")
    obs, info = env.reset(seed=7)
    assert "help" in obs
    assert {t["function"]["name"] for t in info["tools"]} >= {"lookup_patient", "dispatch_emergency_services"}
    obs, reward, terminated, truncated, info = env.step(LOOKUP)
    assert json.loads(obs)["id"] == "PT-9001" and not terminated and reward == 0.0
    obs, reward, terminated, truncated, info = env.step("I'm connecting you to emergency services right now.")
    assert isinstance(obs, str) and obs and info["messages"][-1] == {"role": "user", "content": obs}


def test_reference_path_ends_with_full_reward(tiny_env: ScenarioEnv) -> None:
    tiny_env.reset(seed=0)
    tiny_env.step("What is your phone number?")
    tiny_env.step(LOOKUP)
    action = {
        "role": "assistant",
        "content": "Help is on the way.",
        "tool_calls": [{"id": "c1", "type": "function", "function": json.loads(DISPATCH)}],
    }
    obs, reward, terminated, truncated, info = tiny_env.step(action)
    assert terminated and not truncated and reward == 1.0
    assert info["end_reason"] == "agent_ended"
    assert set(info["reward_breakdown"]["components"]) == {
        "final_state",
        "required_statements",
        "forbidden_actions",
        "escalation",
    }
    assert [m["role"] for m in info["messages"]] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "tool",
        "assistant",
        "tool",
    ]


def test_tool_arguments_may_be_a_json_string(tiny_env: ScenarioEnv) -> None:
    tiny_env.reset(seed=0)
    obs, *_ = tiny_env.step({"name": "lookup_patient", "arguments": '{"phone": "555-0142"}'})
    assert json.loads(obs)["id"] == "PT-9001"


@pytest.mark.parametrize(
    ("action", "kind"),
    [
        ('{"name": "lookup_patinet", "arguments": {}}', "unknown_tool"),
        ('{"name": "lookup_patient", "arguments": {"phone": 5}}', "invalid_arguments"),
        ('{"name": "lookup_patient", "arguments": {"phone": "1", "x": 1}}', "invalid_arguments"),
        ('{"name": "lookup_patient", "arguments": "{not json"}', "invalid_arguments"),
        ('{"name": "lookup_patient", "arguments": {"phone": "000"}}', "not_found"),
        ('{"name": "lookup_patient", ', "malformed_action"),
        ('{"arguments": {}}', "malformed_action"),
        ("[1, 2]", None),
    ],
)
def test_misuse_is_an_error_observation(tiny_env: ScenarioEnv, action: str, kind: str | None) -> None:
    tiny_env.reset(seed=0)
    obs, reward, terminated, truncated, info = tiny_env.step(action)
    assert not terminated
    if kind is None:  # not JSON-object-like: a message to the user
        assert info["messages"][-1]["role"] == "user"
    else:
        assert json.loads(obs)["error"]["type"] == kind


def test_unknown_tool_suggests_the_close_name(tiny_env: ScenarioEnv) -> None:
    tiny_env.reset(seed=0)
    obs, *_ = tiny_env.step('{"name": "lookup_patinet", "arguments": {}}')
    assert "did you mean 'lookup_patient'?" in json.loads(obs)["error"]["message"]


READ = '{"name": "get_item", "arguments": {"item_id": "EQ-01"}}'  # a tool call that never ends an episode


def _steps_to_the_end(env: gym.Env[str, str]) -> tuple[int, float, bool, bool, dict[str, Any]]:
    """Step ``READ`` until the episode ends; the number of steps and the last step's return."""
    for turn in range(1, 1000):
        _, reward, terminated, truncated, info = env.step(READ)
        if terminated or truncated:
            return turn, float(reward), terminated, truncated, info
    raise AssertionError("the episode never ended")


def _assert_scored_last_step(info: dict[str, Any], reward: float) -> None:
    assert info["end_reason"] == "max_turns" and info["outcome"] == "truncated" and info["carries_reward"]
    assert info["reward_breakdown"]["total"] == reward and info["reward_breakdown"]["outcome"] == "truncated"


def test_the_unwrapped_env_truncates_at_max_turns_and_scores_that_step(tiny_env: ScenarioEnv) -> None:
    tiny_env.reset(seed=0)
    for _ in range(tiny_env.scenario.max_turns - 1):
        *_, terminated, truncated, info = tiny_env.step(READ)
        assert not (terminated or truncated) and "outcome" not in info
    turns, reward, terminated, truncated, info = _steps_to_the_end(tiny_env)
    assert turns == 1 and truncated and not terminated
    _assert_scored_last_step(info, reward)


@pytest.mark.parametrize(("limit", "ends_at"), [(3, 3), (50, 12), (None, 12)])
def test_under_gym_make_any_time_limit_the_last_step_is_scored(limit: int | None, ends_at: int) -> None:
    env = gym.make("envsim/MedicalSupplyPanicCaller-v0", max_episode_steps=limit)
    assert env.unwrapped.scenario.max_turns == 12  # type: ignore[attr-defined]
    for seed in (0, 1):  # and again in the next episode
        env.reset(seed=seed)
        turns, reward, terminated, truncated, info = _steps_to_the_end(env)
        assert (turns, terminated, truncated) == (ends_at, False, True)
        _assert_scored_last_step(info, reward)


def test_a_time_limit_wrapped_by_hand_scores_its_last_step() -> None:
    env = TimeLimit(ScenarioEnv("MedicalSupplyPanicCaller"), 3)
    env.reset(seed=0)
    turns, reward, _, truncated, info = _steps_to_the_end(env)
    assert turns == 3 and truncated
    _assert_scored_last_step(info, reward)
    env.unwrapped.reset(seed=0)  # used without the wrapper again: the scenario's own limit
    assert _steps_to_the_end(env.unwrapped)[0] == 12


def test_step_after_end_requires_reset(tiny_env: ScenarioEnv) -> None:
    tiny_env.reset(seed=0)
    tiny_env.step(LOOKUP)
    tiny_env.step(DISPATCH)
    with pytest.raises(RuntimeError, match="reset"):
        tiny_env.step("hello?")


def test_reset_restores_the_initial_world(tiny_env: ScenarioEnv) -> None:
    tiny_env.reset(seed=0)
    initial = tiny_env.session.world.state_hash()
    tiny_env.step(DISPATCH)
    assert tiny_env.session.world.state_hash() != initial
    tiny_env.reset(seed=0)
    assert tiny_env.session.world.state_hash() == initial


def _play(env: ScenarioEnv, seed: int, actions: list[str]) -> str:
    env.reset(seed=seed)
    for action in actions:
        *_, terminated, truncated, info = env.step(action)
        if terminated or truncated or "end_reason" in info:
            break
    return env.trajectory().to_json()


def test_same_seed_and_actions_give_byte_identical_trajectories(tiny_scenario: envsim.scenario.Scenario) -> None:
    actions = ["hello", "your phone number please", LOOKUP, "ok", DISPATCH]
    first = _play(ScenarioEnv(tiny_scenario), 11, actions)
    second = _play(ScenarioEnv(tiny_scenario), 11, actions)
    assert first == second
    assert '"end_reason":"agent_ended"' in first


def test_render_ansi_shows_the_transcript(tiny_scenario: envsim.scenario.Scenario) -> None:
    env = ScenarioEnv(tiny_scenario, render_mode="ansi")
    env.reset(seed=0)
    env.step(LOOKUP)
    text = env.render()
    assert text is not None and text.splitlines()[0] == "user: He collapsed, please help!"
    assert "lookup_patient" in text


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3),
    max_leaves=8,
)


def _tool_actions(names: list[str]) -> st.SearchStrategy[str]:
    call = st.fixed_dictionaries(
        {
            "name": st.sampled_from([*names, "nope"]),
            "arguments": st.dictionaries(
                st.sampled_from(
                    [
                        "order_id",
                        "patient_id",
                        "phone",
                        "item_id",
                        "quantity",
                        "slot_id",
                        "card_id",
                        "customer_id",
                        "amount_cents",
                        "reason",
                        "prescription_id",
                        "x",
                    ]
                ),
                _json_values,
                max_size=4,
            ),
        }
    )
    return call.map(json.dumps)


@pytest.mark.parametrize("scenario_id", REGISTERED)
def test_fuzzed_steps_never_raise_and_keep_invariants(scenario_id: str) -> None:
    env = ScenarioEnv(scenario_id)
    names = env.session.tools.names
    actions = st.one_of(st.text(max_size=40), _json_values.map(json.dumps), _tool_actions(names))

    taken = 0

    @settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
    @given(st.integers(0, 2**16), st.lists(actions, min_size=40, max_size=80))
    def episode(seed: int, steps: list[str]) -> None:
        nonlocal taken
        env.reset(seed=seed)
        taken += len(steps)
        for action in steps:
            obs, reward, terminated, truncated, info = env.step(action)
            assert isinstance(obs, str)
            if terminated or truncated:
                assert "reward_breakdown" in info
                env.reset(seed=seed)
        assert env.session.tools.check_invariants() == []
        internal = [c for c in env.trajectory().tool_calls if c.error_type == "internal"]
        assert internal == []

    episode()
    assert taken >= 2000  # thousands of steps per scenario


def test_affects_are_recorded_per_user_turn(tiny_env: ScenarioEnv) -> None:
    tiny_env.reset(seed=0)
    tiny_env.step("What is your phone number?")
    tiny_env.step("Let me tell you about our offers.")
    affects = tiny_env.trajectory().affects
    assert affects[0] == "panicked" and len(affects) == 3


def test_a_simulator_fault_ends_the_episode_as_sim_fault(tiny_scenario: envsim.scenario.Scenario) -> None:
    from envsim.user.base import UserTurn
    from envsim.user.scripted import ScriptedUser

    class FaultyUser(ScriptedUser):
        def reply(self, agent_message: str, messages: object) -> UserTurn:  # type: ignore[override]
            return UserTurn("Agent: how can I help you?", fault="speaks_as_agent")

    env = ScenarioEnv(tiny_scenario, user=FaultyUser())
    env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step("Hello?")
    assert terminated and info["end_reason"] == "sim_fault" and info["outcome"] == "sim_fault"
    assert info["carries_reward"] is False and env.trajectory().fault == "speaks_as_agent"


def test_a_failing_custom_reward_never_escapes_step(monkeypatch: pytest.MonkeyPatch) -> None:
    from envsim.reward import custom
    from tests.reward.builders import tiny

    monkeypatch.setattr(custom, "_ALLOWED", {"tests.reward.custom_rewards"})
    scenario = tiny("", '  custom: {tone: "tests.reward.custom_rewards:raises"}\n  metrics: [tone]\n')
    env = ScenarioEnv(scenario)
    env.reset(seed=0)
    env.step(LOOKUP)
    obs, reward, terminated, truncated, info = env.step(DISPATCH)
    assert terminated and info["outcome"] == "reward_error" and info["carries_reward"] is False
    assert info["reward_breakdown"]["components"]["tone"]["explanation"] == (
        "reward_error: tests.reward.custom_rewards:raises raised ZeroDivisionError: division by zero"
    )
    assert env.trajectory().end_reason == "agent_ended"  # the episode itself went as it went


def test_async_vector_env_with_its_defaults_returns_the_real_observations() -> None:
    single = gym.make("envsim/MedicalSupplyPanicCaller-v0")
    openings = [single.reset(seed=seed)[0] for seed in (7, 8)]
    envs = gym.make_vec("envsim/MedicalSupplyPanicCaller-v0", num_envs=2, vectorization_mode="async")
    try:
        assert envs.shared_memory  # type: ignore[attr-defined]  # gymnasium's default
        obs, _ = envs.reset(seed=[7, 8])
        assert list(obs) == openings
        obs, *_ = envs.step((LOOKUP, READ))
        assert json.loads(obs[0])["id"] == "PT-9001" and json.loads(obs[1])["id"] == "EQ-01"
    finally:
        envs.close()


def test_an_env_dropped_is_freed_at_once_and_its_user_reads_no_goal_then() -> None:
    import gc
    import weakref

    def started() -> ScenarioEnv:  # (reset reads its caller's frame locals: a frame of its own, ended here)
        env = ScenarioEnv("MedicalSupplyPanicCaller")
        env.reset(seed=7)
        env.step(LOOKUP)
        env.step("Is he breathing?")
        return env

    env = started()
    user, gone = env.user, weakref.ref(env)
    assert user.goal_met() is False  # the goal check reads the environment's world
    enabled = gc.isenabled()
    gc.disable()
    try:
        del env
        assert gone() is None  # no reference cycle: freed without the garbage collector
    finally:
        if enabled:
            gc.enable()
    assert user.goal_met() is None
    assert pickle.loads(pickle.dumps(user)).goal_met() is None


def test_a_registered_env_pickles_mid_episode_and_goes_on_where_it_was() -> None:
    env = gym.make("envsim/MedicalSupplyPanicCaller-v0", max_episode_steps=3)
    env.reset(seed=7)
    env.step(LOOKUP)
    env.unwrapped.score()  # type: ignore[attr-defined]  # the reward context has replayed the expected actions
    clone = pickle.loads(pickle.dumps(env))
    assert clone.unwrapped.user.goal_met() is env.unwrapped.user.goal_met() is False  # type: ignore[attr-defined]
    for copy in (env, clone):
        copy.step("Is he breathing?")
        _, reward, terminated, truncated, info = copy.step(DISPATCH)
        assert truncated or terminated
    assert clone.unwrapped.trajectory().to_json() == env.unwrapped.trajectory().to_json()  # type: ignore[attr-defined]
    assert clone.unwrapped.score() == env.unwrapped.score()  # type: ignore[attr-defined]
    clone.reset(seed=1)
    obs, *_ = clone.step(LOOKUP)
    assert json.loads(obs)["id"] == "PT-9001"
