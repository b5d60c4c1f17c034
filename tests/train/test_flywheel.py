"""``envsim train flywheel`` end to end on a small configuration, and its input errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from envsim.train.flywheel import FlywheelConfig, split_scenarios
from tests.conftest import REPO
from tests.train.conftest import run_flywheel_cli

CLI = [sys.executable, "-c", "from envsim.cli import main; main()"]


def test_split_scenarios_holds_out_by_default() -> None:
    train, holdout = split_scenarios(FlywheelConfig(out=Path("x")))
    assert holdout == ["BankingHotelHoldConfusedSenior", "RetailRefundDamagedMug"]
    assert len(train) == 14 and not set(train) & set(holdout)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scenario", "NoSuchScenario"], "unknown scenario ids: NoSuchScenario"),
        (["--scenario", "RetailRefundDamagedMug"], "both trained on and held out"),
        (["--device", "tpu"], "--device 'tpu'"),
    ],
)
def test_bad_input_exits_2_before_training(tmp_path: Path, args: list[str], message: str) -> None:
    pytest.importorskip("trl", reason="without the train extra the command stops earlier, naming it")
    result = subprocess.run(
        [*CLI, "train", "flywheel", "--out", str(tmp_path / "fw"), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert not (tmp_path / "fw").exists()


# TRL 1.16 reads `model.is_gradient_checkpointing`, which transformers 5.x deprecates (a FutureWarning per step);
# the flywheel filters it around GRPO, and TRL's SFT path reads it too.
@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
def test_a_small_flywheel_runs_every_stage(tmp_path: Path) -> None:
    out = tmp_path / "fw"
    report, output = run_flywheel_cli(
        [
            "--out",
            str(out),
            "--scenario",
            "MedicalSupplyPanicCaller",
            "--scenario",
            "MedicalSupplyVentilatorFailure",
            "--holdout",
            "MedicalSupplyOxygenRefill",
            "--episodes",
            "4",
            "--eval-seeds",
            "1",
            "--sft-epochs",
            "4",
            "--grpo-steps",
            "1",
            "--num-generations",
            "2",
            "--groups-per-step",
            "1",
        ]
    )
    assert list(report)[:3] == ["untrained", "sft", "grpo"]
    for stage in ("untrained", "sft", "grpo"):
        assert 0.0 <= report[stage]["success_rate"] <= 1.0
        assert report[stage]["episodes"] == 2
        assert report[stage]["held_out_scenarios"]["episodes"] == 1
    assert report["data"]["generated"] == 8 and report["data"]["sft_rows"] >= 1
    assert len(report["grpo_rewards"]) == 1
    assert report["values"] == report["model"]["values"] == "literal"  # the default: the policy sees the values
    for name in ("flywheel.svg", "sft.jsonl", "grpo_prompts.jsonl", "sft-model", "grpo-model", "tokenizer"):
        assert (out / name).exists(), name
    assert "stage" in output and "plot:" in output
