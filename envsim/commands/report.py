"""``envsim report``: a run's figures on the terminal, and a self-contained HTML report.

* ``envsim report RUN_DIR [--html PATH] [--k K]... [--max-episodes N] [--json]`` prints, per
  scenario: episodes, trials (episodes whose outcome carries a reward), success rate, pass^k,
  mean reward, outcome counts, turns, tokens and cost; then the mean score of each reward
  component. ``--html`` writes the page (see :mod:`envsim.report`).

``--json`` ends with one JSON object (:class:`envsim.report.RunReport`). A path that is not a
run exits with status 2 and a message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from envsim.cli_common import JsonFlag, emit_json, out, plain_console


def register(app: typer.Typer) -> None:
    """Add ``report`` to the main CLI."""

    @app.command()
    def report(
        run_dir: Annotated[Path, typer.Argument(help="A run directory written by envsim generate.")],
        html: Annotated[Path | None, typer.Option(help="Write the self-contained HTML report here.")] = None,
        k: Annotated[
            list[int] | None, typer.Option("--k", min=1, help="The k of pass^k (repeatable). [1 2 4 8, up to trials]")
        ] = None,
        max_episodes: Annotated[
            int, typer.Option(min=0, help="Episodes rendered as transcripts in the HTML page.")
        ] = 1000,
        as_json: JsonFlag = False,
    ) -> None:
        """Per-scenario success, pass^k, reward components, outcomes, tokens and cost; --html for the page."""
        from envsim.report import _fmt, _pct, load_report

        result = load_report(run_dir, ks=k)
        summary = result.summary
        console = out if out.is_terminal else plain_console(width=200)
        rows = [*summary.scenarios, summary.overall]
        last = len(summary.scenarios) - 1
        title = f"{summary.run_dir}: {summary.stored} episodes stored, {summary.planned} planned"
        table = Table(title=title, title_justify="left")
        table.add_column("scenario", overflow="fold")
        table.add_column("persona", overflow="fold")
        for name in ("trials", "success", *(f"pass^{x}" for x in summary.ks), "reward"):
            table.add_column(name, justify="right", no_wrap=True)
        for i, stats in enumerate(rows):
            table.add_row(
                stats.name,
                stats.persona or "",
                str(stats.trials),
                _pct(stats.success_rate),
                *(_fmt(stats.pass_hat_k.get(str(x))) for x in summary.ks),
                _fmt(stats.mean_reward),
                end_section=i == last,
            )
        console.print(table)
        usage = Table(title="outcomes and usage", title_justify="left")
        usage.add_column("scenario", overflow="fold")
        usage.add_column("episodes", justify="right", no_wrap=True)
        usage.add_column("outcomes", overflow="fold")
        for name in ("turns", "tokens", "cost"):
            usage.add_column(name, justify="right", no_wrap=True)
        for i, stats in enumerate(rows):
            usage.add_row(
                stats.name,
                str(stats.episodes),
                ", ".join(f"{o} {n}" for o, n in stats.outcomes.items()),
                _fmt(stats.mean_turns, 1),
                f"{stats.tokens:,}",
                f"${stats.cost:.4f}",
                end_section=i == last,
            )
        console.print(usage)
        if summary.components:
            parts = Table(title="reward components (mean score over trials)", title_justify="left")
            parts.add_column("scenario", overflow="fold")
            for name in summary.components:
                parts.add_column(name, justify="right")
            for i, stats in enumerate(rows):
                scores = (_fmt(stats.components.get(c)) for c in summary.components)
                parts.add_row(stats.name, *scores, end_section=i == last)
            console.print(parts)
        if html is not None:
            written = result.write_html(html, max_episodes=max_episodes)
            console.print(f"wrote {written}")
        if as_json:
            emit_json(summary.model_dump())
