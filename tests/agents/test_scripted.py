"""The scripted reference agent."""

from __future__ import annotations

import pytest

from envsim.agents import ScriptedAgent
from envsim.env import ScenarioEnv
from envsim.registration import discover
from envsim.rollout import run_episode


@pytest.mark.parametrize("scenario_id", sorted(discover()))
def test_reference_agent_solves_every_scenario(scenario_id: str) -> None:
    trajectory, breakdown = run_episode(ScenarioEnv(scenario_id), ScriptedAgent(), seed=0)
    assert breakdown.total == 1.0, breakdown.components
    assert trajectory.end_reason in {"agent_ended", "user_done"}


def test_error_rate_produces_imperfect_but_reproducible_runs(tiny_env: ScenarioEnv) -> None:
    agent = ScriptedAgent(error_rate=0.5)
    rewards = [run_episode(tiny_env, agent, seed=s)[1].total for s in range(30)]
    again = [run_episode(tiny_env, agent, seed=s)[1].total for s in range(30)]
    assert rewards == again
    assert min(rewards) < 1.0 and max(rewards) == 1.0


def test_error_rate_is_validated() -> None:
    with pytest.raises(ValueError, match="error_rate"):
        ScriptedAgent(error_rate=1.5)
