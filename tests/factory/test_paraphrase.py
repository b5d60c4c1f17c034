"""``envsim scenarios generate --paraphrase MODEL``: reworded openings and goals that keep every fact value.

The model is a litellm custom provider registered for the test (the real client path, no network), or
litellm's ``mock_response``.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from envsim.cli import app
from envsim.factory.generate import generate_suite, suite_digest
from envsim.factory.paraphrase import CACHE_ENV, Paraphraser, check_values
from envsim.llm import litellm
from envsim.loader import load_scenario
from envsim.scenario import Scenario
from tests.conftest import REPO

FAMILY = REPO / "scenarios" / "families" / "retail" / "retail_cancel_pending_order.yaml"
lib = litellm()


class Rewriter(lib.CustomLLM):  # type: ignore[misc]
    """A paraphrase model for tests: ``paratest/keep`` prefixes the text; ``paratest/change`` also bumps every
    order id (a changed fact value); every request is recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def completion(self, model: str, messages: list[dict[str, Any]], *args: Any, **kwargs: Any) -> Any:
        text = str(messages[-1]["content"])
        with self._lock:
            self.requests.append((model, text))
        reworded = "To put it another way: " + text
        if model.endswith("change"):
            reworded = re.sub(r"#W(\d+)", lambda m: f"#W{int(m.group(1)) + 1:04d}", reworded)
        return lib.ModelResponse(
            model=f"paratest/{model}",
            choices=[{"message": {"role": "assistant", "content": reworded}, "finish_reason": "stop"}],
            usage={"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
        )


@pytest.fixture
def rewriter(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Rewriter]:
    provider = Rewriter()
    monkeypatch.setattr(lib, "custom_provider_map", [{"provider": "paratest", "custom_handler": provider}])
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    yield provider


def scenarios(out: Path) -> list[Scenario]:
    return [load_scenario(p, lint=False) for p in sorted(out.rglob("*.yaml"))]


def test_kept_paraphrases_are_written_recorded_and_cached(rewriter: Rewriter, tmp_path: Path) -> None:
    plain = generate_suite([FAMILY], count=3, seed=1, out=tmp_path / "plain")
    reworded = generate_suite([FAMILY], count=3, seed=1, out=tmp_path / "reworded", paraphrase="paratest/keep")
    assert reworded.manifest["paraphrase"] == {
        "model": "paratest/keep",
        "accepted": 6,
        "rejected": 0,
        "failed": 0,
        "examples": {},
    }
    assert "paraphrase" not in plain.manifest
    assert len(rewriter.requests) == 6  # an opening and a goal per scenario
    for before, after in zip(scenarios(tmp_path / "plain"), scenarios(tmp_path / "reworded"), strict=True):
        assert after.id == before.id and after.expected == before.expected and after.user.facts == before.user.facts
        assert after.user.opening == "To put it another way: " + before.user.opening
        assert after.user.goal == "To put it another way: " + before.user.goal
        assert after.source is not None and after.source.paraphrase == "paratest/keep"
    # the same run again: from the cache, byte-identical, no call
    again = generate_suite([FAMILY], count=3, seed=1, out=tmp_path / "again", paraphrase="paratest/keep")
    assert len(rewriter.requests) == 6
    assert again.manifest["paraphrase"]["accepted"] == 6
    assert suite_digest(tmp_path / "again") == suite_digest(tmp_path / "reworded")


def test_a_changed_fact_value_is_rejected_and_counted(rewriter: Rewriter, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["scenarios", "generate", str(FAMILY), "--count", "3", "--seed", "1", "--out", str(tmp_path / "s"),
         "--paraphrase", "paratest/change", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])["paraphrase"]
    # each goal names the order id (changed: rejected); an opening without an id keeps its paraphrase
    assert summary["rejected"] >= 3 and summary["accepted"] + summary["rejected"] == 6
    assert re.search(r"user\.goal: dropped '#W\d{4}'.*; added '#W\d{4}'", summary["examples"]["rejected"])
    assert "rejected (a fact value dropped or changed)" in result.stdout
    for scenario in scenarios(tmp_path / "s"):
        order = next(f.value for f in scenario.user.facts if f.key == "order_id")
        assert order in scenario.user.goal and not scenario.user.goal.startswith("To put it")  # the original kept


def test_mock_response_dropping_values_is_rejected_and_failures_are_counted(tmp_path: Path) -> None:
    [scenario] = scenarios_of(tmp_path)
    keep = Paraphraser("openai/gpt-4o-mini", cache_dir=None, options={"mock_response": "I want to cancel an order."})
    assert keep(scenario).user.goal == scenario.user.goal  # the goal names the order: its paraphrase dropped it
    assert keep.counts["rejected"] >= 1
    broken = Paraphraser("openai/gpt-4o-mini", cache_dir=None, options={"mock_response": Exception("down")})
    assert broken(scenario) == scenario and broken.counts["failed"] == 2


def scenarios_of(tmp_path: Path) -> list[Scenario]:
    generate_suite([FAMILY], count=1, seed=3, out=tmp_path / "one")
    return scenarios(tmp_path / "one")


@pytest.mark.parametrize(
    ("paraphrase", "problem"),
    [
        ("Hi, please cancel #W0044 ($179.97); my email is ada@x.io.", None),
        ("Please cancel my order, it was $179.97.", "dropped 'ada@x.io', '#W0044'"),
        ("Cancel #W0044 for $197.97, email ada@x.io.", "dropped '$179.97'; added '$197.97'"),
        ("Cancel #W0044 ($179.97), ada@x.io, and order #W0045 too.", "added '#W0045'"),
    ],
)
def test_check_values(paraphrase: str, problem: str | None) -> None:
    original = "Cancel order #W0044 ($179.97). My email is ada@x.io."
    assert check_values(original, paraphrase, ["ada@x.io", "#W0044"]) == problem


def test_a_fact_value_without_digits_must_stay_too() -> None:
    assert check_values("I am Ada Byron.", "I'm Ada.", ["Ada Byron"]) == "dropped 'Ada Byron'"
