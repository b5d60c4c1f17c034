"""The asyncio runner: bounded concurrency, slot reuse, failures that stay in their episode."""

from __future__ import annotations

import asyncio
import gc
import itertools
import time
from pathlib import Path
from typing import Any

import pytest

from envsim.agents.base import Policy
from envsim.agents.scripted import ScriptedAgent
from envsim.batch.cache import CallCacheMiss, CallLog, ModelCalls, current_scope
from envsim.batch.plan import GenerateConfig, RunOptions, ScenarioSource, make_plan
from envsim.batch.runner import RUN_GC_THRESHOLDS, BatchRunner, Participants, RunStats
from envsim.batch.store import Manifest, RunStore
from envsim.llm import ModelCallError
from envsim.scenario import Scenario

CONFIG = GenerateConfig(error_rate=0.3)


def plan_for(scenario: Scenario, episodes: int) -> list[Any]:
    source = ScenarioSource(id=scenario.id, path="tiny.yaml", hash="0" * 64)
    return make_plan([source], CONFIG, episodes=episodes, seeds=[0])


def run(
    root: Path,
    scenario: Scenario,
    episodes: int,
    *,
    concurrency: int,
    step_delay: float = 0.0,
    participants: Participants | None = None,
    calls: ModelCalls | None = None,
    stagger: float = 0.0,
) -> tuple[BatchRunner, dict[str, str]]:
    plan = plan_for(scenario, episodes)
    options = RunOptions(concurrency=concurrency, step_delay=step_delay, stagger=stagger)
    store = RunStore.create(root, Manifest.new(CONFIG, options, [], seeds=[0], episodes=episodes), plan)
    runner = BatchRunner(
        store, plan, {scenario.id: scenario}, CONFIG, options, calls or ModelCalls(), participants=participants
    )
    try:
        asyncio.run(runner.run())
        hashes = {i: r.trajectory_hash for i, r in store.scan().records.items()}
    finally:
        store.close()
    return runner, hashes


def test_512_in_flight_with_scripted_participants(tmp_path: Path, tiny_scenario: Scenario) -> None:
    runner, hashes = run(tmp_path / "run", tiny_scenario, 1024, concurrency=512, step_delay=0.01)
    assert runner.stats.peak_in_flight == 512
    assert runner.stats.stored == len(hashes) == 1024 and runner.fatal is None
    assert runner.pool.created == 512  # one environment per slot, reused for the second half


def test_trajectories_do_not_depend_on_concurrency_or_slot_reuse(tmp_path: Path, tiny_scenario: Scenario) -> None:
    _, one = run(tmp_path / "one", tiny_scenario, 60, concurrency=1)
    _, many = run(tmp_path / "many", tiny_scenario, 60, concurrency=16, step_delay=0.001)
    assert one == many and len(set(one.values())) > 1  # mistakes differ by seed, not by slot


class Failing(ScriptedAgent):
    """Raises ``error`` on every third episode (by index), on its second action."""

    def __init__(self, error: Exception, plan_ids: list[str]) -> None:
        super().__init__(0.0)
        self.error = error
        self.bad = set(plan_ids[::3])
        self.actions = 0

    def reset(self, scenario: Scenario, rng: Any) -> None:
        super().reset(scenario, rng)
        self.actions = 0

    async def aact(self, observation: str, info: dict[str, Any]) -> str | dict[str, Any]:
        self.actions += 1
        scope = current_scope()
        if self.actions == 2 and scope is not None and scope.episode_id in self.bad:
            raise self.error
        return self.act(observation, info)


class WithAgent(Participants):
    def __init__(self, make: Any) -> None:
        super().__init__(CONFIG, RunOptions())
        self.make = make

    def agent(self) -> Policy:
        agent: Policy = self.make()
        agent.client = self.client("agent")  # type: ignore[attr-defined]  # the run's client, as an LLM agent gets
        return agent


@pytest.mark.parametrize(
    ("error", "outcome", "message"),
    [
        (RuntimeError("tool crashed"), "sim_fault", "RuntimeError: tool crashed"),
        (ModelCallError("openai/x", ConnectionError("refused")), "infra_error", "ConnectionError: refused"),
    ],
)
def test_a_failing_episode_is_stored_with_its_outcome_and_spares_the_others(
    tmp_path: Path, tiny_scenario: Scenario, error: Exception, outcome: str, message: str
) -> None:
    ids = [s.episode_id for s in plan_for(tiny_scenario, 30)]
    participants = WithAgent(lambda: Failing(error, ids))
    runner, hashes = run(
        tmp_path / "run", tiny_scenario, 30, concurrency=8, step_delay=0.001, participants=participants
    )
    store = RunStore.open(tmp_path / "run", lock=False)
    records = store.scan().records
    assert len(records) == 30 and runner.fatal is None
    bad = [r for r in records.values() if r.episode_id in set(ids[::3])]
    assert {r.outcome for r in bad} == {outcome} and len(bad) == 10
    assert all(message in (r.error or "") for r in bad)
    assert all(r.reward is None and r.breakdown is None for r in bad)
    assert all(len(r.trajectory.messages) >= 3 for r in bad)  # the partial trajectory is kept
    kept = bad[0].trajectory
    assert (kept.infra_error if outcome == "infra_error" else kept.fault) is not None
    assert {r.outcome for r in records.values() if r not in bad} == {"success"}


def test_a_replay_miss_stops_the_run_and_keeps_what_finished(tmp_path: Path, tiny_scenario: Scenario) -> None:
    class Asks(ScriptedAgent):
        async def aact(self, observation: str, info: dict[str, Any]) -> str | dict[str, Any]:
            await self.client.acomplete("openai/x", [{"role": "user", "content": observation}])
            return self.act(observation, info)

    calls = ModelCalls(mode="replay", log=CallLog(tmp_path / "calls"))
    runner, hashes = run(tmp_path / "run", tiny_scenario, 20, concurrency=4, participants=WithAgent(Asks), calls=calls)
    assert isinstance(runner.fatal, CallCacheMiss) and hashes == {}


def test_progress_figures() -> None:
    stats = RunStats(planned=10, already=2, todo=8)
    assert stats.success_rate is None and stats.mean_reward is None and stats.eta() is None
    stats.stored, stats.reward_sum, stats.reward_count = 4, 3.0, 4
    stats.outcomes.update({"success": 2, "failure": 2, "infra_error": 1})
    assert stats.done == 6 and stats.success_rate == 0.5 and stats.mean_reward == 0.75
    assert (stats.eta() or 0) > 0


class Started(ScriptedAgent):
    """Notes when each of its episodes starts (and makes mistakes, so that episodes differ by seed)."""

    def __init__(self, starts: list[float]) -> None:
        super().__init__(0.3)
        self.starts = starts

    def reset(self, scenario: Scenario, rng: Any) -> None:
        super().reset(scenario, rng)
        self.starts.append(time.perf_counter())


class CallingModels(WithAgent):
    """Participants that count as calling models (as an LLM agent does)."""

    @property
    def calls_models(self) -> bool:
        return True


def test_slots_start_staggered_when_episodes_call_models(tmp_path: Path, tiny_scenario: Scenario) -> None:
    starts: list[float] = []
    participants = CallingModels(lambda: Started(starts))
    runner, staggered = run(
        tmp_path / "staggered", tiny_scenario, 8, concurrency=4, step_delay=0.2, participants=participants, stagger=0.1
    )
    first = sorted(starts)[:4]
    assert all(b - a >= 0.09 for a, b in itertools.pairwise(first))  # slot k starts k × 0.1 s after the run
    assert runner.stats.peak_in_flight == 4 and runner.stats.stored == 8
    same = CallingModels(lambda: Started([]))
    _, together = run(tmp_path / "together", tiny_scenario, 8, concurrency=4, step_delay=0.001, participants=same)
    assert staggered == together  # the same episodes: only their timing changed


def test_no_stagger_without_model_calls_or_in_a_replay(tmp_path: Path, tiny_scenario: Scenario) -> None:
    runner, _ = run(tmp_path / "scripted", tiny_scenario, 2, concurrency=2, stagger=5.0)
    assert runner.stats.run_seconds < 5.0 and runner._start_delay(1) == 0.0  # scripted participants: no waiting
    calling = CallingModels(ScriptedAgent)
    replay = RunOptions(concurrency=4, stagger=0.5, cache="replay")
    replaying = BatchRunner(runner.store, [], {}, CONFIG, replay, ModelCalls(), participants=calling)
    assert replaying._start_delay(3) == 0.0
    live = replaying.options.model_copy(update={"cache": "record"})
    assert BatchRunner(runner.store, [], {}, CONFIG, live, ModelCalls(), participants=calling)._start_delay(3) == 1.5


def test_slots_start_spread_over_a_quarter_second_by_default(tmp_path: Path, tiny_scenario: Scenario) -> None:
    runner, _ = run(tmp_path / "scripted", tiny_scenario, 1, concurrency=1)
    calling = CallingModels(ScriptedAgent)
    default = RunOptions(concurrency=100)
    spread = BatchRunner(runner.store, [], {}, CONFIG, default, ModelCalls(), participants=calling)
    assert [spread._start_delay(k) for k in (0, 1, 99)] == [0.0, 0.0025, 0.2475]
    together = default.model_copy(update={"stagger": 0.0})
    assert BatchRunner(runner.store, [], {}, CONFIG, together, ModelCalls(), participants=calling)._start_delay(99) == 0


class SeesCollector(ScriptedAgent):
    """Notes the cyclic collector's thresholds and frozen count as each of its episodes starts."""

    def __init__(self, seen: list[tuple[tuple[int, ...], int]]) -> None:
        super().__init__(0.3)
        self.seen = seen

    def reset(self, scenario: Scenario, rng: Any) -> None:
        super().reset(scenario, rng)
        self.seen.append((gc.get_threshold(), gc.get_freeze_count()))


def test_the_collector_is_tuned_for_the_run_and_restored_after(tmp_path: Path, tiny_scenario: Scenario) -> None:
    before = gc.get_threshold()
    seen: list[tuple[tuple[int, ...], int]] = []
    runner, _ = run(
        tmp_path / "run", tiny_scenario, 4, concurrency=2, participants=WithAgent(lambda: SeesCollector(seen))
    )
    assert runner.stats.stored == 4 and len(seen) == 4
    assert all(thresholds == RUN_GC_THRESHOLDS and frozen > 0 for thresholds, frozen in seen)
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


class AsksMock(ScriptedAgent):
    """Calls a model (litellm's ``mock_response``) before each scripted action, as an LLM agent would."""

    def __init__(self) -> None:
        super().__init__(0.0)

    async def aact(self, observation: str, info: dict[str, Any]) -> str | dict[str, Any]:
        await self.client.acomplete(
            "openai/envsim-test", [{"role": "user", "content": observation}], mock_response="ok"
        )
        return self.act(observation, info)


def test_an_episode_is_scored_once_with_its_agents_usage(
    tmp_path: Path, tiny_scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    from envsim.reward.rubric import Rubric

    evaluations: list[Any] = []
    evaluate, aevaluate = Rubric.evaluate, Rubric.aevaluate

    def counted(self: Rubric, trajectory: Any, context: Any) -> Any:
        evaluations.append(trajectory)
        return evaluate(self, trajectory, context)

    async def acounted(self: Rubric, trajectory: Any, context: Any) -> Any:
        evaluations.append(trajectory)
        return await aevaluate(self, trajectory, context)

    monkeypatch.setattr(Rubric, "evaluate", counted)
    monkeypatch.setattr(Rubric, "aevaluate", acounted)
    runner, _ = run(tmp_path / "run", tiny_scenario, 6, concurrency=3, participants=WithAgent(AsksMock))
    records = RunStore.open(tmp_path / "run", lock=False).scan().records
    assert runner.stats.stored == 6 and {r.outcome for r in records.values()} == {"success"}
    assert len(evaluations) == 6  # once per episode, when it ends: the env already had the agent's usage
    for record in records.values():
        turns = sum(m["role"] == "assistant" for m in record.trajectory.messages)
        assert record.trajectory.usage["agent"].calls == turns == record.usage["agent"].calls
    assert all(t.usage["agent"].calls > 0 for t in evaluations)


def test_episodes_finishing_close_together_are_appended_as_one_group(
    tmp_path: Path, tiny_scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    groups: list[int] = []
    append = RunStore.append

    def counted(self: RunStore, records: Any) -> int:
        records = list(records)
        groups.append(len(records))
        return append(self, records)

    monkeypatch.setattr(RunStore, "append", counted)
    # slots 5 ms apart: the 16 episodes finish one by one, within GROUP_WAIT of each other
    runner, hashes = run(
        tmp_path / "run",
        tiny_scenario,
        16,
        concurrency=16,
        step_delay=0.01,
        participants=CallingModels(ScriptedAgent),
        stagger=0.005,
    )
    assert runner.stats.stored == len(hashes) == sum(groups) == 16
    assert len(groups) <= 4  # without the wait: up to one append (a thread hand-over and an fsync) per episode


class NotesPhases(ScriptedAgent):
    """Notes when each request starts and each answer is taken, and, one pass of the event loop after each, ``loop``."""

    def __init__(self, events: list[str], asks: bool) -> None:
        super().__init__(0.0)
        self.events = events
        self.asks = asks

    def _note(self, event: str) -> None:
        self.events.append(event)
        asyncio.get_running_loop().call_soon(self.events.append, "loop")

    async def aact(self, observation: str, info: dict[str, Any]) -> str | dict[str, Any]:
        self.events.append("request")
        if self.asks:
            await self.client.acomplete(
                "openai/envsim-test", [{"role": "user", "content": observation}], mock_response="ok"
            )
        self._note("answer")
        return self.act(observation, info)


@pytest.mark.parametrize("calls_models", [True, False])
def test_a_turn_runs_in_phases_only_where_episodes_wait_on_models(
    tmp_path: Path, tiny_scenario: Scenario, monkeypatch: pytest.MonkeyPatch, calls_models: bool
) -> None:
    from envsim.env import ScenarioEnv

    events: list[str] = []
    astep = ScenarioEnv.astep

    async def noted(self: ScenarioEnv, action: Any) -> Any:
        events.append("step")
        result = await astep(self, action)
        asyncio.get_running_loop().call_soon(events.append, "loop")
        return result

    monkeypatch.setattr(ScenarioEnv, "astep", noted)
    kind = CallingModels if calls_models else WithAgent
    runner, _ = run(
        tmp_path / "run", tiny_scenario, 2, concurrency=1, participants=kind(lambda: NotesPhases(events, calls_models))
    )
    assert runner.stats.stored == 2 and events.count("step") >= 4
    one_after_another = set(itertools.pairwise(events))
    if calls_models:  # the loop makes a pass between an answer and the step, and between the step and the next request
        assert ("answer", "step") not in one_after_another and ("step", "request") not in one_after_another
        assert {("answer", "loop"), ("step", "loop"), ("loop", "request")} <= one_after_another
    else:  # scripted participants never wait: an episode runs straight through
        assert {("answer", "step"), ("step", "request")} <= one_after_another


def stored_lines(root: Path) -> int:
    return sum(shard.read_bytes().count(b"\n") for shard in (root / "episodes").glob("shard-*.jsonl"))


class HogsTheLoop(ScriptedAgent):
    """Before its episode number ``at`` starts, holds the event loop's thread (as a long offline episode does)
    until ``at`` records are on disk or 10 s have passed; notes how many it saw, and when."""

    def __init__(self, root: Path, at: int, seen: list[tuple[int, float]]) -> None:
        super().__init__(0.3)
        self.root, self.at, self.seen = root, at, seen
        self.episodes = 0

    def reset(self, scenario: Scenario, rng: Any) -> None:
        super().reset(scenario, rng)
        self.episodes += 1
        if self.episodes == self.at + 1:
            started = time.monotonic()
            while stored_lines(self.root) < self.at and time.monotonic() - started < 10:
                time.sleep(0.005)  # never awaits: the loop gets no pass
            self.seen.append((stored_lines(self.root), time.monotonic() - started))


def test_finished_episodes_reach_the_disk_while_the_loop_never_waits(tmp_path: Path, tiny_scenario: Scenario) -> None:
    # offline episodes never await anything real: a writer that needs a pass of the loop stored nothing
    # before the last episode (a kill -9 at 40% lost every one); the writer's thread stores them anyway
    root = tmp_path / "run"
    seen: list[tuple[int, float]] = []
    participants = WithAgent(lambda: HogsTheLoop(root, 300, seen))
    runner, hashes = run(root, tiny_scenario, 400, concurrency=1, participants=participants)
    assert runner.stats.stored == len(hashes) == 400 and runner.fatal is None
    [(on_disk, waited)] = seen
    assert on_disk == 300 and waited < 5  # every finished episode, within about GROUP_WAIT (generous bound)


class Interrupts(ScriptedAgent):
    """Before its episode number ``at`` starts, asks the loop to interrupt the run (as SIGTERM's handler does)."""

    def __init__(self, at: int, interrupt: Any) -> None:
        super().__init__(0.3)
        self.at, self.interrupt = at, interrupt
        self.episodes = 0

    def reset(self, scenario: Scenario, rng: Any) -> None:
        super().reset(scenario, rng)
        self.episodes += 1
        if self.episodes == self.at:
            asyncio.get_running_loop().call_soon(self.interrupt)


def test_a_signal_stops_an_offline_run_mid_way(tmp_path: Path, tiny_scenario: Scenario) -> None:
    # without a pass of the loop after each offline episode, the handler ran only after the last one
    holder: list[BatchRunner] = []
    participants = WithAgent(lambda: Interrupts(50, lambda: holder[0]._interrupt()))
    plan = plan_for(tiny_scenario, 400)
    options = RunOptions(concurrency=4)
    store = RunStore.create(tmp_path / "run", Manifest.new(CONFIG, options, [], seeds=[0], episodes=400), plan)
    runner = BatchRunner(
        store, plan, {tiny_scenario.id: tiny_scenario}, CONFIG, options, ModelCalls(), participants=participants
    )
    holder.append(runner)
    try:
        asyncio.run(runner.run())
        records = store.scan().records
    finally:
        store.close()
    assert runner.interrupted and runner.fatal is None
    assert 49 <= runner.stats.stored == len(records) < 60  # what finished is stored; the rest is left to a resume
