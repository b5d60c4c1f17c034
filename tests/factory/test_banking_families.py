"""The shipped banking task families: enough of them, enough refusals, escalations and panics, every
composition covered, one policy text, queries that match in every world, and instances that pass the
verification gate (the reference agent solves them; doing nothing, or a forbidden action, fails them)."""

from __future__ import annotations

from collections import Counter
from functools import cache
from pathlib import Path

import pytest

from envsim.factory.draw import Drawer, instances
from envsim.factory.family import LoadedFamily, load_family
from envsim.factory.gate import Gate

FAMILIES = Path(__file__).resolve().parents[2] / "scenarios" / "families" / "banking"
PATHS = sorted(FAMILIES.glob("*.yaml"))


@cache
def _load(path: Path) -> LoadedFamily:
    return load_family(path)


def test_enough_families_refusals_escalations_and_panics() -> None:
    kinds = Counter(_load(path).family.kind for path in PATHS)
    assert sum(kinds.values()) >= 9
    assert kinds["refusal"] + kinds["escalation"] + kinds["panic"] >= 3
    assert kinds["refusal"] + kinds["escalation"] + kinds["panic"] >= 0.25 * sum(kinds.values())
    assert kinds["panic"] >= 1 and kinds["escalation"] >= 1 and kinds["refusal"] >= 1


def test_compositions_covered() -> None:
    traits = {trait for path in PATHS for trait in _load(path).family.traits}
    assert {"multi_intent", "policy_trap", "escalation", "missing_facts", "wrong_fact", "distractor"} <= traits


def test_one_policy_for_every_family() -> None:
    """Every family gives the agent the same guidelines (one bank, one policy)."""
    guidelines = {_load(path).family.scenario["agent"]["guidelines"] for path in PATHS}
    assert len(guidelines) == 1


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_first_binding_matches_in_every_world(path: Path) -> None:
    """The records a family starts from exist in every world seed it draws from (never an empty pool)."""
    loaded = _load(path)
    drawer = Drawer(loaded)
    first = next(iter(loaded.family.select))
    empty = [seed for seed in loaded.family.world.seeds if not drawer.static_matches(first, seed)]
    assert empty == []


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
    assert len(refusals) >= 3
    for loaded in refusals:
        for candidate in instances(loaded, 3, 1):
            assert candidate.scenario is not None, candidate.problem
            assert candidate.scenario.expected.no_change, loaded.family.family
            assert candidate.scenario.expected.forbidden_actions, loaded.family.family
            assert candidate.scenario.expected.escalation == "forbidden", loaded.family.family


def test_escalations_and_panics_end_in_a_hand_off() -> None:
    for loaded in map(_load, PATHS):
        if loaded.family.kind not in ("escalation", "panic"):
            continue
        for candidate in instances(loaded, 2, 2):
            assert candidate.scenario is not None, candidate.problem
            expected = candidate.scenario.expected
            assert expected.escalation == "required", loaded.family.family
            assert expected.actions[-1].name == "transfer_to_human", loaded.family.family
