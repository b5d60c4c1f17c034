"""``--backend ray``: the same episodes as the local backend, streamed back and stored by the driver, resumable."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from envsim.batch.plan import GenerateConfig, RunOptions
from envsim.batch.ray_backend import RayBackendError, RayRunner, play_shard, run_with_ray
from envsim.batch.runner import RunStats
from envsim.batch.session import RunSummary, execute, load_scenarios, start_run
from envsim.batch.store import EpisodeRecord, RunStore
from tests.conftest import REPO, TINY_SCENARIO

CONFIG = GenerateConfig(error_rate=0.3)
CLI = [sys.executable, "-c", "from envsim.cli import main; main()"]
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
    runner = RayRunner(
        store, plan, loaded, manifest.config, options, stats=RunStats(), on_stored=on_stored, workers=2
    )  # not the default (the CPUs free right now): the last test's tasks may still be releasing theirs
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


# ``envsim generate --backend ray``: in process (the module's Ray cluster is joined, not restarted)


def generate(*args: str) -> RunSummary:
    """``envsim generate ARGS... --json`` in this process; the summary it printed last."""
    from typer.testing import CliRunner

    from envsim.cli import app

    result = CliRunner().invoke(app, ["generate", *args, "--no-progress", "--json"])
    assert result.exit_code == 0, (result.output, result.exception)
    return RunSummary.model_validate_json(result.stdout.splitlines()[-1])


def test_cli_backend_ray_stores_what_the_local_backend_stores(
    ray_cluster: None, tmp_path: Path, scenarios: list[str]
) -> None:
    common = [*scenarios, "--episodes", "4", "--seed", "0", "--seed", "100", "--error-rate", "0.3"]
    local = generate(*common, "--out", str(tmp_path / "local"))
    ray = generate(*common, "--out", str(tmp_path / "ray"), "--backend", "ray", "--workers", "2")
    assert ray.status == "finished" and ray.stored == ray.complete == ray.stored_this_session == 16
    assert hashes(tmp_path / "ray") == hashes(tmp_path / "local") and len(set(hashes(tmp_path / "ray").values())) > 5
    # the mean is exactly rounded (math.fsum), so the order episodes were stored in does not change it
    same = {"episodes_planned", "stored", "complete", "missing", "outcomes", "tokens", "mean_reward", "success_rate"}
    assert ray.model_dump(include=same) == local.model_dump(include=same)
    scan = RunStore.open(tmp_path / "ray", lock=False).scan()
    assert scan.superseded == 0 and scan.bad == []
    manifest = RunStore.open(tmp_path / "ray", lock=False).read_manifest()
    assert [s.status for s in manifest.sessions] == ["finished"]


def test_cli_resumes_an_interrupted_local_run_on_ray(ray_cluster: None, tmp_path: Path) -> None:
    tiny = tmp_path / "tiny.yaml"
    tiny.write_text(TINY_SCENARIO, encoding="utf-8")
    episodes = 150
    execute(start_run(tmp_path / "reference", [str(tiny)], CONFIG, RunOptions(), episodes=episodes))

    run = tmp_path / "run"
    args = ["generate", str(tiny), "--episodes", str(episodes), "--error-rate", "0.3", "--out", str(run)]
    process = subprocess.Popen(
        [*CLI, *args, "--concurrency", "4", "--step-delay", "0.02"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    shard = run / "episodes" / "shard-0000.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (shard.exists() and shard.read_bytes().count(b"\n") >= 15):
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 130
    before = len(RunStore.open(run, lock=False).scan().records)
    assert 15 <= before < episodes, "the interrupt should land mid-run"

    summary = generate("--resume", str(run), "--backend", "ray", "--workers", "2", "--step-delay", "0")
    assert summary.resumed and summary.status == "finished"
    assert summary.stored_this_session == episodes - before and summary.stored == summary.complete == episodes
    scan = RunStore.open(run, lock=False).scan()
    assert scan.superseded == 0 and scan.bad == []  # no episode twice
    assert hashes(run) == hashes(tmp_path / "reference")
    sessions = json.loads((run / "manifest.json").read_text(encoding="utf-8"))["sessions"]
    assert [s["status"] for s in sessions] == ["interrupted", "finished"]
    # and back: the local backend finds nothing left
    assert generate("--resume", str(run)).stored_this_session == 0


def test_cli_refuses_what_the_backend_cannot_do(tmp_path: Path, scenarios: list[str]) -> None:
    recorded = tmp_path / "recorded"
    execute(start_run(recorded, scenarios[:1], CONFIG, RunOptions(cache="record"), episodes=1))
    new = ["generate", scenarios[0], "--out", str(tmp_path / "new")]
    no_ray = "import sys; sys.modules['ray'] = None; "
    cases = [
        ("", [*new, "--backend", "ray", "--record"], "cannot record model calls"),
        ("", ["generate", "--resume", str(recorded), "--backend", "ray"], "resume it with the local backend"),
        ("", [*new, "--workers", "2"], "--workers needs --backend ray"),
        ("", [*new, "--ray-address", "127.0.0.1:6379"], "--ray-address needs --backend ray"),
        ("", [*new, "--backend", "spark"], "unknown backend 'spark'"),
        (no_ray, [*new, "--backend", "ray"], "pip install 'envsim[distributed]'"),
    ]
    for prelude, args, message in cases:
        result = subprocess.run(
            [sys.executable, "-c", f"{prelude}from envsim.cli import main; main()", *args],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=120,
        )
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr, (args, result.stderr)
        assert not (tmp_path / "new").exists(), args  # refused before anything was written
