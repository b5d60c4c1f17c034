"""The LLM agent: real litellm calls against the local test server (its own process, 127.0.0.1)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from envsim.agents.llm import AgentUsage, LLMAgent
from envsim.agents.registry import AGENTS, make_agent
from envsim.env import ScenarioEnv
from envsim.errors import UnknownNameError
from envsim.llm import ModelCallError, litellm
from envsim.registration import discover
from envsim.rollout import arun_episode, run_episode
from envsim.testing.server import server_stats, start_server
from envsim.user.llm import LLMUser


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with start_server(timeout_sleep_s=30) as base:
        yield base


def _agent(url: str, model: str = "openai/envsim-agent", fault: str | None = None, **options: Any) -> LLMAgent:
    extra = {"extra_headers": {"X-Envsim-Fault": fault}} if fault else None
    return LLMAgent(model, api_base=url, api_key="test", extra=extra, **options)


def _first_turn(scenario_id: str = "RetailCancelPendingOrder") -> tuple[ScenarioEnv, str, dict[str, Any]]:
    env = ScenarioEnv(scenario_id)
    observation, info = env.reset(seed=0)
    return env, observation, info


# -- episodes -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "scenario_id", ["MedicalSupplyPanicCaller", "RetailCancelPendingOrder", "BankingFraudVictimFreezeCard"]
)
def test_a_shipped_scenario_ends_with_reward_one(url: str, scenario_id: str) -> None:
    agent = _agent(url)
    trajectory, breakdown = run_episode(ScenarioEnv(scenario_id), agent, seed=0)
    assert breakdown.total == 1.0, breakdown.components
    assert trajectory.end_reason in {"agent_ended", "user_done"}
    assert 3 <= agent.usage.calls <= 8, agent.usage
    assert agent.usage.tool_calls == len(trajectory.tool_calls) > 0
    assert agent.usage.failed_calls == 0


def test_every_shipped_scenario_concurrently_with_llm_user_and_agent(url: str) -> None:
    scenario_ids = sorted(discover())

    async def main() -> list[tuple[float, LLMAgent, LLMUser]]:
        async def one(scenario_id: str) -> tuple[float, LLMAgent, LLMUser]:
            agent = _agent(url, model="hosted_vllm/some-local-model")  # the role comes from the prompts
            user = LLMUser("openai/envsim-user", api_base=url, completion_options={"api_key": "test"})
            _, breakdown = await arun_episode(ScenarioEnv(scenario_id, user=user), agent, seed=0)
            return breakdown.total, agent, user

        return await asyncio.gather(*(one(s) for s in scenario_ids))

    before = server_stats(url)
    results = asyncio.run(main())
    after = server_stats(url)
    assert [total for total, _, _ in results] == [1.0] * len(scenario_ids)
    assert all(3 <= a.usage.calls <= 8 for _, a, _ in results)
    agent_calls = sum(a.usage.calls for _, a, _ in results)
    user_calls = sum(u.usage.calls for _, _, u in results)
    assert after["by_role"]["agent"] - before["by_role"].get("agent", 0) == agent_calls
    assert after["by_role"]["user"] - before["by_role"].get("user", 0) == user_calls > 0
    assert all(u.fault_log == [] for _, _, u in results)


# -- what goes out, what comes back ---------------------------------------------------------------


def test_action_is_the_assistant_message_with_native_tool_calls(url: str) -> None:
    env, observation, info = _first_turn()
    agent = _agent(url)
    agent.reset(env.scenario, np.random.default_rng(0))
    ask = agent.act(observation, info)
    assert ask == {"role": "assistant", "content": "To help you, could you give me your email address, order number?"}
    observation, *_, info = env.step(ask)
    call = agent.act(observation, info)
    assert call["content"] is None and call["tool_calls"][0]["type"] == "function"
    assert json.loads(call["tool_calls"][0]["function"]["arguments"])
    observation, *_ = env.step(call)
    assert "error" not in json.loads(observation)


def test_usage_is_recorded_per_episode(url: str) -> None:
    env, observation, info = _first_turn()
    agent = _agent(url)
    agent.reset(env.scenario, np.random.default_rng(0))
    agent.act(observation, info)
    assert agent.last_completion is not None
    first = agent.last_completion
    assert agent.usage.calls == 1 and agent.usage.prompt_tokens == first.prompt_tokens > 1000
    assert agent.usage.completion_tokens == first.completion_tokens > 0
    assert agent.usage.cost == 0.0  # a local model has no price
    agent.act(observation, info)
    assert agent.usage.calls == 2 and agent.usage.prompt_tokens == 2 * first.prompt_tokens
    agent.reset(env.scenario, np.random.default_rng(0))
    assert agent.usage == AgentUsage() and agent.last_completion is None


def test_request_carries_tools_seed_and_options() -> None:
    env, _, info = _first_turn()
    agent = LLMAgent(
        "openai/x", temperature=0.5, seed=10, api_base="http://h/v1", max_tokens=64, scenario_header=True,
        extra={"top_p": 0.9, "extra_headers": {"X-A": "1"}},
    )  # fmt: skip
    agent.reset(env.scenario, np.random.default_rng(0))
    messages, kwargs = agent.request(info)
    assert messages == info["messages"] and kwargs["tools"] == info["tools"]
    assert kwargs["seed"] == 10 and kwargs["temperature"] == 0.5 and kwargs["max_tokens"] == 64
    assert kwargs["num_retries"] == 0 and kwargs["max_retries"] == 0 and kwargs["top_p"] == 0.9
    assert kwargs["extra_headers"] == {"X-A": "1", "X-Envsim-Scenario": "RetailCancelPendingOrder"}
    assert "seed" not in LLMAgent("openai/x").request(info)[1]
    with pytest.raises(ValueError, match="messages"):
        agent.request({})


def test_scenario_header_reaches_the_server(url: str) -> None:
    env, observation, info = _first_turn()
    messages = [
        {"role": "system", "content": "You are a customer-service agent. Custom policy."},
        *info["messages"][1:],
    ]
    plain, named = _agent(url), _agent(url, scenario_header=True)
    for agent in (plain, named):
        agent.reset(env.scenario, np.random.default_rng(0))
    unknown = plain.act(observation, {**info, "messages": messages})
    replayed = named.act(observation, {**info, "messages": messages})
    assert unknown.get("tool_calls")  # the server's generic policy for an unknown scenario
    assert replayed["content"].startswith("To help you")  # the scenario's plan, found by the header


@pytest.mark.parametrize(
    "bad", [{"temperature": 3.0}, {"timeout": 0}, {"max_tokens": 0}], ids=["temperature", "timeout", "max_tokens"]
)
def test_options_are_validated(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        LLMAgent("openai/x", **bad)


# -- faults ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "error"), [("429", "RateLimitError"), ("500", "InternalServerError"), ("timeout", "Timeout")]
)
def test_provider_errors_surface_as_model_call_errors_without_retries(url: str, fault: str, error: str) -> None:
    env, observation, info = _first_turn()
    agent = _agent(url, fault=fault, timeout=0.5)
    agent.reset(env.scenario, np.random.default_rng(0))
    before = server_stats(url)["by_fault"].get(fault, 0)
    with pytest.raises(ModelCallError) as caught:
        agent.act(observation, info)
    assert isinstance(caught.value.error, getattr(litellm(), error))
    assert server_stats(url)["by_fault"][fault] == before + 1  # one request: no retry anywhere
    assert agent.usage.failed_calls == 1 and agent.usage.calls == 0


def test_async_provider_error(url: str) -> None:
    env, observation, info = _first_turn()
    agent = _agent(url, fault="500")
    agent.reset(env.scenario, np.random.default_rng(0))
    with pytest.raises(ModelCallError):
        asyncio.run(agent.aact(observation, info))
    assert agent.usage.failed_calls == 1


def test_malformed_tool_json_becomes_an_error_observation(url: str) -> None:
    env, observation, info = _first_turn()
    agent = _agent(url, fault="malformed_tool_json")
    agent.reset(env.scenario, np.random.default_rng(0))
    action = agent.act(observation, info)
    arguments = action["tool_calls"][0]["function"]["arguments"]
    with pytest.raises(json.JSONDecodeError):
        json.loads(arguments)
    observation, reward, terminated, truncated, info = env.step(action)
    assert json.loads(observation)["error"]["type"] == "invalid_arguments"
    assert not terminated and env.trajectory().tool_calls[-1].error_type == "invalid_arguments"


def test_empty_reply_is_an_empty_message(url: str) -> None:
    env, observation, info = _first_turn()
    agent = _agent(url, fault="empty")
    agent.reset(env.scenario, np.random.default_rng(0))
    assert agent.act(observation, info) == {"role": "assistant", "content": ""}
    assert agent.usage.calls == 1 and agent.usage.completion_tokens == 0


def test_an_episode_recovers_from_faults_on_some_turns(url: str) -> None:
    env, observation, info = _first_turn()
    faults = iter(["empty", "malformed_tool_json", None, None, None, None, None, None])
    agent = _agent(url)
    agent.reset(env.scenario, np.random.default_rng(0))
    for fault in faults:
        agent.extra = {"extra_headers": {"X-Envsim-Fault": fault or "none"}}
        observation, reward, terminated, truncated, info = env.step(agent.act(observation, info))
        if "end_reason" in info:
            break
    assert reward == 1.0  # the server's agent retried the steps the faults spoiled


# -- registry -------------------------------------------------------------------------------------


def test_registry_makes_agents_by_name() -> None:
    assert set(AGENTS) == {"scripted", "llm", "hf"}
    agent = make_agent("llm", model="openai/x", temperature=0.2)
    assert isinstance(agent, LLMAgent) and agent.temperature == 0.2
    with pytest.raises(UnknownNameError, match=r"did you mean 'llm'\?"):
        make_agent("lm")
