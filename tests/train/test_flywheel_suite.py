"""``envsim train flywheel --suite DIR``: the scenario sets of a suite, a small run, and its input errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from envsim.errors import SuiteError
from envsim.train.flywheel import family_of, suite_sets
from tests.conftest import REPO
from tests.train.conftest import run_flywheel_cli

CLI = [sys.executable, "-c", "from envsim.cli import main; main()"]

TRAINED = ("RetailCancelPendingOrder", "MedicalSupplyCancelOpenOrder")
"""Families with instances in train and test."""

HELD_OUT = "BankingLostCardReplacement"
"""The family kept whole out of train (--holdout-families)."""


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated suite: 4 instances of each of three families, train/test split, one family held out."""
    from envsim.cli import app

    folder = tmp_path_factory.mktemp("suite") / "suite"
    result = CliRunner().invoke(
        app,
        [
            "scenarios",
            "generate",
            *TRAINED,
            HELD_OUT,
            "--count",
            "4",
            "--seed",
            "0",
            "--out",
            str(folder),
            "--split",
            "train=0.6,test=0.4",
            "--holdout-families",
            HELD_OUT,
        ],
    )
    assert result.exit_code == 0, result.output
    return folder


def _ids(folder: Path) -> set[str]:
    return {p.stem for p in folder.rglob("*.yaml")}


def test_family_of_takes_the_longest_family_an_id_extends() -> None:
    families = ["RetailRefund", "RetailRefundDamagedItem"]
    assert family_of("RetailRefundDamagedItemX4KQ2M7ZP1A", families) == "RetailRefundDamagedItem"
    assert family_of("RetailRefundX4KQ2M7ZP1A", families) == "RetailRefund"
    assert family_of("RetailRefundDamagedMug", families) == "RetailRefundDamagedMug"  # hand-written: its own family


def test_suite_sets_split_by_family(suite: Path) -> None:
    sets = suite_sets(suite)
    train, test, holdout = _ids(suite / "train"), _ids(suite / "test"), _ids(suite / "holdout")
    assert set(sets.train) == train
    assert test and holdout, "the generated suite needs test and holdout instances for this test"
    assert not (set(sets.held_out_instances) | set(sets.held_out_families)) & train
    assert set(sets.held_out_instances) | set(sets.held_out_families) == test | holdout
    seen = {sets.family[i] for i in train}
    assert seen == set(TRAINED)
    assert {sets.family[i] for i in sets.held_out_instances} <= seen
    assert {sets.family[i] for i in sets.held_out_families} == {HELD_OUT}
    assert holdout <= set(sets.held_out_families)
    assert sets.info()["held_out_family_names"] == [HELD_OUT]


def test_a_family_all_outside_train_counts_as_a_held_out_family(suite: Path, tmp_path: Path) -> None:
    copy = tmp_path / "suite"
    shutil.copytree(suite, copy)
    for path in (copy / "train").rglob("RetailCancelPendingOrder*.yaml"):
        path.unlink()
    sets = suite_sets(copy)
    assert {sets.family[i] for i in sets.held_out_families} == {HELD_OUT, "RetailCancelPendingOrder"}
    assert {sets.family[i] for i in sets.held_out_instances} == {"MedicalSupplyCancelOpenOrder"}


def test_a_suite_without_train_or_held_out_split_is_an_error(suite: Path, tmp_path: Path) -> None:
    only_train = tmp_path / "only_train"
    shutil.copytree(suite, only_train)
    shutil.rmtree(only_train / "test")
    shutil.rmtree(only_train / "holdout")
    with pytest.raises(SuiteError, match="only a train split"):
        suite_sets(only_train)
    no_train = tmp_path / "no_train"
    shutil.copytree(suite, no_train)
    shutil.rmtree(no_train / "train")
    with pytest.raises(SuiteError, match="no train split"):
        suite_sets(no_train)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scenario", "MedicalSupplyPanicCaller"], "give no --scenario or --holdout"),
        (["--holdout", "MedicalSupplyPanicCaller"], "give no --scenario or --holdout"),
    ],
)
def test_suite_with_named_scenarios_exits_2_before_training(
    suite: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    pytest.importorskip("trl", reason="without the train extra the command stops earlier, naming it")
    result = subprocess.run(
        [*CLI, "train", "flywheel", "--suite", str(suite), "--out", str(tmp_path / "fw"), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert not (tmp_path / "fw").exists()


def test_a_folder_that_is_no_suite_exits_2(tmp_path: Path) -> None:
    pytest.importorskip("trl", reason="without the train extra the command stops earlier, naming it")
    (tmp_path / "empty").mkdir()
    result = subprocess.run(
        [*CLI, "train", "flywheel", "--suite", str(tmp_path / "empty"), "--out", str(tmp_path / "fw")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "is not a suite" in result.stderr
    assert not (tmp_path / "fw").exists()


# TRL 1.16 reads `model.is_gradient_checkpointing`, which transformers 5.x deprecates (a FutureWarning per step);
# the flywheel filters it around GRPO, and TRL's SFT path reads it too.
@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
def test_a_small_suite_flywheel_reports_the_three_held_out_sets(suite: Path, tmp_path: Path) -> None:
    out = tmp_path / "fw"
    report, output = run_flywheel_cli(
        [
            "--suite",
            str(suite),
            "--out",
            str(out),
            "--episodes",
            "2",
            "--eval-seeds",
            "1",
            "--eval-scenarios",
            "2",
            "--sft-epochs",
            "1",
            "--grpo-steps",
            "1",
            "--num-generations",
            "2",
            "--groups-per-step",
            "1",
            "--max-turn-tokens",
            "32",
            "--hidden-size",
            "64",
            "--layers",
            "1",
            "--values",
            "placeholders",
        ]
    )
    train, test, holdout = _ids(suite / "train"), _ids(suite / "test"), _ids(suite / "holdout")
    evaluated = report["evaluated"]
    assert list(evaluated) == ["held_out_seeds", "held_out_instances", "held_out_families"]
    assert set(evaluated["held_out_seeds"]) <= train
    assert {family_of(i, TRAINED) for i in evaluated["held_out_seeds"]} == set(TRAINED)  # one of each family
    assert evaluated["held_out_instances"] and set(evaluated["held_out_instances"]) <= test
    assert {family_of(i, TRAINED) for i in evaluated["held_out_instances"]} <= set(TRAINED)
    assert evaluated["held_out_families"] and set(evaluated["held_out_families"]) <= holdout
    assert all(i.startswith(HELD_OUT + "X") for i in evaluated["held_out_families"])
    assert report["data"]["generated"] == 2 * len(train)  # trained on the train split only
    assert report["suite"]["train"] == len(train)
    assert report["suite"]["held_out_family_names"] == [HELD_OUT]
    for stage in ("untrained", "sft", "grpo"):
        figures = report[stage]
        assert figures["episodes"] == len(evaluated["held_out_seeds"])
        assert figures["held_out_instances"]["episodes"] == len(evaluated["held_out_instances"])
        assert figures["held_out_families"]["episodes"] == len(evaluated["held_out_families"])
        assert figures["held_out_scenarios"]["episodes"] == (
            len(evaluated["held_out_instances"]) + len(evaluated["held_out_families"])
        )
        for figure in (figures, figures["held_out_instances"], figures["held_out_families"]):
            assert 0.0 <= figure["success_rate"] <= 1.0
    assert "held-out instances success" in output and "held-out families success" in output
    for name in ("flywheel.svg", "sft-model", "grpo-model"):
        assert (out / name).exists(), name
    config = json.loads((out / "sft-model" / "config.json").read_text(encoding="utf-8"))
    assert (config["hidden_size"], config["num_hidden_layers"]) == (64, 1)  # --hidden-size, --layers
    # --values placeholders: recorded in the report, and the placeholders are tokens of the saved tokenizer
    assert report["values"] == report["model"]["values"] == "placeholders"
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(out / "sft-model")
    for placeholder in ("<email1>", "<id2>", "<money16>"):
        assert len(tokenizer(placeholder, add_special_tokens=False)["input_ids"]) == 1, placeholder
