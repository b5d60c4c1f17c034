"""What only the shipped retail task families promise: the policy of the hand-written retail scenarios,
and wrong facts looked up before the right ones. The checks every toolkit's families pass are in
``test_shipped_families.py``."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from envsim.factory.draw import instances
from envsim.factory.family import LoadedFamily, load_family
from envsim.loader import load_scenario

ROOT = Path(__file__).resolve().parents[2]
FAMILIES = ROOT / "scenarios" / "families" / "retail"
PATHS = sorted(FAMILIES.glob("*.yaml"))


@cache
def _load(path: Path) -> LoadedFamily:
    return load_family(path)


def test_the_shipped_retail_policy_in_every_family() -> None:
    """Every family gives the agent the guidelines of the hand-written retail scenarios (one shop, one policy)."""
    shipped = {
        load_scenario(path).agent.guidelines.strip() for path in sorted((ROOT / "scenarios" / "retail").glob("*.yaml"))
    }
    families = {_load(path).family.scenario["agent"]["guidelines"].strip() for path in PATHS}
    assert len(shipped) == 1
    assert families == shipped


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
