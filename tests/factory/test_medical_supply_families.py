"""The shipped medical_supply task families: enough of them, enough refusals and emergencies, and
their instances pass the verification gate (the reference agent solves them; doing nothing, or the
forbidden action, fails them)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from envsim.factory.draw import instances
from envsim.factory.family import LoadedFamily, load_family
from envsim.factory.gate import Gate

FAMILIES = Path(__file__).resolve().parents[2] / "scenarios" / "families" / "medical_supply"
PATHS = sorted(FAMILIES.glob("*.yaml"))


def _load(path: Path) -> LoadedFamily:
    return load_family(path)


def test_enough_families_and_emergencies() -> None:
    kinds = Counter(_load(path).family.kind for path in PATHS)
    assert sum(kinds.values()) >= 8
    assert kinds["refusal"] + kinds["escalation"] + kinds["panic"] >= 0.25 * sum(kinds.values())
    assert kinds["panic"] >= 1 and kinds["escalation"] >= 1 and kinds["refusal"] >= 1


def test_compositions_covered() -> None:
    traits = {trait for path in PATHS for trait in _load(path).family.traits}
    assert {"multi_intent", "policy_trap", "escalation", "missing_facts", "wrong_fact", "distractor"} <= traits


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_instances_pass_the_gate(path: Path) -> None:
    loaded = _load(path)
    gate = Gate()
    verdicts = [gate.verify(candidate) for candidate in instances(loaded, 6, 0)]
    assert verdicts, "no instance drawn"
    dropped = [(v.reason, v.detail) for v in verdicts if not v.ok and v.reason != "near_duplicate"]
    assert dropped == []
    assert sum(v.ok for v in verdicts) >= 4


def test_refusals_leave_the_world_unchanged() -> None:
    refusals = [loaded for loaded in map(_load, PATHS) if loaded.family.kind == "refusal"]
    assert refusals
    for loaded in refusals:
        for candidate in instances(loaded, 3, 1):
            assert candidate.scenario is not None, candidate.problem
            assert candidate.scenario.expected.no_change, loaded.family.family
            assert candidate.scenario.expected.forbidden_actions, loaded.family.family
