"""The gate's rules hold for the hand-written scenarios too: the reference agent solves each one,
an agent that does nothing fails it, and so does one that takes any of its forbidden actions."""

from __future__ import annotations

from pathlib import Path

import pytest

from envsim.agents import ScriptedAgent
from envsim.agents.probes import DoNothingAgent, TrapAgent
from envsim.env import ScenarioEnv
from envsim.loader import load_scenario
from envsim.registration import scenario_files
from envsim.rollout import run_episode

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("path", scenario_files([REPO / "scenarios"]), ids=lambda p: p.stem)
def test_a_shipped_scenario_is_solved_by_the_reference_and_failed_by_the_probes(path: Path) -> None:
    scenario = load_scenario(path)
    assert run_episode(ScenarioEnv(scenario), ScriptedAgent(), seed=0)[1].outcome == "success"
    assert run_episode(ScenarioEnv(scenario), DoNothingAgent(), seed=0)[1].outcome != "success"
    for i, pattern in enumerate(scenario.expected.forbidden_actions):
        outcome = run_episode(ScenarioEnv(scenario), TrapAgent(i), seed=0)[1].outcome
        assert outcome != "success", f"forbidden {pattern.name} is not punished"
