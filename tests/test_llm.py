"""The call layer's cost: litellm's price for the response, and no repeated look-ups for unpriced models."""

from __future__ import annotations

from typing import Any

import pytest

from envsim import llm


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
