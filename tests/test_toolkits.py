"""The toolkit registry and scenario worlds: built once per process, shared by forks, rebuilt on re-registration."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from envsim import toolkits
from envsim.toolkits import initial_world, register_toolkit
from envsim.tools import Toolkit
from envsim.world import Record, World, WorldSpec, WorldState


class Crate(Record):
    label: str


class CrateState(WorldState):
    crates: dict[str, Crate]


class CrateKit(Toolkit):
    name = "crates-test"
    state_model = CrateState
    fixtures = {"default": lambda seed: CrateState(crates={"c1": Crate(label=f"first-{seed}")})}  # noqa: RUF012


class RelabelledKit(CrateKit):
    fixtures = {"default": lambda seed: CrateState(crates={"c1": Crate(label="relabelled")})}  # noqa: RUF012


@pytest.fixture
def crate_kit() -> Iterator[str]:
    register_toolkit("crates-test", CrateKit)
    yield "crates-test"
    toolkits._REGISTRY.pop("crates-test", None)
    toolkits._built_world.cache_clear()
    toolkits.fixture_world.cache_clear()


def label(world: World) -> str | None:
    crate = world.table("crates", Crate).get("c1")
    return None if crate is None else crate.label


def test_equal_world_sections_share_one_world_and_forks_keep_their_changes(crate_kit: str) -> None:
    spec = WorldSpec(seed=3, overrides={"crates": {"c1": {"label": "patched"}}})
    world = initial_world((crate_kit,), spec)
    assert initial_world((crate_kit,), WorldSpec.model_validate(spec.model_dump())) is world
    assert initial_world((crate_kit,), WorldSpec(seed=4)) is not world
    one, two = world.fork(), world.fork()
    one.table("crates", Crate).put("c1", Crate(label="changed"))
    assert (label(one), label(two), label(world.fork())) == ("changed", "patched", "patched")
    assert one.state_hash() != two.state_hash() == world.fork().state_hash()


def test_a_date_and_its_iso_string_are_different_world_sections(crate_kit: str) -> None:
    import datetime

    as_date = WorldSpec(inline={"crates": {"c2": {"label": datetime.date(2024, 1, 2)}}})
    as_text = WorldSpec(inline={"crates": {"c2": {"label": "2024-01-02"}}})
    assert label(initial_world((crate_kit,), as_text).fork()) == "first-0"
    with pytest.raises(Exception, match="valid string"):
        initial_world((crate_kit,), as_date)  # not answered from the string's cached world


def test_registering_a_name_again_rebuilds_its_worlds(crate_kit: str) -> None:
    assert label(initial_world((crate_kit,), WorldSpec()).fork()) == "first-0"
    register_toolkit(crate_kit, RelabelledKit)
    assert label(initial_world((crate_kit,), WorldSpec()).fork()) == "relabelled"
