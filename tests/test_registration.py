"""Scenario registration: one bad file never breaks ``import envsim``; ids are checked; ENVSIM_SCENARIOS adds.

``import envsim`` is run as a user runs it (a fresh interpreter, with ``ENVSIM_SCENARIOS`` set)
where the registry of that process matters; the reading rules are tested in-process on
:func:`envsim.registration.scan`. The time of ``import envsim`` with 5,000 files is a benchmark
(``bench/import_scenarios.py``), not a test; here, that all 5,000 are registered.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import gymnasium as gym
import pytest

import envsim
from envsim.errors import UnknownNameError
from envsim.registration import (
    ScenarioWarning,
    discover,
    discovery,
    read_header,
    register_scenarios,
    resolve_scenario_path,
    scan,
    scenario_dirs,
    scenario_files,
)
from tests.conftest import REPO, TINY_SCENARIO

CLI = [sys.executable, "-c", "from envsim.cli import main; main()"]


def scenario(scenario_id: str, max_turns: int = 8) -> str:
    """The tiny scenario text under another id and turn limit."""
    return TINY_SCENARIO.replace("id: TinyEmergency", f"id: {scenario_id}").replace(
        "max_turns: 8", f"max_turns: {max_turns}"
    )


BROKEN: dict[str, bytes] = {
    "bad_id.yaml": scenario("../x y/z").encode(),
    "huge_int.yaml": scenario("HugeTurns").replace("max_turns: 8", "max_turns: " + "9" * 5000).encode(),
    "invalid_yaml.yaml": b"id: [BrokenYaml\ndomain: retail\n",
    "non_utf8.yaml": scenario("Latin").replace("Walter", "W\xe9lter").encode("latin-1"),
    "no_id.yaml": b"domain: retail\n",
    "turns_out_of_range.yaml": scenario("TooManyTurns", 501).encode(),
}
"""File name -> content: each one is left out of the registry, with a warning naming it."""


def run_python(code: str, scenarios: Path | None, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "ENVSIM_SCENARIOS"}
    if scenarios is not None:
        env["ENVSIM_SCENARIOS"] = str(scenarios)
    return subprocess.run(
        [sys.executable, *args, "-c", code], capture_output=True, text=True, cwd=REPO, env=env, timeout=120
    )


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Two good scenarios and every kind of broken file, side by side."""
    (tmp_path / "good").mkdir()
    (tmp_path / "good" / "one.yaml").write_text(scenario("GoodOne", 5), encoding="utf-8")
    (tmp_path / "good" / "two.yml").write_text(scenario("GoodTwo"), encoding="utf-8")
    for name, content in BROKEN.items():
        (tmp_path / name).write_bytes(content)
    return tmp_path


@pytest.fixture
def fresh_discovery() -> Iterator[None]:
    """Discovery re-read for the test (it is cached per process) and again after it."""
    discovery.cache_clear()
    yield
    discovery.cache_clear()


def test_import_envsim_with_a_broken_file_registers_the_others_and_names_it(folder: Path) -> None:
    probe = "import gymnasium as gym, envsim; print(sorted(k for k in gym.registry if k.startswith('envsim/Good')))"
    result = run_python(probe, folder)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "['envsim/GoodOne-v0', 'envsim/GoodTwo-v0']"
    warned = [line for line in result.stderr.splitlines() if "ScenarioWarning" in line]
    assert len(warned) == len(BROKEN)
    for name in BROKEN:
        assert any(str(folder / name) in line for line in warned), name
    assert "Traceback" not in result.stderr


def test_the_warnings_say_where_and_why(folder: Path) -> None:
    skipped = {s.path.name: str(s.problem) for s in scan(scenario_files([folder])).skipped}
    assert skipped == {
        "bad_id.yaml": f"{folder / 'bad_id.yaml'}:1:5: id: not a scenario id: '../x y/z' "
        "(CamelCase: a capital letter, then letters and digits only)",
        "huge_int.yaml": f"{folder / 'huge_int.yaml'}:29:12: invalid YAML: an integer of 5,000 digits is too long "
        "(at most 4,300)",
        "invalid_yaml.yaml": f"{folder / 'invalid_yaml.yaml'}:2:7: invalid YAML: while parsing a flow sequence "
        "expected ',' or ']', but got ':'",
        "non_utf8.yaml": f"{folder / 'non_utf8.yaml'}:10:37: cannot read file: byte 0xe9 is not valid UTF-8 "
        "(save the file as UTF-8)",
        "no_id.yaml": f"{folder / 'no_id.yaml'}:1:1: id: no top-level 'id': a scenario file needs one",
        "turns_out_of_range.yaml": f"{folder / 'turns_out_of_range.yaml'}:29:12: max_turns: "
        "must be an integer from 1 to 500, got 501",
    }


def test_a_broken_file_warns_in_process_and_registers_the_rest(
    folder: Path, monkeypatch: pytest.MonkeyPatch, fresh_discovery: None
) -> None:
    monkeypatch.setenv("ENVSIM_SCENARIOS", str(folder))
    try:
        with pytest.warns(ScenarioWarning) as record:
            ids = register_scenarios()
        assert {"envsim/GoodOne-v0", "envsim/GoodTwo-v0"} <= set(ids)
        assert gym.spec("envsim/GoodOne-v0").max_episode_steps == 5
        assert gym.spec("envsim/GoodTwo-v0").kwargs == {"scenario": str(folder / "good" / "two.yml")}
        assert sorted(Path(str(w.message).split(": ", 1)[1].split(":", 1)[0]).name for w in record) == sorted(BROKEN)
        assert not any(k.startswith("envsim/") and "/" in k.removeprefix("envsim/") for k in gym.registry)
    finally:
        for gym_id in ("envsim/GoodOne-v0", "envsim/GoodTwo-v0"):
            gym.registry.pop(gym_id, None)


def test_import_envsim_in_the_repository_warns_of_nothing() -> None:
    result = run_python("import envsim", None, "-W", "error")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert discovery().skipped == []


def test_envsim_scenarios_adds_to_the_shipped_scenarios(
    folder: Path, monkeypatch: pytest.MonkeyPatch, fresh_discovery: None
) -> None:
    shipped = scenario_dirs()
    monkeypatch.setenv("ENVSIM_SCENARIOS", f"{folder / 'good'}{os.pathsep}{folder / 'missing'}")
    assert scenario_dirs() == [*shipped, folder / "good", folder / "missing"]
    found = discover()
    assert {"GoodOne", "GoodTwo", "MedicalSupplyPanicCaller"} <= set(found)


def test_a_folder_named_twice_is_read_once(folder: Path) -> None:
    good = folder / "good"
    assert scenario_files([good, good / "one.yaml", folder / "good"]) == [good / "one.yaml", good / "two.yml"]


def test_two_files_with_one_id_are_both_left_out_naming_each_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_discovery: None
) -> None:
    first, second = tmp_path / "a.yaml", tmp_path / "b" / "a_copy.yaml"
    second.parent.mkdir()
    first.write_text(scenario("Twice"), encoding="utf-8")
    second.write_text(scenario("Twice"), encoding="utf-8")
    monkeypatch.setenv("ENVSIM_SCENARIOS", str(tmp_path))
    found = discovery()
    assert "Twice" not in found.scenarios
    assert [str(s.problem) for s in found.skipped] == [
        f"{first}:1:5: id: 'Twice' is also the id of {second}, so no file with this id is registered",
        f"{second}:1:5: id: 'Twice' is also the id of {first}, so no file with this id is registered",
    ]
    with pytest.raises(UnknownNameError, match=r"scenario 'Twice' is not registered: .*also the id of"):
        resolve_scenario_path("envsim/Twice-v0")


def test_validate_reports_one_id_in_two_files_as_an_error_in_each(tmp_path: Path) -> None:
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text(scenario("Twice"), encoding="utf-8")
    second.write_text(scenario("Twice"), encoding="utf-8")
    result = subprocess.run([*CLI, "validate", str(tmp_path), "--json"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["problems"] == [
        f"{first}:1:5: id: 'Twice' is also the id of {second}, so no file with this id is registered",
        f"{second}:1:5: id: 'Twice' is also the id of {first}, so no file with this id is registered",
    ]


def test_validate_prints_located_errors_for_hostile_files(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(
        "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
        + "".join(f"{n}: &{n} [{', '.join([f'*{p}'] * 10)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True)),
        encoding="utf-8",
    )
    (tmp_path / "deep.yaml").write_text("id: Deep\nx: " + "[" * 10_000 + "\n", encoding="utf-8")
    result = subprocess.run([*CLI, "validate", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        f"{bomb}:5:36: invalid YAML: aliases expand to more than 100,000 values beyond those written out "
        '(a "billion laughs" document?)',
        f"{tmp_path / 'deep.yaml'}:2:104: invalid YAML: lists and mappings nest more than 100 levels deep",
    ]


def test_list_shows_the_files_left_out(folder: Path) -> None:
    env = {**os.environ, "ENVSIM_SCENARIOS": str(folder)}
    result = subprocess.run([*CLI, "list", "--json"], capture_output=True, text=True, timeout=120, env=env, cwd=REPO)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.splitlines()[-1])
    left_out = {Path(r["file"]).name for r in summary["scenarios"] if r.get("registered") is False}
    assert left_out == set(BROKEN) and summary["not_registered"] == len(BROKEN)
    assert f"{len(BROKEN)} scenario files not registered:" in result.stderr


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("id: Plain", "Plain"),
        ('id: "Quoted"', "Quoted"),
        ("id: 'Single'", "Single"),
        ("id: Commented  # the id", "Commented"),
        ("id: &anchor Anchored", "Anchored"),  # not plain: the whole file is parsed
        ('id: "Esc\\x61ped"', "Escaped"),
        ("id:   Spaced   ", "Spaced"),
    ],
)
def test_the_id_line_is_read_as_yaml_reads_it(tmp_path: Path, line: str, expected: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(TINY_SCENARIO.replace("id: TinyEmergency", line), encoding="utf-8")
    header = read_header(path)
    value_column = len(line) - len(line[3:].lstrip()) + 1
    assert (header.scenario_id, header.max_turns, header.line, header.column) == (expected, 8, 1, value_column)


def test_a_nested_id_is_not_the_scenario_id(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("domain: retail\nworld:\n  id: Nested\n", encoding="utf-8")
    assert [str(s.problem).split(": ", 1)[1] for s in scan([path]).skipped] == [
        "id: no top-level 'id': a scenario file needs one"
    ]


def test_five_thousand_files_are_all_registered(tmp_path: Path) -> None:
    for i in range(5000):
        part = tmp_path / f"part{i // 500}"
        part.mkdir(exist_ok=True)
        (part / f"s{i:04d}.yaml").write_text(scenario(f"Generated{i:04d}"), encoding="utf-8")
    found = scan(scenario_files([tmp_path]))
    assert found.skipped == []
    assert sorted(found.scenarios) == [f"Generated{i:04d}" for i in range(5000)]


def test_scenario_warning_is_exported() -> None:
    assert envsim.ScenarioWarning is ScenarioWarning and issubclass(ScenarioWarning, UserWarning)


@pytest.mark.parametrize(
    ("id_line", "turns_line", "expected"),
    [
        (
            "id: Yes",
            "max_turns: 8",
            "id: not a scenario id: True (CamelCase: a capital letter, then letters and digits only)",
        ),
        (
            "id: Null",
            "max_turns: 8",
            "id: not a scenario id: None (CamelCase: a capital letter, then letters and digits only)",
        ),
        ("id: Octal", "max_turns: 010", 8),  # YAML 1.1 octal
        ("id: Underscored", "max_turns: 1_2", 12),
        ("id: ArabicDigit", "max_turns: \u0663", "max_turns: must be an integer from 1 to 500, got '\u0663'"),
    ],
)
def test_the_header_agrees_with_yaml_on_plain_words(
    tmp_path: Path, id_line: str, turns_line: str, expected: object
) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(scenario("X").replace("id: X", id_line).replace("max_turns: 8", turns_line), encoding="utf-8")
    found = scan([path])
    if isinstance(expected, int):
        assert found.scenarios == {id_line.removeprefix("id: "): (path, expected)}
    else:
        assert [str(s.problem).split(": ", 1)[1] for s in found.skipped] == [expected]


def test_a_plain_header_is_read_without_parsing_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Registration stays cheap: plain ``id:``/``max_turns:`` lines never send a file to the YAML parser."""
    from envsim import registration

    def no_parse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the whole file was parsed")

    monkeypatch.setattr(registration, "load_yaml_text", no_parse)
    path = tmp_path / "s.yaml"
    path.write_text(scenario("Cheap", 12).replace("max_turns: 12", "max_turns: 12  # a comment"), encoding="utf-8")
    assert read_header(path) == registration.Header(path, "Cheap", 12, 1, 5)
