"""``envsim scenarios stats`` as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO
from tests.suites import make_suite

CLI = [sys.executable, "-c", "from envsim.cli import main; main()"]


def envsim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=REPO, timeout=120)


def test_stats_prints_the_counts_and_json(tmp_path: Path) -> None:
    suite = make_suite(tmp_path / "suite")
    result = envsim("scenarios", "stats", str(suite), "--json")
    assert result.returncode == 0, result.stderr
    counts = json.loads(result.stdout.splitlines()[-1])
    assert counts["scenarios"] == 6 and counts["total"]["family"]["RetailCancel"] == 3
    assert {name: part["scenarios"] for name, part in counts["splits"].items()} == {"train": 4, "dev": 1, "test": 1}
    assert counts["drops"] == {"unsolvable": 2, "near_duplicate": 1}
    assert "6 scenarios (train 4, dev 1, test 1)" in result.stdout
    assert "dropped by the gate: 3 (unsolvable 2, near_duplicate 1)" in result.stdout


def test_stats_errors_name_the_folder_or_split(tmp_path: Path) -> None:
    suite = make_suite(tmp_path / "suite")
    cases = [
        (["scenarios", "stats", str(tmp_path / "nowhere")], "no suite folder"),
        (["scenarios", "stats", str(suite), "--split", "trian"], "has no split 'trian' (did you mean 'train'?)"),
    ]
    for args, message in cases:
        result = envsim(*args)
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_stats_exits_2_naming_an_invalid_file(tmp_path: Path) -> None:
    suite = make_suite(tmp_path / "suite")
    bad = suite / "test" / "medical_supply" / "MedicalPanicXB2.yaml"
    bad.write_text("id: MedicalPanicXB2\ndomain: [\n", encoding="utf-8")
    result = envsim("scenarios", "stats", str(suite), "--json")
    assert result.returncode == 2 and str(bad) in result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["invalid"] == 1


def test_stats_names_only_the_reasons_that_dropped_something(tmp_path: Path) -> None:
    suite = make_suite(tmp_path / "suite")
    manifest = json.loads((suite / "suite.json").read_text(encoding="utf-8"))
    manifest["drops"] = {"unsolvable": 0, "trap_passes": 4, "invalid": 0}
    (suite / "suite.json").write_text(json.dumps(manifest), encoding="utf-8")
    result = envsim("scenarios", "stats", str(suite), "--json")
    assert "dropped by the gate: 4 (trap_passes 4)\n" in result.stdout
    assert json.loads(result.stdout.splitlines()[-1])["drops"] == {"trap_passes": 4, "invalid": 0, "unsolvable": 0}
