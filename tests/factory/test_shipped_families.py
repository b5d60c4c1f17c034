"""The shipped task families of every toolkit (``scenarios/families/<toolkit>/*.yaml``): enough of them,
enough refusals, escalations and panics, every composition covered, one policy text, queries that match
in every world, and instances that pass the verification gate (the reference agent solves them; doing
nothing, or a forbidden action, fails them). Refusals leave the world unchanged, escalations end in a
hand-off, and panics are handled the way the toolkit's policy says (:data:`RULES`).

Checks that hold for one toolkit only live in its own file (``test_retail_families.py``)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from envsim.factory.draw import Drawer, instances
from envsim.factory.family import FamilyKind, LoadedFamily, load_family
from envsim.factory.gate import Gate

FAMILIES = Path(__file__).resolve().parents[2] / "scenarios" / "families"
TOOLKITS = sorted(path.name for path in FAMILIES.iterdir() if path.is_dir())
PATHS = sorted(FAMILIES.glob("*/*.yaml"))
HARD_KINDS: tuple[FamilyKind, ...] = ("refusal", "escalation", "panic")
COMPOSITIONS = {"multi_intent", "policy_trap", "escalation", "missing_facts", "wrong_fact", "distractor"}


@dataclass(frozen=True)
class Rules:
    """What the toolkits' policies make differ between their families (everything else holds for all)."""

    refusal_tools: frozenset[str] | None
    """The only tools a refusal instance's reference calls, or None where a refusal may attempt a change the
    toolkit rejects (medical_supply tries the out-of-stock order and is refused)."""
    panic_escalation: str
    """``expected.escalation`` of a panic instance: a panicked caller is handed off, or helped in place."""
    panic_ends_with: str | None
    """The last reference action of a panic instance (None: not fixed by the policy)."""
    panic_forbids_transfer: bool
    """Whether a panic instance forbids ``transfer_to_human`` (the caller is never transferred away)."""


RULES: dict[str, Rules] = {
    "banking": Rules(
        refusal_tools=frozenset(
            {
                "verify_customer",
                "get_customer",
                "list_accounts",
                "list_cards",
                "find_card",
                "list_transactions",
                "get_transaction",
                "list_cases",
            }
        ),
        panic_escalation="required",
        panic_ends_with="transfer_to_human",
        panic_forbids_transfer=False,
    ),
    "medical_supply": Rules(
        refusal_tools=None,
        panic_escalation="required",
        panic_ends_with="dispatch_emergency_services",
        panic_forbids_transfer=True,
    ),
    "retail": Rules(
        refusal_tools=frozenset({"find_customer_by_email", "find_customer_by_phone", "get_order"}),
        panic_escalation="forbidden",
        panic_ends_with=None,
        panic_forbids_transfer=True,
    ),
}


@cache
def _load(path: Path) -> LoadedFamily:
    return load_family(path)


def _families(toolkit: str) -> list[LoadedFamily]:
    return [_load(path) for path in PATHS if path.parent.name == toolkit]


def _hard_share(kinds: Counter[str]) -> tuple[int, int]:
    return sum(kinds[kind] for kind in HARD_KINDS), sum(kinds.values())


def test_every_shipped_toolkit_has_rules() -> None:
    assert TOOLKITS and set(TOOLKITS) == set(RULES)


def test_enough_families_in_all_and_a_quarter_refusals_escalations_or_panics() -> None:
    """The issue's acceptance over every shipped family: at least 24, at least 25% of them hard."""
    hard, total = _hard_share(Counter(_load(path).family.kind for path in PATHS))
    assert total >= 24
    assert hard >= 0.25 * total


@pytest.mark.parametrize("toolkit", TOOLKITS)
def test_enough_families_refusals_escalations_and_panics(toolkit: str) -> None:
    kinds = Counter(loaded.family.kind for loaded in _families(toolkit))
    hard, total = _hard_share(kinds)
    assert total >= 9
    assert hard >= 3 and hard >= 0.25 * total
    assert all(kinds[kind] >= 1 for kind in HARD_KINDS), kinds


@pytest.mark.parametrize("toolkit", TOOLKITS)
def test_compositions_covered(toolkit: str) -> None:
    traits = {trait for loaded in _families(toolkit) for trait in loaded.family.traits}
    assert traits >= COMPOSITIONS


@pytest.mark.parametrize("toolkit", TOOLKITS)
def test_one_policy_for_every_family(toolkit: str) -> None:
    """Every family of a toolkit gives the agent the same guidelines, to the letter (one business, one policy)."""
    guidelines = {loaded.family.scenario["agent"]["guidelines"] for loaded in _families(toolkit)}
    assert len(guidelines) == 1


@pytest.mark.parametrize("path", PATHS, ids=[f"{p.parent.name}/{p.stem}" for p in PATHS])
def test_first_binding_matches_in_every_world(path: Path) -> None:
    """The records a family starts from exist in every world seed it draws from (never an empty pool)."""
    loaded = _load(path)
    drawer = Drawer(loaded)
    first = next(iter(loaded.family.select))
    empty = [seed for seed in loaded.family.world.seeds if not drawer.static_matches(first, seed)]
    assert empty == []


@pytest.mark.parametrize("path", PATHS, ids=[f"{p.parent.name}/{p.stem}" for p in PATHS])
def test_instances_pass_the_gate(path: Path) -> None:
    """Six instances are drawn and the gate keeps every one (not even a near duplicate is dropped)."""
    loaded = _load(path)
    gate = Gate()
    verdicts = [gate.verify(candidate) for candidate in instances(loaded, 6, 0)]
    assert len(verdicts) == 6, "a family drew fewer instances than asked"
    assert [(v.reason, v.detail) for v in verdicts if not v.ok] == []


@pytest.mark.parametrize("toolkit", TOOLKITS)
def test_refusals_leave_the_world_unchanged(toolkit: str) -> None:
    """A refusal expects no change, forbids an action and the hand-off, and (where the policy says so) only reads."""
    allowed = RULES[toolkit].refusal_tools
    refusals = [loaded for loaded in _families(toolkit) if loaded.family.kind == "refusal"]
    assert len(refusals) >= 3
    for loaded in refusals:
        for candidate in instances(loaded, 3, 1):
            assert candidate.scenario is not None, candidate.problem
            expected = candidate.scenario.expected
            assert expected.no_change, loaded.family.family
            assert expected.forbidden_actions, loaded.family.family
            assert expected.escalation == "forbidden", loaded.family.family
            if allowed is not None:
                assert [a.name for a in expected.actions if a.name not in allowed] == [], loaded.family.family


@pytest.mark.parametrize("toolkit", TOOLKITS)
def test_escalations_hand_off_and_panics_follow_the_policy(toolkit: str) -> None:
    """An escalation ends in a hand-off; a panic is handed off or resolved in place as the toolkit's policy says."""
    rules = RULES[toolkit]
    checked = Counter[str]()
    for loaded in _families(toolkit):
        if loaded.family.kind not in ("escalation", "panic"):
            continue
        for candidate in instances(loaded, 2, 2):
            assert candidate.scenario is not None, candidate.problem
            expected = candidate.scenario.expected
            name = loaded.family.family
            if loaded.family.kind == "escalation":
                assert expected.escalation == "required", name
                assert expected.actions[-1].name == "transfer_to_human", name
            else:
                assert expected.escalation == rules.panic_escalation, name
                if rules.panic_ends_with is not None:
                    assert expected.actions[-1].name == rules.panic_ends_with, name
                if rules.panic_forbids_transfer:
                    assert "transfer_to_human" in {f.name for f in expected.forbidden_actions}, name
            checked[loaded.family.kind] += 1
    assert checked["escalation"] and checked["panic"]
