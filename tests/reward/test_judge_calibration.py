"""Calibrating a judge rubric against human labels, through litellm and the CLI.

The shipped labels (``tests/data/judge_labels.jsonl``) are envsim's own trajectories: six
scenarios, each run by the scripted agent at error rate 0 (seed 0) and 0.5 (seeds 2 and 3).
They are labelled by one stated rule, the same for every row (see :func:`label_by_rule`): a
trajectory is **good** when it reaches the expected final state, says every required
statement, takes no forbidden action and escalates exactly as the scenario requires; otherwise
**bad**, and the comment names what failed. ``python -m tests.reward.test_judge_calibration``
writes the file again.

The judge model is ``HeuristicJudgeLLM`` (a litellm custom provider): it calls a trajectory
unresolved when any tool call failed, and good otherwise, a deliberately crude judge whose
disagreements with the labels are known in advance.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from envsim.errors import ScenarioError
from envsim.reward import components
from envsim.reward.classifier import context_for
from envsim.reward.judge import CallLog, Judge, load_rubric
from envsim.reward.judge_calibration import (
    CalibrationReport,
    LabelledTrajectory,
    calibrate,
    cohen_kappa,
    load_labels,
)
from envsim.trajectory import Trajectory
from tests.conftest import REPO
from tests.reward.test_judge import HeuristicJudgeLLM, ScriptedJudgeLLM, install

LABELS = REPO / "tests/data/judge_labels.jsonl"
RUBRIC = REPO / "tests/data/judge_rubric.yaml"

RUNS: list[tuple[str, float, int]] = [
    (scenario, rate, seed)
    for scenario in (
        "BankingFraudVictimFreezeCard",
        "BankingHotelHoldConfusedSenior",
        "MedicalSupplyCpapInsuranceTerminated",
        "MedicalSupplyPanicCaller",
        "RetailAlreadyRefundedAnnoyed",
        "RetailRefundDamagedMug",
    )
    for rate, seed in ((0.0, 0), (0.5, 2), (0.5, 3))
]
"""The episodes of the shipped labels file: (scenario, scripted agent's error rate, seed)."""


def label_by_rule(trajectory: Trajectory) -> tuple[str, str]:
    """The label and comment of the stated rule: good iff the four core checks all pass."""
    context = context_for(trajectory)
    checks = [
        components.final_state(trajectory, context),
        components.required_statements(trajectory, context),
        components.forbidden_actions(trajectory, context),
        components.escalation(trajectory, context),
    ]
    failed = [c.explanation for c in checks if c.score < 1.0]
    if failed:
        return "bad", "; ".join(failed)
    return "good", "expected final state, every required statement, no forbidden action, escalation as required"


def build_labels() -> list[dict[str, Any]]:
    """Run the episodes of :data:`RUNS` and label them by :func:`label_by_rule`."""
    from envsim.agents import ScriptedAgent
    from envsim.env import ScenarioEnv
    from envsim.rollout import run_episode

    rows = []
    for scenario, rate, seed in RUNS:
        trajectory, _ = run_episode(ScenarioEnv(scenario), ScriptedAgent(rate), seed=seed)
        label, comment = label_by_rule(trajectory)
        rows.append(
            {
                "id": f"{scenario}/e{rate}/s{seed}",
                "trajectory": trajectory.model_dump(mode="json", exclude_defaults=True),
                "label": label,
                "comment": comment,
            }
        )
    return rows


def judged_good(trajectory: Trajectory) -> bool:
    """What the heuristic judge says, computed from the trajectory itself: no failed tool call."""
    return all(c.ok for c in trajectory.tool_calls)


# -- Cohen's kappa ----------------------------------------------------------------------------


def test_kappa_against_a_hand_computed_value() -> None:
    # p_o = 7/10; p_e = 0.6 * 0.5 + 0.4 * 0.5 = 0.5; kappa = (0.7 - 0.5) / (1 - 0.5) = 0.4
    human = ["good"] * 6 + ["bad"] * 4
    judge = ["good"] * 4 + ["bad"] * 5 + ["good"]
    assert cohen_kappa(human, judge) == pytest.approx(0.4)


def test_kappa_three_categories_and_edge_cases() -> None:
    # p_o = 5/6 (only the fourth item differs); p_e = (2*2 + 2*1 + 2*3) / 36 = 1/3;
    # kappa = (5/6 - 1/3) / (1 - 1/3) = 0.75
    assert cohen_kappa(list("aabbcc"), list("aabccc")) == pytest.approx(0.75)
    assert cohen_kappa(["good", "bad"], ["good", "bad"]) == 1.0
    assert cohen_kappa(["good", "bad"], ["bad", "good"]) == -1.0
    assert cohen_kappa(["good"] * 3, ["good"] * 3) is None  # p_e = 1: undefined
    assert cohen_kappa([], []) is None
    with pytest.raises(ValueError, match="rated 1 and 2 items"):
        cohen_kappa(["good"], ["good", "bad"])


# -- the labels file --------------------------------------------------------------------------


def test_shipped_labels_follow_the_stated_rule() -> None:
    rows = load_labels(LABELS)
    assert 12 <= len(rows) <= 20 and [r.id for r in rows] == [f"{s}/e{r}/s{n}" for s, r, n in RUNS]
    for row in rows:
        assert (row.label, row.comment) == label_by_rule(row.trajectory), row.id
    labels = [r.label for r in rows]
    assert labels.count("good") >= 5 and labels.count("bad") >= 5


def test_label_problems_are_located(tmp_path: Path) -> None:
    good = json.dumps({"trajectory": {"scenario_id": "X", "seed": 0, "messages": []}, "label": "good"})
    path = tmp_path / "labels.jsonl"
    path.write_text(
        "\n".join([good, good.replace('"good"', '"great"'), '{"label": 0.5}', good.replace("label", "lable")]),
        encoding="utf-8",
    )
    with pytest.raises(ScenarioError) as caught:
        load_labels(path)
    shown = [str(p) for p in caught.value.problems]
    assert f"{path}:2:1: label: must be 'good', 'bad' or a number in [0, 1], got 'great'" in shown
    assert f"{path}:3:1: trajectory: Field required" in shown
    assert f"{path}:4:1: lable: unknown field" in shown


def test_numeric_labels_use_the_threshold() -> None:
    row = LabelledTrajectory(trajectory=Trajectory(scenario_id="X", seed=0, messages=[]), label=0.6)
    assert row.verdict(0.5) == "good" and row.verdict(0.75) == "bad"


# -- calibration ------------------------------------------------------------------------------


@pytest.fixture
def heuristic(monkeypatch: pytest.MonkeyPatch) -> ScriptedJudgeLLM:
    """The heuristic judge, registered as the litellm provider ``judgetest``."""
    return install(monkeypatch, HeuristicJudgeLLM())


def expected_report(rows: list[LabelledTrajectory]) -> tuple[dict[str, dict[str, int]], list[str]]:
    """The confusion matrix and disagreements the heuristic judge must produce, computed directly."""
    confusion = {"good": {"good": 0, "bad": 0}, "bad": {"good": 0, "bad": 0}}
    disagreements = []
    for row in rows:
        judge = "good" if judged_good(row.trajectory) else "bad"
        confusion[str(row.label)][judge] += 1
        if judge != row.label:
            disagreements.append(str(row.id))
    return confusion, disagreements


def test_calibrate_reports_agreement_and_disagreements(heuristic: ScriptedJudgeLLM, tmp_path: Path) -> None:
    rows = load_labels(LABELS)
    judge = Judge(load_rubric(RUBRIC), model="judgetest/heuristic", cache=CallLog(tmp_path), backoff=0.0)
    report = calibrate(judge, rows)
    confusion, disagreeing = expected_report(rows)
    assert report.confusion == confusion and [d.id for d in report.disagreements] == disagreeing
    assert disagreeing  # the crude judge is not perfect: the point of calibrating
    agree = confusion["good"]["good"] + confusion["bad"]["bad"]
    assert report.judged == report.labelled == len(rows) and report.accuracy == pytest.approx(agree / len(rows))
    humans = [str(r.label) for r in rows]
    judged = ["good" if judged_good(r.trajectory) else "bad" for r in rows]
    assert report.kappa == pytest.approx(cohen_kappa(humans, judged))
    first = report.disagreements[0]
    row = next(r for r in rows if r.id == first.id)
    assert first.comment == row.comment and first.human == row.label
    assert first.rationale.startswith("resolution: ") and "policy: no rule broken" in first.rationale
    assert report.criteria["policy"].good_mean == report.criteria["policy"].bad_mean == 1.0
    assert len(heuristic.requests) == len(rows) == report.calls and report.cache_hits == 0


def test_judge_errors_are_listed_not_counted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    rows = load_labels(LABELS)[:3]
    install(monkeypatch, ScriptedJudgeLLM(default="I'm sorry, I can't evaluate this."))
    judge = Judge(load_rubric(RUBRIC), model="judgetest/x", cache=CallLog(tmp_path), backoff=0.0)
    report = calibrate(judge, rows, concurrency=1)
    assert report.judged == 0 and report.accuracy is None and report.kappa is None
    assert [f.reason for f in report.failures] == ["refusal"] * 3
    assert report.confusion == {"good": {"good": 0, "bad": 0}, "bad": {"good": 0, "bad": 0}}


def test_numeric_labels_report_mae(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    rows = [r.model_copy(update={"label": 0.5}) for r in load_labels(LABELS)[:2]]
    install(
        monkeypatch,
        ScriptedJudgeLLM(
            default=json.dumps(
                {
                    "resolution": {"rationale": "r", "score": 5},
                    "policy": {"rationale": "p", "score": "pass"},
                    "communication": {"rationale": "c", "score": 3},
                }
            )
        ),
    )
    judge = Judge(load_rubric(RUBRIC), model="judgetest/x", cache=CallLog(tmp_path), backoff=0.0)
    report = calibrate(judge, rows)
    assert report.score_mae == pytest.approx(0.5) and report.confusion["bad"]["good"] == 2  # 0.5 < 0.75: bad


# -- the CLI ----------------------------------------------------------------------------------


def test_cli_calibrate_in_process(heuristic: ScriptedJudgeLLM, tmp_path: Path) -> None:
    from envsim.cli import app

    args = [
        "judge",
        "calibrate",
        str(RUBRIC),
        str(LABELS),
        "--model",
        "judgetest/heuristic",
        "--cache-dir",
        str(tmp_path),
        "--json",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = CalibrationReport.model_validate_json(result.output.strip().splitlines()[-1])
    rows = load_labels(LABELS)
    confusion, disagreeing = expected_report(rows)
    assert report.confusion == confusion and [d.id for d in report.disagreements] == disagreeing
    assert "disagreements" in result.output and "Cohen's kappa" in result.output
    assert report.calls == len(rows)
    again = CliRunner().invoke(app, args)  # every verdict now comes from the disk cache
    cached = CalibrationReport.model_validate_json(again.output.strip().splitlines()[-1])
    assert cached.calls == 0 and cached.cost == 0 and cached.cache_hits == len(rows)
    assert cached.confusion == report.confusion and len(heuristic.requests) == len(rows)


def envsim(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it."""
    command = [sys.executable, "-c", "from envsim.cli import main; main()", *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=300)


def test_cli_calibrate_with_a_provider_plug_in(tmp_path: Path) -> None:
    result = envsim(
        "judge",
        "calibrate",
        str(RUBRIC),
        str(LABELS),
        "--model",
        "judgetest/heuristic",
        "--provider",
        "judgetest=tests.reward.test_judge:HeuristicJudgeLLM",
        "--cache-dir",
        str(tmp_path),
        "--json",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    confusion, disagreeing = expected_report(load_labels(LABELS))
    assert report["confusion"] == confusion and [d["id"] for d in report["disagreements"]] == disagreeing


def test_cli_invalid_rubric_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "rubric.yaml"
    bad.write_text(RUBRIC.read_text(encoding="utf-8").replace("scale: pass_fail", "scale: yes_no"), encoding="utf-8")
    result = envsim("judge", "calibrate", str(bad), str(LABELS), "--cache-dir", str(tmp_path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "scale must be 'pass_fail' or a range 'LOW-HIGH'" in result.stderr and f"{bad}:" in result.stderr


if __name__ == "__main__":
    LABELS.write_text("".join(json.dumps(row, sort_keys=True) + "\n" for row in build_labels()), encoding="utf-8")
    print(f"wrote {LABELS}")
