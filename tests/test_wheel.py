"""``pip install envsim`` from a built wheel: it holds the scenarios and runtime data, and the main job runs.

The wheel is installed into a fresh virtual environment (non-editable), and every command runs
from an empty folder, so nothing of this source tree can be imported instead of the wheel.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from envsim.registration import scenario_files
from envsim.transcripts.corpus import corpus_dir
from tests.venvs import REPO, envsim_wheel, make_venv, run_in


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The envsim wheel of this working tree."""
    return envsim_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with only the envsim wheel installed."""
    return make_venv(tmp_path_factory.mktemp("venv") / "venv", wheel)


def source_files() -> set[str]:
    """What the wheel must hold: every file of envsim/ and tools_mock/, and scenarios/ as envsim_scenarios/."""
    wanted: set[str] = set()
    for folder, packaged_as in (("envsim", "envsim"), ("tools_mock", "tools_mock"), ("scenarios", "envsim_scenarios")):
        for path in (REPO / folder).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                wanted.add(f"{packaged_as}/{path.relative_to(REPO / folder).as_posix()}")
    return wanted


def test_the_wheel_holds_every_module_scenario_and_data_file(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    wanted = source_files()
    assert {"envsim_scenarios/retail/retail_refund_damaged_mug.yaml", "envsim/personas/core.yaml"} <= wanted
    assert wanted - names == set()
    with zipfile.ZipFile(wheel) as archive:
        entry_points = archive.read("envsim-0.1.0.dist-info/entry_points.txt").decode()
    assert "[envsim.scenarios]\nenvsim = envsim_scenarios" in entry_points


def test_a_wheel_install_registers_the_shipped_scenarios_and_runs_the_main_job(venv: Path, tmp_path: Path) -> None:
    code = "import envsim, tools_mock; print(envsim.__file__, tools_mock.__file__)"
    where = run_in(venv, ["python", "-c", code], tmp_path)
    assert where.returncode == 0, where.stderr
    assert all(Path(p).is_relative_to(venv) for p in where.stdout.split()), where.stdout

    listed = run_in(venv, ["envsim", "list", "--json"], tmp_path)
    assert listed.returncode == 0, listed.stderr
    scenarios = json.loads(listed.stdout.splitlines()[-1])["scenarios"]
    shipped = sorted(p.name for p in scenario_files([REPO / "scenarios"]))
    assert sorted(Path(s["file"]).name for s in scenarios) == shipped
    assert all(Path(s["file"]).is_relative_to(venv) and "error" not in s for s in scenarios)

    # The README's main job (fewer episodes), with the transcript corpus when this machine has one.
    corpus = corpus_dir()
    env = {} if corpus is None else {"ENVSIM_TRANSCRIPTS": str(corpus)}
    args = ["--user", "transcript", "--error-rate", "0.2", "--out", "runs/main", "--json"]
    generate = run_in(venv, ["envsim", "generate", "all", "--episodes", "2", *args], tmp_path, env=env)
    assert generate.returncode == 0, generate.stderr
    summary = json.loads(generate.stdout.splitlines()[-1])
    assert summary["status"] == "finished" and summary["stored"] == 2 * len(shipped) and summary["missing"] == 0
    assert summary["outcomes"].get("success", 0) > 0

    sft = ["--format", "sft", "--out", "runs/main/sft.parquet", "--json"]
    dataset = run_in(venv, ["envsim", "dataset", "runs/main", *sft], tmp_path)
    assert dataset.returncode == 0, dataset.stderr
    assert json.loads(dataset.stdout.splitlines()[-1])["rows"] > 0
    report = run_in(venv, ["envsim", "report", "runs/main", "--html", "runs/main/report.html", "--json"], tmp_path)
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout.splitlines()[-1])["stored"] == 2 * len(shipped)
    assert (tmp_path / "runs" / "main" / "report.html").stat().st_size > 0
