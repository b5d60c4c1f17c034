"""``envsim judge``: LLM-as-judge rubrics.

* ``envsim judge calibrate RUBRIC.yaml LABELS.jsonl [--model M] [--json]`` runs the judge on
  human-labelled trajectories and reports agreement (accuracy, Cohen's kappa, confusion
  matrix), how each criterion separates good from bad, and every disagreement with the judge's
  rationale next to the labeller's comment, so the rubric's author can refine it.

``--provider NAME=module:attr`` registers a litellm custom provider (a ``litellm.CustomLLM``
subclass or instance, e.g. a local model) before judging; ``--model NAME/anything`` then
reaches it through litellm. An invalid rubric or labels file exits with status 2 and located
messages; a run in which the judge could judge nothing exits with status 1.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from envsim.cli_common import JsonFlag, emit_json, err, out
from envsim.errors import EnvsimError

if TYPE_CHECKING:
    from envsim.reward.judge_calibration import CalibrationReport


def register_provider(spec: str) -> str:
    """Register ``NAME=module:attr`` as a litellm custom provider; return NAME.

    ``attr`` is a ``litellm.CustomLLM`` subclass (instantiated with no arguments) or instance.
    """
    from envsim.llm import litellm

    name, _, target = spec.partition("=")
    module_name, _, attr = target.partition(":")
    if not name or not module_name or not attr:
        raise EnvsimError(f"--provider must look like NAME=module:attr, got {spec!r}")
    try:
        handler: Any = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as error:
        raise EnvsimError(f"--provider {spec!r}: cannot load {target!r}: {error}") from None
    lib = litellm()
    if isinstance(handler, type):
        handler = handler()
    if not isinstance(handler, lib.CustomLLM):
        raise EnvsimError(f"--provider {spec!r}: {target!r} is not a litellm.CustomLLM")
    others = [p for p in lib.custom_provider_map if p.get("provider") != name]
    setattr(lib, "custom_provider_map", [*others, {"provider": name, "custom_handler": handler}])  # noqa: B010
    return name


def _print_report(report: CalibrationReport) -> None:
    """The calibration report for people."""
    accuracy = "n/a" if report.accuracy is None else f"{report.accuracy:.1%}"
    kappa = "undefined" if report.kappa is None else f"{report.kappa:.3f}"
    out.print(
        f"rubric {report.rubric} with {report.model}: {report.judged}/{report.labelled} judged, "
        f"accuracy {accuracy}, Cohen's kappa {kappa} (judge good from score {report.threshold:g})"
    )
    matrix = Table("human \\ judge", "good", "bad", title="confusion")
    for human in ("good", "bad"):
        matrix.add_row(human, str(report.confusion[human]["good"]), str(report.confusion[human]["bad"]))
    out.print(matrix)
    separation = Table("criterion", "mean on human-good", "mean on human-bad", title="criteria (normalised scores)")
    for cid, sep in report.criteria.items():
        good = "-" if sep.good_mean is None else f"{sep.good_mean:.2f}"
        bad = "-" if sep.bad_mean is None else f"{sep.bad_mean:.2f}"
        separation.add_row(cid, good, bad)
    out.print(separation)
    if report.disagreements:
        table = Table(title="disagreements")
        table.add_column("id", overflow="fold")
        for column in ("human", "judge", "criteria", "judge rationale", "comment"):
            table.add_column(column)
        for d in report.disagreements:
            scores = ", ".join(f"{k}={v}" for k, v in d.criteria.items())
            table.add_row(
                d.id,
                str(d.human_label),
                f"{d.judge} ({d.judge_score:.2f})",
                scores,
                d.rationale,
                d.comment,
            )
        out.print(table)
    else:
        out.print("no disagreements")
    for f in report.failures:
        err.print(f"{f.id}: judge_error ({f.reason}): {f.message}")
    out.print(
        f"judge cost ${report.cost:.4f}, {report.prompt_tokens} prompt + {report.completion_tokens} completion tokens, "
        f"{report.calls} calls, {report.cache_hits} cached samples"
    )


def register(app: typer.Typer) -> None:
    """Add the ``judge`` sub-app to the main CLI."""
    sub = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, help="LLM-as-judge rubrics.")

    @sub.command("calibrate")
    def calibrate(
        rubric: Annotated[Path, typer.Argument(help="The judge rubric (YAML).")],
        labels: Annotated[Path, typer.Argument(help="Human-labelled trajectories (JSONL).")],
        model: Annotated[str | None, typer.Option(help="Judge model (litellm string); default: the rubric's.")] = None,
        samples: Annotated[
            int | None, typer.Option(min=1, help="Samples per judgement; default: the rubric's.")
        ] = None,
        threshold: Annotated[
            float | None, typer.Option(min=0.0, max=1.0, help="Judge says good from this score; default: the rubric's.")
        ] = None,
        cache_dir: Annotated[
            Path | None, typer.Option(help="Judge cache folder; default: $ENVSIM_JUDGE_CACHE or ~/.cache/envsim/judge.")
        ] = None,
        no_cache: Annotated[bool, typer.Option("--no-cache", help="Neither read nor write the disk cache.")] = False,
        provider: Annotated[
            list[str] | None, typer.Option(help="Register a litellm custom provider: NAME=module:attr (repeatable).")
        ] = None,
        concurrency: Annotated[int, typer.Option(min=1, help="Trajectories judged at once.")] = 4,
        as_json: JsonFlag = False,
    ) -> None:
        """Run the judge on labelled trajectories; report agreement and the disagreements."""
        from envsim.calls import CallLog
        from envsim.reward.judge.cache import shared_log
        from envsim.reward.judge.model import Judge
        from envsim.reward.judge_calibration import calibrate as run_calibration
        from envsim.reward.judge_calibration import load_labels
        from envsim.rubric_schema import load_rubric

        parsed = load_rubric(rubric)
        rows = load_labels(labels)
        for spec in provider or []:
            register_provider(spec)
        cache = CallLog(None) if no_cache else shared_log(cache_dir)
        judge = Judge(parsed, model=model, samples=samples, cache=cache)
        report = run_calibration(judge, rows, threshold=threshold, concurrency=concurrency)
        _print_report(report)
        if as_json:
            emit_json(report.model_dump(mode="json"))
        if report.judged == 0:
            raise typer.Exit(1)

    app.add_typer(sub, name="judge")
