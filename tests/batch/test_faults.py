"""500 episodes against the local server with 20% injected faults: nothing lost, nothing twice, counts reconcile.

The LLM agent (litellm, the real client path) plays against :mod:`envsim.testing.server` in its own
process; the server fails 20% of requests (429 with Retry-After, 500, replies that never come in
time, malformed tool-call JSON). Every episode must end stored with an outcome, the infrastructure
failures retried (within the run, or by ``--resume``), with one final record per episode.
"""

from __future__ import annotations

import json
from pathlib import Path

from envsim.batch.plan import GenerateConfig, RunOptions
from envsim.batch.session import execute, open_run, start_run
from envsim.batch.store import EpisodeRecord, RunStore
from envsim.testing.server import server_stats, start_server

EPISODES = 500
FAULTS = {"fault_429": 0.07, "fault_500": 0.07, "fault_timeout": 0.03, "fault_malformed_tool_json": 0.03}


def final_lines(run: Path) -> list[EpisodeRecord]:
    store = RunStore.open(run, lock=False)
    lines = [EpisodeRecord.from_line(line) for _, _, _, line in store.iter_lines()]
    return [r for r in lines if r.outcome != "infra_error"]


def test_500_episodes_with_20_percent_faults(tmp_path: Path) -> None:
    assert abs(sum(FAULTS.values()) - 0.20) < 1e-9
    run = tmp_path / "run"
    config = GenerateConfig(agent="llm", agent_model="openai/envsim-agent")
    with start_server(retry_after_s=0.2, timeout_sleep_s=60, seed=7, **FAULTS) as url:
        options = RunOptions(concurrency=64, timeout=3.0, max_retries=5, backoff=0.05, api_base=url)
        first = execute(start_run(run, ["MedicalSupplyPanicCaller"], config, options, episodes=EPISODES))
        summary = first
        for _ in range(3):  # infra errors left after every retry are played again by --resume
            if not summary.missing:
                break
            summary = execute(open_run(run), resumed=True)
        stats = server_stats(url)

    # the server did fail, in every way asked, and the client retried
    assert all(stats["by_fault"].get(kind, 0) > 0 for kind in ("429", "500", "timeout", "malformed_tool_json"))
    assert first.retries > 0 and stats["by_status"]["429"] > 0

    # every planned episode is stored with a final outcome, exactly once
    plan = {s.episode_id for s in RunStore.open(run, lock=False).read_plan()}
    finals = final_lines(run)
    assert len(finals) == len({r.episode_id for r in finals}) == EPISODES  # no duplicates
    assert {r.episode_id for r in finals} == plan  # no losses
    assert summary.missing == 0 and summary.complete == summary.stored == EPISODES
    assert "infra_error" not in summary.outcomes and sum(summary.outcomes.values()) == EPISODES
    assert summary.outcomes.get("success", 0) > EPISODES * 0.8  # malformed tool calls make some failures

    # the manifest's counts are the store's
    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    counts = manifest["counts"]
    assert counts["planned"] == counts["stored"] == counts["complete"] == EPISODES and counts["missing"] == 0
    assert counts["outcomes"] == summary.outcomes
    lines = list(RunStore.open(run, lock=False).iter_lines())
    infra = sum(EpisodeRecord.from_line(line).outcome == "infra_error" for *_, line in lines)
    assert sum(s["stored"] for s in manifest["sessions"]) == len(lines) == EPISODES + infra
