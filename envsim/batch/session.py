"""One invocation of the generator on a run directory: start, resume or replay a run, then summarise it.

- :func:`start_run` plans a new run (scenarios validated, plan and manifest written first);
- :func:`open_run` opens an existing one to resume it;
- :func:`start_replay` starts a new run that answers every model call from another run's records;
- :func:`execute` runs what is missing (repairing a torn shard tail, checking that the scenario
  files are unchanged), updates the manifest, writes the Parquet table and returns a
  :class:`RunSummary`.

Example (offline: scripted agent and user):
    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp()) / "run"
    >>> store = start_run(out, ["MedicalSupplyPanicCaller"], GenerateConfig(error_rate=0.2), RunOptions(), episodes=3)
    >>> summary = execute(store, progress=False)
    >>> summary.episodes_planned, summary.stored, summary.missing
    (3, 3, 0)
    >>> store = open_run(out)
    >>> execute(store, progress=False, resumed=True).stored_this_session   # nothing left to do
    0
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from rich.console import Console

from envsim.batch.cache import CacheMode, CallLog, ModelCalls
from envsim.batch.plan import (
    EpisodeSpec,
    GenerateConfig,
    RunOptions,
    ScenarioSource,
    file_hash,
    make_plan,
    resolve_sources,
)
from envsim.batch.progress import live_progress
from envsim.batch.runner import BatchRunner, RunStats
from envsim.batch.store import BadLine, Manifest, RunStore, SessionInfo, StoreScan, now_iso
from envsim.errors import EnvsimError, UnknownNameError
from envsim.llm import litellm
from envsim.scenario import Scenario
from envsim.trajectory import Usage

CALLS_DIR = "calls"


class RunSummary(BaseModel):
    """What ``envsim generate --json`` prints last: the state of the whole run, and this session's part."""

    model_config = ConfigDict(extra="forbid")

    run_dir: str
    status: str = Field(description="finished, interrupted or failed (this session).")
    episodes_planned: int
    stored: int = Field(description="Distinct planned episodes with a stored record.")
    complete: int = Field(description="Stored episodes with a final outcome (not infra_error).")
    missing: int = Field(description="Planned episodes without a final outcome: --resume runs them.")
    stored_this_session: int
    outcomes: dict[str, int]
    mean_reward: float | None = Field(description="Mean total over stored episodes that carry a reward.")
    success_rate: float | None = Field(description="Share of success among stored episodes that carry a reward.")
    tokens: dict[str, int]
    cost: float
    model_calls: int
    retries: int = Field(description="Model-call retries in this session.")
    wall_seconds: float = Field(description="This session, from start to summary (loading, scanning, Parquet in).")
    run_seconds: float = Field(description="This session's time running episodes (first start to last stored).")
    cpu_seconds: float = Field(description="Process CPU time while running episodes (all threads).")
    episodes_per_second: float = Field(description="This session's stored episodes per second of run_seconds.")
    torn_lines_repaired: int
    top_errors: list[tuple[str, int]] = Field(
        default_factory=list, description="The commonest errors of stored infra_error and sim_fault episodes, counted."
    )
    resumed: bool
    parquet: str | None


def _options_for(options: RunOptions, out: Path) -> RunOptions:
    if options.cache == "record" and options.cache_dir is None:
        return options.model_copy(update={"cache_dir": str((out / CALLS_DIR).resolve())})
    return options


def start_run(
    out: Path,
    scenarios: Sequence[str],
    config: GenerateConfig,
    options: RunOptions,
    *,
    episodes: int,
    seeds: Sequence[int] = (0,),
) -> RunStore:
    """Plan a new run in ``out`` (absent, or a folder without a run) and open it for writing."""
    if options.cache == "replay":
        raise EnvsimError("a replay run starts with start_replay (envsim generate --replay RUN_DIR)")
    if config.judge_rubric is not None:
        rubric = Path(config.judge_rubric).resolve()
        config = config.model_copy(update={"judge_rubric": str(rubric), "judge_rubric_hash": file_hash(rubric)})
    check_participants(config)
    sources = resolve_sources(scenarios)
    if config.judge_rubric is None and config.judge_model is not None:
        check_scenario_judges(sources)
    plan = make_plan(sources, config, episodes=episodes, seeds=seeds)
    options = _options_for(options, out)
    manifest = Manifest.new(config, options, sources, seeds=seeds, episodes=episodes)
    return RunStore.create(out, manifest, plan)


def check_participants(config: GenerateConfig) -> None:
    """Raise :class:`UnknownNameError` for an unknown agent or user kind, before anything is written."""
    from envsim.agents.registry import AGENTS
    from envsim.suggest import did_you_mean
    from envsim.user.registry import USERS

    if config.agent not in AGENTS:
        raise UnknownNameError(
            f"unknown agent {config.agent!r}{did_you_mean(config.agent, AGENTS)}; agents: {', '.join(AGENTS)}"
        )
    if config.user not in USERS:
        raise UnknownNameError(
            f"unknown user {config.user!r}{did_you_mean(config.user, USERS)}; users: {', '.join(USERS)}"
        )
    if config.agent in ("llm", "hf") and not config.agent_model:
        raise EnvsimError(f"--agent {config.agent} needs --agent-model")
    if config.judge_rubric is None and config.judge_weight:
        raise EnvsimError("--judge-weight needs --judge-rubric (the criteria the judge scores)")


def check_scenario_judges(sources: Sequence[ScenarioSource]) -> None:
    """Raise :class:`EnvsimError` when none of the run's scenarios names a judge (``reward.judges``):
    ``--judge-model`` without ``--judge-rubric`` would have nothing to judge."""
    from envsim.reward.spec import effective_reward_spec

    scenarios = load_scenarios(sources, {source.id for source in sources})
    if not any(effective_reward_spec(scenario).judges for scenario in scenarios.values()):
        raise EnvsimError(
            "--judge-model: no scenario of the run names a judge (reward.judges); without one, judges need "
            "--judge-rubric (the criteria the judge scores)"
        )


def open_run(run_dir: Path) -> RunStore:
    """Open an existing run to resume it."""
    return RunStore.open(run_dir)


def start_replay(source: Path, out: Path, options: RunOptions) -> RunStore:
    """A new run in ``out`` with the plan of ``source``, every model call answered from its records."""
    with RunStore.open(source, lock=False) as original:
        manifest = original.read_manifest()
        plan = original.read_plan()
    calls = Path(manifest.options.cache_dir or source / CALLS_DIR)
    if not calls.is_dir():
        raise EnvsimError(f"{source} has no recorded model calls ({calls}): record a run with --record first")
    options = options.model_copy(update={"cache": "replay", "cache_dir": str(calls.resolve())})
    fresh = Manifest.new(manifest.config, options, manifest.scenarios, seeds=manifest.seeds, episodes=manifest.episodes)
    return RunStore.create(out, fresh, plan)


def load_scenarios(sources: Sequence[ScenarioSource], needed: set[str]) -> dict[str, Scenario]:
    """The scenarios ``needed`` by id, each checked against the content hash the run was planned with."""
    from envsim.loader import load_scenario

    loaded: dict[str, Scenario] = {}
    for source in sources:
        if source.id not in needed:
            continue
        path = Path(source.path)
        if not path.is_file():
            raise EnvsimError(f"scenario {source.id}: {path} is gone; restore it to resume this run")
        if file_hash(path) != source.hash:
            raise EnvsimError(
                f"scenario {source.id}: {path} changed since the run was planned (its episodes' ids depend on its"
                " content); restore the original file, or start a new run"
            )
        loaded[source.id] = load_scenario(path)
    return loaded


def _uses_models(config: GenerateConfig) -> bool:
    return config.agent == "llm" or config.user == "llm" or config.judge_rubric is not None or bool(config.judge_model)


def _call_defaults(options: RunOptions) -> dict[str, Any]:
    defaults: dict[str, Any] = {}
    if options.api_base:
        defaults["api_base"] = options.api_base
        if not os.environ.get("OPENAI_API_KEY"):
            defaults["api_key"] = "envsim-local"  # OpenAI-compatible local servers want some key
    return defaults


def model_calls(options: RunOptions, mode: CacheMode, log: CallLog | None) -> ModelCalls:
    """The model-call layer of a run with ``options``: its timeout, retry policy and call defaults."""
    return ModelCalls(
        mode=mode,
        log=log,
        timeout=options.timeout,
        max_retries=options.max_retries,
        backoff=options.backoff,
        max_backoff=options.max_backoff,
        defaults=_call_defaults(options),
    )


def _usage_totals(scan: StoreScan, planned: set[str]) -> Usage:
    total = Usage()
    for episode, record in scan.records.items():
        if episode in planned:
            for usage in record.usage.values():
                total = total + usage
    return total


def execute(
    store: RunStore,
    *,
    overrides: Mapping[str, Any] | None = None,
    resumed: bool = False,
    progress: bool = False,
    console: Console | None = None,
) -> RunSummary:
    """Run every planned episode that has no final outcome yet; update the manifest; write the Parquet table.

    The session runs with the options of the run's last session (the first: those it was planned
    with), updated with ``overrides`` (``concurrency``, ``timeout``...; the cache mode and folder
    always stay the run's). Closes ``store``. Raises the run's fatal error (a replay miss, a full
    disk) after recording what was stored.
    """
    started = time.perf_counter()
    try:
        manifest = store.read_manifest()
        plan = store.read_plan()
        work = _pending_work(store, manifest, plan, overrides)
        session = _open_session(store, manifest, plan, work, resumed)
        before = {i: r.attempts for i, r in work.scan.records.items() if r.outcome == "infra_error"}
        runner, stats = _runner(store, work.todo, work.scenarios, manifest.config, work.options, len(plan), before)
        if work.todo and _uses_models(manifest.config):
            litellm()  # import it now (seconds), not inside the event loop with every episode waiting
        asyncio.run(_drive(runner, stats, progress, console))
        summary = _close_session(store, manifest, plan, session, runner, started, resumed)
    finally:
        store.close()
    _raise_fatal(runner.fatal)
    return summary


@dataclass
class _PendingWork:
    """What a session of a run has to do: its options, and the planned episodes without a final outcome."""

    options: RunOptions
    repaired: list[BadLine]
    scan: StoreScan
    todo: list[EpisodeSpec]
    scenarios: dict[str, Scenario]


def _pending_work(
    store: RunStore, manifest: Manifest, plan: Sequence[EpisodeSpec], overrides: Mapping[str, Any] | None
) -> _PendingWork:
    """The work of a new session on ``plan``: sessions that never finished marked killed, a torn shard tail repaired.

    The session runs with the options of the run's last session (the first: those it was planned
    with), updated with ``overrides``; the cache mode and folder always stay the run's.
    """
    base = manifest.sessions[-1].options if manifest.sessions else manifest.options
    options = RunOptions.model_validate(
        {**base.model_dump(), **(overrides or {}), "cache": base.cache, "cache_dir": base.cache_dir}
    )
    for session in manifest.sessions:
        if session.status == "running":
            session.status = "killed"  # a session that never finished: killed, or the machine went down
    repaired = store.repair()
    scan = store.scan()
    complete = scan.complete_ids()
    todo = [spec for spec in plan if spec.episode_id not in complete]
    scenarios = load_scenarios(manifest.scenarios, {spec.scenario_id for spec in todo})
    return _PendingWork(options, repaired, scan, todo, scenarios)


def _open_session(
    store: RunStore, manifest: Manifest, plan: Sequence[EpisodeSpec], work: _PendingWork, resumed: bool
) -> SessionInfo:
    """Add a running session for ``work`` to the manifest (written before any episode runs)."""
    session = SessionInfo(
        started_at=now_iso(),
        resumed=resumed,
        options=work.options,
        todo=len(work.todo),
        torn_lines_repaired=len(work.repaired),
    )
    manifest.sessions.append(session)
    manifest.counts = store.counts(work.scan, plan)
    store.write_manifest(manifest)
    return session


def _close_session(
    store: RunStore,
    manifest: Manifest,
    plan: Sequence[EpisodeSpec],
    session: SessionInfo,
    runner: BatchRunner,
    started: float,
    resumed: bool,
) -> RunSummary:
    """Record how the session ended in the manifest, write the Parquet table; the run's summary."""
    scan = store.scan()
    counts = store.counts(scan, plan)
    session.finished_at = now_iso()
    session.status = "failed" if runner.fatal else "interrupted" if runner.interrupted else "finished"
    session.stored = runner.stats.stored
    session.outcomes = dict(sorted(runner.stats.outcomes.items()))
    session.wall_seconds = round(time.perf_counter() - started, 3)
    session.error = str(runner.fatal) if runner.fatal else None
    manifest.counts = counts
    store.write_manifest(manifest)
    parquet = store.write_parquet(scan)
    return _summary(store, plan, scan, counts.model_dump(), runner.stats, runner, session, parquet, resumed)


def _raise_fatal(fatal: BaseException | None) -> None:
    """Raise the error that stopped the run, if any (an unexpected one wrapped in an :class:`EnvsimError`)."""
    if fatal is not None:
        if isinstance(fatal, EnvsimError | OSError):
            raise fatal
        raise EnvsimError(f"the run stopped: {type(fatal).__name__}: {fatal}") from fatal


def _runner(
    store: RunStore,
    todo: list[EpisodeSpec],
    scenarios: dict[str, Scenario],
    config: GenerateConfig,
    options: RunOptions,
    planned: int,
    attempts_before: dict[str, int],
) -> tuple[BatchRunner, RunStats]:
    log = CallLog(options.cache_dir or store.root / CALLS_DIR) if options.cache != "off" else None
    calls = model_calls(options, options.cache, log)
    stats = RunStats(planned=planned, already=planned - len(todo))
    runner = BatchRunner(store, todo, scenarios, config, options, calls, stats=stats, attempts_before=attempts_before)
    return runner, stats


async def _drive(runner: BatchRunner, stats: RunStats, progress: bool, console: Console | None) -> None:
    try:
        async with live_progress(stats, runner.calls.stats, console or Console(stderr=True), enabled=progress):
            await runner.run()
    finally:
        runner.calls.close()


def _summary(
    store: RunStore,
    plan: Sequence[EpisodeSpec],
    scan: StoreScan,
    counts: dict[str, Any],
    stats: RunStats,
    runner: BatchRunner,
    session: SessionInfo,
    parquet: Path | None,
    resumed: bool,
) -> RunSummary:
    planned = {spec.episode_id for spec in plan}
    rewards = [
        r.reward
        for i, r in scan.records.items()
        if i in planned and r.carries_reward and r.reward is not None and r.reward == r.reward
    ]
    carrying = [r for i, r in scan.records.items() if i in planned and r.carries_reward]
    usage = _usage_totals(scan, planned)
    wall = session.wall_seconds
    return RunSummary(
        run_dir=str(store.root),
        status=session.status,
        episodes_planned=counts["planned"],
        stored=counts["stored"],
        complete=counts["complete"],
        missing=counts["missing"],
        stored_this_session=stats.stored,
        outcomes=counts["outcomes"],
        mean_reward=math.fsum(rewards) / len(rewards) if rewards else None,
        success_rate=sum(r.outcome == "success" for r in carrying) / len(carrying) if carrying else None,
        tokens={
            "prompt": usage.prompt_tokens,
            "completion": usage.completion_tokens,
            "total": usage.total_tokens,
        },
        cost=usage.cost,
        model_calls=usage.calls,
        retries=runner.calls.stats.retries,
        wall_seconds=wall,
        run_seconds=round(stats.run_seconds, 3),
        cpu_seconds=round(stats.cpu_seconds, 3),
        episodes_per_second=round(stats.stored / stats.run_seconds, 3) if stats.run_seconds > 0 else 0.0,
        torn_lines_repaired=session.torn_lines_repaired,
        top_errors=Counter(
            (r.error or "")[:200] for i, r in scan.records.items() if i in planned and r.error is not None
        ).most_common(5),
        resumed=resumed,
        parquet=str(parquet) if parquet else None,
    )
