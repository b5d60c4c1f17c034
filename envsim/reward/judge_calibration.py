"""Calibrating a judge rubric against human labels: agreement, kappa, and the disagreements.

A rubric author labels 10–20 trajectories (good/bad, or a score in [0, 1]), runs the judge on
them and reads where the judge and the humans part ways, then refines the rubric. The labels
file is JSONL, one row per trajectory::

    {"id": "cancel-0.5-1", "trajectory": {...envsim Trajectory JSON...}, "label": "bad",
     "comment": "refunded instead of cancelling"}

``label`` is ``"good"``, ``"bad"`` or a number in [0, 1] (good from the rubric's
``pass_threshold``). The judge says good when its overall score reaches ``pass_threshold``.
Agreement is counted over the trajectories the judge could judge; judge errors are listed
apart, never counted as a verdict.

Example:
    >>> cohen_kappa(["good", "good", "bad", "bad"], ["good", "bad", "bad", "bad"])
    0.5
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from envsim.errors import JudgeError, Problem, ScenarioError
from envsim.reward.judge.model import Judge
from envsim.reward.judge.verdicts import JudgeResult
from envsim.trajectory import Trajectory

Verdict = Literal["good", "bad"]
"""A binary verdict on a trajectory, from a human or from the judge."""

VERDICTS: tuple[Verdict, Verdict] = ("good", "bad")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LabelledTrajectory(_Strict):
    """One row of a labels file: a trajectory and what a human thought of it."""

    id: str | None = Field(None, description="Name of the row in reports (default: the line number).")
    trajectory: Trajectory
    label: Verdict | Annotated[float, Field(ge=0, le=1)] = Field(description="good, bad, or a score in [0, 1].")
    comment: str = Field("", description="The labeller's note, shown next to a disagreement.")

    def verdict(self, threshold: float) -> Verdict:
        """The label as good/bad (a score is good from ``threshold``)."""
        if isinstance(self.label, str):
            return self.label
        return "good" if self.label >= threshold else "bad"


def _row_problems(path: Path, number: int, error: ValidationError) -> list[Problem]:
    problems: list[Problem] = []
    label_reported = False
    for e in error.errors(include_url=False):
        loc = tuple(e["loc"])
        if loc[:1] == ("label",) and len(loc) > 1:  # one message for the union, not one per member
            if not label_reported:
                given = e.get("input")
                problems.append(
                    Problem(path, number, 1, "label", f"must be 'good', 'bad' or a number in [0, 1], got {given!r}")
                )
                label_reported = True
            continue
        message = "unknown field" if e["type"] == "extra_forbidden" else e["msg"]
        problems.append(Problem(path, number, 1, ".".join(str(p) for p in loc), message))
    return problems[:8]


def load_labels(path: str | Path) -> list[LabelledTrajectory]:
    """Read a labels JSONL file; every bad row raises, located as ``file:line:1: field: message``."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ScenarioError([Problem(path, 1, 1, "", f"cannot read file: {error}")]) from None
    rows: list[LabelledTrajectory] = []
    problems: list[Problem] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = LabelledTrajectory.model_validate_json(line)
        except ValidationError as error:
            problems.extend(_row_problems(path, number, error))
            continue
        rows.append(row if row.id is not None else row.model_copy(update={"id": f"line {number}"}))
    if problems:
        raise ScenarioError(problems)
    if not rows:
        raise ScenarioError([Problem(path, 1, 1, "", "no labelled trajectories in the file")])
    return rows


def cohen_kappa(first: Sequence[str], second: Sequence[str]) -> float | None:
    """Cohen's kappa of two raters over the same items: (p_o - p_e) / (1 - p_e).

    ``None`` when it is undefined: no items, or both raters used one and the same category
    throughout (then p_e = 1).
    """
    if len(first) != len(second):
        raise ValueError(f"the raters rated {len(first)} and {len(second)} items")
    if not first:
        return None
    categories = sorted(set(first) | set(second))
    a = np.array([categories.index(x) for x in first])
    b = np.array([categories.index(x) for x in second])
    observed = float(np.mean(a == b))
    pa = np.bincount(a, minlength=len(categories)) / len(a)
    pb = np.bincount(b, minlength=len(categories)) / len(b)
    expected = float(pa @ pb)
    if expected >= 1.0:
        return None
    return (observed - expected) / (1.0 - expected)


class Disagreement(_Strict):
    """A trajectory on which the judge and the human disagree."""

    id: str
    scenario_id: str
    human: Verdict
    human_label: Verdict | float
    judge: Verdict
    judge_score: float
    criteria: dict[str, int | str] = Field(description="The judge's score per criterion.")
    rationale: str = Field(description="The judge's rationale per criterion.")
    comment: str


class JudgeFailure(_Strict):
    """A trajectory the judge could not judge."""

    id: str
    reason: str
    message: str


class CriterionSeparation(_Strict):
    """How a criterion's judge scores differ between trajectories humans call good and bad."""

    good_mean: float | None
    bad_mean: float | None


class CalibrationReport(_Strict):
    """Agreement of a judge with human labels.

    ``confusion[human][judge]`` counts trajectories; rows the judge failed on are in ``failures``.
    """

    rubric: str
    model: str
    threshold: float
    labelled: int
    judged: int
    accuracy: float | None
    kappa: float | None
    confusion: dict[Verdict, dict[Verdict, int]]
    disagreements: list[Disagreement]
    failures: list[JudgeFailure]
    criteria: dict[str, CriterionSeparation]
    score_mae: float | None = Field(description="Mean |judge score - human score| over rows labelled with a score.")
    cost: float
    prompt_tokens: int
    completion_tokens: int
    calls: int
    cache_hits: int


def _safe_judge(judge: Judge, trajectory: Trajectory) -> JudgeResult | JudgeError:
    try:
        return judge.judge(trajectory)
    except JudgeError as error:
        return error


def calibrate(
    judge: Judge, rows: Sequence[LabelledTrajectory], *, threshold: float | None = None, concurrency: int = 4
) -> CalibrationReport:
    """Judge every labelled trajectory (``concurrency`` at a time) and compare with the labels."""
    cut = judge.rubric.pass_threshold if threshold is None else threshold
    before = judge.totals.as_dict()
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        outcomes = list(pool.map(lambda row: _safe_judge(judge, row.trajectory), rows))
    confusion: dict[Verdict, dict[Verdict, int]] = {h: dict.fromkeys(VERDICTS, 0) for h in VERDICTS}
    humans: list[Verdict] = []
    judged: list[Verdict] = []
    disagreements: list[Disagreement] = []
    failures: list[JudgeFailure] = []
    by_label: dict[str, dict[Verdict, list[float]]] = {c.id: {"good": [], "bad": []} for c in judge.rubric.criteria}
    errors: list[float] = []
    for row, outcome in zip(rows, outcomes, strict=True):
        row_id = row.id or "?"
        if isinstance(outcome, JudgeError):
            failures.append(JudgeFailure(id=row_id, reason=outcome.reason, message=outcome.message))
            continue
        human = row.verdict(cut)
        verdict: Verdict = "good" if outcome.score >= cut else "bad"
        humans.append(human)
        judged.append(verdict)
        confusion[human][verdict] += 1
        for cid, result in outcome.criteria.items():
            by_label[cid][human].append(result.score)
        if not isinstance(row.label, str):
            errors.append(abs(outcome.score - row.label))
        if human != verdict:
            disagreements.append(
                Disagreement(
                    id=row_id,
                    scenario_id=row.trajectory.scenario_id,
                    human=human,
                    human_label=row.label,
                    judge=verdict,
                    judge_score=outcome.score,
                    criteria={cid: c.raw for cid, c in outcome.criteria.items()},
                    rationale=" | ".join(f"{cid}: {c.rationale}" for cid, c in outcome.criteria.items()),
                    comment=row.comment,
                )
            )
    after = judge.totals.as_dict()
    agree = sum(h == j for h, j in zip(humans, judged, strict=True))
    return CalibrationReport(
        rubric=judge.rubric.name,
        model=judge.model,
        threshold=cut,
        labelled=len(rows),
        judged=len(humans),
        accuracy=agree / len(humans) if humans else None,
        kappa=cohen_kappa(humans, judged),
        confusion=confusion,
        disagreements=disagreements,
        failures=failures,
        criteria={
            cid: CriterionSeparation(
                good_mean=float(np.mean(v["good"])) if v["good"] else None,
                bad_mean=float(np.mean(v["bad"])) if v["bad"] else None,
            )
            for cid, v in by_label.items()
        },
        score_mae=float(np.mean(errors)) if errors else None,
        cost=after["cost"] - before["cost"],
        prompt_tokens=int(after["prompt_tokens"] - before["prompt_tokens"]),
        completion_tokens=int(after["completion_tokens"] - before["completion_tokens"]),
        calls=int(after["calls"] - before["calls"]),
        cache_hits=int(after["cache_hits"] - before["cache_hits"]),
    )


def report_json(report: CalibrationReport) -> str:
    """The report as one line of JSON (keys sorted)."""
    return json.dumps(report.model_dump(mode="json"), sort_keys=True)
