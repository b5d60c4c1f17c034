"""Plug-ins: toolkits, scenario folders and personas that installed packages declare through entry points.

The first tests install the example plug-in (``examples/envsim-helpdesk``) beside an envsim wheel in
a fresh virtual environment and drive the stock ``envsim`` command, Ray workers included; the
others fake the entry points in this process to pin each rule of :mod:`envsim.plugins`.
"""

from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Callable, Iterator
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import envsim.plugins
from envsim import toolkits
from envsim.agents.scripted import ScriptedAgent
from envsim.errors import ScenarioError
from envsim.loader import load_scenario_text
from envsim.plugins import PERSONAS_GROUP, SCENARIOS_GROUP, TOOLKITS_GROUP, plugin_folders
from envsim.registration import load_registered, scenario_dirs
from envsim.toolkits import ToolkitLoadError, get_toolkit, register_toolkit, toolkit_names
from envsim.user.persona import persona_library
from tests.conftest import TINY_SCENARIO
from tests.venvs import EXAMPLE, REPO, build_wheel, envsim_wheel, make_venv, run_in
from tools_mock import BUILTIN_TOOLKITS
from tools_mock.banking import BankingToolkit
from tools_mock.retail import RetailToolkit

PLUGIN_IDS = {"HelpdeskAccountLockout", "HelpdeskCrackedScreen"}

# -- the example package, installed from its wheel ----------------------------------------------


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the envsim wheel and the example plug-in's wheel installed."""
    tmp = tmp_path_factory.mktemp("plugin")
    return make_venv(tmp / "venv", envsim_wheel(tmp), build_wheel(tmp, EXAMPLE))


def last_json(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The ``--json`` object a command printed last."""
    value = json.loads(result.stdout.splitlines()[-1])
    assert isinstance(value, dict)
    return value


def test_the_stock_command_lists_validates_generates_exports_and_reports_a_plugin(venv: Path, tmp_path: Path) -> None:
    listed = run_in(venv, ["envsim", "list", "--json"], tmp_path)
    assert listed.returncode == 0, listed.stderr
    rows = {row["id"]: row for row in last_json(listed)["scenarios"]}
    assert set(rows) >= PLUGIN_IDS and "RetailRefundDamagedMug" in rows  # added to the shipped ones
    folder = Path(rows["HelpdeskCrackedScreen"]["file"]).parent
    assert folder.name == "scenarios" and folder.parent.name == "envsim_helpdesk" and folder.is_relative_to(venv)
    assert all(rows[i]["toolkits"] == ["helpdesk"] and "error" not in rows[i] for i in PLUGIN_IDS)

    validated = run_in(venv, ["envsim", "validate", str(folder)], tmp_path)
    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert "2 scenario files: 2 valid, 0 invalid" in validated.stdout

    run = ["--episodes", "2", "--user", "transcript", "--out", "runs/helpdesk", "--json"]
    generated = run_in(venv, ["envsim", "generate", *sorted(PLUGIN_IDS), *run], tmp_path)
    assert generated.returncode == 0, generated.stderr
    summary = last_json(generated)
    assert summary["status"] == "finished" and summary["outcomes"] == {"success": 4}  # toolkit, fixture, persona

    sft = ["--format", "sft", "--out", "runs/helpdesk/sft.parquet", "--json"]
    exported = run_in(venv, ["envsim", "dataset", "runs/helpdesk", *sft], tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert last_json(exported)["scenarios"] == dict.fromkeys(sorted(PLUGIN_IDS), 2)

    reported = run_in(venv, ["envsim", "report", "runs/helpdesk", "--html", "runs/helpdesk/r.html", "--json"], tmp_path)
    assert reported.returncode == 0, reported.stderr
    assert "hurried_engineer" in reported.stdout  # the package's persona played the cracked-screen caller
    assert "HelpdeskCrackedScreen" in (tmp_path / "runs" / "helpdesk" / "r.html").read_text(encoding="utf-8")


def test_ray_workers_see_the_plugin_toolkit(venv: Path, tmp_path: Path) -> None:
    args = ["generate", "HelpdeskCrackedScreen", "--episodes", "1", "--backend", "ray", "--workers", "1"]
    result = run_in(venv, ["envsim", *args, "--out", "runs/ray", "--json"], tmp_path, timeout=240)
    assert result.returncode == 0, result.stderr
    summary = last_json(result)
    assert summary["stored"] == 1 and summary["outcomes"] == {"success": 1}


def test_the_example_package_docstrings_run(venv: Path, tmp_path: Path) -> None:
    code = (
        "import doctest, envsim_helpdesk.fixtures as f, envsim_helpdesk.toolkit as t\n"
        "results = [doctest.testmod(m) for m in (f, t)]\n"
        "assert all(r.attempted and not r.failed for r in results), results"
    )
    result = run_in(venv, ["python", "-c", code], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


# -- the rules, with entry points faked in this process -------------------------------------------


@pytest.fixture
def declare(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """Replace the installed entry points: ``declare(group, "name = value", ...)``; toolkits and personas re-read."""
    declared: dict[str, tuple[EntryPoint, ...]] = {SCENARIOS_GROUP: envsim.plugins.declared(SCENARIOS_GROUP)}

    def add(group: str, *lines: str) -> None:
        entries = [EntryPoint(*(part.strip() for part in line.split("=")), group) for line in lines]
        declared[group] = (*declared.get(group, ()), *entries)

    monkeypatch.setattr(envsim.plugins, "declared", lambda group: declared.get(group, ()))
    monkeypatch.setattr(toolkits, "_REGISTRY", dict(BUILTIN_TOOLKITS))
    monkeypatch.setattr(toolkits, "_FROM", {})
    monkeypatch.setattr(toolkits, "_CLASHES", {})
    monkeypatch.setattr(toolkits, "_plugins_read", False)
    persona_library.cache_clear()
    yield add
    persona_library.cache_clear()
    toolkits.fixture_world.cache_clear()
    toolkits._built_world.cache_clear()


def test_a_package_toolkit_is_registered_when_first_looked_up(declare: Callable[..., None]) -> None:
    declare(TOOLKITS_GROUP, "shop = tools_mock.retail:RetailToolkit")
    assert "shop" in toolkit_names()
    assert get_toolkit("shop") is RetailToolkit


def test_builtin_and_code_registered_toolkits_win_over_a_package(declare: Callable[..., None]) -> None:
    declare(TOOLKITS_GROUP, "retail = tools_mock.banking:BankingToolkit", "mine = tools_mock.banking:BankingToolkit")
    register_toolkit("mine", RetailToolkit)
    assert get_toolkit("retail") is RetailToolkit and get_toolkit("mine") is RetailToolkit
    assert get_toolkit("banking") is BankingToolkit


def test_a_toolkit_two_packages_declare_is_an_error_naming_both(declare: Callable[..., None]) -> None:
    declare(TOOLKITS_GROUP, "shop = tools_mock.retail:RetailToolkit", "shop = tools_mock.banking:BankingToolkit")
    with pytest.raises(ToolkitLoadError, match="declared by several packages") as caught:
        get_toolkit("shop")
    assert "tools_mock.retail:RetailToolkit" in str(caught.value) and "tools_mock.banking:BankingToolkit" in str(
        caught.value
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("no_such_module:Kit", "cannot be imported: ModuleNotFoundError"),
        ("tools_mock.retail:RetailState", "does not name an envsim.tools.Toolkit subclass"),
        ("tools_mock.retail", "does not name an envsim.tools.Toolkit subclass"),
    ],
)
def test_a_broken_package_toolkit_is_a_located_validation_error_naming_its_entry_point(
    declare: Callable[..., None], value: str, message: str
) -> None:
    declare(TOOLKITS_GROUP, f"shop = {value}")
    with pytest.raises(ToolkitLoadError, match=message) as caught:
        get_toolkit("shop")
    assert f"envsim.toolkits entry point 'shop = {value}'" in str(caught.value)
    text = TINY_SCENARIO.replace("toolkits: [medical_supply]", "toolkits: [shop]")
    with pytest.raises(ScenarioError) as invalid:
        load_scenario_text(text)
    assert any((p.field, p.line) == ("toolkits.0", 4) and message in p.message for p in invalid.value.problems), (
        invalid.value
    )


def test_package_folders_that_cannot_be_used_are_skipped_with_a_warning(
    declare: Callable[..., None], caplog: pytest.LogCaptureFixture
) -> None:
    declare(PERSONAS_GROUP, "good = envsim.personas", "gone = no_such_package", "attr = envsim.personas:core")
    with caplog.at_level(logging.WARNING, logger="envsim.plugins"):
        assert plugin_folders(PERSONAS_GROUP) == [REPO / "envsim" / "personas"]
    messages = [r.getMessage() for r in caplog.records]
    assert any("'gone = no_such_package'" in m and "not an installed package" in m for m in messages), messages
    assert any("'attr = envsim.personas:core'" in m and "must name a package" in m for m in messages), messages


def plugin_package(root: Path, name: str, files: dict[str, str]) -> None:
    """An importable package ``name`` under ``root`` holding ``files``."""
    folder = root.joinpath(*name.split("."))
    folder.mkdir(parents=True)
    for part in range(1, len(name.split(".")) + 1):
        root.joinpath(*name.split(".")[:part], "__init__.py").touch()
    for file, text in files.items():
        (folder / file).write_text(text, encoding="utf-8")


def test_scenario_folders_of_packages_join_the_shipped_ones(
    declare: Callable[..., None], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plugin_package(tmp_path, "plugpkg.scenarios", {"tiny.yaml": TINY_SCENARIO})
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("ENVSIM_SCENARIOS", raising=False)
    declare(SCENARIOS_GROUP, "plug = plugpkg.scenarios")
    assert scenario_dirs() == [REPO / "scenarios", tmp_path / "plugpkg" / "scenarios"]


def test_personas_of_packages_join_the_library_without_replacing_a_shipped_one(
    declare: Callable[..., None], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calm = persona_library()["calm"]
    mine = calm.model_copy(update={"name": "plugin_calm", "description": "From a package."}).model_dump(mode="json")
    impostor = {**mine, "name": "calm"}
    files = {"a.yaml": json.dumps([mine, impostor]), "b.yaml": "- {name: broken, patience: many}\n"}
    plugin_package(tmp_path, "plugpersonas", files)
    monkeypatch.syspath_prepend(str(tmp_path))
    declare(PERSONAS_GROUP, "plug = plugpersonas")
    persona_library.cache_clear()
    with caplog.at_level(logging.WARNING, logger="envsim.user.persona"):
        library = persona_library()
    assert library["plugin_calm"].description == "From a package." and library["calm"] == calm
    assert "broken" not in library
    messages = [r.getMessage() for r in caplog.records]
    assert any("'calm'" in m and "a.yaml" in m and "taken" in m for m in messages), messages
    assert any("b.yaml" in m for m in messages), messages


def test_a_broken_package_toolkit_never_breaks_scenarios_that_do_not_use_it(declare: Callable[..., None]) -> None:
    declare(TOOLKITS_GROUP, "aaa = no_such_module:Kit")  # first by name
    scenario = load_registered("RetailCancelPendingOrder")  # its forbidden refunds: the agent's third kind of mistake
    agent = ScriptedAgent(error_rate=1.0)
    plans = []
    for seed in range(12):
        agent.reset(scenario, np.random.default_rng(seed))
        plans.append(json.dumps(agent._plan))
    assert any("refund_order" in plan for plan in plans)
