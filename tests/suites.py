"""A small suite for tests: shipped scenarios copied under new ids, with a ``source:`` block, in split folders."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import REPO

SHIPPED = {
    "RetailCancelPendingOrder": REPO / "scenarios" / "retail" / "retail_cancel_pending_order.yaml",
    "MedicalSupplyPanicCaller": REPO / "scenarios" / "medical_supply" / "medical_supply_panic_caller.yaml",
    "BankingLostCardReplacement": REPO / "scenarios" / "banking" / "banking_lost_card_replacement.yaml",
}
"""The shipped scenario each family of the test suite copies."""

FAMILIES = {
    "RetailCancel": ("RetailCancelPendingOrder", "retail", "resolution", ["distractor"]),
    "MedicalPanic": ("MedicalSupplyPanicCaller", "medical_supply", "panic", ["escalation"]),
    "BankingLostCard": ("BankingLostCardReplacement", "banking", "resolution", []),
}
"""Family → (shipped scenario, toolkit, kind, traits)."""

LAYOUT = {
    "train": [("RetailCancel", "A1"), ("RetailCancel", "A2"), ("MedicalPanic", "B1"), ("BankingLostCard", "C1")],
    "dev": [("RetailCancel", "A3")],
    "test": [("MedicalPanic", "B2")],
}
"""Split → the (family, instance suffix) written there; the instance id is family + 'X' + suffix."""

DROPS = {"unsolvable": 2, "near_duplicate": 1}
"""The gate drops the test suite's suite.json records."""


def instance_text(family: str, suffix: str, persona: str | None = None) -> str:
    """The shipped scenario of ``family`` under the id ``<family>X<suffix>``, with a source block."""
    shipped, _, _, _ = FAMILIES[family]
    text = SHIPPED[shipped].read_text(encoding="utf-8").replace(f"id: {shipped}\n", f"id: {family}X{suffix}\n", 1)
    if persona is not None:
        lines = [
            f"  persona: {{ref: {persona}}}" if line.startswith("  persona:") else line for line in text.splitlines()
        ]
        text = "\n".join(lines) + "\n"
    source = (
        f"source:\n  family: {family}\n  parameters: {{world_seed: 0, bindings: {{}}, choices: {{k: {suffix}}}}}\n"
        "  seed: 7\n  generator: tests/1\n"
    )
    return text + source


def make_suite(root: Path, *, manifest: bool = True) -> Path:
    """Write the test suite (:data:`LAYOUT`) into ``root``; with ``manifest``, its suite.json too."""
    counts = {}
    for split, instances in LAYOUT.items():
        for family, suffix in instances:
            toolkit = FAMILIES[family][1]
            folder = root / split / toolkit
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{family}X{suffix}.yaml").write_text(instance_text(family, suffix), encoding="utf-8")
        counts[split] = len(instances)
    if manifest:
        families = {
            name: {"toolkit": toolkit, "kind": kind, "traits": traits}
            for name, (_, toolkit, kind, traits) in FAMILIES.items()
        }
        data = {"generator": "tests/1", "seed": 7, "families": families, "splits": counts, "drops": DROPS}
        (root / "suite.json").write_text(json.dumps(data, indent=2), encoding="utf-8")
    return root
