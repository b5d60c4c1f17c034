"""Counting a suite (envsim.suite_stats): every dimension, per split and in total, and invalid files."""

from __future__ import annotations

from pathlib import Path

import pytest

from envsim.errors import ScenarioError
from envsim.loader import load_scenario
from envsim.suite import Suite
from envsim.suite_stats import read_scenario, suite_stats
from tests.suites import DROPS, LAYOUT, instance_text, make_suite


def test_counts_per_split_and_in_total(tmp_path: Path) -> None:
    counts = suite_stats(Suite.open(make_suite(tmp_path)))
    assert counts["scenarios"] == 6 and counts["invalid"] == 0 and counts["generated"]
    assert {name: part["scenarios"] for name, part in counts["splits"].items()} == {
        name: len(instances) for name, instances in LAYOUT.items()
    }
    total = counts["total"]
    assert total["toolkit"] == {"retail": 3, "medical_supply": 2, "banking": 1}
    assert total["family"] == {"RetailCancel": 3, "MedicalPanic": 2, "BankingLostCard": 1}
    assert total["persona"] == {"calm": 3, "panicked_caller": 2, "annoyed": 1}
    assert total["kind"] == {"resolution": 4, "panic": 2}  # from suite.json's families
    assert total["traits"] == {"distractor": 3, "escalation": 2, "none": 1}
    assert total["escalation"] == {"forbidden": 4, "required": 2}
    assert counts["splits"]["test"]["family"] == {"MedicalPanic": 1}
    assert counts["drops"] == DROPS and counts["dropped"] == 3


def test_one_split_and_a_plain_folder(tmp_path: Path) -> None:
    dev = suite_stats(Suite.open(make_suite(tmp_path / "a")), "dev")
    assert list(dev["splits"]) == ["dev"] and dev["scenarios"] == 1
    plain = suite_stats(Suite.open(make_suite(tmp_path / "b", manifest=False)))
    assert list(plain["splits"]) == ["all"] and plain["drops"] == {} and plain["dropped"] == 0
    # without suite.json's families, the kind is read from the scenario: escalation required -> escalation
    assert plain["total"]["kind"] == {"resolution": 4, "escalation": 2} and plain["total"]["traits"] == {"none": 6}


def test_an_invalid_file_is_counted_and_located(tmp_path: Path) -> None:
    root = make_suite(tmp_path)
    bad = root / "dev" / "retail" / "RetailCancelXA3.yaml"
    bad.write_text(bad.read_text(encoding="utf-8").replace("max_turns: 12", "max_turns: many"), encoding="utf-8")
    counts = suite_stats(Suite.open(root))
    assert counts["invalid"] == 1 and counts["scenarios"] == 5 and counts["splits"]["dev"]["scenarios"] == 0
    assert counts["problems"][0].startswith(f"{bad}:") and "max_turns" in counts["problems"][0]


@pytest.mark.parametrize(
    "edit",
    [
        lambda text: text,  # the fast path
        lambda text: text.replace("description: >", "description: &d >"),  # an anchor: the located reader
    ],
)
def test_read_scenario_agrees_with_the_loader(tmp_path: Path, edit: object) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(edit(instance_text("MedicalPanic", "Q")), encoding="utf-8")  # type: ignore[operator]
    assert read_scenario(path) == load_scenario(path, lint=False)


def test_read_scenario_locates_what_the_fast_path_cannot_read(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(instance_text("MedicalPanic", "Q").replace("toolkits:", "toolkitz:"), encoding="utf-8")
    with pytest.raises(ScenarioError, match=r"x.yaml:\d+:1: toolkitz: unknown field"):
        read_scenario(path)
