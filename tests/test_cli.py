"""The envsim command line, run as a user runs it (a subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, TINY_SCENARIO

CLI = [sys.executable, "-c", "from envsim.cli import main; main()"]


def envsim(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, input=stdin, cwd=REPO, timeout=120)


def test_validate_shipped_scenarios() -> None:
    result = envsim("validate", "scenarios", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.splitlines()[-1])
    assert summary["invalid"] == 0 and summary["files"] == summary["valid"] >= 1


def test_validate_reports_located_problems_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(TINY_SCENARIO.replace("max_turns: 8", "max_turn: 8"), encoding="utf-8")
    result = envsim("validate", str(bad))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{bad}:29:1: max_turn: unknown field (did you mean 'max_turns'?)" in result.stderr


def test_list_json() -> None:
    result = envsim("list", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout.splitlines()[-1])["scenarios"]
    assert "MedicalSupplyPanicCaller" in {r["id"] for r in rows}


def test_schema_is_json_schema(tmp_path: Path) -> None:
    target = tmp_path / "schema.json"
    assert envsim("schema", "--out", str(target)).returncode == 0
    schema = json.loads(target.read_text(encoding="utf-8"))
    assert schema["additionalProperties"] is False and "expected" in schema["required"]


def test_run_scripted_json(tmp_path: Path) -> None:
    out = tmp_path / "new" / "dir" / "t.jsonl"  # parent folders are created
    result = envsim("run", "MedicalSupplyPanicCaller", "--episodes", "2", "--out", str(out), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.splitlines()[-1])
    assert summary["episodes"] == 2 and summary["mean_reward"] == 1.0
    assert len(out.read_text(encoding="utf-8").splitlines()) == 2


def test_run_by_file_path(tmp_path: Path) -> None:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_SCENARIO, encoding="utf-8")
    result = envsim("run", str(path), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["per_scenario"] == {"TinyEmergency": 1.0}


def test_unknown_scenario_suggests_and_exits_2() -> None:
    result = envsim("run", "MedicalSupplyPanicCaler")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "did you mean 'MedicalSupplyPanicCaller'?" in result.stderr


def test_play_reads_agent_turns_from_the_terminal() -> None:
    turns = (
        "\n".join(
            [
                "/tools",
                "What is your phone number?",
                '/call lookup_patient {"phone": "555-0142"}',
                "/call lookup_patient {broken",
                "Help is on the way, the ambulance is on its way.",
            ]
        )
        + "\n"
    )
    result = envsim("play", "MedicalSupplyPanicCaller", stdin=turns)
    assert result.returncode == 0, result.stderr
    assert "dispatch_emergency_services (write, ends episode, escalation)" in result.stdout
    assert "My phone number is 555-0142." in result.stdout
    assert "invalid JSON arguments" in result.stderr
    assert "reward" in result.stdout
