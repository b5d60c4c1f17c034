"""The judge is a reward component like any other (issue 21 item 2): built by the rubric (a scenario's judges and
a run's --judge-rubric), scored once per episode, synchronously (evaluate) or awaited (aevaluate, env.astep); a
batch run only schedules, steps and stores (a judge's provider failure is the episode's infra_error)."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path
from typing import Any

import pytest

from envsim.agents.scripted import ScriptedAgent
from envsim.batch.cache import ModelCalls
from envsim.batch.plan import GenerateConfig, RunOptions, ScenarioSource, make_plan
from envsim.batch.runner import BatchRunner
from envsim.batch.store import Manifest, RunStore
from envsim.env import ScenarioEnv
from envsim.errors import ModelCallError
from envsim.llm import Completion
from envsim.reward.base import ComponentScore, RewardContext
from envsim.reward.rubric import Rubric
from envsim.rollout import EpisodeDriver
from envsim.scenario import Scenario
from envsim.testing.fake_client import FakeClient
from envsim.trajectory import Trajectory

RUBRIC = Path(__file__).resolve().parents[1] / "data" / "judge_rubric.yaml"


def verdict(client: FakeClient) -> FakeClient:
    """``client`` answering every judge call with a full marks verdict on the sample rubric."""
    from envsim.reward.judge import load_rubric

    rubric = load_rubric(RUBRIC)
    reply = {c.id: {"rationale": "fine", "score": "pass" if c.pass_fail else c.bounds()[1]} for c in rubric.criteria}
    client.default = Completion(text=json.dumps(reply), prompt_tokens=50, completion_tokens=20, cost=0.01)
    return client


def options(client: FakeClient, **more: Any) -> dict[str, Any]:
    return {"backoff": 0.0, "client": client, **more}


class Slow:
    """An async component that notes how many of its kind were awaited at once."""

    running = 0
    peak = 0

    def __call__(self, trajectory: Trajectory, context: RewardContext) -> ComponentScore:
        return ComponentScore(0.5, "sync")

    async def ascore(self, trajectory: Trajectory, context: RewardContext) -> ComponentScore:
        Slow.running += 1
        Slow.peak = max(Slow.peak, Slow.running)
        await asyncio.sleep(0.01)
        Slow.running -= 1
        return ComponentScore(0.5, "async")


def test_aevaluate_awaits_async_components_together_and_agrees_with_evaluate(tiny_env: ScenarioEnv) -> None:
    episode = EpisodeDriver(tiny_env, ScriptedAgent())
    episode.reset(seed=0)
    while not episode.done:
        episode.turn()
    rubric = tiny_env.rubric.with_component("a", Slow(), 1.0).with_component("b", Slow(), 1.0)
    context = RewardContext(tiny_env.runtime)
    awaited = asyncio.run(rubric.aevaluate(tiny_env.trajectory(), context))
    called = rubric.evaluate(tiny_env.trajectory(), context)
    assert Slow.peak == 2 and awaited.components["a"].explanation == "async"
    assert called.components["a"].explanation == "sync" and awaited.total == called.total
    with pytest.raises(ValueError, match="there already"):
        rubric.with_component("a", Slow())


def test_a_runs_judge_is_a_component_of_the_rubric_scored_once_when_the_episode_ends(tiny_scenario: Scenario) -> None:
    client = verdict(FakeClient())
    rubric = Rubric.for_scenario(tiny_scenario, judge_rubric=RUBRIC, judge_weight=0.5, judge_options=options(client))
    assert list(rubric.functions)[-1] == "judge" and rubric.weights["judge"] == 0.5
    env = ScenarioEnv(tiny_scenario, rubric=rubric)
    episode = EpisodeDriver(env, ScriptedAgent())

    async def play() -> None:
        episode.reset(seed=0)
        while not episode.done:
            await episode.aturn()

    asyncio.run(play())
    assert len(client.requests) == 1  # one judgement, awaited by the last step
    trajectory, breakdown = episode.result()
    assert len(client.requests) == 1  # not judged again
    judge = breakdown.components["judge"]
    assert judge.ran and judge.score == 1.0 and judge.weight == 0.5 and breakdown.outcome == "success"
    assert breakdown.measures["judge.cost"] == pytest.approx(0.01) and breakdown.measures["judge.calls"] == 1


def test_a_provider_failure_is_judge_error_or_raised_for_a_run(tiny_scenario: Scenario) -> None:
    def played(**more: Any) -> Any:
        client = FakeClient(default=ConnectionError("refused"))
        rubric = Rubric.for_scenario(tiny_scenario, judge_rubric=RUBRIC, judge_options=options(client, **more))
        env = ScenarioEnv(tiny_scenario, rubric=rubric)
        episode = EpisodeDriver(env, ScriptedAgent())
        episode.reset(seed=0)
        while not episode.done:
            episode.turn()
        return episode.result()[1]

    breakdown = played()
    assert (
        math.isnan(breakdown.components["judge"].score)
        and "provider_error" in breakdown.components["judge"].explanation
    )
    with pytest.raises(ModelCallError, match="judge_error \\(provider_error\\)"):
        played(provider_errors_raise=True)


@pytest.mark.parametrize("works", [True, False])
def test_a_batch_run_stores_the_judges_verdict_or_an_infra_error(
    tmp_path: Path, tiny_scenario: Scenario, works: bool
) -> None:
    client = verdict(FakeClient()) if works else FakeClient(default=ConnectionError("refused"))
    config = GenerateConfig(judge_rubric=str(RUBRIC), judge_weight=0.5)
    options = RunOptions(concurrency=2, max_retries=1, backoff=0.0)
    source = ScenarioSource(id=tiny_scenario.id, path="tiny.yaml", hash="0" * 64)
    plan = make_plan([source], config, episodes=3, seeds=[0])
    store = RunStore.create(tmp_path / "run", Manifest.new(config, options, [], seeds=[0], episodes=3), plan)
    calls = ModelCalls(max_retries=1, backoff=0.0, transport=client)
    runner = BatchRunner(store, plan, {tiny_scenario.id: tiny_scenario}, config, options, calls)
    try:
        asyncio.run(runner.run())
        records = list(store.scan().records.values())
    finally:
        store.close()
    assert len(records) == 3 and runner.fatal is None
    if works:
        assert len(client.requests) == 3  # one judgement per episode
        for record in records:
            assert record.outcome == "success" and record.breakdown is not None
            assert record.breakdown.components["judge"].score == 1.0 and record.usage["judge"].calls == 1
    else:
        assert len(client.requests) == 3 * 2  # one judge call per episode, tried twice by the run's one retry policy
        assert all(r.outcome == "infra_error" and "ConnectionError" in (r.error or "") for r in records)


def test_a_judge_that_is_not_run_never_makes_an_episode_wait(tmp_path: Path) -> None:
    """Offline (no judge model), a scenario's judge is called like any component: an episode of scripted
    participants runs straight through, so the slots take turns with one environment instead of holding one each."""
    from envsim.registration import load_registered

    scenario = load_registered("MedicalSupplyPanicCaller")
    assert Rubric.for_scenario(scenario).functions["empathy"] is not None  # the scenario names a judge
    config = GenerateConfig()
    options = RunOptions(concurrency=8)
    source = ScenarioSource(id=scenario.id, path="x.yaml", hash="0" * 64)
    plan = make_plan([source], config, episodes=8, seeds=[0])
    store = RunStore.create(tmp_path / "run", Manifest.new(config, options, [], seeds=[0], episodes=8), plan)
    runner = BatchRunner(store, plan, {scenario.id: scenario}, config, options, ModelCalls())
    try:
        asyncio.run(runner.run())
        records = list(store.scan().records.values())
    finally:
        store.close()
    assert len(records) == 8 and all(r.breakdown is not None for r in records)
    assert all(not r.breakdown.components["empathy"].ran for r in records if r.breakdown is not None)
    assert runner.pool.created == 1
