"""``envsim scenarios generate`` and ``envsim scenarios schema``: verified suites from task families.

* ``envsim scenarios generate FAMILY|TOOLKIT|PATH... --count N --seed S --out DIR [--split
  train=0.8,dev=0.1,test=0.1] [--holdout-families A,B] [--workers W] [--json]`` draws ``N``
  verified instances per family into ``DIR`` (see :mod:`envsim.factory.generate`). A name is a
  family's name, a family file or folder, or a toolkit (all its families). A progress bar shows on
  a terminal; ``--json`` ends with one JSON object: files written and unchanged, counts per split,
  toolkit and family, and the gate's drops by reason. ``--paraphrase MODEL`` rewords each kept
  instance's opening and goal with a model (through litellm, cached; a paraphrase that drops or
  changes a fact value is rejected and counted: :mod:`envsim.factory.paraphrase`); offline, the
  default, there is none.
* ``envsim scenarios schema [--out FILE]`` writes the JSON Schema of family files.

Exit status: 0 with a suite written; 1 when no instance passed the gate; 2 for invalid input (a
family's located problems, ``file:line:col: field: message``), before anything is written.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from envsim.cli_common import JsonFlag, emit_json, err, out, write_schema


def register(main: typer.Typer) -> None:
    """Add ``generate`` and ``schema`` to ``envsim scenarios`` (the sub-app of :mod:`envsim.commands.scenarios`)."""
    from envsim.commands.scenarios import app as scenarios

    @scenarios.command("generate")
    def generate(
        names: Annotated[list[str], typer.Argument(help="Family names, family files or folders, or toolkits.")],
        output: Annotated[Path, typer.Option("--out", help="The suite folder to write.")],
        count: Annotated[int, typer.Option(min=1, help="Verified instances per family.")] = 100,
        seed: Annotated[int, typer.Option(help="The generator's seed.")] = 0,
        split: Annotated[str, typer.Option(help="Split shares, e.g. train=0.8,dev=0.1,test=0.1.")] = "train=1",
        holdout_families: Annotated[
            str, typer.Option("--holdout-families", help="Families kept whole out of train (split 'holdout').")
        ] = "",
        workers: Annotated[int, typer.Option(min=1, help="Worker processes (families are drawn in parallel).")] = 1,
        paraphrase: Annotated[
            str | None,
            typer.Option(help="A model (litellm name) that rewords openings and goals; kept only if every fact stays."),
        ] = None,
        as_json: JsonFlag = False,
    ) -> None:
        """Generate a verified scenario suite from task families (deterministic, atomic, gated)."""
        from envsim.errors import ScenarioError
        from envsim.factory.generate import generate_suite, parse_split, resolve_families

        try:
            splits = parse_split(split)
            families = resolve_families(names)
        except ValueError as error:
            err.print(f"error: {error}")
            raise typer.Exit(2) from None
        holdout = [h.strip() for h in holdout_families.split(",") if h.strip()]
        progress = Progress(
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TextColumn("scenarios verified", markup=False),
            TimeRemainingColumn(),
            console=err,
            transient=False,
            disable=not err.is_terminal,
        )
        started = time.perf_counter()
        with progress:
            task = progress.add_task("generate", total=count * len(families))
            try:
                result = generate_suite(
                    families,
                    count=count,
                    seed=seed,
                    out=output,
                    splits=splits,
                    holdout=holdout,
                    workers=workers,
                    on_progress=lambda kept: progress.update(task, completed=kept),
                    paraphrase=paraphrase,
                )
            except ScenarioError as error:
                for problem in error.problems:
                    err.print(str(problem))
                raise typer.Exit(2) from None
            except ValueError as error:
                err.print(f"error: {error}")
                raise typer.Exit(2) from None
        seconds = time.perf_counter() - started
        data = result.manifest
        counts = data["counts"]
        for family, info in data["families"].items():
            drops = ", ".join(f"{k} {v}" for k, v in info["drops"].items()) or "none"
            out.print(f"{family}: {info['kept']} kept of {info['draws']} draws (drops: {drops})")
            for reason, detail in info["drop_examples"].items():
                out.print(f"  {reason}: {detail}")
        splits_text = ", ".join(f"{k} {v}" for k, v in counts["per_split"].items()) or "none"
        drops_text = ", ".join(f"{k} {v}" for k, v in data["drops"].items() if v) or "none"
        out.print(
            f"{counts['total']} scenarios in {output} ({splits_text}); {result.written} written, "
            f"{result.unchanged} unchanged; drops: {drops_text}; {seconds:.1f} s"
        )
        reworded = data.get("paraphrase")
        if reworded is not None:
            out.print(
                f"paraphrases by {reworded['model']}: {reworded['accepted']} kept, {reworded['rejected']} rejected "
                f"(a fact value dropped or changed), {reworded['failed']} failed"
            )
            for kind, example in reworded["examples"].items():
                out.print(f"  {kind}: {example}")
        if as_json:
            emit_json(
                {
                    "out": str(output),
                    "total": counts["total"],
                    "written": result.written,
                    "unchanged": result.unchanged,
                    "per_split": counts["per_split"],
                    "per_toolkit": counts["per_toolkit"],
                    "per_family": counts["per_family"],
                    "drops": data["drops"],
                    **({"paraphrase": reworded} if reworded is not None else {}),
                    "seconds": round(seconds, 3),
                    "workers": workers,
                    "cpus": os.cpu_count(),
                }
            )
        if counts["total"] == 0:
            raise typer.Exit(1)

    @scenarios.command("schema")
    def schema(
        output: Annotated[
            Path | None, typer.Option("--out", "-o", help="Write to this file instead of stdout.")
        ] = None,
    ) -> None:
        """Write the JSON Schema of task family files."""
        from envsim.factory.family import Family

        write_schema(Family, output)
