"""``envsim calibrate``: fit mock-user personas and the affect lexicon to public transcripts.

* ``envsim calibrate [--corpus DIR] [--out FILE] [--json]`` fits the persona library from STAR
  (human-written, role-played dialogues; see :mod:`envsim.calibrate`) and writes it, by
  default over ``envsim/personas/calibrated.yaml``.
* ``envsim calibrate affect [--corpus DIR] [--out FILE] [--json]`` refits the affect lexicon
  from GoEmotions (see :mod:`envsim.user.affect_scorer`), by default over
  ``envsim/data/affect_lexicon.json``, and prints its held-out AUC per affect.

``--corpus`` names the transcripts folder (default: :func:`envsim.transcripts.corpus.corpus_dir`).
A missing corpus exits with status 2 and a message.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from envsim.cli_common import JsonFlag, emit_json, out
from envsim.errors import EnvsimError

CorpusOption = Annotated[
    Path | None,
    typer.Option("--corpus", help="Transcripts folder (default: $ENVSIM_TRANSCRIPTS or ../shared/transcripts)."),
]


def _corpus(option: Path | None) -> Path:
    from envsim.transcripts.corpus import CORPUS_ENV, corpus_dir

    found = corpus_dir(option)
    if found is None:
        raise EnvsimError(f"no transcripts folder: pass --corpus DIR or set {CORPUS_ENV}")
    if not found.is_dir():
        raise EnvsimError(f"{found}: no such folder")
    return found


def register(app: typer.Typer) -> None:
    """Add the ``calibrate`` command (personas) and its ``affect`` sub-command to the main CLI."""
    sub = typer.Typer(
        pretty_exceptions_enable=False,
        help="Fit mock-user personas (from STAR) or, with 'affect', the affect lexicon (from GoEmotions).",
    )

    @sub.callback(invoke_without_command=True)
    def personas(
        ctx: typer.Context,
        corpus: CorpusOption = None,
        output: Annotated[
            Path | None,
            typer.Option("--out", "-o", help="Persona library to write (default: envsim/personas/calibrated.yaml)."),
        ] = None,
        as_json: JsonFlag = False,
    ) -> None:
        """Fit persona traits from STAR, grouped by the persona instruction, and write the persona library."""
        if ctx.invoked_subcommand is not None:
            return
        from envsim.calibrate import calibrate, library_yaml, persona_entries, shipped_library_path
        from envsim.calibrate_patience import with_patience

        started = time.perf_counter()
        calibration = with_patience(calibrate(_corpus(corpus)), _corpus(corpus))
        target = output or shipped_library_path()
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(library_yaml(calibration), encoding="utf-8")
        wall = time.perf_counter() - started
        header = ("persona", "n", "affect", "words", "quest", "typos", "pat", "esc", "panic", "held", "auc")
        rows = [header]
        for persona in persona_entries(calibration):
            fit = calibration.groups[persona.name]
            auc = fit.heldout.distress_auc_vs_calm
            rows.append(
                (
                    persona.name,
                    str(fit.dialogues),
                    persona.initial_affect,
                    f"{persona.verbosity.mean_words:.1f}",
                    f"{persona.question_rate:.2f}",
                    f"{persona.typo_rate:.3f}",
                    str(persona.patience),
                    f"{persona.escalation_propensity:.2f}",
                    f"{persona.panic_intensity:.2f}",
                    f"{fit.heldout.mean.get('distress', float('nan')):.3f}",
                    "-" if auc is None else f"{auc:.2f}",
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        for row in rows:
            out.print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        out.print(
            "n: fitting dialogues; words: mean per turn; quest: question rate; pat: patience; esc: escalation "
            "propensity; held: mean distress on held-out dialogues; auc: their distress vs calm's (rank AUC)"
        )
        out.print(
            f"{len(calibration.groups)} personas from {calibration.fitting_dialogues} STAR dialogues "
            f"({calibration.heldout_dialogues} held out); wrote {target} in {wall:.1f}s"
        )
        if as_json:
            emit_json({**calibration.model_dump(mode="json"), "out": str(target), "wall_seconds": round(wall, 2)})

    @sub.command("affect")
    def affect(
        corpus: CorpusOption = None,
        output: Annotated[
            Path | None,
            typer.Option("--out", "-o", help="Lexicon file to write (default: envsim/data/affect_lexicon.json)."),
        ] = None,
        as_json: JsonFlag = False,
    ) -> None:
        """Refit the affect lexicon on GoEmotions (train; squash on dev) and report test AUC per affect."""
        from envsim.user.affect_scorer import fit_lexicon, shipped_lexicon_path, write_lexicon

        started = time.perf_counter()
        folder = _corpus(corpus) / "goemotions"
        lexicon = fit_lexicon(folder)
        target = write_lexicon(lexicon, output or shipped_lexicon_path())
        wall = time.perf_counter() - started
        table = Table("affect", "train positives", "test AUC")
        for name in lexicon.affects:
            table.add_row(name, str(lexicon.provenance.positives[name]), f"{lexicon.heldout_auc[name]:.3f}")
        out.print(table)
        out.print(f"{len(lexicon.tokens)} tokens; wrote {target} in {wall:.1f}s")
        if as_json:
            emit_json(
                {
                    "out": str(target),
                    "tokens": len(lexicon.tokens),
                    "heldout_auc": lexicon.heldout_auc,
                    "calibration": {a: list(v) for a, v in lexicon.calibration.items()},
                    "provenance": lexicon.provenance.model_dump(),
                    "wall_seconds": round(wall, 2),
                }
            )

    app.add_typer(sub, name="calibrate")
