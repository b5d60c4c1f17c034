"""The envsim command line, run as a user runs it (a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

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


# User-controlled text (paths, ids, messages, scenario text, transcripts) is printed verbatim: rich
# would read "[...]" as markup (a stray closing tag raises MarkupError) and ":100:" as an emoji code.
MARKUP = "[bold]x[/bold] :100: [/x]"


def _scenario_with_markup(folder: Path) -> Path:
    """The tiny scenario in a file whose path holds markup and an emoji code, with markup in its text."""
    text = TINY_SCENARIO.replace(
        "description: A caller's father collapsed; the agent must find him and send an ambulance.",
        f'description: "Collapsed {MARKUP}"',
    ).replace("opening: He collapsed, please help!", f'opening: "He collapsed {MARKUP} help!"')
    path = folder / "w[" / "x]:100:.yaml"  # the path's text is .../w[/x]:100:.yaml
    path.parent.mkdir()
    path.write_text(text, encoding="utf-8")
    return path


def test_validate_prints_paths_and_locations_verbatim(tmp_path: Path) -> None:
    bad = tmp_path / "b[red]a:smile:d.yaml"
    bad.write_text(TINY_SCENARIO.replace("max_turns: 8", "\n" * 71 + "max_turn: 8"), encoding="utf-8")
    missing = "nope[/x].yaml"
    result = envsim("validate", str(bad), missing)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert f"{bad}:100:1: max_turn: unknown field (did you mean 'max_turns'?)" in result.stderr
    assert f"{missing}: no such file or folder" in result.stderr


def test_errors_print_the_given_text_verbatim() -> None:
    result = envsim("run", "Nope[/x]:100:")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "Nope[/x]:100:" in result.stderr


def test_play_and_run_print_scenario_text_verbatim(tmp_path: Path) -> None:
    path = _scenario_with_markup(tmp_path)
    played = envsim("play", str(path), stdin=f"Hello {MARKUP}\n/quit\n")
    assert played.returncode == 0, played.stderr
    assert f"TinyEmergency: Collapsed {MARKUP}\n" in played.stdout
    assert f"user: He collapsed {MARKUP} help!\n" in played.stdout
    shown = envsim("run", str(path), "--show")
    assert shown.returncode == 0, shown.stderr
    assert f"user: He collapsed {MARKUP} help!\n" in shown.stdout


def test_generate_and_report_print_run_paths_verbatim(tmp_path: Path) -> None:
    run_dir = tmp_path / "r[" / "x]:100:"
    generated = envsim("generate", str(_scenario_with_markup(tmp_path)), "--episodes", "1", "--out", str(run_dir))
    assert generated.returncode == 0, generated.stderr
    assert generated.stdout.startswith(f"{run_dir}: 1/1 episodes stored")
    reported = envsim("report", str(run_dir))
    assert reported.returncode == 0, reported.stderr
    assert f"{run_dir}: 1 episodes stored, 1 planned" in reported.stdout


def test_every_cli_console_prints_verbatim() -> None:
    """Each console a command module holds (a new module with its own Console would fail here)."""
    import importlib
    import pkgutil

    from rich.console import Console

    import envsim.cli
    import envsim.commands

    modules = [
        envsim.cli,
        *(importlib.import_module(f"envsim.commands.{m.name}") for m in pkgutil.iter_modules(envsim.commands.__path__)),
    ]
    consoles = {id(c): c for m in modules for c in vars(m).values() if isinstance(c, Console)}
    assert len(consoles) >= 2  # stdout and stderr
    for console in consoles.values():
        with console.capture() as captured:
            console.print(f"file:100:12: {MARKUP}")
        assert captured.get() == f"file:100:12: {MARKUP}\n"


def test_progress_counter_shows_a_file_name_verbatim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from rich.console import Console

    from envsim.commands import transcripts
    from envsim.transcripts.importers import read

    path = tmp_path / "c[red]{y}:100:.csv"
    path.write_text("conversation_id,role,text\n1,customer,hi\n2,customer,bye\n", encoding="utf-8")
    screen = io.StringIO()
    monkeypatch.setattr(transcripts, "err", Console(file=screen, force_terminal=True, width=200))
    monkeypatch.setattr(transcripts, "PROGRESS_BYTES", 1)
    shown = [c.id for c in transcripts._with_progress(read("plain", path), path, "reading")]
    assert shown == ["1", "2"]
    assert f"reading {path.name}: 2 conversations" in screen.getvalue()


def test_play_ends_cleanly_at_the_turn_limit() -> None:
    lookup = '{"name": "lookup_patient", "arguments": {"phone": "555-0142"}}'
    result = envsim("play", "MedicalSupplyPanicCaller", stdin=f"{lookup}\n" * 20)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert result.stdout.count("tool: ") == 12  # max_turns: the rest of the input is never read
    assert "episode ended: max_turns after 12 turns" in result.stdout and "(truncated)" in result.stdout


def test_run_survives_a_custom_reward_that_raises(tmp_path: Path) -> None:
    path = tmp_path / "tiny.yaml"
    reward = 'reward:\n  custom: {tone: "tests.reward.custom_rewards:raises"}\n  metrics: [tone]\n'
    path.write_text(TINY_SCENARIO.replace("max_turns: 8\n", f"{reward}max_turns: 8\n"), encoding="utf-8")
    env = {**os.environ, "ENVSIM_REWARD_MODULES": "tests.reward.custom_rewards"}
    out = tmp_path / "episodes.jsonl"
    result = subprocess.run(
        [*CLI, "run", str(path), "--episodes", "2", "--out", str(out), "--json"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["episodes"] == 2 and len(out.read_text().splitlines()) == 2
