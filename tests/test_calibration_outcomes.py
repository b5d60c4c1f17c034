"""The outcome calibration: Kendall's tau on planted tables, a real small run from a seed, the ``--json`` keys."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from envsim.calibration_outcomes import (
    ERROR_RATES,
    TARGET_TAU,
    agent_label,
    calibrate_outcomes,
    kendall_tau,
    shipped_scenarios,
)
from envsim.cli import app
from envsim.errors import EnvsimError
from envsim.scenario import Scenario
from envsim.transcripts.corpus import CORPUS_ENV, corpus_dir
from envsim.user.base import UserSimulator, UserTurn
from envsim.user.scripted import ScriptedUser


@pytest.fixture(scope="module")
def corpus() -> Path:
    """The transcript corpus folder; fails (never skips) when it is missing."""
    folder = corpus_dir()
    assert folder is not None and folder.is_dir(), f"transcript corpus not found: set {CORPUS_ENV}"
    return folder


def _table(rates: list[float]) -> dict[str, float]:
    return {agent_label(e): r for e, r in zip(ERROR_RATES, rates, strict=True)}


def _few_scenarios() -> list[Path]:
    """One shipped scenario of each domain (banking, medical supply, retail)."""
    files = shipped_scenarios()
    picked = [next(f for f in files if f.parent.name == domain) for domain in ("banking", "medical_supply", "retail")]
    assert len(picked) == 3
    return picked


# -- tau on planted tables -------------------------------------------------------------------


def test_tau_on_planted_tables_with_ties() -> None:
    success = {
        "ordered": _table([1.0, 0.8, 0.4, 0.1]),
        "reversed": _table([0.1, 0.4, 0.8, 1.0]),
        # the two worst agents tie: 5 concordant pairs, 0 discordant, one tie in success -> tau-b 5 / sqrt(6 * 5)
        "tied": _table([1.0, 0.8, 0.3, 0.3]),
        # one swap (0.3 above 0.1): 5 concordant, 1 discordant -> (5 - 1) / 6
        "swapped": _table([1.0, 0.2, 0.4, 0.1]),
        "easy": _table([1.0, 1.0, 1.0, 1.0]),  # every agent succeeds: no ranking
    }
    tau = kendall_tau(success, ERROR_RATES)
    assert tau["ordered"] == TARGET_TAU and tau["reversed"] == -1.0
    assert tau["tied"] == round(5 / math.sqrt(30), 4) == 0.9129
    assert tau["swapped"] == round(4 / 6, 4)
    assert tau["easy"] is None
    assert list(tau) == list(success)


def test_agent_labels_are_stable() -> None:
    assert [agent_label(e) for e in ERROR_RATES] == ["scripted@0", "scripted@0.1", "scripted@0.3", "scripted@0.6"]


# -- a real run ------------------------------------------------------------------------------


def test_a_small_run_ranks_graded_agents_and_is_reproducible_from_a_seed(corpus: Path) -> None:
    scenarios = _few_scenarios()
    first = calibrate_outcomes(["scripted", "transcript"], episodes=3, seed=7, scenarios=scenarios, corpus=corpus)
    second = calibrate_outcomes(["scripted", "transcript"], episodes=3, seed=7, scenarios=scenarios, corpus=corpus)
    assert first.success == second.success and first.tau == second.tau  # same seed, same figures
    assert first.users == ["scripted", "transcript"] and first.scenarios == 3 and first.episodes == 3
    assert list(first.agents) == [agent_label(e) for e in ERROR_RATES]
    for user in first.users:
        rates = first.success[user]
        assert set(rates) == set(first.agents) and all(0.0 <= r <= 1.0 for r in rates.values())
        assert rates["scripted@0"] == 1.0  # the reference run succeeds everywhere
        assert rates["scripted@0.6"] < rates["scripted@0"]  # a careless agent does not
    assert first.tau == kendall_tau(first.success, ERROR_RATES)
    assert all(t is not None and t > 0 for t in first.tau.values())
    assert first.notes["transcript"] == f"corpus {corpus}"


class HangsUpAtOnce(UserSimulator):
    """A planted broken user: it says its opening line, then hangs up on the agent's first message."""

    def reset(self, scenario: Scenario, rng: np.random.Generator) -> str:
        return scenario.user.opening

    def reply(self, agent_message: str, messages: Sequence[dict[str, Any]]) -> UserTurn:
        return UserTurn("Never mind, bye.", done=True)


def test_a_user_that_ranks_nothing_misses_the_target() -> None:
    users = {"scripted": ScriptedUser(), "hangs_up": HangsUpAtOnce()}
    result = calibrate_outcomes(users, episodes=2, scenarios=_few_scenarios())
    assert set(result.success["hangs_up"].values()) == {0.0}  # no agent gets to do anything
    assert result.tau["hangs_up"] is None and result.tau["scripted"] is not None and result.tau["scripted"] > 0


def test_the_llm_user_is_measured_the_same_way() -> None:
    from envsim.calibration_outcomes import _make_users
    from envsim.user.llm import LLMUser

    made, notes = _make_users(["llm"], None, "openai/gpt-4o-mini", "http://localhost:9")
    assert isinstance(made["llm"], LLMUser) and notes["llm"] == "model openai/gpt-4o-mini at http://localhost:9"
    offline = LLMUser("openai/gpt-4o-mini", completion_options={"mock_response": "Okay, thank you."}, max_retries=0)
    result = calibrate_outcomes({"llm": offline}, episodes=1, scenarios=_few_scenarios()[:1])
    assert result.users == ["llm"] and result.success["llm"]["scripted@0"] == 1.0


def test_the_transcript_user_without_a_corpus_is_noted(tmp_path: Path) -> None:
    result = calibrate_outcomes(["transcript"], episodes=1, scenarios=_few_scenarios()[:1], corpus=tmp_path / "none")
    assert "no transcript corpus" in result.notes["transcript"]
    assert result.success["transcript"]["scripted@0"] == 1.0


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(EnvsimError, match="at least 1"):
        calibrate_outcomes(episodes=0)
    with pytest.raises(EnvsimError, match="needs a model"):
        calibrate_outcomes(["llm"], episodes=1, scenarios=_few_scenarios()[:1])
    with pytest.raises(EnvsimError, match="two error rates"):
        calibrate_outcomes(["scripted"], error_rates=(0.0,))


# -- the command -----------------------------------------------------------------------------


def test_fidelity_outcomes_only_json(corpus: Path) -> None:
    args = ["fidelity", "--outcomes-only", "--outcome-episodes", "1", "--seed", "3", "--json", "--corpus", str(corpus)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout.splitlines()[-1])
    assert set(payload) == {"outcome_calibration", "targets"}  # no replays: no persona figures
    assert [t["figure"] for t in payload["targets"]] == ["tau[scripted]", "tau[transcript]"]  # only what ran
    figures = payload["outcome_calibration"]
    assert figures["users"] == ["scripted", "transcript"] and figures["target_tau"] == 1.0
    assert set(figures["tau"]) == set(figures["success"]) == {"scripted", "transcript"}
    assert figures["episodes"] == 1 and figures["seed"] == 3 and figures["scenarios"] == len(shipped_scenarios())
    assert all(set(rates) == set(figures["agents"]) for rates in figures["success"].values())
    assert "tau (target 1)" in result.stdout and "scripted@0.6" in result.stdout
