"""Copy-on-write world: reset, fork, freeze, snapshots, hashing, lookups."""

from __future__ import annotations

import pytest

from envsim.world import Record, World, WorldState


class Item(Record):
    sku: str
    stock: int


class Shop(WorldState):
    items: dict[str, Item]


@pytest.fixture
def world() -> World:
    return World(Shop(items={f"i{n}": Item(sku=f"s{n % 3}", stock=n) for n in range(10)}))


def test_reset_drops_changes_and_views_stay_valid(world: World) -> None:
    items = world.table("items", Item)
    before = world.state_hash()
    items.put("i1", Item(sku="s1", stock=99))
    items.delete("i2")
    items.put("new", Item(sku="x", stock=1))
    assert len(items) == 10 and "i2" not in items and items.require("i1").stock == 99
    world.reset()
    assert world.state_hash() == before and items.require("i1").stock == 1 and "new" not in items


def test_hash_depends_on_state_not_path(world: World) -> None:
    a, b = world.fork(), world.fork()
    ta, tb = a.table("items", Item), b.table("items", Item)
    ta.put("i1", Item(sku="s1", stock=5))
    ta.put("i1", Item(sku="s1", stock=7))
    tb.put("i1", Item(sku="s1", stock=7))
    assert a.state_hash() == b.state_hash() != world.state_hash()
    tb.put("i1", Item(sku="s1", stock=1))  # back to the base value
    assert b.state_hash() == world.state_hash()


def test_fork_is_isolated(world: World) -> None:
    fork = world.fork()
    fork.table("items", Item).delete("i0")
    assert "i0" in world.table("items", Item)


def test_snapshot_and_restore(world: World) -> None:
    items = world.table("items", Item)
    items.put("i3", Item(sku="s0", stock=0))
    snap = world.snapshot()
    state = world.state_hash()
    items.put("i4", Item(sku="s0", stock=0))
    world.restore(snap)
    assert world.state_hash() == state


def test_freeze_makes_changes_the_new_base(world: World) -> None:
    world.table("items", Item).put("i1", Item(sku="s1", stock=42))
    frozen = world.freeze()
    assert frozen.changed() == {} and frozen.state_hash() == world.state_hash()
    assert frozen.table("items", Item).require("i1").stock == 42


def test_lookup_uses_index_and_sees_changes(world: World) -> None:
    items = world.table("items", Item)
    assert sorted(i.stock for i in items.lookup("sku", "s0")) == [0, 3, 6, 9]
    items.put("i3", Item(sku="s1", stock=3))
    items.delete("i6")
    items.put("z", Item(sku="s0", stock=100))
    assert sorted(i.stock for i in items.lookup("sku", "s0")) == [0, 9, 100]


def test_require_missing_raises_record_not_found(world: World) -> None:
    from envsim.errors import RecordNotFound

    with pytest.raises(RecordNotFound, match="item 'nope' not found"):
        world.table("items", Item).require("nope")


def test_merge_rejects_clashing_tables(world: World) -> None:
    with pytest.raises(ValueError, match="declared by two toolkits"):
        World.merge([world, world.fork()])


def test_to_dict_reflects_current_state(world: World) -> None:
    world.table("items", Item).delete("i0")
    data = world.to_dict()
    assert "i0" not in data["items"] and data["items"]["i1"] == {"sku": "s1", "stock": 1}


class Tagged(Record):
    name: str
    attributes: dict[str, object]
    notes: list[dict[str, int]]


class Catalog(WorldState):
    items: dict[str, Tagged]


def test_equal_records_have_equal_digests_whatever_the_dict_order() -> None:
    from envsim.world import record_digest

    a = Tagged(name="x", attributes={"colour": "red", "size": {"w": 1, "h": 2}}, notes=[{"a": 1, "b": 2}])
    b = Tagged(name="x", attributes={"size": {"h": 2, "w": 1}, "colour": "red"}, notes=[{"b": 2, "a": 1}])
    assert a == b and a.model_dump_json() != b.model_dump_json()
    assert record_digest("items", "k", a) == record_digest("items", "k", b)
    assert record_digest("items", "k", a) != record_digest(
        "items", "k", a.model_copy(update={"attributes": {"colour": "blue", "size": {"w": 1, "h": 2}}})
    )
    base = World(Catalog(items={"k": Tagged(name="x", attributes={}, notes=[])}))
    one, two = base.fork(), base.fork()
    one.table("items", Tagged).put("k", a)
    two.table("items", Tagged).put("k", b)
    assert one.state_hash() == two.state_hash()
    assert World(Catalog(items={"k": a})).state_hash() == World(Catalog(items={"k": b})).state_hash()


class Stocked(Record):
    units: dict[str, int]
    labels: dict[int | str, str] | None = None


def test_dicts_of_plain_values_are_sorted_one_level_deep() -> None:
    from envsim.world import canonical_json, record_digest

    a = Stocked(units={"P2": 1, "P1": 3}, labels={2: "b", "x": "a"})
    b = Stocked(units={"P1": 3, "P2": 1}, labels={"x": "a", 2: "b"})  # keys of mixed types: sorted as JSON
    assert a == b and canonical_json(a) == canonical_json(b) == '{"labels":{"2":"b","x":"a"},"units":{"P1":3,"P2":1}}'
    assert record_digest("t", "k", a) == record_digest("t", "k", b)
    assert canonical_json(Stocked(units={"b": 1, "a": 2})) == '{"units":{"a":2,"b":1},"labels":null}'


def test_a_hash_asked_again_follows_every_kind_of_change(world: World) -> None:
    """state_hash answers an unchanged world from its last digest; every change path invalidates it."""
    items = world.table("items", Item)
    other_view = world.table("items", Item)  # a second view shares the world's change counter
    base = world.state_hash()
    assert world.state_hash() == base  # asked twice, unchanged
    items.put("i1", Item(sku="s1", stock=42))
    changed = world.state_hash()
    assert changed != base
    other_view.delete("i2")
    deleted = world.state_hash()
    assert deleted not in (base, changed)
    items.delete("absent")  # a no-op changes nothing
    assert world.state_hash() == deleted
    snap = world.snapshot()
    world.reset()
    assert world.state_hash() == base
    world.restore(snap)
    assert world.state_hash() == deleted
    fresh = World(Shop(items={f"i{n}": Item(sku=f"s{n % 3}", stock=n) for n in range(10)}))
    fresh_items = fresh.table("items", Item)
    fresh_items.put("i1", Item(sku="s1", stock=42))
    fresh_items.delete("i2")
    assert fresh.state_hash() == deleted  # the cached digest is the digest a fresh computation gives


def _scratch(world: World) -> str:
    """The hash of the world's current state, computed from nothing (a new world whose base is that state)."""
    return World(Shop(items=dict(world.table("items", Item).items()))).state_hash()


def test_the_hash_of_changed_records_follows_every_kind_of_change(world: World) -> None:
    """Overlay records' digests are kept between hashes (by record identity): every change path still shows."""
    items = world.table("items", Item)
    seen: set[str] = set()

    def check() -> str:
        digest = world.state_hash()
        assert digest == _scratch(world)
        seen.add(digest)
        return digest

    base = check()
    items.put("new", Item(sku="x", stock=1))  # insert
    inserted = check()
    first = Item(sku="s1", stock=5)
    items.put("i1", first)  # update
    check()
    items.put("i1", Item(sku="s1", stock=6))  # update the same key again: a new record object
    check()
    items.put("i1", first)  # back to an object hashed before under this key
    check()
    items.put("i3", first)  # the same object under another key
    check()
    items.delete("i1")  # delete a changed record
    items.delete("new")  # delete an inserted one
    deleted = check()
    snap = world.snapshot()
    world.reset()
    assert check() == base
    world.restore(snap)
    assert check() == deleted
    items.put("new", Item(sku="x", stock=1))
    assert check() not in (deleted, inserted)  # i1 gone and i3 changed, unlike after the insert alone
    fork = world.fork()
    assert fork.state_hash() == base == _scratch(fork)
    frozen = world.freeze()  # its base takes the digests this world kept
    assert frozen.state_hash() == world.state_hash() == _scratch(frozen)
    frozen_items = frozen.table("items", Item)
    frozen_items.put("i3", Item(sku="s0", stock=3))  # back to the original record
    frozen_items.put("i1", Item(sku="s1", stock=1))
    frozen_items.delete("new")
    assert frozen.state_hash() == base == _scratch(frozen)
    assert len(seen) == 7  # base, insert, two updates, i3, the deletes, the insert again: distinct states


def test_a_table_total_is_the_sum_of_its_record_digests_each_of_its_canonical_json() -> None:
    import hashlib

    from envsim.world import _BaseTable, canonical_json, record_digest

    class Tagged(Record):
        name: str
        tags: dict[str, int]

    rows = {"b": Tagged(name="é", tags={"z": 1, "a": 2}), "a": Tagged(name="x", tags={})}
    base = _BaseTable("tagged", rows)
    for key, row in rows.items():
        text = f"tagged\x00{key}\x00{canonical_json(row)}".encode()
        digest = hashlib.blake2b(text, digest_size=16).digest()
        assert record_digest("tagged", key, row) == int.from_bytes(digest, "big")
    assert canonical_json(rows["b"]) == '{"name":"é","tags":{"a":2,"z":1}}'
    assert base.total() == sum(record_digest("tagged", k, r) for k, r in rows.items()) % (1 << 128)
    assert base.digest("b") == record_digest("tagged", "b", rows["b"])


def test_items_are_the_live_records_in_key_order_through_changes() -> None:
    class Item(Record):
        stock: int

    class Shop(WorldState):
        items: dict[str, Item]

    world = World(Shop(items={k: Item(stock=i) for i, k in enumerate("abcd")}))
    table = world.table("items", Item)
    assert list(table.items()) == [(k, Item(stock=i)) for i, k in enumerate("abcd")]
    table.put("b", Item(stock=20))
    table.delete("c")
    table.put("e", Item(stock=5))
    table.delete("e")
    table.put("f", Item(stock=6))
    assert list(table.items()) == [(k, table.get(k)) for k in table.keys()]  # noqa: SIM118 (a Table is no dict)
    assert [(k, r.stock) for k, r in table.items()] == [("a", 0), ("b", 20), ("d", 3), ("f", 6)]
    world.reset()
    assert [r.stock for r in table.values()] == [0, 1, 2, 3]
