"""Runs over a suite: ``envsim generate DIR:split`` (local and Ray), then ``dataset`` and ``report`` on the run.

The subprocesses do not register the suite's scenarios (only ``import envsim``'s shipped ones), so
these tests also show that ``dataset`` and ``report`` read a run's scenarios from its manifest.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from envsim.batch.plan import GenerateConfig, RunOptions, resolve_sources
from envsim.batch.ray_backend import run_with_ray
from envsim.batch.session import execute, start_run
from envsim.batch.store import RunStore
from envsim.errors import EnvsimError
from tests.conftest import REPO
from tests.suites import LAYOUT, make_suite

CLI = [sys.executable, "-c", "from envsim.cli import main; main()"]


def envsim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=REPO, timeout=300)


def ids_of(*splits: str) -> set[str]:
    return {f"{family}X{suffix}" for split in splits for family, suffix in LAYOUT[split]}


def hashes(run: Path) -> dict[str, str]:
    return {i: r.trajectory_hash for i, r in RunStore.open(run, lock=False).scan().records.items()}


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    return make_suite(tmp_path / "suite")


def test_sources_of_a_split_and_of_the_whole_suite(suite: Path) -> None:
    assert {s.id for s in resolve_sources([f"{suite}:dev"])} == ids_of("dev")
    assert {s.id for s in resolve_sources([f"{suite}:train", f"{suite}:test"])} == ids_of("train", "test")
    assert {s.id for s in resolve_sources([str(suite)])} == ids_of("train", "dev", "test")
    with pytest.raises(EnvsimError, match=r"has no split 'tset' \(did you mean 'test'\?\)"):
        resolve_sources([f"{suite}:tset"])


def test_generate_a_split_then_dataset_and_report(suite: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    generated = envsim("generate", f"{suite}:train", "--episodes", "2", "--out", str(run), "--json")
    assert generated.returncode == 0, generated.stderr
    summary = json.loads(generated.stdout.splitlines()[-1])
    assert summary["episodes_planned"] == summary["stored"] == 2 * len(ids_of("train"))
    assert summary["outcomes"] == {"success": summary["stored"]}  # the scripted agent solves them all
    manifest = RunStore.open(run, lock=False).read_manifest()
    assert {s.id for s in manifest.scenarios} == ids_of("train")

    rows = tmp_path / "sft.jsonl"
    dataset = envsim("dataset", str(run), "--format", "sft", "--out", str(rows), "--json")
    assert dataset.returncode == 0, dataset.stderr
    assert json.loads(dataset.stdout.splitlines()[-1])["rows"] == summary["stored"]
    lines = [json.loads(line) for line in rows.read_text(encoding="utf-8").splitlines()]
    assert {line["scenario_id"] for line in lines} == ids_of("train")

    report = envsim("report", str(run), "--json")
    assert report.returncode == 0, report.stderr
    table = json.loads(report.stdout.splitlines()[-1])
    assert {s["name"] for s in table["scenarios"]} == ids_of("train")
    assert {p["name"] for p in table["personas"]} == {"calm", "panicked_caller", "annoyed"}


def test_generate_refuses_an_unknown_split(suite: Path, tmp_path: Path) -> None:
    result = envsim("generate", f"{suite}:validation", "--out", str(tmp_path / "run"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "has no split 'validation'" in result.stderr and not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    import ray

    ray.init(num_cpus=2, include_dashboard=False)
    try:
        yield
    finally:
        ray.shutdown()


def test_ray_plays_a_split_as_the_local_backend_does(ray_cluster: None, suite: Path, tmp_path: Path) -> None:
    config = GenerateConfig(error_rate=0.3)
    execute(start_run(tmp_path / "local", [f"{suite}:train"], config, RunOptions(), episodes=3, seeds=[0]))
    store = start_run(tmp_path / "ray", [f"{suite}:train"], config, RunOptions(), episodes=3, seeds=[0])
    summary = run_with_ray(store.read_plan(), store, store.read_manifest().config, workers=2)
    assert summary.status == "finished" and summary.stored == 3 * len(ids_of("train"))
    assert hashes(tmp_path / "ray") == hashes(tmp_path / "local")
