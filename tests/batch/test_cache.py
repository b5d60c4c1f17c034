"""The model-call layer: keys, record/replay, retries with backoff, timeouts, usage per episode and role."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from envsim.batch.cache import CallCacheMiss, CallLog, ModelCalls, call_key, episode_scope
from envsim.llm import Completion, ModelCallError

MESSAGES = [{"role": "user", "content": "hi"}]


class Limited(Exception):
    """A provider's 429 (status and headers as litellm's RateLimitError carries them)."""

    status_code = 429

    def __init__(self, wait: str = "0") -> None:
        super().__init__("rate limited")
        self.headers = {"retry-after": wait}


class BadRequest(Exception):
    status_code = 400


class Provider:
    """A fake provider (a model client): fails the first ``failures`` calls with ``error``, then answers."""

    def __init__(self, failures: int = 0, error: Exception | None = None, sleep: float = 0.0) -> None:
        self.failures = failures
        self.error = error or Limited()
        self.sleep = sleep
        self.requests: list[dict[str, Any]] = []

    def _answer(self, model: str, kwargs: dict[str, Any]) -> Completion:
        self.requests.append(kwargs)
        if len(self.requests) <= self.failures:
            raise ModelCallError(model, self.error)
        n = len(self.requests)
        return Completion(text=f"answer {n}", prompt_tokens=10, completion_tokens=n, cost=0.01, model=model)

    def complete(self, model: str, messages: list[dict[str, Any]], **kwargs: Any) -> Completion:
        return self._answer(model, kwargs)

    async def acomplete(self, model: str, messages: list[dict[str, Any]], **kwargs: Any) -> Completion:
        if self.sleep:
            await asyncio.sleep(self.sleep)
        return self._answer(model, kwargs)


def via(calls: ModelCalls, provider: Any) -> ModelCalls:
    """``calls`` with ``provider`` as its transport."""
    calls.transport = provider
    return calls


class NoProvider:
    """A transport that must not be called (a replay)."""

    def complete(self, *args: Any, **kwargs: Any) -> Completion:
        raise AssertionError("replay called the provider")

    async def acomplete(self, *args: Any, **kwargs: Any) -> Completion:
        raise AssertionError("replay called the provider")


class NoWait(ModelCalls):
    """Records the delays it would wait instead of waiting."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.delays: list[float] = []

    def _delay(self, error: ModelCallError, tries: int) -> float:
        self.delays.append(super()._delay(error, tries))
        return 0.0


def test_key_ignores_transport_and_tells_episodes_and_repeats_apart() -> None:
    key = call_key("m", MESSAGES, {"temperature": 0.7, "seed": 3}, "ep", 0)
    assert key == call_key(
        "m", MESSAGES, {"temperature": 0.7, "seed": 3, "api_base": "http://x", "timeout": 5}, "ep", 0
    )
    assert key != call_key("m", MESSAGES, {"temperature": 0.7, "seed": 4}, "ep", 0)
    assert key != call_key("m", MESSAGES, {"temperature": 0.7, "seed": 3, "tools": [{"x": 1}]}, "ep", 0)
    assert key != call_key("m2", MESSAGES, {"temperature": 0.7, "seed": 3}, "ep", 0)
    assert key != call_key("m", MESSAGES, {"temperature": 0.7, "seed": 3}, "ep2", 0)
    assert key != call_key("m", MESSAGES, {"temperature": 0.7, "seed": 3}, "ep", 1)


def test_retries_rate_limits_with_retry_after_then_succeeds() -> None:
    provider = Provider(failures=2, error=Limited("3"))
    calls = NoWait(max_retries=5, backoff=0.5, defaults={"api_base": "http://local"}, seed=0)
    with episode_scope("ep") as scope:
        completion = asyncio.run(via(calls, provider).acall("m", MESSAGES, {"temperature": 0}, "agent"))
    assert completion.text == "answer 3"
    assert len(calls.delays) == 2 and all(3.0 <= d <= 3.5 for d in calls.delays)
    assert provider.requests[0] == {"temperature": 0, "api_base": "http://local", "timeout": 60.0, "max_retries": 0}
    assert scope.retries == 2 and calls.stats.retries == 2
    assert scope.usages()["agent"].calls == 3 and scope.usage["agent"].completion_tokens == 3


def test_gives_up_after_max_retries_and_at_once_on_a_bad_request() -> None:
    calls = NoWait(max_retries=3, seed=0)
    with pytest.raises(ModelCallError, match="rate limited"):
        via(calls, Provider(failures=99)).call("m", MESSAGES, {}, "other")
    assert len(calls.delays) == 3 and calls.stats.failures == 1
    assert [d <= 0.5 * 2**i for i, d in enumerate(calls.delays)] == [True] * 3  # exponential window, jittered
    bad = Provider(failures=99, error=BadRequest("no"))
    with pytest.raises(ModelCallError):
        via(calls, bad).call("m", MESSAGES, {}, "other")
    assert len(bad.requests) == 1


def test_each_try_is_bounded_by_the_timeout() -> None:
    calls = NoWait(timeout=0.05, max_retries=1, seed=0)
    provider = Provider(sleep=5.0)
    with episode_scope("ep") as scope, pytest.raises(ModelCallError, match="TimeoutError"):
        asyncio.run(via(calls, provider).acall("m", MESSAGES, {}, "user"))
    assert len(calls.delays) == 1 and scope.usages()["user"].calls == 2


def test_record_then_replay_without_the_provider(tmp_path: Path) -> None:
    provider = Provider(failures=1)
    recorder = NoWait(mode="record", log=CallLog(tmp_path), seed=0, transport=provider)
    with episode_scope("ep-1") as recorded:
        first = asyncio.run(recorder.acomplete("m", MESSAGES, seed=1))
        again = asyncio.run(recorder.acomplete("m", MESSAGES, seed=1))  # same request, next answer
    assert (first.text, again.text) == ("answer 2", "answer 3")
    recorder.close()

    replayer = ModelCalls(mode="replay", log=CallLog(tmp_path), transport=NoProvider())
    with episode_scope("ep-1") as replayed:
        assert replayer.complete("m", MESSAGES, seed=1) == first
        assert replayer.complete("m", MESSAGES, seed=1) == again
    assert replayed.usage == recorded.usage  # the failed try is replayed in the usage too
    with episode_scope("ep-2"), pytest.raises(CallCacheMiss, match="episode ep-2"):
        replayer.complete("m", MESSAGES, seed=1)


def test_record_answers_from_its_records_and_keeps_failures_for_replay(tmp_path: Path) -> None:
    recorder = NoWait(mode="record", log=CallLog(tmp_path), max_retries=0)
    with episode_scope("ep"), pytest.raises(ModelCallError):
        via(recorder, Provider(failures=1)).complete("m", MESSAGES)
    recorder.close()
    # replay gives the recorded failure back, as a ModelCallError (the episode is an infra error again)
    with episode_scope("ep"), pytest.raises(ModelCallError, match="ReplayedFailure"):
        ModelCalls(mode="replay", log=CallLog(tmp_path), transport=Provider()).complete("m", MESSAGES)
    # recording again (a resumed run) calls the provider for a recorded failure; the answer then wins
    resumed = NoWait(mode="record", log=CallLog(tmp_path))
    with episode_scope("ep"):
        assert via(resumed, Provider()).complete("m", MESSAGES).text == "answer 1"
    resumed.close()
    with episode_scope("ep"):
        replayer = ModelCalls(mode="replay", log=CallLog(tmp_path), transport=Provider())
        assert replayer.complete("m", MESSAGES).text == "answer 1"


def test_torn_record_line_is_skipped(tmp_path: Path) -> None:
    recorder = ModelCalls(mode="record", log=CallLog(tmp_path))
    with episode_scope("ep"):
        via(recorder, Provider()).complete("m", MESSAGES)
    recorder.close()
    log = next(tmp_path.glob("calls-*.jsonl"))
    log.write_bytes(log.read_bytes() + b'{"key": "abc", "completion": {"te')
    reread = CallLog(tmp_path)
    assert len(reread.entries) == 1 and reread.skipped_lines == 1


def test_a_role_view_goes_through_litellm_and_meters_its_role(tmp_path: Path) -> None:
    calls = ModelCalls(mode="record", log=CallLog(tmp_path))
    judge = calls.for_role("judge")
    try:
        with episode_scope("ep") as scope:
            assert judge.complete("openai/gpt-4o-mini", MESSAGES, mock_response="sync").text == "sync"
            assert asyncio.run(judge.acomplete("openai/gpt-4o-mini", MESSAGES, mock_response="async")).text == "async"
    finally:
        calls.close()
    assert scope.usage["judge"].calls == 2 and len(CallLog(tmp_path).entries) == 2


def _plain_key(model: str, messages: list[dict[str, Any]], kwargs: dict[str, Any], episode: str | None, n: int) -> str:
    """The key as first defined: one sorted JSON document of everything, hashed."""
    import json

    from envsim.batch.cache import KEY_FORMAT, TRANSPORT_PARAMS
    from envsim.batch.plan import sha256_hex

    params = {k: v for k, v in kwargs.items() if k not in TRANSPORT_PARAMS and k != "tools"}
    payload = {
        "format": KEY_FORMAT,
        "model": model,
        "messages": messages,
        "tools": kwargs.get("tools"),
        "params": params,
        "episode": episode,
        "n": n,
    }
    return sha256_hex(json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=repr))


def test_key_is_unchanged_and_follows_tools_changed_in_place() -> None:
    tools = [{"type": "function", "function": {"name": "f", "description": "Dé", "parameters": {"b": 1, "a": [2.5]}}}]
    messages = [{"role": "user", "content": "hi \u2028"}]
    cases: list[tuple[dict[str, Any], str | None, int]] = [
        ({"tools": tools, "temperature": 0, "api_key": "x", "seed": 3}, "ep", 0),
        ({"tools": list(tools), "response_format": {"z": None, "y": True}}, None, 2),
        ({"tools": []}, "ep", 0),
        ({"tools": None}, "ep", 0),
        ({}, "ep", 1),
    ]
    for kwargs, episode, n in cases:
        assert call_key("m", messages, kwargs, episode, n) == _plain_key("m", messages, kwargs, episode, n)
    before = call_key("m", messages, {"tools": tools}, "ep", 0)
    tools[0]["function"]["parameters"]["b"] = 2  # the same objects, changed: the key follows
    after = call_key("m", messages, {"tools": tools}, "ep", 0)
    assert after != before and after == _plain_key("m", messages, {"tools": tools}, "ep", 0)
