"""Record every model call of a run (agent, user, judge), then replay it with no provider: the same bytes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from envsim.batch.plan import GenerateConfig, RunOptions
from envsim.batch.session import execute, start_replay, start_run
from envsim.batch.store import EpisodeRecord, RunStore
from envsim.testing.server import start_server
from tests.conftest import REPO

RUBRIC = REPO / "tests" / "data" / "judge_rubric.yaml"


def stored(run: Path) -> dict[str, str]:
    """Each episode's record as stored, less the wall time of the attempt."""
    records = RunStore.open(run, lock=False).scan().records
    return {i: r.model_copy(update={"elapsed_s": 0.0}).to_line() for i, r in sorted(records.items())}


def test_replay_is_byte_identical_without_a_provider(tmp_path: Path) -> None:
    config = GenerateConfig(
        agent="llm",
        agent_model="openai/envsim-agent",
        user="llm",
        user_model="openai/envsim-user",
        judge_rubric=str(RUBRIC),
        judge_model="openai/envsim-judge",
        judge_weight=0.25,
    )
    recorded = tmp_path / "recorded"
    scenarios = ["MedicalSupplyPanicCaller", "RetailRefundDamagedMug"]
    # some calls fail even after a retry: those episodes are infra errors, and replay must say so again
    with start_server(fault_500=0.25, fault_roles=["agent"], seed=3) as url:
        options = RunOptions(concurrency=8, max_retries=1, backoff=0.0, api_base=url, cache="record")
        first = execute(start_run(recorded, scenarios, config, options, episodes=8))
    assert 0 < first.outcomes.get("infra_error", 0) < 16 and first.outcomes.get("success", 0) > 0
    assert first.tokens["total"] > 0 and first.model_calls > 0
    records = RunStore.open(recorded, lock=False).scan().records.values()
    assert {role for r in records for role in r.usage} == {"agent", "user", "judge"}
    judged = [r.breakdown.components["judge"] for r in records if r.breakdown is not None]
    assert judged and all(c.weight == 0.25 and c.judged for c in judged)

    # the server is gone: every answer (and every failure) comes from the records
    replayed = tmp_path / "replayed"
    again = execute(start_replay(recorded, replayed, RunOptions(concurrency=3)))
    assert stored(replayed) == stored(recorded)
    assert (again.outcomes, again.tokens, again.model_calls) == (first.outcomes, first.tokens, first.model_calls)
    manifest = json.loads((replayed / "manifest.json").read_text(encoding="utf-8"))
    assert (
        manifest["options"]["cache"] == "replay"
        and manifest["config"] == json.loads((recorded / "manifest.json").read_text(encoding="utf-8"))["config"]
    )


def test_replay_from_the_command_line_fails_clearly_on_a_miss(tmp_path: Path) -> None:
    """A recorded run whose records lost a call: the replay stops with a message, exit 2."""
    recorded = tmp_path / "recorded"
    config = GenerateConfig(agent="llm", agent_model="openai/envsim-agent")
    with start_server() as url:
        options = RunOptions(concurrency=4, api_base=url, cache="record")
        execute(start_run(recorded, ["MedicalSupplyPanicCaller"], config, options, episodes=3))
    log = next((recorded / "calls").glob("calls-*.jsonl"))
    log.write_text("".join(log.read_text(encoding="utf-8").splitlines(keepends=True)[1:]), encoding="utf-8")
    cli = [sys.executable, "-c", "from envsim.cli import main; main()"]
    result = subprocess.run(
        [*cli, "generate", "--replay", str(recorded), "--out", str(tmp_path / "replayed"), "--json"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "replay: no recorded answer for a call to openai/envsim-agent (role agent)" in result.stderr
    records = [EpisodeRecord.from_line(x) for *_, x in RunStore.open(tmp_path / "replayed", lock=False).iter_lines()]
    assert len(records) < 3  # what replayed before the miss is kept
