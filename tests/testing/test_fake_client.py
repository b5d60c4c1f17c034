"""The in-process fake model client: a real ModelClient for unit tests of the agent, the user, the judge and a run's
call layer (its retry policy branching on the typed model-call errors)."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from envsim.agents.llm import LLMAgent
from envsim.batch.cache import ModelCalls, episode_scope
from envsim.env import ScenarioEnv
from envsim.errors import EnvsimError, ModelCallError, ModelTimeout, ProviderError, RateLimited
from envsim.llm import Completion, ModelClient, RetryingClient, UsageMeter, litellm
from envsim.registration import load_registered
from envsim.reward.judge import Judge, JudgeError, JudgeRubric
from envsim.testing.fake_client import FakeClient
from envsim.trajectory import Trajectory
from envsim.user.llm import LLMUser

RUBRIC = JudgeRubric.model_validate(
    {
        "name": "tone",
        "model": "fake/judge",
        "criteria": [
            {
                "id": "polite",
                "description": "The agent is polite.",
                "scale": "pass_fail",
                "levels": {"pass": "Courteous.", "fail": "Rude."},
            }
        ],
    }
)
TRAJECTORY = Trajectory(
    scenario_id="X",
    seed=0,
    messages=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}],
    end_reason="agent_ended",
)


class Limited(Exception):
    status_code = 429


def test_the_fake_is_a_model_client_and_the_errors_are_envsim_errors() -> None:
    assert isinstance(FakeClient(), ModelClient)
    for error in (RateLimited, ModelTimeout, ProviderError):
        assert issubclass(error, ModelCallError) and issubclass(error, EnvsimError) and error.retryable
    assert not ModelCallError.retryable


def test_litellms_exceptions_are_typed_by_the_client() -> None:
    lib = litellm()
    with pytest.raises(RateLimited):
        LLMAgent("fake/agent", client=FakeClient([Limited()])).act("", {"messages": [{"role": "user", "content": "x"}]})
    cases = {
        lib.Timeout("slow", "m", "openai"): ModelTimeout,
        lib.APIConnectionError("refused", "openai", "m"): ProviderError,
        ValueError("bad request"): ModelCallError,
    }
    for raised, expected in cases.items():
        with pytest.raises(ModelCallError) as caught:
            FakeClient([raised]).complete("m", [])
        assert type(caught.value) is expected, type(raised).__name__


def test_the_agent_acts_on_the_fake_and_meters_its_calls() -> None:
    env = ScenarioEnv("MedicalSupplyPanicCaller")
    obs, info = env.reset(seed=0)
    client = FakeClient([Completion(text="What is your phone number?", prompt_tokens=7, completion_tokens=5)])
    agent = LLMAgent("fake/agent", seed=3, client=client)
    agent.reset(env.scenario, np.random.default_rng(0))
    assert agent.act(obs, info) == {"role": "assistant", "content": "What is your phone number?"}
    assert client.requests[0].model == "fake/agent" and client.requests[0].kwargs["seed"] == 3
    assert agent.usage == UsageMeter(calls=1, prompt_tokens=7, completion_tokens=5)


def test_the_user_replies_through_the_fake() -> None:
    scenario = load_registered("MedicalSupplyPanicCaller")
    client = FakeClient(["Please hurry!"])
    user = LLMUser("fake/user", client=client)
    user.reset(scenario, np.random.default_rng(0))
    turn = asyncio.run(user.areply("Help is on the way.", []))
    assert turn.text == "Please hurry!" and user.usage.calls == 1 and len(client.requests) == 1


def test_the_judge_scores_through_the_fake_and_retries_a_timeout_within_its_attempts() -> None:
    verdict = '{"polite": {"rationale": "Kind.", "score": "pass"}}'
    client = FakeClient([TimeoutError("slow"), Completion(text=verdict, prompt_tokens=100, cost=0.25)])
    retrying = RetryingClient(client, max_retries=RUBRIC.max_attempts - 1, backoff=0.0)
    judge = Judge(RUBRIC, client=retrying)
    result = judge.judge(TRAJECTORY)
    assert result.score == 1.0 and result.calls == 2 and result.cost == 0.25
    assert judge.totals.calls == 2 and judge.totals.usage.cost == 0.25
    slow = FakeClient(default=TimeoutError("slow"))
    failing = Judge(RUBRIC, client=RetryingClient(slow, max_retries=2, backoff=0.0))
    with pytest.raises(JudgeError) as caught:
        failing.judge(TRAJECTORY)
    assert caught.value.reason == "timeout" and caught.value.attempts == 3 == len(slow.requests)
    once = FakeClient(default=TimeoutError("slow"))  # a client that does not retry: the judge does not either
    with pytest.raises(JudgeError):
        Judge(RUBRIC, client=once).judge(TRAJECTORY)
    assert len(once.requests) == 1


class NoWait(ModelCalls):
    def _delay(self, error: ModelCallError, tries: int) -> float:
        return 0.0


@pytest.mark.parametrize(
    ("error", "tries"),
    [(Limited(), 3), (ConnectionError("reset"), 3), (TimeoutError("slow"), 3), (ValueError("bad request"), 1)],
)
def test_a_runs_call_layer_retries_the_retryable_types_only(error: Exception, tries: int) -> None:
    client = FakeClient([error] * 5)
    calls = NoWait(max_retries=2, transport=client)
    with episode_scope("ep") as scope, pytest.raises(ModelCallError):
        calls.for_role("agent").complete("m", [{"role": "user", "content": "x"}])
    assert len(client.requests) == tries and scope.usages()["agent"].calls == tries


def test_a_spent_script_says_so() -> None:
    client: Any = FakeClient(["one"])
    client.complete("m", [])
    with pytest.raises(IndexError, match="no scripted reply left for call 2"):
        client.complete("m", [])
