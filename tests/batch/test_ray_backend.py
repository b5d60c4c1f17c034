"""``--backend ray``: the same episodes as the local backend, streamed back and stored by the driver, resumable."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from envsim.batch.plan import GenerateConfig, RunOptions
from envsim.batch.ray_backend import RayBackendError, RayRunner, play_shard, run_with_ray
from envsim.batch.runner import RunStats
from envsim.batch.session import RunSummary, execute, load_scenarios, start_run
from envsim.batch.store import EpisodeRecord, RunStore
from tests.conftest import TINY_SCENARIO

CONFIG = GenerateConfig(error_rate=0.3)
EPISODES = 12


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    """A local Ray cluster with two CPUs (two workers), for the whole module."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture
def scenarios(tmp_path: Path) -> list[str]:
    tiny = tmp_path / "tiny.yaml"
    tiny.write_text(TINY_SCENARIO, encoding="utf-8")
    return [str(tiny), "MedicalSupplyPanicCaller"]


def hashes(run: Path) -> dict[str, str]:
    return {i: r.trajectory_hash for i, r in RunStore.open(run, lock=False).scan().records.items()}


def reference(tmp_path: Path, scenarios: list[str]) -> dict[str, str]:
    execute(start_run(tmp_path / "local", scenarios, CONFIG, RunOptions(), episodes=EPISODES, seeds=[0, 100]))
    return hashes(tmp_path / "local")


def test_ray_stores_the_same_episodes_as_the_local_backend(
    ray_cluster: None, tmp_path: Path, scenarios: list[str]
) -> None:
    expected = reference(tmp_path, scenarios)
    store = start_run(tmp_path / "ray", scenarios, CONFIG, RunOptions(), episodes=EPISODES, seeds=[0, 100])
    summary = run_with_ray(store.read_plan(), store, store.read_manifest().config)
    assert isinstance(summary, RunSummary)
    assert summary.status == "finished" and summary.stored == summary.complete == summary.episodes_planned == 48
    assert summary.stored_this_session == 48 and summary.missing == 0
    assert hashes(tmp_path / "ray") == expected and len(set(expected.values())) > 10
    scan = RunStore.open(tmp_path / "ray", lock=False).scan()
    assert scan.superseded == 0 and scan.bad == []  # every episode stored once
    manifest = RunStore.open(tmp_path / "ray", lock=False).read_manifest()
    assert [s.status for s in manifest.sessions] == ["finished"] and manifest.counts.complete == 48
    assert summary.parquet is not None and Path(summary.parquet).is_file()


def test_results_stream_back_from_every_worker(ray_cluster: None, tmp_path: Path, scenarios: list[str]) -> None:
    store = start_run(tmp_path / "ray", scenarios, CONFIG, RunOptions(), episodes=EPISODES)
    plan = store.read_plan()
    manifest = store.read_manifest()
    loaded = load_scenarios(manifest.scenarios, {s.scenario_id for s in plan})
    groups: list[int] = []
    stored_so_far: list[int] = []

    def on_stored(records: object) -> None:
        groups.append(len(records))  # type: ignore[arg-type]
        stored_so_far.append(len(RunStore.open(tmp_path / "ray", lock=False).scan().records))

    options = RunOptions(concurrency=2, step_delay=0.02)
    runner = RayRunner(store, plan, loaded, manifest.config, options, stats=RunStats(), on_stored=on_stored)
    try:
        stats = asyncio.run(runner.run())
    finally:
        store.close()
    assert runner.fatal is None and stats.stored == len(plan) == 2 * EPISODES
    assert runner.shards == [EPISODES, EPISODES]  # two workers, half the episodes each
    assert len(groups) > 2 and sum(groups) == len(plan)  # streamed in several messages, not all at the end
    assert stored_so_far == sorted(stored_so_far) and stored_so_far[0] < len(plan)  # on disk as they arrive


def test_resume_runs_only_what_is_missing(ray_cluster: None, tmp_path: Path, scenarios: list[str]) -> None:
    expected = reference(tmp_path, scenarios)
    records = RunStore.open(tmp_path / "local", lock=False).scan().records
    run = tmp_path / "ray"
    store = start_run(run, scenarios, CONFIG, RunOptions(), episodes=EPISODES, seeds=[0, 100])
    plan = store.read_plan()
    # a previous session stored a third of the plan, one of them as an infrastructure error, and died mid-line
    done = [records[spec.episode_id] for spec in plan[::3]]
    failed = done[0].model_copy(update={"outcome": "infra_error", "reward": None, "breakdown": None})
    store.append([failed, *done[1:]])
    store.close()
    with (run / "episodes" / "shard-0000.jsonl").open("ab") as shard:
        shard.write(b'{"schema_version":1,"episode_id":"torn')

    summary = run_with_ray(plan, RunStore.open(run), CONFIG, resumed=True)
    assert summary.resumed and summary.torn_lines_repaired == 1
    assert summary.stored_this_session == len(plan) - len(done) + 1  # the missing ones and the infra error
    assert hashes(run) == expected
    scan = RunStore.open(run, lock=False).scan()
    assert scan.superseded == 1 and scan.records[failed.episode_id].outcome != "infra_error"
    again = run_with_ray(plan, RunStore.open(run), CONFIG, resumed=True)
    assert again.stored_this_session == 0 and again.missing == 0


def test_a_shard_plays_without_ray(scenarios: list[str], tmp_path: Path) -> None:
    store = start_run(tmp_path / "run", scenarios, CONFIG, RunOptions(), episodes=3)
    plan, manifest = store.read_plan(), store.read_manifest()
    store.close()
    loaded = load_scenarios(manifest.scenarios, {s.scenario_id for s in plan})
    messages = list(play_shard(plan, loaded, manifest.config, RunOptions(), batch=2))
    lines = [line for m in messages if "records" in m for line in m["records"]]
    assert all(len(m["records"]) <= 2 for m in messages if "records" in m)
    assert sorted(EpisodeRecord.from_line(line).episode_id for line in lines) == sorted(s.episode_id for s in plan)
    assert messages[-1]["done"] is True and messages[-1]["fatal"] is None


def test_what_the_ray_backend_refuses(tmp_path: Path, scenarios: list[str]) -> None:
    store = start_run(tmp_path / "run", scenarios, CONFIG, RunOptions(cache="record"), episodes=2)
    plan, manifest = store.read_plan(), store.read_manifest()
    with pytest.raises(RayBackendError, match="cannot record model calls"):
        RayRunner(store, plan, {}, manifest.config, manifest.options)
    with pytest.raises(RayBackendError, match="not the run's"):
        run_with_ray(plan, store, GenerateConfig(error_rate=0.9))
    RunStore.open(tmp_path / "run").close()  # the lock was released: the store is closed either way
