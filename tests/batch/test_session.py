"""Sessions on a run directory: start, resume exactly the missing episodes, refuse a changed scenario."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from envsim.batch.plan import GenerateConfig, RunOptions
from envsim.batch.session import execute, open_run, start_run
from envsim.batch.store import EpisodeRecord, RunStore
from envsim.errors import EnvsimError
from tests.conftest import TINY_SCENARIO, LoggedCalls


def scenario_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_SCENARIO, encoding="utf-8")
    return path


def records(run: Path) -> dict[str, EpisodeRecord]:
    return RunStore.open(run, lock=False).scan().records


def test_resume_runs_exactly_the_missing_episodes(tmp_path: Path) -> None:
    tiny = scenario_file(tmp_path)
    full = tmp_path / "full"
    summary = execute(start_run(full, [str(tiny)], GenerateConfig(error_rate=0.3), RunOptions(), episodes=40))
    assert (summary.episodes_planned, summary.stored, summary.missing, summary.status) == (40, 40, 0, "finished")
    reference = {i: r.trajectory_hash for i, r in records(full).items()}

    partial = tmp_path / "partial"
    store = start_run(partial, [str(tiny)], GenerateConfig(error_rate=0.3), RunOptions(concurrency=4), episodes=40)
    execute(store)
    # lose 15 episodes: keep 25 complete lines of the shard and half of the 26th (a torn write)
    shard = partial / "episodes" / "shard-0000.jsonl"
    lines = shard.read_bytes().splitlines(keepends=True)
    shard.write_bytes(b"".join(lines[:25]) + lines[25][:100])
    kept = {EpisodeRecord.from_line(line).episode_id for line in lines[:25]}

    resumed = execute(open_run(partial), overrides={"concurrency": 16}, resumed=True)
    assert resumed.stored_this_session == 15 and resumed.torn_lines_repaired == 1
    assert (resumed.stored, resumed.missing, resumed.resumed) == (40, 0, True)
    final = records(partial)
    assert {i: r.trajectory_hash for i, r in final.items()} == reference
    second = (partial / "episodes/shard-0001.jsonl").read_bytes().splitlines(keepends=True)
    new_shard = [EpisodeRecord.from_line(line).episode_id for line in second]
    assert len(new_shard) == 15 and not kept & set(new_shard)  # nothing ran twice

    manifest = json.loads((partial / "manifest.json").read_text(encoding="utf-8"))
    assert [s["status"] for s in manifest["sessions"]] == ["finished", "finished"]
    assert manifest["sessions"][1]["options"]["concurrency"] == 16
    assert manifest["counts"] == {
        "planned": 40,
        "stored": 40,
        "complete": 40,
        "missing": 0,
        "outcomes": resumed.outcomes,
    }
    assert sum(resumed.outcomes.values()) == 40


def test_a_session_that_never_finished_is_marked_killed(tmp_path: Path) -> None:
    tiny = scenario_file(tmp_path)
    store = start_run(tmp_path / "run", [str(tiny)], GenerateConfig(), RunOptions(), episodes=2)
    manifest = store.read_manifest()
    store.close()
    from envsim.batch.store import SessionInfo, now_iso

    manifest.sessions.append(SessionInfo(started_at=now_iso(), options=RunOptions()))  # as a kill -9 leaves it
    RunStore(tmp_path / "run", lock=False).write_manifest(manifest)
    execute(open_run(tmp_path / "run"), resumed=True)
    statuses = [s.status for s in RunStore(tmp_path / "run", lock=False).read_manifest().sessions]
    assert statuses == ["killed", "finished"]


def test_resume_refuses_a_changed_scenario(tmp_path: Path) -> None:
    tiny = scenario_file(tmp_path)
    store = start_run(tmp_path / "run", [str(tiny)], GenerateConfig(), RunOptions(), episodes=3)
    store.close()  # planned, never run
    tiny.write_text(TINY_SCENARIO.replace("max_turns: 8", "max_turns: 9"), encoding="utf-8")
    with pytest.raises(EnvsimError, match="changed since the run was planned"):
        execute(open_run(tmp_path / "run"), resumed=True)
    tiny.unlink()
    with pytest.raises(EnvsimError, match="is gone"):
        execute(open_run(tmp_path / "run"), resumed=True)


def test_manifest_records_what_the_run_is(tmp_path: Path) -> None:
    store = start_run(
        tmp_path / "run", ["MedicalSupplyPanicCaller"], GenerateConfig(), RunOptions(), episodes=2, seeds=[0, 10]
    )
    manifest = store.read_manifest()
    store.close()
    assert manifest.episodes_planned == 4 and manifest.seeds == [0, 10]
    assert {"python", "envsim", "pydantic", "litellm"} <= set(manifest.versions)
    (repo,) = manifest.git.values()  # the scenarios live in this repository
    assert len(repo["commit"]) == 40 and isinstance(repo["dirty"], bool)
    assert manifest.scenarios[0].id == "MedicalSupplyPanicCaller"


def test_infra_errors_are_stored_as_such_and_played_again_on_resume(tmp_path: Path) -> None:
    from envsim.testing.server import start_server

    run = tmp_path / "run"
    config = GenerateConfig(agent="llm", agent_model="openai/envsim-agent")
    nowhere = RunOptions(concurrency=4, max_retries=1, backoff=0.0, timeout=5, api_base="http://127.0.0.1:9/v1")
    down = execute(start_run(run, ["MedicalSupplyPanicCaller"], config, nowhere, episodes=6))
    assert down.outcomes == {"infra_error": 6} and (down.stored, down.complete, down.missing) == (6, 0, 6)
    assert down.mean_reward is None  # an infra error is not a reward of 0
    failed = records(run)
    assert all(
        r.reward is None and r.trajectory.infra_error and "Connection" in (r.error or "") for r in failed.values()
    )
    assert all(r.usage["agent"].calls == 2 for r in failed.values())  # the try and its retry

    with start_server() as url:
        up = execute(open_run(run), overrides={"api_base": url}, resumed=True)
    assert up.outcomes == {"success": 6} and (up.stored, up.complete, up.missing) == (6, 6, 0)
    assert up.stored_this_session == 6 and up.mean_reward == 1.0
    final = records(run)
    assert set(final) == set(failed) and all(r.attempts == 2 and r.outcome == "success" for r in final.values())


def test_a_litellm_callback_sees_every_call_of_a_session(tmp_path: Path, slow_litellm_callback: LoggedCalls) -> None:
    """A run waits for litellm's logging of its calls before its loop closes: a slow callback misses none."""
    from envsim import llm
    from envsim.testing.server import start_server

    config = GenerateConfig(agent="llm", agent_model="openai/envsim-agent")
    with start_server() as url:
        options = RunOptions(concurrency=8, api_base=url)
        summary = execute(start_run(tmp_path / "run", ["MedicalSupplyPanicCaller"], config, options, episodes=8))
    assert summary.stored == 8 and summary.model_calls >= 8
    assert slow_litellm_callback.count == summary.model_calls and llm.logging_backlog() == 0
