"""``envsim scenarios stats DIR [--split S] [--json]``: what a suite holds (see :mod:`envsim.suite_stats`).

Prints the scenarios per split and, over the splits counted, per toolkit, family, persona, kind,
trait and escalation, and the generator's gate drops by reason. ``--json`` ends with one JSON
object (:func:`envsim.suite_stats.suite_stats`). Exit status 2 when ``DIR`` is not a suite, the
split is unknown, or a scenario file does not load (each named, the counts still printed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from envsim.cli_common import JsonFlag, emit_json, err, out


def _line(name: str, counts: dict[str, int]) -> str:
    return f"  {name}: " + (", ".join(f"{label} {n}" for label, n in counts.items()) or "-")


def register(app: typer.Typer) -> None:
    """Add ``stats`` to ``envsim scenarios`` (the sub-app of :mod:`envsim.commands.scenarios`)."""
    from envsim.commands.scenarios import app as scenarios

    @scenarios.command("stats")
    def stats(
        suite: Annotated[Path, typer.Argument(help="The suite folder (DIR/suite.json, DIR/<split>/...).")],
        split: Annotated[str | None, typer.Option(help="Count only this split (default: every split).")] = None,
        as_json: JsonFlag = False,
    ) -> None:
        """Count a suite's scenarios by split, toolkit, family, persona, kind, trait and escalation; gate drops."""
        from envsim.suite import Suite
        from envsim.suite_stats import DIMENSIONS, suite_stats

        counts = suite_stats(Suite.open(suite), split)
        splits = ", ".join(f"{name} {part['scenarios']}" for name, part in counts["splits"].items())
        out.print(f"{counts['suite']}: {counts['scenarios']} scenarios ({splits})")
        for dimension in DIMENSIONS:
            out.print(_line(dimension, counts["total"][dimension]))
        if counts["drops"]:
            reasons = ", ".join(f"{reason} {n}" for reason, n in counts["drops"].items() if n)
            out.print(f"dropped by the gate: {counts['dropped']}" + (f" ({reasons})" if reasons else ""))
        for problem in counts["problems"]:
            err.print(problem)
        if counts["invalid"]:
            err.print(f"{counts['invalid']} scenario files do not load")
        if as_json:
            emit_json(counts)
        if counts["invalid"]:
            raise typer.Exit(2)
