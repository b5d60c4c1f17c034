"""The call layer's cost: litellm's price for the response, and no repeated look-ups for unpriced models."""

from __future__ import annotations

from typing import Any

import pytest

from envsim import llm
from tests.conftest import LoggedCalls


class _Response:
    def __init__(self, model: str, hidden: dict[str, Any]) -> None:
        self.model = model
        self._hidden_params = hidden


def test_litellms_own_price_of_the_response_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    lib = llm.litellm()
    monkeypatch.setattr(lib, "completion_cost", lambda **_: pytest.fail("litellm already priced the response"))
    assert llm._cost(lib, "openai/gpt-4o-mini", _Response("gpt-4o-mini", {"response_cost": 1.5e-5})) == 1.5e-5


def test_an_unpriced_model_is_looked_up_once_per_price_map(monkeypatch: pytest.MonkeyPatch) -> None:
    lib = llm.litellm()
    monkeypatch.setattr(lib, "model_cost", dict(lib.model_cost))
    asked: list[str] = []

    def completion_cost(completion_response: Any) -> float:
        asked.append(completion_response.model)
        price = lib.model_cost.get(completion_response.model)
        if price is None:
            raise ValueError("This model isn't mapped yet")
        return float(price["input_cost_per_token"])

    monkeypatch.setattr(lib, "completion_cost", completion_cost)
    response = _Response("envsim-unpriced-test", {"custom_llm_provider": "openai", "response_cost": None})
    assert llm._cost(lib, "openai/envsim-unpriced-test", response) == 0.0
    assert llm._cost(lib, "openai/envsim-unpriced-test", response) == 0.0
    assert asked == ["envsim-unpriced-test"]
    lib.model_cost["envsim-unpriced-test"] = {"input_cost_per_token": 0.25}  # a price registered since
    assert llm._cost(lib, "openai/envsim-unpriced-test", response) == 0.25


def test_an_unpriced_model_is_registered_free_so_litellm_prices_it_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    lib = llm.litellm()
    monkeypatch.setattr(lib, "model_cost", dict(lib.model_cost))
    monkeypatch.setattr(llm, "_unpriced", set())
    messages = [{"role": "user", "content": "hi"}]
    model = "openai/envsim-free-test"
    first = llm.complete(model, messages, mock_response="hello")
    assert first.cost == 0.0 and lib.model_cost[model]["input_cost_per_token"] == 0.0
    asked: list[Any] = []
    monkeypatch.setattr(lib, "completion_cost", lambda **kw: asked.append(kw) or 0.0)
    response = lib.completion(model=model, messages=messages, mock_response="hello")
    assert response._hidden_params["response_cost"] == 0.0  # litellm's own price now: no look-up of envsim's
    assert llm._to_completion(model, response).cost == 0.0 and not asked


def test_priced_models_and_prices_already_in_the_map_are_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    lib = llm.litellm()
    monkeypatch.setattr(lib, "model_cost", dict(lib.model_cost))
    before = dict(lib.model_cost)
    priced = llm.complete("openai/gpt-4o-mini", [{"role": "user", "content": "hi"}], mock_response="hello")
    assert priced.cost > 0 and lib.model_cost == before
    lib.model_cost["openai/envsim-custom-price"] = {"input_cost_per_token": 0.5, "litellm_provider": "openai"}
    llm._register_free(lib, "openai/envsim-custom-price", "openai")
    assert lib.model_cost["openai/envsim-custom-price"]["input_cost_per_token"] == 0.5


def test_more_calls_in_flight_than_litellms_pool_holds_by_default() -> None:
    """litellm's aiohttp pool holds 500 connections per host by default; envsim's --concurrency bounds calls instead."""
    import asyncio

    from envsim.testing.server import server_stats, start_server

    calls = 600
    messages = [{"role": "user", "content": "Where is my order?"}]
    with start_server(latency_ms=3000) as url:

        async def main() -> list[llm.Completion]:
            kwargs = {"api_base": url, "api_key": "local", "max_retries": 0, "timeout": 120}
            return await asyncio.gather(
                *(llm.acomplete("openai/envsim-user", messages, seed=i, **kwargs) for i in range(calls))
            )

        completions = asyncio.run(main())
        stats = server_stats(url)
    assert len(completions) == calls and all(c.text for c in completions)
    assert stats["max_in_flight"] == calls  # none waited for a connection


def test_litellms_logging_of_a_loops_calls_is_finished_on_that_loop(slow_litellm_callback: LoggedCalls) -> None:
    """litellm logs calls in the background; drain_logging finishes it before the loop closes: a callback sees all."""
    import asyncio

    messages = [{"role": "user", "content": "Where is my order?"}]

    async def calls(n: int) -> tuple[int, int]:
        await asyncio.gather(*(llm.acomplete("openai/gpt-4o-mini", messages, mock_response="ok") for _ in range(n)))
        queued = llm.logging_backlog()
        await llm.drain_logging()
        return queued, llm.logging_backlog()

    queued, left = asyncio.run(calls(300))
    assert queued > 0 and left == 0 and slow_litellm_callback.count == 300
