"""``envsim generate`` as a user runs it: the JSON summary, errors, and a real kill -9 then --resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from envsim.batch.plan import GenerateConfig, RunOptions
from envsim.batch.session import execute, open_run, start_run
from envsim.batch.store import RunStore
from tests.conftest import REPO, TINY_SCENARIO

CLI = [sys.executable, "-c", "from envsim.cli import main; main()"]


def envsim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=REPO, timeout=300)


def scenario_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_SCENARIO, encoding="utf-8")
    return path


def hashes(run: Path) -> dict[str, str]:
    return {i: r.trajectory_hash for i, r in RunStore.open(run, lock=False).scan().records.items()}


def test_json_summary_is_the_last_line(tmp_path: Path) -> None:
    tiny = scenario_file(tmp_path)
    run = tmp_path / "run"
    result = envsim(
        "generate",
        str(tiny),
        "MedicalSupplyPanicCaller",
        "--episodes",
        "6",
        "--seed",
        "0",
        "--seed",
        "100",
        "--error-rate",
        "0.3",
        "--out",
        str(run),
        "--json",
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.splitlines()[-1])
    assert summary["episodes_planned"] == summary["stored"] == summary["complete"] == 24
    assert sum(summary["outcomes"].values()) == 24 and summary["missing"] == 0
    assert 0.0 <= summary["mean_reward"] <= 1.0 and summary["wall_seconds"] > 0
    assert summary["tokens"] == {"prompt": 0, "completion": 0, "total": 0} and summary["cost"] == 0.0
    frame = pd.read_parquet(run / "episodes.parquet")
    assert len(frame) == 24 and set(frame["seed"]) == {*range(6), *range(100, 106)}
    # nothing left: a resume stores nothing and says so
    again = envsim("generate", "--resume", str(run), "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout.splitlines()[-1])["stored_this_session"] == 0


def test_mistakes_exit_2_with_a_message(tmp_path: Path) -> None:
    tiny = scenario_file(tmp_path)
    run = tmp_path / "run"
    assert envsim("generate", str(tiny), "--out", str(run)).returncode == 0
    cases = [
        (["generate", str(tiny), "--out", str(run)], "already holds a run"),
        (["generate", "--resume", str(run), str(tiny)], "give no SCENARIOS"),
        (["generate", "--resume", str(run), "--error-rate", "0.5"], "--error-rate cannot change"),
        (["generate", "--resume", str(tmp_path / "nothing")], "not a run directory"),
        (["generate", "MedicalSupplyPanicCalller", "--out", str(tmp_path / "x")], "did you mean"),
        (["generate", str(tiny)], "--out RUN_DIR is required"),
        (["generate", str(tiny), "--out", str(tmp_path / "y"), "--agent", "llm"], "needs --agent-model"),
        (["generate", "--replay", str(run), "--out", str(tmp_path / "z")], "no recorded model calls"),
        (["generate", str(tiny), "--out", str(tmp_path / "j"), "--judge-model", "openai/x"], "need --judge-rubric"),
        (["generate", str(tiny), "--out", str(tmp_path / "u"), "--user", "llmm"], "did you mean 'llm'"),
        (
            ["generate", str(tiny), "--out", str(tmp_path / "d"), "--agent", "hf", "--device", "gpu"],
            "expected cpu, cuda",
        ),
    ]
    for args, message in cases:
        result = envsim(*args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr, (args, result.stderr)


def test_kill_9_then_resume_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    tiny = scenario_file(tmp_path)
    episodes = 400
    reference = tmp_path / "reference"
    execute(start_run(reference, [str(tiny)], GenerateConfig(error_rate=0.3), RunOptions(), episodes=episodes))

    run = tmp_path / "killed"
    args = [str(tiny), "--episodes", str(episodes), "--error-rate", "0.3", "--out", str(run)]
    process = subprocess.Popen(
        [*CLI, "generate", *args, "--concurrency", "16", "--step-delay", "0.02"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    shard = run / "episodes" / "shard-0000.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if shard.exists() and shard.read_bytes().count(b"\n") >= 40:
            break
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL
    before = RunStore.open(run, lock=False).scan()
    assert 40 <= len(before.records) < episodes, "the kill should land mid-run"

    result = envsim("generate", "--resume", str(run), "--step-delay", "0", "--concurrency", "64", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.splitlines()[-1])
    assert summary["stored_this_session"] == episodes - len(before.records)
    assert summary["stored"] == summary["complete"] == episodes and summary["missing"] == 0
    after = RunStore.open(run, lock=False).scan()
    assert after.superseded == 0 and after.bad == []  # no episode twice; a torn tail was repaired
    assert hashes(run) == hashes(reference)
    sessions = json.loads((run / "manifest.json").read_text(encoding="utf-8"))["sessions"]
    assert [s["status"] for s in sessions] == ["killed", "finished"]


def test_sigterm_stops_gracefully_and_keeps_every_finished_episode(tmp_path: Path) -> None:
    tiny = scenario_file(tmp_path)
    run = tmp_path / "run"
    process = subprocess.Popen(
        [*CLI, "generate", str(tiny), "--episodes", "5000", "--out", str(run), "--step-delay", "0.02", "--json"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    shard = run / "episodes" / "shard-0000.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (shard.exists() and shard.read_bytes().count(b"\n") >= 20):
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=120)
    assert process.returncode == 130
    summary = json.loads(out.splitlines()[-1])
    assert summary["status"] == "interrupted" and 20 <= summary["stored"] < 5000
    scan = RunStore.open(run, lock=False).scan()
    assert len(scan.records) == summary["stored"] and scan.bad == []  # in-flight episodes were not half-stored
    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["sessions"][-1]["status"] == "interrupted" and manifest["counts"]["stored"] == summary["stored"]


def test_kill_9_of_an_offline_run_loses_at_most_one_group(tmp_path: Path) -> None:
    # scripted agent and user: the episodes never wait on anything, yet each is stored as it finishes
    tiny = scenario_file(tmp_path)
    episodes = 2000
    run = tmp_path / "run"
    process = subprocess.Popen(
        [*CLI, "generate", str(tiny), "--episodes", str(episodes), "--error-rate", "0.3", "--out", str(run)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    shard = run / "episodes" / "shard-0000.jsonl"
    counts: list[int] = []  # the episodes on disk, as the run goes
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        counts.append(shard.read_bytes().count(b"\n") if shard.exists() else 0)
        if counts[-1] >= 100:
            break
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL
    seen = counts[-1]
    stored = len(RunStore.open(run, lock=False).scan().records)
    # what was seen on disk stays; the kill landed mid-run (before the fix, nothing was written before the end)
    assert 100 <= seen <= stored < episodes, "episodes reach the disk in groups as they finish, not at the end"

    summary = execute(open_run(run))
    assert summary.stored_this_session == episodes - stored and summary.stored == summary.complete == episodes
    after = RunStore.open(run, lock=False).scan()
    assert after.superseded == 0 and after.bad == []


def test_generate_all_that_finds_no_scenario_exits_2_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from envsim.cli import main

    monkeypatch.setattr("envsim.registration.discover", dict)  # no registrable scenario anywhere
    monkeypatch.setattr(sys, "argv", ["envsim", "generate", "all", "--out", str(tmp_path / "run")])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    message = capsys.readouterr().err
    assert "'all' found no scenarios" in message and "ENVSIM_SCENARIOS" in message and "Traceback" not in message
    assert not (tmp_path / "run").exists()  # before: an empty run, "0/0 episodes stored", exit 0


def test_a_full_disk_stops_the_run_with_a_message_naming_the_shard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import errno
    import types

    import envsim.batch.store
    from envsim.cli import main

    failures: list[int] = []

    def fsync(fd: int) -> None:  # the first append's fsync meets a full disk
        if not failures:
            failures.append(fd)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        os.fsync(fd)

    monkeypatch.setattr(envsim.batch.store, "os", types.SimpleNamespace(**{**vars(os), "fsync": fsync}))
    run = tmp_path / "run"
    monkeypatch.setattr(sys, "argv", ["envsim", "generate", str(scenario_file(tmp_path)), "--out", str(run)])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2 and failures
    message = "".join(capsys.readouterr().err.split())  # the console wraps long lines
    shard = run / "episodes" / "shard-0000.jsonl"
    assert f"error:Nospaceleftondevice:{shard}" in message and "Traceback" not in message  # before: no file named
