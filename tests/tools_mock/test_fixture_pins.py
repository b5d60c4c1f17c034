"""The fixture worlds are pinned: every world hash in shipped and generated scenarios depends on them.

A change to a fixture generator that draws its random numbers in another order (or to how a record
is digested) changes these hashes; it must be deliberate, with every generated suite regenerated.
"""

from __future__ import annotations

import importlib

import pytest

from envsim.world import World

PINNED: dict[tuple[str, str, int], str] = {
    ("banking", "default", 0): "0d089c013e04d48ff656d7467ab8269e",
    ("banking", "default", 5): "b8d2de83c6a88668542572296de0c798",
    ("banking", "small", 0): "b46959cb7f7092b98aed5df477d8ea8e",
    ("banking", "small", 5): "a0c9d813e8703ff0ff4686316ca2fdb6",
    ("retail", "default", 0): "36f9f3d8f27ba7661a45030cde80b8a6",
    ("retail", "default", 5): "d79d1376e5adfcadf972273649f03d49",
    ("retail", "small", 0): "81b7c2eda387e47f4ac0ec5d98452d6b",
    ("retail", "small", 5): "21299f031589ea41d97128b65e8e7864",
    ("medical_supply", "default", 0): "9134f954624f526d76a19809d653987c",
    ("medical_supply", "default", 5): "5b9d95cc65d91ba77206471a89841665",
    ("medical_supply", "small", 0): "9613de5c45d3f7210f1dee2dedf3d08c",
    ("medical_supply", "small", 5): "87ae01774bf9a4f99aa72e77b8b25887",
}


@pytest.mark.parametrize(("toolkit", "fixture", "seed"), sorted(PINNED))
def test_fixture_world_hash_is_pinned(toolkit: str, fixture: str, seed: int) -> None:
    make = getattr(importlib.import_module(f"tools_mock.{toolkit}.fixtures"), fixture)
    assert World(make(seed)).state_hash() == PINNED[toolkit, fixture, seed]
