"""The run directory: durable appends, lossless records, torn lines, deduplication, lock, Parquet."""

from __future__ import annotations

import errno
import math
import os
from pathlib import Path

import pandas as pd
import pytest

from envsim.batch.plan import EpisodeSpec, GenerateConfig, RunOptions
from envsim.batch.store import EpisodeRecord, Manifest, RunStore, RunStoreError, trajectory_hash
from envsim.reward.base import ComponentResult, RewardBreakdown
from envsim.reward.outcome import Outcome
from envsim.trajectory import ToolCallRecord, Trajectory, Usage


def spec(i: int) -> EpisodeSpec:
    return EpisodeSpec(
        episode_id=f"ep{i:04d}", scenario_id="Tiny", scenario_hash="s", index=i, base_seed=0, seed=i, config_hash="c"
    )


def record(i: int, outcome: Outcome = "success", reward: float | None = 1.0, note: str = "") -> EpisodeRecord:
    trajectory = Trajectory(
        scenario_id="Tiny",
        seed=i,
        messages=[
            {"role": "system", "content": "Be kind."},
            {"role": "user", "content": f"Hilfe! Ünïcode ✓ {note}"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
            },
            {"role": "tool", "tool_call_id": "c1", "content": '{"x": 0.1}'},
        ],
        tool_calls=[ToolCallRecord(turn=1, id="c1", name="f", arguments={"amount": 0.1 + 0.2}, ok=True)],
        turns=1,
        end_reason="user_done",
        final_state_hash="abc",
        usage={"agent": Usage(prompt_tokens=10, completion_tokens=2, cost=0.001, calls=1)},
    )
    breakdown = None
    if reward is not None:
        breakdown = RewardBreakdown(
            total=reward,
            components={
                "final_state": ComponentResult(score=reward, weight=1.0, explanation="ok"),
                "judge": ComponentResult(score=math.nan, weight=0.0, explanation="no verdict", judged=False),
            },
            outcome=outcome,
            measures={"turns": 1.0, "containment": None},
        )
    return EpisodeRecord(
        episode_id=f"ep{i:04d}",
        scenario_id="Tiny",
        scenario_hash="s",
        config_hash="c",
        index=i,
        base_seed=0,
        seed=i,
        outcome=outcome,
        reward=reward,
        breakdown=breakdown,
        models={"agent": None, "user": None, "judge": None},
        usage={"agent": Usage(prompt_tokens=10, completion_tokens=2, cost=0.001, calls=1)},
        trajectory=trajectory,
        trajectory_hash=trajectory_hash(trajectory),
        error="boom" if outcome == "infra_error" else None,
    )


def new_store(root: Path, n: int = 5, **kwargs: int) -> RunStore:
    manifest = Manifest.new(GenerateConfig(), RunOptions(), [], seeds=[0], episodes=n)
    return RunStore.create(root, manifest, [spec(i) for i in range(n)], **kwargs)


def test_records_round_trip_losslessly(tmp_path: Path) -> None:
    original = record(1)
    back = EpisodeRecord.from_line(original.to_line())
    assert back.trajectory.to_json() == original.trajectory.to_json()
    assert trajectory_hash(back.trajectory) == original.trajectory_hash
    assert back.breakdown is not None and math.isnan(back.breakdown.components["judge"].score)  # NaN survives
    assert back.to_line() == original.to_line()
    assert original.to_line().count("\n") == 1 and original.to_line().endswith("\n")


def test_append_scan_and_counts(tmp_path: Path) -> None:
    store = new_store(tmp_path / "run")
    assert store.append([record(0), record(1, "failure", 0.5)]) == 2
    assert store.append([record(2, "infra_error", None)]) == 1
    scan = store.scan()
    assert set(scan.records) == {"ep0000", "ep0001", "ep0002"} and scan.bad == []
    counts = store.counts(scan)
    assert (counts.planned, counts.stored, counts.complete, counts.missing) == (5, 3, 2, 3)
    assert counts.outcomes == {"failure": 1, "infra_error": 1, "success": 1}
    store.close()
    # the data is on disk, readable by another reader
    reader = RunStore.open(tmp_path / "run", lock=False)
    assert set(reader.scan().records) == {"ep0000", "ep0001", "ep0002"}


def test_a_final_record_supersedes_an_infra_error_and_is_never_replaced(tmp_path: Path) -> None:
    store = new_store(tmp_path / "run")
    store.append([record(0, "infra_error", None), record(1, "success", 1.0, note="first")])
    store.append([record(0, "failure", 0.0), record(1, "infra_error", None), record(1, "success", 1.0, note="again")])
    scan = store.scan()
    assert scan.records["ep0000"].outcome == "failure"
    assert (
        scan.records["ep0001"].outcome == "success"
        and "first" in scan.records["ep0001"].trajectory.messages[1]["content"]
    )
    assert scan.superseded == 3 and len(scan.records) == 2
    store.close()


def test_torn_last_line_is_reported_then_repaired(tmp_path: Path) -> None:
    store = new_store(tmp_path / "run")
    store.append([record(0), record(1)])
    store.close()
    shard = tmp_path / "run" / "episodes" / "shard-0000.jsonl"
    whole = shard.read_bytes()
    line = record(2).to_line().encode()
    shard.write_bytes(whole + line[: len(line) // 2])  # kill -9 in the middle of a write
    store = RunStore.open(tmp_path / "run")
    scan = store.scan()
    assert set(scan.records) == {"ep0000", "ep0001"}
    assert [(b.shard, b.line, b.kind) for b in scan.bad] == [("shard-0000.jsonl", 3, "torn")]
    repaired = store.repair()
    assert len(repaired) == 1 and shard.read_bytes() == whole
    assert store.scan().bad == []
    # a complete line without its newline is torn as well: the episode is not counted, it runs again
    store.close()
    shard.write_bytes(whole + line[:-1])
    store = RunStore.open(tmp_path / "run")
    assert store.scan().torn and "ep0002" not in store.scan().records
    store.close()


def test_corrupt_middle_line_is_skipped_and_reported(tmp_path: Path) -> None:
    store = new_store(tmp_path / "run")
    store.append([record(0)])
    store.close()
    shard = tmp_path / "run" / "episodes" / "shard-0000.jsonl"
    shard.write_bytes(shard.read_bytes() + b"{not json\n" + record(1).to_line().encode())
    scan = RunStore.open(tmp_path / "run", lock=False).scan()
    assert set(scan.records) == {"ep0000", "ep0001"}
    assert [(b.line, b.kind) for b in scan.bad] == [(2, "corrupt")]


def test_sessions_write_new_shards_and_shards_rotate(tmp_path: Path) -> None:
    store = new_store(tmp_path / "run", max_shard_bytes=1)
    store.append([record(0)])
    store.append([record(1)])
    store.close()
    store = RunStore.open(tmp_path / "run")
    store.append([record(2)])
    assert [p.name for p in store.shards()] == ["shard-0000.jsonl", "shard-0001.jsonl", "shard-0002.jsonl"]
    assert set(store.scan().records) == {"ep0000", "ep0001", "ep0002"}
    store.close()


def test_one_writer_at_a_time_and_no_run_over_a_run(tmp_path: Path) -> None:
    store = new_store(tmp_path / "run")
    with pytest.raises(RunStoreError, match="in use by another generator"):
        RunStore.open(tmp_path / "run")
    with pytest.raises(RunStoreError, match="already holds a run"):
        new_store(tmp_path / "run")
    store.close()
    RunStore.open(tmp_path / "run").close()  # the lock went with the writer
    with pytest.raises(RunStoreError, match="not a run directory"):
        RunStore.open(tmp_path / "elsewhere")


def test_manifest_and_plan_round_trip(tmp_path: Path) -> None:
    store = new_store(tmp_path / "run", n=3)
    assert [s.episode_id for s in store.read_plan()] == ["ep0000", "ep0001", "ep0002"]
    manifest = store.read_manifest()
    assert manifest.episodes_planned == 0 and manifest.versions["python"]  # no scenarios in this one
    manifest.counts = store.counts()
    store.write_manifest(manifest)
    assert store.read_manifest().counts.missing == 3
    assert not list((tmp_path / "run").glob(".*.tmp"))
    store.close()


def test_parquet_has_one_flat_row_per_episode(tmp_path: Path) -> None:
    store = new_store(tmp_path / "run")
    store.append([record(0), record(1, "failure", 0.25), record(2, "infra_error", None), record(1, "failure", 0.25)])
    path = store.write_parquet()
    frame = pd.read_parquet(path)
    assert sorted(frame["episode_id"]) == ["ep0000", "ep0001", "ep0002"]
    row = frame.set_index("episode_id").loc["ep0001"]
    assert row["outcome"] == "failure" and row["reward"] == 0.25 and row["reward_final_state"] == 0.25
    assert row["kpi_turns"] == 1.0 and bool(pd.isna(row["kpi_containment"]))
    assert row["agent_prompt_tokens"] == 10 and row["total_tokens"] == 12 and row["cost"] == pytest.approx(0.001)
    assert row["schema_version"] == 1 and row["shard"] == "shard-0000.jsonl" and row["line"] == 2
    missing = frame.set_index("episode_id")["reward"].isna().to_dict()
    assert missing == {"ep0000": False, "ep0001": False, "ep0002": True}
    store.close()


def full_disk(fd: int) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # what fsync (or a flush) says, naming no file


@pytest.mark.parametrize("write", ["append", "manifest", "parquet", "calls"])
def test_a_full_disk_names_the_file_it_could_not_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write: str
) -> None:
    from envsim.batch.cache import CallEntry, CallLog

    store = new_store(tmp_path / "run")
    store.append([record(0)])
    log = CallLog(tmp_path / "run" / "calls")
    log.put("k", CallEntry(completion=None, failed_attempts=1, error="timeout"))
    monkeypatch.setattr(os, "fsync", full_disk)
    actions = {
        "append": (lambda: store.append([record(1)]), tmp_path / "run" / "episodes" / "shard-0000.jsonl"),
        "manifest": (lambda: store.write_manifest(store.read_manifest()), store.manifest_path),
        "parquet": (store.write_parquet, store.parquet_path),
        "calls": (log.sync, tmp_path / "run" / "calls" / "calls-0000.jsonl"),
    }
    action, path = actions[write]
    with pytest.raises(OSError, match="No space left on device") as raised:
        action()
    assert raised.value.filename == str(path) and str(path) in str(raised.value)
    monkeypatch.undo()
    store.close()
    log.close()
    assert [p.name for p in (tmp_path / "run").iterdir() if p.name.endswith(".tmp")] == []  # no temporary file left
