"""``envsim fidelity``: how human a mock user is, with figures that can fail, each against its target.

``envsim fidelity [--user transcript|llm] [--user-model MODEL] [--api-base URL] [--corpus DIR]
[--personas NAMES] [--dialogues N] [--seed S] [--plot-dir DIR] [--no-context-fit] [--outcome-episodes N]
[--outcomes-only] [--json]`` replays held-out STAR dialogues (human-written, role-played transcripts)
with the mock user, on a split by scenario template (:mod:`envsim.fidelity_split`), and measures
(:mod:`envsim.fidelity`): per persona, the context-aware discriminator's AUC and its shuffled-label
baseline, the copy rate and the coherence model's misfit rates; over all, the dialogue-level test and
the context fit. The outcome calibration (:mod:`envsim.calibration_outcomes`) follows: graded scripted
agents under the scripted, transcript and (with ``--user-model``) LLM users, Kendall's tau per user.
Last, every figure against its target, PASS or FAIL. With ``--json`` one JSON object on the last line
carries all of it (``personas``, ``dialogue_level``, ``copy_rate``, ``context_fit``, ``human_reference``,
``split``, ``outcome_calibration``, ``targets``). The human reference (:func:`envsim.fidelity.human_reference`)
applies the same measures to another held-out human's reply to the same agent turn: where real people sit, in the
targets table as ``reference``, no PASS or FAIL. The transcript user runs offline; the LLM user takes any litellm
model. A missing corpus exits with status 2 and a message. ``--outcome-episodes 0`` leaves the outcome
calibration out; ``--outcomes-only`` runs only it (no corpus needed).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from envsim.cli_common import out

if TYPE_CHECKING:
    from envsim.calibration_outcomes import OutcomeCalibration
    from envsim.fidelity import FidelityReport, Target

JsonFlag = Annotated[bool, typer.Option("--json", help="End with one JSON object on the last line.")]


def register(app: typer.Typer) -> None:
    """Add the ``fidelity`` command to the main CLI."""

    @app.command()
    def fidelity(
        user: Annotated[str, typer.Option(help="The mock user: transcript (offline) or llm.")] = "transcript",
        model: Annotated[
            str | None,
            typer.Option("--user-model", "--model", help="litellm model of the LLM user, e.g. openai/gpt-4o-mini."),
        ] = None,
        corpus: Annotated[
            Path | None,
            typer.Option(
                "--corpus", help="Transcripts folder (default: $ENVSIM_TRANSCRIPTS or ../shared/transcripts)."
            ),
        ] = None,
        personas: Annotated[
            list[str] | None,
            typer.Option(
                "--personas", help="Persona names (repeat, or comma-separated); default: the calibrated ones."
            ),
        ] = None,
        dialogues: Annotated[int, typer.Option(min=1, help="Held-out dialogues per persona (the first by id).")] = 100,
        seed: Annotated[
            int, typer.Option(help="Seed of the replays, the coherence model, the chance baselines and the episodes.")
        ] = 0,
        plot_dir: Annotated[
            Path | None, typer.Option("--plot-dir", help="Write one SVG plot per persona into this folder.")
        ] = None,
        context_fit: Annotated[
            bool,
            typer.Option("--context-fit/--no-context-fit", help="Fit the coherence model and report misfit rates."),
        ] = True,
        outcome_episodes: Annotated[
            int,
            typer.Option(
                "--outcome-episodes", min=0, help="Outcome calibration: seeds per scenario and agent (0: leave it out)."
            ),
        ] = 10,
        outcomes_only: Annotated[
            bool,
            typer.Option("--outcomes-only", help="Run only the outcome calibration (no replays, no corpus needed)."),
        ] = False,
        api_base: Annotated[str | None, typer.Option("--api-base", help="API base URL of the LLM user.")] = None,
        as_json: JsonFlag = False,
    ) -> None:
        """Replay held-out human dialogues with a mock user; every fidelity figure against its target."""
        from envsim.errors import EnvsimError

        if user not in ("transcript", "llm"):
            raise EnvsimError(f"unknown user {user!r} for fidelity: transcript or llm")
        if outcomes_only and outcome_episodes == 0:
            raise EnvsimError("--outcomes-only with --outcome-episodes 0 measures nothing")
        from envsim.fidelity import targets

        payload: dict[str, object] = {}
        report = outcome = None
        if not outcomes_only:
            report = _replay_section(user, model, corpus, personas, dialogues, seed, plot_dir, api_base, context_fit)
            payload.update(report.model_dump(mode="json"))
        if outcome_episodes:
            outcome = _outcome_section(model, corpus, outcome_episodes, seed, api_base)
            payload["outcome_calibration"] = outcome.model_dump(mode="json")
        checks = targets(report, outcome.tau if outcome is not None else None)
        _print_targets(checks)
        payload["targets"] = [t.model_dump(mode="json") for t in checks]
        if as_json:
            sys.stdout.write(json.dumps(payload, sort_keys=True) + "\n")
            sys.stdout.flush()


def _replay_section(
    user: str,
    model: str | None,
    corpus: Path | None,
    personas: list[str] | None,
    dialogues: int,
    seed: int,
    plot_dir: Path | None,
    api_base: str | None,
    context_fit: bool,
) -> FidelityReport:
    """Replay held-out dialogues, print the per-persona table and the overall figures; the report."""
    from envsim.fidelity import evaluate

    names = [n.strip() for item in personas or [] for n in item.split(",") if n.strip()]
    options = {"api_base": api_base} if user == "llm" and api_base else None
    report = evaluate(
        user,
        model=model,
        corpus=corpus,
        personas=names or None,
        dialogues=dialogues,
        seed=seed,
        plot_dir=plot_dir,
        user_options=options,
        coherence=context_fit,
    )
    header = ("persona", "dial", "pairs", "ctx_auc", "shuffled", "copy_s/h", "misfit_s/h", "turn_auc", "words",
              "quest", "js")  # fmt: skip
    rows = [header]
    for name, f in report.personas.items():
        rows.append(
            (
                name,
                str(f.dialogues),
                str(f.context_pairs),
                _fmt(f.context_auc),
                _fmt(f.context_auc_shuffled),
                f"{f.copy_rate_sim:.2f}/{f.copy_rate_human:.2f}",
                f"{_fmt(f.misfit_sim, 3)}/{_fmt(f.misfit_human, 3)}",
                f"{f.turn_auc:.2f}",
                f"{f.words_human:.1f}/{f.words_sim:.1f}",
                f"{f.question_rate_human:.2f}/{f.question_rate_sim:.2f}",
                f"{f.lexical_js:.2f}",
            )
        )
    _table(rows)
    out.print(
        "ctx_auc: AUC of a classifier that sees (agent turn, reply), held-out folds by dialogue (0.5: "
        "indistinguishable); shuffled: the same with shuffled labels (chance); pairs: (agent turn, reply) pairs "
        "per side, near-duplicates of pool turns left out; copy_s/h: share of simulated / human replies within "
        "edit distance 0.2 of a pool turn; misfit_s/h: coherence model's misfit rate on simulated / human "
        "replies; turn_auc: a classifier that sees the reply alone; words, quest: human/simulated mean words "
        "and question rate; js: unigram Jensen-Shannon divergence (bits)"
    )
    level, copies, fit = report.dialogue_level, report.copy_rate, report.context_fit
    out.print(
        f"context AUC over every persona: {_fmt(report.context_auc_all)} "
        f"(shuffled {_fmt(report.context_auc_all_shuffled)})"
    )
    out.print(
        f"dialogue level: which of a human and a simulated dialogue of the same task is human? accuracy "
        f"{_fmt(level.accuracy)} (shuffled {_fmt(level.accuracy_shuffled)}) over {level.pairs} pairs"
    )
    out.print(
        f"copy rate: {copies.simulated:.2f} of simulated replies, {copies.human:.2f} of held-out human replies "
        f"within edit distance {copies.distance:g} of one of {copies.pool_turns} pool turns"
    )
    reference = report.human_reference
    if reference is not None:
        per_persona = ", ".join(f"{name} {_fmt(auc)}" for name, auc in reference.context_auc.items())
        out.print(
            f"human reference (another held-out human's reply to the same agent turn): context AUC "
            f"{_fmt(reference.context_auc_all)} ({per_persona}), dialogue accuracy {_fmt(reference.dialogue_accuracy)} "
            f"over {reference.dialogue_pairs} pairs; {reference.exact_matches} of {reference.positions} positions "
            f"answered the same agent turn, {reference.act_fallbacks} one of the same act, {reference.any_fallbacks} "
            "any turn (no other dialogue had the act); no target: a user at these figures is as distinguishable as "
            "another human"
        )
    if fit is not None:
        out.print(
            f"context fit: misfit {_fmt(fit.misfit_sim, 3)} simulated vs {_fmt(fit.misfit_human, 3)} human "
            f"(coherence model fitted on {fit.fitted_pairs} pool pairs); {fit.note}"
        )
    counts = report.split_counts
    out.print(
        f"split by scenario template: {counts['dialogues_evaluation']} evaluation dialogues "
        f"({counts['templates_evaluation']} templates), {counts['dialogues_pool']} pool, "
        f"{counts['dialogues_excluded']} excluded (their template is held out), 0 templates shared; "
        f"{counts['coarse_templates_shared']} of {counts['coarse_templates_evaluation']} coarse templates "
        "(values masked) are on both sides"
    )
    where = f" with {report.model}" if report.model else ""
    out.print(
        f"{report.user} user{where}: {len(report.personas)} personas, seed {report.seed}, STAR from "
        f"{report.corpus}, {report.wall_seconds:.1f}s"
    )
    if plot_dir is not None:
        out.print(f"plots in {plot_dir}")
    return report


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        out.print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _print_targets(targets: list[Target]) -> None:
    rows: list[tuple[str, ...]] = [("figure", "value", "target", "result")]
    for t in targets:
        verdict = (
            t.target
            if t.passed is None and t.target in ("reported", "reference")
            else "-"
            if t.passed is None
            else ("PASS" if t.passed else "FAIL")
        )
        rows.append((t.figure, _fmt(t.value, 3), t.target, verdict))
    out.print("targets (issue 19):")
    _table(rows)


def _outcome_section(
    model: str | None, corpus: Path | None, episodes: int, seed: int, api_base: str | None
) -> OutcomeCalibration:
    """Run the outcome calibration, print its success table and tau per user; its figures for ``--json``."""
    from envsim.calibration_outcomes import calibrate_outcomes, table_rows

    result = calibrate_outcomes(episodes=episodes, seed=seed, corpus=corpus, model=model, api_base=api_base)
    out.print(
        f"outcome calibration: success rate of scripted agents by error rate under each user "
        f"({result.scenarios} scenarios x {result.episodes} seeds from {result.seed}); tau: Kendall's tau of "
        "quality against success (target 1)"
    )
    _table(table_rows(result))
    for name, note in result.notes.items():
        out.print(f"{name}: {note}")
    return result
