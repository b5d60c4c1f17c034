"""``envsim dataset``: training datasets (SFT, DPO, GRPO) from stored runs, by rejection sampling.

* ``envsim dataset RUN_DIR... --format sft|dpo|grpo --out PATH.parquet|PATH.jsonl [--json]``
  reads the runs' stored episodes, keeps those whose outcome carries a reward (simulator faults,
  judge and infrastructure errors never do), applies the selection and writes the rows (see
  :mod:`envsim.datasets` for the formats).
* Selection: ``--select KEY=VALUE`` (repeatable; keys outcome, scenario, model; values may be
  comma-separated), ``--min-reward X``, ``--best-of-n`` (the best episode of each (scenario,
  seed) group), ``--top-k K`` (the K best of each scenario). ``--format sft`` keeps successes
  only unless ``--select outcome=...`` or ``--min-reward`` says otherwise.

Exit status: 0 with rows written; 1 when there is nothing to write (the selection kept nothing, or
``--format dpo`` found no pair: two episodes of one scenario and seed, which come from two runs; the
message says why and how to get some), and no file is written; 2 for invalid input. Like ``grep``
finding nothing, an empty result is not an error of the command, but a script must not take it for
a dataset. ``--json`` ends with one JSON object (:class:`envsim.datasets.DatasetSummary`, with
``empty_reason`` when nothing was written).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from envsim.cli_common import JsonFlag, emit_json, err, out


def register(app: typer.Typer) -> None:
    """Add ``dataset`` to the main CLI."""

    @app.command()
    def dataset(
        runs: Annotated[list[Path], typer.Argument(help="Run directories written by envsim generate.")],
        output: Annotated[Path, typer.Option("--out", help="The dataset file: PATH.parquet or PATH.jsonl.")],
        fmt: Annotated[str, typer.Option("--format", help="sft, dpo or grpo.")] = "sft",
        select: Annotated[
            list[str] | None,
            typer.Option(help="Keep episodes with KEY=VALUE[,VALUE] (keys: outcome, scenario, model); repeatable."),
        ] = None,
        min_reward: Annotated[
            float | None, typer.Option(help="Keep episodes whose total reward is at least this.")
        ] = None,
        top_k: Annotated[int | None, typer.Option(min=1, help="Keep the K best episodes of each scenario.")] = None,
        best_of_n: Annotated[
            bool, typer.Option("--best-of-n", help="Keep the best episode of each (scenario, seed) group.")
        ] = False,
        min_margin: Annotated[
            float, typer.Option(min=0.0, help="dpo: the rejected episode's reward is more than this below the chosen.")
        ] = 0.0,
        as_json: JsonFlag = False,
    ) -> None:
        """Export SFT conversations, DPO pairs or GRPO prompts from runs (faults and errors excluded)."""
        from envsim.datasets import FORMATS, Selection, build_dataset
        from envsim.errors import DatasetError

        if fmt not in FORMATS:
            raise DatasetError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
        if output.suffix.lower() not in (".parquet", ".jsonl"):
            raise DatasetError(f"--out {output}: the file must end in .parquet or .jsonl")
        selection = Selection.parse(select or [], min_reward=min_reward, best_of_n=best_of_n, top_k=top_k)
        summary = build_dataset(runs, fmt, output, selection, min_margin=min_margin)  # type: ignore[arg-type]
        excluded = ", ".join(f"{k} {v}" for k, v in summary.excluded.items()) or "none"
        out.print(
            f"{summary.episodes} episodes from {len(summary.runs)} run(s); excluded (no reward): {excluded};"
            f" selection: {summary.selection}; kept {summary.selected}",
            markup=False,
        )
        if summary.pairs is not None:
            p = summary.pairs
            out.print(
                f"pairs: {p.pairs} of {p.groups} (scenario, seed) groups; one episode only {p.single},"
                f" no worse episode {p.no_worse}, no shared prompt {p.no_shared_prompt}",
                markup=False,
            )
        if summary.rows:
            out.print(f"wrote {summary.rows} {summary.format} rows to {summary.out}", markup=False)
        else:
            err.print(f"nothing to write: {summary.empty_reason}; no file written", markup=False)
        if as_json:
            emit_json(summary.model_dump())
        if not summary.rows:
            raise typer.Exit(1)
