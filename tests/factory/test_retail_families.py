"""The shipped retail task families: enough of them, enough refusals, escalations and panics, every
composition covered, the shipped retail policy in every family, queries that match in every world, and
instances that pass the verification gate (the reference agent solves them; doing nothing, or a
forbidden action, fails them)."""

from __future__ import annotations

from collections import Counter
from functools import cache
from pathlib import Path

import pytest

from envsim.factory.draw import Drawer, instances
from envsim.factory.family import LoadedFamily, load_family
from envsim.factory.gate import Gate
from envsim.loader import load_scenario

ROOT = Path(__file__).resolve().parents[2]
FAMILIES = ROOT / "scenarios" / "families" / "retail"
PATHS = sorted(FAMILIES.glob("*.yaml"))


@cache
def _load(path: Path) -> LoadedFamily:
    return load_family(path)


def _kinds() -> Counter[str]:
    return Counter(_load(path).family.kind for path in PATHS)


def test_enough_families_refusals_escalations_and_panics() -> None:
    kinds = _kinds()
    hard = kinds["refusal"] + kinds["escalation"] + kinds["panic"]
    assert sum(kinds.values()) >= 9
    assert hard >= 3 and hard >= 0.25 * sum(kinds.values())
    assert kinds["panic"] >= 1 and kinds["escalation"] >= 1 and kinds["refusal"] >= 1


def test_compositions_covered() -> None:
    traits = {trait for path in PATHS for trait in _load(path).family.traits}
    assert {"multi_intent", "policy_trap", "escalation", "missing_facts", "wrong_fact", "distractor"} <= traits


def test_the_shipped_retail_policy_in_every_family() -> None:
    """Every family gives the agent the guidelines of the hand-written retail scenarios (one shop, one policy)."""
    shipped = {
        load_scenario(path).agent.guidelines.strip() for path in sorted((ROOT / "scenarios" / "retail").glob("*.yaml"))
    }
    families = {_load(path).family.scenario["agent"]["guidelines"].strip() for path in PATHS}
    assert len(shipped) == 1
    assert families == shipped


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
    assert len(verdicts) == 6, "a family drew fewer instances than asked"
    assert [(v.reason, v.detail) for v in verdicts if not v.ok] == []


def test_refusals_leave_the_world_unchanged() -> None:
    refusals = [loaded for loaded in map(_load, PATHS) if loaded.family.kind == "refusal"]
    assert len(refusals) >= 3
    for loaded in refusals:
        for candidate in instances(loaded, 3, 1):
            assert candidate.scenario is not None, candidate.problem
            expected = candidate.scenario.expected
            assert expected.no_change, loaded.family.family
            assert expected.forbidden_actions, loaded.family.family
            assert expected.escalation == "forbidden", loaded.family.family
            assert not [
                a.name
                for a in expected.actions
                if a.name not in ("find_customer_by_email", "find_customer_by_phone", "get_order")
            ]


def test_escalations_hand_off_and_panics_are_resolved_in_place() -> None:
    """The manager demand ends in a hand-off; a panicked shopper is helped, never transferred away."""
    for loaded in map(_load, PATHS):
        if loaded.family.kind not in ("escalation", "panic"):
            continue
        for candidate in instances(loaded, 2, 2):
            assert candidate.scenario is not None, candidate.problem
            expected = candidate.scenario.expected
            if loaded.family.kind == "escalation":
                assert expected.escalation == "required"
                assert expected.actions[-1].name == "transfer_to_human"
            else:
                assert expected.escalation == "forbidden"
                assert "transfer_to_human" in {f.name for f in expected.forbidden_actions}


def test_wrong_facts_are_looked_up_then_corrected() -> None:
    """A wrong-fact instance looks up the order number the customer first gave, then the right one."""
    wrong = [loaded for loaded in map(_load, PATHS) if "wrong_fact" in loaded.family.traits]
    assert wrong
    for loaded in wrong:
        for candidate in instances(loaded, 3, 3):
            assert candidate.scenario is not None, candidate.problem
            right = next(f.value for f in candidate.scenario.user.facts if f.key == "order_id")
            looked_up = [a.arguments["order_id"] for a in candidate.scenario.expected.actions if a.name == "get_order"]
            assert looked_up[-1] == right and looked_up[0] != right, loaded.family.family
            assert looked_up[0] in candidate.scenario.user.opening
