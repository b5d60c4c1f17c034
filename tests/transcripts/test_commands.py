"""``envsim transcripts import`` / ``stats`` / ``formats``, run as a user runs them (a subprocess)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from envsim.transcripts.importers import read, read_jsonl
from tests.conftest import REPO

CLI = [sys.executable, "-c", "from envsim.cli import main; main()"]


def envsim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "transcripts", *args], capture_output=True, text=True, cwd=REPO, timeout=120)


def last_json(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    return payload


def test_import_abcd_sample(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "abcd.jsonl"
    result = envsim("import", "abcd", str(corpus / "abcd" / "abcd_sample.json"), "--out", str(out), "--json")
    assert result.returncode == 0, result.stderr
    summary = last_json(result)
    expected = list(read("abcd", corpus / "abcd" / "abcd_sample.json"))
    assert summary["conversations"] == 3 and summary["format"] == "abcd"
    assert summary["turns"] == sum(len(c.turns) for c in expected)
    assert summary["turns_by_role"]["tool"] == sum(t.role == "tool" for c in expected for t in c.turns)
    assert list(read_jsonl(out)) == expected
    assert f"3 conversations, {summary['turns']} turns" in result.stdout


def test_import_then_stats(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "banking.jsonl.gz"
    assert envsim("import", "banking77", str(corpus / "banking77" / "test.csv"), "--out", str(out)).returncode == 0
    result = envsim("stats", str(out), "--top", "5", "--json")
    assert result.returncode == 0, result.stderr
    stats = last_json(result)
    assert stats["conversations"] == 3080 and stats["turns_by_role"] == {"user": 3080}
    assert len(stats["labels"]["intent"]) == 5 and stats["latency_seconds"]["user"]["count"] == 0
    assert "words per turn" in result.stdout and "intent" in result.stdout


def test_stats_of_a_plain_export(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text(
        "conversation_id,role,text,timestamp\n"
        "1,agent,How can I help,0\n1,customer,my order is late,20\n1,agent,Sorry,30\n1,customer,ok,90\n",
        encoding="utf-8",
    )
    result = envsim("stats", str(path), "--format", "plain", "--json")
    assert result.returncode == 0, result.stderr
    stats = last_json(result)
    assert stats["turns_by_role"] == {"agent": 2, "user": 2}
    assert stats["words_by_role"]["user"]["mean"] == 2.5  # 4 and 1 words
    assert stats["latency_seconds"]["user"]["median"] == 40.0  # 20 and 60 seconds
    assert stats["latency_seconds"]["agent"]["max"] == 10.0


def test_unknown_format_exits_2_with_suggestion(tmp_path: Path) -> None:
    for args in (("import", "stra", "x", "--out", str(tmp_path / "o.jsonl")), ("stats", "x", "--format", "canonicl")):
        result = envsim(*args)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        suggestion = "star" if args[0] == "import" else "canonical"
        assert f"(did you mean '{suggestion}'?)" in result.stderr
    assert not (tmp_path / "o.jsonl").exists()


def test_malformed_input_exits_2_located(tmp_path: Path) -> None:
    path = tmp_path / "export.jsonl"
    path.write_text(
        '{"conversation_id": "1", "role": "user", "text": "hi"}\n'
        '{"conversation_id": "1", "role": "bot", "text": "x"}\n',
        encoding="utf-8",
    )
    out = tmp_path / "out.jsonl"
    result = envsim("import", "plain", str(path), "--out", str(out))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        f"error: {path}:2: unknown role 'bot' "
        "(expected one of agent, assistant, customer, instruction, system, tool, user)"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export.jsonl"]  # no partial output


def test_missing_input_exits_2(tmp_path: Path) -> None:
    result = envsim("stats", str(tmp_path / "nope.jsonl"))
    assert (
        result.returncode == 2 and result.stderr.strip() == f"error: {tmp_path / 'nope.jsonl'}: no such file or folder"
    )


def test_formats_json() -> None:
    result = envsim("formats", "--json")
    assert result.returncode == 0, result.stderr
    formats = {"star", "abcd", "banking77", "goemotions", "plain", "openai", "canonical"}
    assert set(last_json(result)["formats"]) == formats


def test_progress_on_a_terminal_passes_every_conversation(corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from envsim.commands import transcripts

    screen = io.StringIO()
    monkeypatch.setattr(transcripts, "err", Console(file=screen, force_terminal=True, width=100))
    monkeypatch.setattr(transcripts, "PROGRESS_BYTES", 1000)
    path = corpus / "banking77" / "test.csv"
    shown = [c.id for c in transcripts._with_progress(read("banking77", path), path, "importing")]
    assert shown == [c.id for c in read("banking77", path)]
    assert "importing test.csv:" in screen.getvalue()
