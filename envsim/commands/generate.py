"""``envsim generate``: batch trajectory generation into a run directory that loses nothing.

* ``envsim generate SCENARIOS... --episodes N --out RUN_DIR [options]`` plans scenarios (files,
  folders, globs, ids or ``all``) × seeds × episodes and runs them with ``--concurrency`` episodes
  in flight (asyncio), storing every finished episode durably (see :mod:`envsim.batch.store`).
* ``envsim generate --resume RUN_DIR`` finishes a run after a crash, ``kill -9`` or Ctrl-C: exactly
  the episodes without a final outcome (infra errors included) are played; operational options
  (``--concurrency``, ``--timeout``, ``--max-retries``, ``--api-base``...) may change, what the
  episodes are (agent, user, judge, seeds) may not.
* ``--record`` keeps every model call's answer in ``RUN_DIR/calls``; ``envsim generate --replay
  RUN_DIR --out NEW_DIR`` re-runs that run from the records, calling no provider.

A live progress bar is drawn on a terminal. ``--json`` ends with one JSON object (the
:class:`~envsim.batch.session.RunSummary`). Invalid input exits with status 2 and a message.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="End with one JSON object on the last line.")]


def _emit_json(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload, sort_keys=True) + "\n")
    sys.stdout.flush()


def register(app: typer.Typer) -> None:
    """Add ``generate`` to the main CLI."""

    @app.command()
    def generate(
        scenarios: Annotated[
            list[str] | None,
            typer.Argument(help="Scenario files, folders, globs, ids, or 'all' (not with --resume/--replay)."),
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
        judge_model: Annotated[str | None, typer.Option(help="The judge's model (overrides the rubric's).")] = None,
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
        as_json: JsonFlag = False,
    ) -> None:
        """Generate trajectories in batch: scenarios × seeds × episodes, concurrent, durable, resumable."""
        from envsim.batch.plan import GenerateConfig, RunOptions
        from envsim.batch.session import execute, open_run, start_replay, start_run
        from envsim.errors import EnvsimError

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
        }
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
            _emit_json(summary.model_dump())
        if summary.status == "interrupted":
            raise typer.Exit(130)
