"""``envsim generate``: batch trajectory generation into a run directory that loses nothing.

* ``envsim generate SCENARIOS... --episodes N --out RUN_DIR [options]`` plans scenarios (files,
  folders, globs, ids, a suite's split ``DIR:split``, or ``all``) × seeds × episodes and runs them
  with ``--concurrency`` episodes in flight (asyncio), storing every finished episode durably (see
  :mod:`envsim.batch.store`).
* ``envsim generate --resume RUN_DIR`` finishes a run after a crash, ``kill -9`` or Ctrl-C: exactly
  the episodes without a final outcome (infra errors included) are played; operational options
  (``--concurrency``, ``--timeout``, ``--max-retries``, ``--api-base``...) may change, what the
  episodes are (agent, user, judge, seeds) may not.
* ``--record`` keeps every model call's answer in ``RUN_DIR/calls``; ``envsim generate --replay
  RUN_DIR --out NEW_DIR`` re-runs that run from the records, calling no provider.
* ``--backend ray`` runs the same job on a Ray cluster (:mod:`envsim.batch.ray_backend`): the
  episodes still to run are sharded over ``--workers N`` Ray tasks (default: the cluster's CPUs),
  ``--concurrency`` episodes in flight in all, and every finished episode is streamed back and
  stored in RUN_DIR by this process, so episode ids, trajectories, the store and the summary are
  the local backend's. ``--ray-address ADDR`` (or ``RAY_ADDRESS``) joins a running cluster;
  without it a local one is started for the run. The backend is operational: a run started
  locally may be resumed on Ray and vice versa. Ray cannot ``--record`` (record locally), and
  ``--replay`` on Ray needs the recorded calls folder on every worker's file system. Needs
  ``pip install 'envsim[distributed]'``.

A live progress bar is drawn on a terminal. ``--json`` ends with one JSON object (the
:class:`~envsim.batch.session.RunSummary`). Invalid input exits with status 2 and a message.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from envsim.cli_common import JsonFlag, emit_json, err, out

if TYPE_CHECKING:
    from envsim.batch.session import RunSummary
    from envsim.batch.store import RunStore

BACKENDS = ("local", "ray")


def _check_backend(backend: str, workers: int | None, ray_address: str | None, record: bool) -> None:
    """Refuse what the chosen backend cannot do, before anything is written (EnvsimError: exit 2)."""
    from envsim.errors import EnvsimError

    if backend not in BACKENDS:
        raise EnvsimError(f"unknown backend {backend!r}; backends: {', '.join(BACKENDS)}")
    if backend == "local":
        if workers is not None and workers > 1:
            raise EnvsimError(
                "--workers needs --backend ray (the local backend is one process: --concurrency sets the episodes"
                " in flight)"
            )
        if ray_address is not None:
            raise EnvsimError("--ray-address needs --backend ray")
        return
    if record:
        raise EnvsimError(
            "--backend ray cannot record model calls yet (workers would share one call log): record with the"
            " local backend, or run without --record"
        )
    if importlib.util.find_spec("ray") is None:
        raise EnvsimError("--backend ray needs Ray: pip install 'envsim[distributed]'")


def _start_ray(address: str | None) -> bool:
    """Join the cluster at ``address`` (or ``RAY_ADDRESS``), or start a local one; True if this call started Ray."""
    import ray

    from envsim.errors import EnvsimError

    if ray.is_initialized():
        return False
    where = f" at {address}" if address else ""
    try:
        ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING)
    except (ValueError, ConnectionError, RuntimeError) as error:
        raise EnvsimError(f"cannot start or join a Ray cluster{where}: {error}") from None
    return True


def register(app: typer.Typer) -> None:
    """Add ``generate`` to the main CLI."""

    @app.command()
    def generate(
        scenarios: Annotated[
            list[str] | None,
            typer.Argument(
                help="Scenario files, folders, globs, ids, suites (DIR or DIR:split), or 'all' (not with"
                " --resume/--replay)."
            ),
        ] = None,
        episodes: Annotated[int | None, typer.Option(min=1, help="Episodes per scenario and seed.")] = None,
        seed: Annotated[
            list[int] | None, typer.Option(help="Base seed (repeatable); episode i of seed s uses seed s + i. [0]")
        ] = None,
        output: Annotated[Path | None, typer.Option("--out", help="The run directory to create.")] = None,
        concurrency: Annotated[int | None, typer.Option(min=1, help="Episodes in flight at once. [64]")] = None,
        agent: Annotated[str | None, typer.Option(help="Agent: scripted (default), llm or hf.")] = None,
        agent_model: Annotated[str | None, typer.Option(help="The agent's model (a litellm model string).")] = None,
        user: Annotated[str | None, typer.Option(help="Mock user: scripted (default), transcript or llm.")] = None,
        user_model: Annotated[str | None, typer.Option(help="The LLM user's model.")] = None,
        judge_rubric: Annotated[
            Path | None, typer.Option(help="Judge rubric YAML: adds an LLM-judge component named 'judge'.")
        ] = None,
        judge_model: Annotated[
            str | None,
            typer.Option(
                help="The model of every judge: --judge-rubric's (overrides the rubric's) and the scenarios' own"
                " (reward.judges; without a judge model they are recorded as not run)."
            ),
        ] = None,
        judge_weight: Annotated[
            float | None, typer.Option(min=0.0, help="Weight of the judge in the total (0: reported only). [0]")
        ] = None,
        error_rate: Annotated[
            float | None, typer.Option(min=0.0, max=1.0, help="The scripted agent's mistake rate. [0]")
        ] = None,
        timeout: Annotated[float | None, typer.Option(min=0.001, help="Seconds allowed per model call. [60]")] = None,
        max_retries: Annotated[
            int | None, typer.Option(min=0, help="Retries per model call (429, 5xx, timeouts). [5]")
        ] = None,
        backoff: Annotated[
            float | None, typer.Option(min=0.0, help="First retry delay in seconds (doubling, jittered). [0.5]")
        ] = None,
        api_base: Annotated[
            str | None, typer.Option(help="OpenAI-compatible endpoint for every model (vLLM, a proxy, a test server).")
        ] = None,
        stagger: Annotated[
            float | None,
            typer.Option(
                min=0.0,
                help="Seconds between the starts of the episode slots when episodes call models: slot k starts"
                " k × this after the run, so the slots' calls do not go out (and come back) in bursts; 0: all at"
                " once. [0.25 s ÷ concurrency]",
            ),
        ] = None,
        device: Annotated[
            str | None, typer.Option(help="Torch device of the hf agent: cpu, cuda or cuda:N. [cpu]")
        ] = None,
        resume: Annotated[Path | None, typer.Option(help="Finish the run in this directory.")] = None,
        record: Annotated[bool, typer.Option("--record", help="Record every model call in RUN_DIR/calls.")] = False,
        replay: Annotated[
            Path | None, typer.Option(help="Re-run this recorded run into --out, answering calls from its records.")
        ] = None,
        step_delay: Annotated[
            float | None,
            typer.Option(min=0.0, help="Seconds to wait before each agent action (demos, tests).", hidden=True),
        ] = None,
        progress: Annotated[
            bool | None, typer.Option("--progress/--no-progress", help="Live progress bar (default: on a terminal).")
        ] = None,
        backend: Annotated[
            str,
            typer.Option(
                help="Where episodes run: local (asyncio, this process) or ray (sharded over Ray workers; also"
                " with --resume).",
            ),
        ] = "local",
        workers: Annotated[
            int | None, typer.Option(min=1, help="--backend ray: Ray tasks (shards) to run (default: cluster CPUs).")
        ] = None,
        ray_address: Annotated[
            str | None,
            typer.Option(help="--backend ray: the cluster to join (else RAY_ADDRESS, else a local one is started)."),
        ] = None,
        as_json: JsonFlag = False,
    ) -> None:
        """Generate trajectories in batch: scenarios × seeds × episodes, concurrent, durable, resumable.

        --backend ray (with --workers N, --ray-address ADDR) runs the same job on a Ray cluster: the
        episodes are sharded over N Ray tasks and streamed back into RUN_DIR, with the same episode
        ids, trajectories, resume and summary as the local backend (a run may be resumed on either).
        """
        from envsim.batch.plan import GenerateConfig, RunOptions, check_torch_device
        from envsim.batch.session import execute, open_run, start_replay, start_run
        from envsim.errors import EnvsimError

        _check_backend(backend, workers, ray_address, record)

        given = {
            "agent": agent,
            "agent_model": agent_model,
            "user": user,
            "user_model": user_model,
            "judge_rubric": judge_rubric,
            "judge_model": judge_model,
            "judge_weight": judge_weight,
            "error_rate": error_rate,
            "episodes": episodes,
            "seed": seed,
        }
        operational = {
            "concurrency": concurrency,
            "timeout": timeout,
            "max_retries": max_retries,
            "backoff": backoff,
            "api_base": api_base,
            "step_delay": step_delay,
            "stagger": stagger,
            "device": device,
        }
        if device is not None:
            check_torch_device("--device", device)
        overrides = {k: v for k, v in operational.items() if v is not None}
        options = RunOptions(**overrides, cache="record" if record else "off")
        fixed = [f"--{k.replace('_', '-')}" for k, v in given.items() if v is not None]
        if resume is not None or replay is not None:
            mode = "--resume" if resume is not None else "--replay"
            if resume is not None and replay is not None:
                raise EnvsimError("--resume and --replay exclude each other")
            if scenarios:
                raise EnvsimError(f"{mode} takes the scenarios from the run's manifest: give no SCENARIOS")
            if fixed:
                raise EnvsimError(f"{mode} keeps what the run's episodes are: {', '.join(fixed)} cannot change")
            if record:
                raise EnvsimError(f"{mode}: --record is decided when a run starts")
        if resume is not None:
            if output is not None:
                raise EnvsimError("--resume writes to the run it resumes: give no --out")
            store = open_run(resume)
        elif replay is not None:
            if output is None:
                raise EnvsimError("--replay needs --out NEW_RUN_DIR")
            store = start_replay(replay, output, options)
        else:
            if not scenarios:
                raise EnvsimError("no scenarios given (files, folders, globs, ids, or 'all')")
            if output is None:
                raise EnvsimError("--out RUN_DIR is required")
            config = GenerateConfig(
                agent=agent or "scripted",
                agent_model=agent_model,
                user=user or "scripted",
                user_model=user_model,
                judge_rubric=str(judge_rubric) if judge_rubric is not None else None,
                judge_model=judge_model,
                judge_weight=judge_weight or 0.0,
                error_rate=error_rate or 0.0,
            )
            store = start_run(output, scenarios, config, options, episodes=episodes or 1, seeds=seed or [0])
        show = err.is_terminal if progress is None else progress
        summary: RunSummary
        if backend == "ray":
            summary = _run_on_ray(store, overrides, resume is not None, show, workers, ray_address)
        else:
            summary = execute(store, overrides=overrides, resumed=resume is not None, progress=show, console=err)
        rate = "-" if summary.mean_reward is None else f"{summary.mean_reward:.3f}"
        outcomes = ", ".join(f"{k} {v}" for k, v in summary.outcomes.items()) or "none"
        out.print(
            f"{summary.run_dir}: {summary.stored}/{summary.episodes_planned} episodes stored"
            f" ({summary.stored_this_session} this session, {summary.wall_seconds:.1f}s); outcomes: {outcomes};"
            f" mean reward {rate}; tokens {summary.tokens['total']}; cost ${summary.cost:.4f}",
            markup=False,
        )
        if summary.torn_lines_repaired:
            err.print(f"repaired {summary.torn_lines_repaired} torn line(s) left by an interrupted write", markup=False)
        for error, count in summary.top_errors:
            err.print(f"{count} × {error}", markup=False)
        if summary.missing:
            err.print(
                f"{summary.missing} episode(s) have no final outcome (infra errors or interrupted):"
                f" envsim generate --resume {summary.run_dir}",
                markup=False,
            )
        if as_json:
            emit_json(summary.model_dump())
        if summary.status == "interrupted":
            raise typer.Exit(130)


def _run_on_ray(
    store: RunStore, overrides: dict[str, Any], resumed: bool, progress: bool, workers: int | None, address: str | None
) -> RunSummary:
    """:func:`~envsim.batch.ray_backend.run_with_ray` on the run of ``store`` (closed in any case)."""
    from envsim.batch.ray_backend import run_with_ray
    from envsim.errors import EnvsimError

    try:
        manifest = store.read_manifest()
        if manifest.options.cache == "record":
            raise EnvsimError(
                f"{store.root} records its model calls: --backend ray cannot record yet; resume it with the local"
                " backend"
            )
        plan = store.read_plan()
        try:
            started = _start_ray(address)
        except EnvsimError as error:
            raise EnvsimError(
                f"{error}; no episode ran, the run is planned in {store.root}: finish it with envsim generate --resume"
                f" {store.root} (--backend ray or local)"
            ) from None
    except BaseException:
        store.close()
        raise
    try:
        return run_with_ray(
            plan,
            store,
            manifest.config,
            overrides=overrides,
            resumed=resumed,
            progress=progress,
            console=err,
            workers=workers,
        )
    finally:
        if started:
            import ray

            ray.shutdown()
