"""``envsim fidelity``: how human-like a mock user's turns are, persona by persona.

``envsim fidelity [--user transcript|llm] [--model MODEL] [--corpus DIR] [--personas NAMES]
[--dialogues N] [--seed S] [--plot-dir DIR] [--outcome-episodes N] [--outcomes-only] [--api-base URL] [--json]``
replays held-out STAR dialogues (human-written, role-played transcripts) with the mock user and compares its
turns with the human ones (see :mod:`envsim.fidelity`): a table, and with ``--json`` one JSON object on the
last line mapping each persona to its figures. The transcript user runs offline; the LLM user takes any
litellm model. A missing corpus exits with status 2 and a message.

The outcome calibration (:mod:`envsim.calibration_outcomes`) follows: graded scripted agents under the
scripted, transcript and (with ``--model``) LLM users, their success rates side by side and Kendall's tau
per user (target 1), under the key ``outcome_calibration`` of the JSON object. ``--outcome-episodes 0``
leaves it out; ``--outcomes-only`` runs only it (no corpus needed: the transcript user then speaks
template lines, as its note says).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from envsim.cli_common import out

JsonFlag = Annotated[bool, typer.Option("--json", help="End with one JSON object on the last line.")]


def register(app: typer.Typer) -> None:
    """Add the ``fidelity`` command to the main CLI."""

    @app.command()
    def fidelity(
        user: Annotated[str, typer.Option(help="The mock user: transcript (offline) or llm.")] = "transcript",
        model: Annotated[
            str | None, typer.Option(help="litellm model of the LLM user, e.g. openai/gpt-4o-mini.")
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
        seed: Annotated[int, typer.Option(help="Seed of the replays.")] = 0,
        plot_dir: Annotated[
            Path | None, typer.Option("--plot-dir", help="Write one SVG plot per persona into this folder.")
        ] = None,
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
        """Replay held-out human dialogues with a mock user; compare its turns with the human turns per persona."""
        from envsim.errors import EnvsimError

        if user not in ("transcript", "llm"):
            raise EnvsimError(f"unknown user {user!r} for fidelity: transcript or llm")
        if outcomes_only and outcome_episodes == 0:
            raise EnvsimError("--outcomes-only with --outcome-episodes 0 measures nothing")
        payload: dict[str, object] = {}
        if not outcomes_only:
            payload.update(_replay_section(user, model, corpus, personas, dialogues, seed, plot_dir, api_base))
        if outcome_episodes:
            payload["outcome_calibration"] = _outcome_section(model, corpus, outcome_episodes, seed, api_base)
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
) -> dict[str, object]:
    """Replay held-out dialogues, print the per-persona table; the figures by persona for ``--json``."""
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
    )
    header = ("persona", "dial", "human", "sim", "auc", "auc_hh", "len_ks", "len_w1", "words", "quest", "dist",
              "js", "js_hh")  # fmt: skip
    rows = [header]
    for name, f in report.personas.items():
        rows.append(
            (
                name,
                str(f.dialogues),
                str(f.human_turns),
                str(f.simulated_turns),
                f"{f.auc:.2f}",
                "-" if f.auc_human is None else f"{f.auc_human:.2f}",
                f"{f.length_ks:.2f}",
                f"{f.length_wasserstein:.1f}",
                f"{f.words_human:.1f}/{f.words_sim:.1f}",
                f"{f.question_rate_human:.2f}/{f.question_rate_sim:.2f}",
                f"{f.distress_human:.3f}/{f.distress_sim:.3f}",
                f"{f.lexical_js:.2f}",
                "-" if f.lexical_js_human is None else f"{f.lexical_js_human:.2f}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        out.print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    out.print(
        "auc: real-vs-simulated classifier AUC on held-out folds (0.5: indistinguishable); auc_hh, js_hh: the same "
        "between two halves of the human turns; len_ks/len_w1: KS and Wasserstein distance of words per turn; "
        "words, quest, dist: human/simulated mean words, question rate, mean distress; js: unigram "
        "Jensen-Shannon divergence (bits)"
    )
    where = f" with {report.model}" if report.model else ""
    out.print(
        f"{report.user} user{where}: {len(report.personas)} personas, held-out STAR dialogues from "
        f"{report.corpus}, {report.wall_seconds:.1f}s"
    )
    if plot_dir is not None:
        out.print(f"plots in {plot_dir}")
    return {name: f.model_dump(mode="json") for name, f in report.personas.items()}


def _outcome_section(
    model: str | None, corpus: Path | None, episodes: int, seed: int, api_base: str | None
) -> dict[str, object]:
    """Run the outcome calibration, print its success table and tau per user; its figures for ``--json``."""
    from envsim.calibration_outcomes import calibrate_outcomes, table_rows

    result = calibrate_outcomes(episodes=episodes, seed=seed, corpus=corpus, model=model, api_base=api_base)
    rows = table_rows(result)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    out.print(
        f"outcome calibration: success rate of scripted agents by error rate under each user "
        f"({result.scenarios} scenarios x {result.episodes} seeds from {result.seed}); tau: Kendall's tau of "
        "quality against success (target 1)"
    )
    for row in rows:
        out.print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    for name, note in result.notes.items():
        out.print(f"{name}: {note}")
    return result.model_dump(mode="json")
