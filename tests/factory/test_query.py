"""The query language of task families: conditions, references, paths, bindings, draws."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from envsim.factory.draw import Drawer, NoMatch
from envsim.factory.family import load_family_text
from envsim.factory.query import Binding, Condition, lookup


@pytest.mark.parametrize(
    ("condition", "value", "holds"),
    [
        ("delivered", "delivered", True),
        ("delivered", "pending", False),
        ({"eq": 1}, True, False),  # a boolean is not the number 1
        ({"ne": "a"}, "b", True),
        ({"in": ["a", "b"]}, "b", True),
        ({"in": ["a", "b"]}, "c", False),
        ({"not_in": ["a"]}, "b", True),
        ({"gt": 2}, 3, True),
        ({"gt": 2}, 2, False),
        ({"gte": 2}, 2, True),
        ({"lt": 2}, 1, True),
        ({"lte": 2}, 3, False),
        ({"gt": 2}, "x", False),  # incomparable: does not hold
        ({"gt": 2}, None, False),
        ({"min_len": 2}, [1, 2], True),
        ({"min_len": 2}, [1], False),
        ({"max_len": 1}, "ab", False),
        ({"contains": "ell"}, "hello", True),
        ({"contains": 3}, [1, 3], True),
        ({"contains": 4}, [1, 3], False),
        ({"is_null": True}, None, True),
        ({"is_null": False}, None, False),
        ({"is_null": False}, 0, True),
    ],
)
def test_each_operator(condition: Any, value: Any, holds: bool) -> None:
    assert Condition.model_validate(condition).holds(value, {}) is holds


def test_operands_may_refer_to_earlier_bindings() -> None:
    bound = {"order": {"customer_id": "C1", "ids": ["A", "B"], "total": 10}}
    assert Condition.model_validate({"ref": "order.customer_id"}).holds("C1", bound)
    assert Condition.model_validate({"ne": {"ref": "order.customer_id"}}).holds("C2", bound)
    assert Condition.model_validate({"in": {"ref": "order.ids"}}).holds("B", bound)
    assert Condition.model_validate({"in": [{"ref": "order.customer_id"}, "X"]}).holds("C1", bound)
    assert Condition.model_validate({"lt": {"ref": "order.total"}}).holds(9, bound)


def test_dotted_paths_read_mappings_and_list_indexes() -> None:
    record = {"shipping_address": {"city": "Denver"}, "items": [{"name": "Mug"}]}
    assert lookup(record, "shipping_address.city") == "Denver"
    assert lookup(record, "items.0.name") == "Mug"
    assert lookup(record, "items.5.name") is None
    assert lookup(record, "nothing.here") is None


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ({"gte": 1, "lte": 3}, "give exactly one operator"),
        ({"in": "a"}, "in takes a list"),
        ({"min_len": -1}, "min_len takes a whole number >= 0"),
        ({"eq": {"code": "x"}}, "an operand is a value"),
    ],
)
def test_a_bad_condition_says_what_is_wrong(condition: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Condition.model_validate(condition)


def test_a_binding_draws_from_a_table_or_a_list_not_both() -> None:
    with pytest.raises(ValidationError, match="exactly one of 'table' or 'from'"):
        Binding.model_validate({"table": "orders", "from": "order.items"})
    assert Binding.model_validate({"from": "order.items"}).kind == "element"


_FAMILY = """\
family: QueryProbe
toolkit: retail
kind: resolution
description: A probe of the query language.
world: {{fixture: default, seeds: [0, 1]}}
select:
{select}
scenario:
  user: {{goal: Help., opening: Hi.}}
"""


def _drawer(select: str) -> Drawer:
    return Drawer(load_family_text(_FAMILY.format(select=select), Path("probe.yaml")))


def test_bindings_follow_references_and_list_elements() -> None:
    drawer = _drawer(
        "  order: {table: orders, where: {status: delivered, items: {min_len: 2}}}\n"
        "  customer: {table: customers, where: {id: {ref: order.customer_id}}}\n"
        "  item: {from: order.items, where: {quantity: {gte: 1}}}\n"
        "  others: {table: orders, optional: true,\n"
        "           where: {customer_id: {ref: customer.id}, id: {ne: {ref: order.id}}}}\n"
    )
    for index in range(20):
        params = drawer.parameters(5, index)
        ctx = params.context
        assert ctx["order"]["status"] == "delivered" and len(ctx["order"]["items"]) >= 2
        assert ctx["customer"]["id"] == ctx["order"]["customer_id"]
        assert ctx["item"] == ctx["order"]["items"][params.values["bindings"]["item"]]
        if ctx["others"] is not None:
            assert ctx["others"]["customer_id"] == ctx["customer"]["id"] and ctx["others"]["id"] != ctx["order"]["id"]
        else:
            assert params.values["bindings"]["others"] is None
    assert drawer.parameters(5, 3).values == drawer.parameters(5, 3).values  # deterministic


def test_count_binds_distinct_records_in_id_order() -> None:
    drawer = _drawer("  orders: {table: orders, where: {status: pending}, count: 3}\n")
    params = drawer.parameters(1, 0)
    ids = params.values["bindings"]["orders"]
    assert len(set(ids)) == 3 and ids == sorted(ids)
    assert [o["id"] for o in params.context["orders"]] == ids
    assert all(o["status"] == "pending" for o in params.context["orders"])


def test_a_required_binding_that_matches_nothing_fails_the_draw_an_optional_one_binds_null() -> None:
    with pytest.raises(NoMatch) as miss:
        _drawer("  order: {table: orders, where: {status: teleported}}\n").parameters(0, 0)
    assert miss.value.binding == "order"
    params = _drawer("  order: {table: orders, where: {status: teleported}, optional: true}\n").parameters(0, 0)
    assert params.values["bindings"] == {"order": None}


@pytest.mark.parametrize(
    "where",
    [
        [("status", {"eq": "active"})],
        [("status", {"in": ["expired", "cancelled", "expired"]}), ("refills_left", {"gte": 1})],
        [("life_support", {"eq": True}), ("unit_price_cents", {"gte": 10000})],
        [("stock", {"eq": 0})],
        [("stock", {"gte": 1}), ("category", {"eq": "oxygen"})],
        [("status", {"eq": "no such status"})],
        [("status", {"in": []})],
    ],
)
def test_static_matches_from_the_field_index_are_those_of_a_full_scan(where: list[tuple[str, Any]]) -> None:
    from envsim.factory.draw import _static_rows, canonical_json, table_records
    from envsim.factory.query import compile_conditions, matches

    table = "catalogue" if where[0][0] in ("life_support", "stock") else "prescriptions"
    conditions = compile_conditions([(path, Condition.model_validate(cond)) for path, cond in where])
    scanned = [row for row in table_records("medical_supply", "small", 3, table) if matches(row[1], conditions, {})]
    found = _static_rows("medical_supply", "small", 3, table, canonical_json([[p, c] for p, c in where]))
    assert found == scanned
    assert [key for key, _ in found] == sorted(key for key, _ in found)


VALUES: list[Any] = [None, True, False, 0, 1, 2, 1.0, 2.5, -3, "", "a", "b", "1", [], [1], ["a"], {}, {"a": 1}]
OPERANDS: list[Any] = [None, True, False, 0, 1, 2.5, "a", "1", ["a", "b"], [], [1, "a"], [True], {"a": 1}]


@pytest.mark.parametrize("op", ["eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "min_len", "max_len", "contains"])
def test_a_predicate_holds_exactly_where_the_condition_holds(op: str) -> None:
    from envsim.factory.query import CompiledCondition

    for operand in OPERANDS:
        condition = CompiledCondition(op, operand, False)
        predicate = condition.predicate()
        for value in VALUES:
            assert predicate(value) is condition.holds(value, {}), (op, operand, value)
