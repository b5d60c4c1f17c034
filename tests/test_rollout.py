"""The one episode loop (:class:`envsim.rollout.EpisodeDriver`): sync and async, used by every runner."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from envsim.agents.base import Policy
from envsim.agents.scripted import ScriptedAgent
from envsim.batch.cache import ModelCalls
from envsim.batch.plan import GenerateConfig, RunOptions, ScenarioSource, make_plan
from envsim.batch.runner import BatchRunner
from envsim.batch.store import Manifest, RunStore
from envsim.env import ScenarioEnv
from envsim.rollout import EpisodeDriver, arun_episode, run_episode
from envsim.scenario import Scenario
from tests.conftest import LOOKUP


class LooksUp(Policy):
    """Calls a harmless tool forever: only the turn limit ends its episodes."""

    def reset(self, scenario: Scenario, rng: np.random.Generator) -> None:
        """Nothing to prepare."""

    def act(self, observation: str, info: dict[str, Any]) -> str | dict[str, Any]:
        return LOOKUP


class CutAtTwo(ScenarioEnv):
    """Says ``truncated`` on its second step and nothing else (no end in ``info``): only the flag ends it."""

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        self.steps = 0
        return super().reset(seed=seed, options=options)

    def _cut(self, result: tuple[str, Any, bool, bool, dict[str, Any]]) -> tuple[str, Any, bool, bool, dict[str, Any]]:
        self.steps += 1
        observation, reward, terminated, truncated, info = result
        return observation, reward, terminated, truncated or self.steps == 2, info

    def step(self, action: Any) -> tuple[str, Any, bool, bool, dict[str, Any]]:
        return self._cut(super().step(action))

    async def astep(self, action: Any) -> tuple[str, Any, bool, bool, dict[str, Any]]:
        return self._cut(await super().astep(action))


def test_sync_and_async_episodes_end_at_the_turn_limit_with_the_reward(tiny_scenario: Scenario) -> None:
    trajectory, breakdown = run_episode(ScenarioEnv(tiny_scenario), LooksUp(), seed=3)
    again, async_breakdown = asyncio.run(arun_episode(ScenarioEnv(tiny_scenario), LooksUp(), seed=3))
    assert trajectory == again and breakdown == async_breakdown
    assert trajectory.end_reason == "max_turns" and trajectory.turns == tiny_scenario.max_turns
    assert breakdown.outcome == "truncated"


def test_a_turn_is_an_action_then_a_step_until_terminated_or_truncated(tiny_scenario: Scenario) -> None:
    episode = EpisodeDriver(ScenarioEnv(tiny_scenario), LooksUp())
    observation, info = episode.reset(seed=0)
    assert observation == info["messages"][-1]["content"] and not episode.done
    turns = 0
    while not episode.done:
        episode.turn()
        turns += 1
    assert turns == tiny_scenario.max_turns and episode.truncated and not episode.terminated
    assert episode.info["outcome"] == "truncated" and episode.reward == episode.result()[1].total
    with pytest.raises(RuntimeError, match="call reset"):
        episode.step(LOOKUP)
    episode.reset(seed=0)  # reusable: the next episode starts afresh
    assert not episode.done and episode.env.trajectory().turns == 0
    with pytest.raises(RuntimeError, match="no policy"):
        EpisodeDriver(ScenarioEnv(tiny_scenario)).act()


def test_run_episode_ends_on_the_step_flags_not_on_info(tiny_scenario: Scenario) -> None:
    # before: the loop ended when "end_reason" appeared in info, and stepped on past a truncation
    trajectory, _ = run_episode(CutAtTwo(tiny_scenario), LooksUp(), seed=0)
    assert trajectory.turns == 2
    trajectory, _ = asyncio.run(arun_episode(CutAtTwo(tiny_scenario), LooksUp(), seed=0))
    assert trajectory.turns == 2


def test_the_batch_runner_plays_through_the_one_loop(
    tmp_path: Path, tiny_scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("envsim.batch.runner.ScenarioEnv", CutAtTwo)
    config = GenerateConfig()
    plan = make_plan(
        [ScenarioSource(id=tiny_scenario.id, path="tiny.yaml", hash="0" * 64)], config, episodes=3, seeds=[0]
    )
    options = RunOptions(concurrency=2)
    store = RunStore.create(tmp_path / "run", Manifest.new(config, options, [], seeds=[0], episodes=3), plan)
    runner = BatchRunner(store, plan, {tiny_scenario.id: tiny_scenario}, config, options, ModelCalls())
    try:
        asyncio.run(runner.run())
        records = store.scan().records
    finally:
        store.close()
    assert runner.fatal is None and len(records) == 3
    assert {r.trajectory.turns for r in records.values()} == {2}  # ScriptedAgent would need more: the flag ended it


def test_the_scripted_agent_still_solves_its_scenario(tiny_scenario: Scenario) -> None:
    trajectory, breakdown = run_episode(ScenarioEnv(tiny_scenario), ScriptedAgent(), seed=1)
    assert trajectory.end_reason in ("agent_ended", "user_done") and breakdown.outcome == "success"
