"""Tests of the retail orders toolkit, through the tool registry as an agent calls it.

The fixtures put one order of each kind first, whatever the seed (see
:mod:`tools_mock.retail.fixtures`): ``#W0001`` pending, ``#W0002`` processing, ``#W0003`` shipped,
``#W0004`` delivered, ``#W0005`` delivered with a refund, ``#W0006`` delivered and fully returned,
``#W0007`` delivered with an exchange, ``#W0008`` cancelled (payment voided), ``#W0009`` cancelled
(payment captured, not refunded), ``#W0010`` cancelled and refunded.
"""

from __future__ import annotations

import json
import timeit
from typing import Any

import pytest

from envsim.toolkits import build_world, get_toolkit
from envsim.tools import ToolRegistry, ToolResult
from envsim.world import World
from tools_mock.retail import RetailToolkit
from tools_mock.retail.fixtures import default, small
from tools_mock.retail.models import Order, Product

SEED = 7

EXPECTED_TOOLS: dict[str, tuple[bool, bool, bool]] = {  # name -> (write, ends_episode, escalation)
    "find_customer_by_email": (False, False, False),
    "find_customer_by_phone": (False, False, False),
    "find_customers_by_name": (False, False, False),
    "get_customer": (False, False, False),
    "list_customer_orders": (False, False, False),
    "get_order": (False, False, False),
    "get_product": (False, False, False),
    "list_product_variants": (False, False, False),
    "cancel_order": (True, False, False),
    "refund_order": (True, False, False),
    "refund_items": (True, False, False),
    "create_return": (True, False, False),
    "exchange_item": (True, False, False),
    "update_shipping_address": (True, False, False),
    "transfer_to_human": (True, True, True),
}


@pytest.fixture(scope="module")
def default_base() -> World:
    """The default fixture, built once for the module."""
    return World(default(SEED))


@pytest.fixture(scope="module")
def small_base() -> World:
    """The small fixture, built once for the module."""
    return World(small(SEED))


@pytest.fixture
def world(small_base: World) -> World:
    """A fresh world on the small fixture."""
    return small_base.fork()


@pytest.fixture
def kit(world: World) -> RetailToolkit:
    """The toolkit on a fresh small world (for direct table access in tests)."""
    return RetailToolkit(world)


@pytest.fixture
def registry(kit: RetailToolkit) -> ToolRegistry:
    """The registry the agent calls through."""
    return ToolRegistry([kit])


def ok(registry: ToolRegistry, name: str, **args: Any) -> Any:
    """Call a tool that must succeed; its decoded JSON result."""
    result = registry.call(name, args)
    assert result.ok, result.content
    return json.loads(result.content)


def fail(registry: ToolRegistry, name: str, args: Any) -> tuple[str, str]:
    """Call a tool that must fail; its error type and message."""
    result = registry.call(name, args)
    assert not result.ok, result.content
    error = json.loads(result.content)["error"]
    assert error["type"] == result.error_type
    return error["type"], error["message"]


def order(kit: RetailToolkit, order_id: str) -> Order:
    """An order straight from the table."""
    return kit.orders.require(order_id)


def product(kit: RetailToolkit, product_id: str) -> Product:
    """A product straight from the table."""
    return kit.products.require(product_id)


# ----------------------------------------------------------------------------- fixtures


def test_default_fixture_is_deterministic(default_base: World) -> None:
    assert World(default(SEED)).state_hash() == default_base.state_hash()
    assert World(default(SEED + 1)).state_hash() != default_base.state_hash()


def test_small_fixture_is_deterministic(small_base: World) -> None:
    assert World(small(SEED)).state_hash() == small_base.state_hash()
    assert small(SEED) == small(SEED)
    assert World(small(SEED + 1)).state_hash() != small_base.state_hash()


def test_default_fixture_sizes_and_variety(default_base: World) -> None:
    kit = RetailToolkit(default_base.fork())
    assert len(kit.customers) >= 500
    assert len(kit.orders) >= 1000
    assert len(kit.payments) == len(kit.orders)
    assert len(kit.products) >= 50
    statuses = {o.status for o in kit.orders.values()}
    assert statuses == {"pending", "processing", "shipped", "delivered", "cancelled"}
    assert len(kit.refunds) > 10 and len(kit.returns) > 10 and len(kit.exchanges) > 5
    customers = list(kit.customers.values())
    assert len({c.email for c in customers}) == len(customers)
    assert len({c.phone for c in customers}) == len(customers)
    assert any(p.stock == 0 for p in kit.products.values())


def test_small_fixture_sizes() -> None:
    state = small(SEED)
    assert (len(state.customers), len(state.orders)) == (20, 40)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_invariants_hold_on_fresh_small_fixtures(seed: int) -> None:
    assert RetailToolkit(World(small(seed))).check_invariants() == []


def test_invariants_hold_on_fresh_default_fixture(default_base: World) -> None:
    assert RetailToolkit(default_base.fork()).check_invariants() == []


def test_first_orders_cover_every_kind(kit: RetailToolkit) -> None:
    statuses = [order(kit, f"#W{n:04d}").status for n in range(1, 11)]
    assert statuses == [
        "pending",
        "processing",
        "shipped",
        "delivered",
        "delivered",
        "delivered",
        "delivered",
        "cancelled",
        "cancelled",
        "cancelled",
    ]
    assert [kit.payments.require(f"PAY{n:04d}").status for n in (1, 8, 9)] == ["authorized", "voided", "captured"]


# ----------------------------------------------------------------------------- schemas and flags


def test_tools_and_flags(registry: ToolRegistry) -> None:
    assert set(registry.names) == set(EXPECTED_TOOLS)
    for name, (write, ends, escalation) in EXPECTED_TOOLS.items():
        spec = registry.spec(name)
        assert spec is not None
        assert (spec.flags.write, spec.flags.ends_episode, spec.flags.escalation) == (write, ends, escalation), name


def test_schemas_describe_every_parameter(registry: ToolRegistry) -> None:
    schemas = registry.schemas()
    assert len(schemas) == len(EXPECTED_TOOLS)
    for schema in schemas:
        function = schema["function"]
        assert function["description"], function["name"]
        params = function["parameters"]
        assert params["additionalProperties"] is False
        for pname, prop in params["properties"].items():
            assert prop.get("description"), f"{function['name']}.{pname}"
        assert set(params.get("required", [])) <= set(params["properties"]), function["name"]
        for model in params.get("$defs", {}).values():
            for pname, prop in model["properties"].items():
                assert prop.get("description"), f"{function['name']}: nested {pname}"


def test_unknown_tool(registry: ToolRegistry) -> None:
    assert fail(registry, "refund_ordr", {"order_id": "#W0004"})[0] == "unknown_tool"


# ----------------------------------------------------------------------------- customer look-ups


def test_find_customer_by_email(registry: ToolRegistry, kit: RetailToolkit) -> None:
    customer = kit.customers.require("C0003")
    found = ok(registry, "find_customer_by_email", email=f"  {customer.email.upper()} ")
    assert found["id"] == "C0003"


def test_find_customer_by_email_misuse(registry: ToolRegistry) -> None:
    assert fail(registry, "find_customer_by_email", {"email": "nobody@nowhere.test"})[0] == "not_found"
    assert fail(registry, "find_customer_by_email", {"email": 42})[0] == "invalid_arguments"
    assert fail(registry, "find_customer_by_email", {})[0] == "invalid_arguments"


def test_find_customer_by_phone(registry: ToolRegistry, kit: RetailToolkit) -> None:
    customer = kit.customers.require("C0005")
    area, mid, last = customer.phone.split("-")
    for written in (customer.phone, f"({area}) {mid} {last}", f"+1 {area}.{mid}.{last}"):
        assert ok(registry, "find_customer_by_phone", phone=written)["id"] == "C0005"


def test_find_customer_by_phone_misuse(registry: ToolRegistry) -> None:
    assert fail(registry, "find_customer_by_phone", {"phone": "999-000-0000"})[0] == "not_found"
    assert fail(registry, "find_customer_by_phone", {"phone": "12345"})[0] == "invalid_arguments"
    assert fail(registry, "find_customer_by_phone", {"phone": ["555"]})[0] == "invalid_arguments"


def test_find_customers_by_name(registry: ToolRegistry, kit: RetailToolkit) -> None:
    customer = kit.customers.require("C0002")
    found = ok(
        registry, "find_customers_by_name", first_name=customer.first_name.lower(), last_name=customer.last_name.upper()
    )
    assert "C0002" in [c["id"] for c in found]
    assert all(c["last_name"] == customer.last_name for c in found)


def test_find_customers_by_name_misuse(registry: ToolRegistry) -> None:
    assert fail(registry, "find_customers_by_name", {"first_name": "Zed", "last_name": "Nobody"})[0] == "not_found"
    assert fail(registry, "find_customers_by_name", {"first_name": "Zed"})[0] == "invalid_arguments"


def test_get_customer(registry: ToolRegistry) -> None:
    customer = ok(registry, "get_customer", customer_id="c0004")
    assert customer["id"] == "C0004" and customer["address"]["zip_code"]


def test_get_customer_misuse(registry: ToolRegistry) -> None:
    kind, message = fail(registry, "get_customer", {"customer_id": "C9999"})
    assert (kind, message) == ("not_found", "customer 'C9999' not found")
    assert fail(registry, "get_customer", {"customer_id": "C0001", "extra": 1})[0] == "invalid_arguments"


def test_list_customer_orders(registry: ToolRegistry, kit: RetailToolkit) -> None:
    owner = order(kit, "#W0003").customer_id
    expected = {o.id for o in kit.orders.values() if o.customer_id == owner}
    listed = ok(registry, "list_customer_orders", customer_id=owner)
    assert {o["order_id"] for o in listed} == expected
    assert [o["placed_on"] for o in listed] == sorted(o["placed_on"] for o in listed)
    shipped = ok(registry, "list_customer_orders", customer_id=owner, status="shipped")
    assert "#W0003" in {o["order_id"] for o in shipped} and all(o["status"] == "shipped" for o in shipped)


def test_list_customer_orders_misuse(registry: ToolRegistry) -> None:
    assert fail(registry, "list_customer_orders", {"customer_id": "C9999"})[0] == "not_found"
    assert fail(registry, "list_customer_orders", {"customer_id": "C0001", "status": "lost"})[0] == "invalid_arguments"


# ----------------------------------------------------------------------------- orders and products


def test_get_order(registry: ToolRegistry) -> None:
    details = ok(registry, "get_order", order_id="W0005")  # "#" is optional
    assert details["order"]["id"] == "#W0005"
    assert details["payment"]["status"] == "captured"
    assert [r["id"] for r in details["refunds"]] == ["RF-W0005-1"]
    assert details["order"]["refunded_cents"] == details["refunds"][0]["amount_cents"]
    assert ok(registry, "get_order", order_id="#W0006")["returns"][0]["id"] == "R-W0006-1"
    assert ok(registry, "get_order", order_id="#W0007")["exchanges"][0]["id"] == "X-W0007-1"


def test_get_order_misuse(registry: ToolRegistry) -> None:
    assert fail(registry, "get_order", {"order_id": "#W9999"}) == ("not_found", "order '#W9999' not found")
    assert fail(registry, "get_order", {"order_id": None})[0] == "invalid_arguments"
    assert fail(registry, "get_order", [])[0] == "invalid_arguments"


def test_get_product(registry: ToolRegistry) -> None:
    found = ok(registry, "get_product", product_id="p001")
    assert found["id"] == "P001" and isinstance(found["price_cents"], int) and found["stock"] >= 0


def test_get_product_misuse(registry: ToolRegistry) -> None:
    assert fail(registry, "get_product", {"product_id": "P999"})[0] == "not_found"
    assert fail(registry, "get_product", {"product_id": 1})[0] == "invalid_arguments"


def test_list_product_variants(registry: ToolRegistry, kit: RetailToolkit) -> None:
    variants = ok(registry, "list_product_variants", product_id="P001")
    family = product(kit, "P001").family
    assert len(variants) > 1 and all(v["family"] == family for v in variants)
    assert {v["price_cents"] for v in variants} == {product(kit, "P001").price_cents}


def test_list_product_variants_misuse(registry: ToolRegistry) -> None:
    assert fail(registry, "list_product_variants", {"product_id": "P999"})[0] == "not_found"
    assert fail(registry, "list_product_variants", {"product": "P001"})[0] == "invalid_arguments"


# ----------------------------------------------------------------------------- cancel


def test_cancel_pending_order_voids_payment_and_releases_stock(registry: ToolRegistry, kit: RetailToolkit) -> None:
    before = order(kit, "#W0001")
    stock = {line.product_id: product(kit, line.product_id).stock for line in before.items}
    result = ok(registry, "cancel_order", order_id="#W0001", reason="ordered_by_mistake")
    assert result["order"]["status"] == "cancelled" and result["order"]["cancel_reason"] == "ordered_by_mistake"
    assert result["payment"]["status"] == "voided" and result["refund_due_cents"] == 0
    for line in before.items:
        assert product(kit, line.product_id).stock == stock[line.product_id] + line.quantity
    assert kit.check_invariants() == []


def test_cancel_processing_order_leaves_a_refund_due(registry: ToolRegistry, kit: RetailToolkit) -> None:
    result = ok(registry, "cancel_order", order_id="#W0002", reason="no_longer_needed")
    assert result["payment"]["status"] == "captured"
    assert result["refund_due_cents"] == order(kit, "#W0002").total_cents
    owner = order(kit, "#W0002").customer_id  # look-ups see the change (indexes + this episode's changes)
    cancelled = ok(registry, "list_customer_orders", customer_id=owner, status="cancelled")
    assert "#W0002" in {o["order_id"] for o in cancelled}
    refund = ok(registry, "refund_order", order_id="#W0002", reason="order_cancelled")["refund"]
    assert ok(registry, "get_order", order_id="#W0002")["refunds"] == [refund]


def test_cancel_order_misuse(registry: ToolRegistry, world: World) -> None:
    before = world.state_hash()
    kind, message = fail(registry, "cancel_order", {"order_id": "#W0003", "reason": "no_longer_needed"})
    assert kind == "rule_violation" and "shipped" in message
    assert fail(registry, "cancel_order", {"order_id": "#W0004", "reason": "other"})[0] == "rule_violation"
    assert fail(registry, "cancel_order", {"order_id": "#W0008", "reason": "other"}) == (
        "rule_violation",
        "order #W0008 is already cancelled",
    )
    assert fail(registry, "cancel_order", {"order_id": "#W9999", "reason": "other"})[0] == "not_found"
    assert (
        fail(registry, "cancel_order", {"order_id": "#W0001", "reason": "I changed my mind"})[0] == "invalid_arguments"
    )
    assert world.state_hash() == before  # failed calls change nothing


# ----------------------------------------------------------------------------- refunds


def test_refund_delivered_order_refunds_what_is_left(registry: ToolRegistry, kit: RetailToolkit) -> None:
    before = order(kit, "#W0005")
    assert before.refunded_cents > 0
    result = ok(registry, "refund_order", order_id="#W0005", reason="damaged")
    assert result["refund"]["id"] == "RF-W0005-2"
    assert result["refund"]["amount_cents"] == before.total_cents - before.refunded_cents
    assert result["order_refunded_cents"] == before.total_cents and result["refundable_left_cents"] == 0
    assert kit.check_invariants() == []


def test_refund_cancelled_captured_order(registry: ToolRegistry, kit: RetailToolkit) -> None:
    result = ok(registry, "refund_order", order_id="#W0009", reason="order_cancelled")
    assert result["refund"]["amount_cents"] == order(kit, "#W0009").total_cents
    assert result["refund"]["id"] == "RF-W0009-1"


def test_cannot_refund_a_cancelled_order_twice(registry: ToolRegistry, kit: RetailToolkit) -> None:
    ok(registry, "cancel_order", order_id="#W0002", reason="no_longer_needed")
    ok(registry, "refund_order", order_id="#W0002", reason="order_cancelled")
    assert fail(registry, "refund_order", {"order_id": "#W0002", "reason": "order_cancelled"}) == (
        "rule_violation",
        "order #W0002 is cancelled and already fully refunded",
    )
    line = order(kit, "#W0002").items[0]
    items = [{"product_id": line.product_id, "quantity": 1}]
    assert (
        fail(registry, "refund_items", {"order_id": "#W0002", "items": items, "reason": "other"})[0] == "rule_violation"
    )
    assert order(kit, "#W0002").refunded_cents == kit.payments.require(order(kit, "#W0002").payment_id).amount_cents
    assert kit.check_invariants() == []


def test_refund_order_misuse(registry: ToolRegistry) -> None:
    args = {"reason": "damaged"}
    assert fail(registry, "refund_order", {"order_id": "#W0010", **args}) == (
        "rule_violation",
        "order #W0010 is cancelled and already fully refunded",
    )
    kind, message = fail(registry, "refund_order", {"order_id": "#W0008", **args})
    assert kind == "rule_violation" and "never captured" in message
    for not_yet in ("#W0001", "#W0002", "#W0003"):
        assert fail(registry, "refund_order", {"order_id": not_yet, **args})[0] == "rule_violation"
    assert fail(registry, "refund_order", {"order_id": "#W9999", **args})[0] == "not_found"
    assert fail(registry, "refund_order", {"order_id": "#W0004", "reason": "because"})[0] == "invalid_arguments"


def test_refund_items_then_the_rest(registry: ToolRegistry, kit: RetailToolkit) -> None:
    target = next(
        o
        for o in kit.orders.values()
        if o.status == "delivered"
        and o.refunded_cents == 0
        and not o.exchanged_units
        and sum(li.quantity for li in o.items) >= 2
    )
    line = target.items[0]
    first = ok(
        registry,
        "refund_items",
        order_id=target.id,
        reason="defective",
        items=[{"product_id": line.product_id.lower(), "quantity": 1}],
    )
    assert first["refund"]["amount_cents"] == line.unit_price_cents
    assert first["refund"]["items"] == {line.product_id: 1}
    assert first["refundable_left_cents"] == target.total_cents - line.unit_price_cents > 0
    assert order(kit, target.id).refunded_units == {line.product_id: 1}
    rest = ok(registry, "refund_order", order_id=target.id, reason="defective")
    assert rest["refund"]["id"] == f"RF-{target.id[1:]}-2"
    assert first["refund"]["amount_cents"] + rest["refund"]["amount_cents"] == target.total_cents
    assert order(kit, target.id).refunded_units == {li.product_id: li.quantity for li in target.items}
    assert kit.check_invariants() == []


def test_refund_items_misuse(registry: ToolRegistry, kit: RetailToolkit) -> None:
    line = order(kit, "#W0004").items[0]

    def refund(items: Any, order_id: str = "#W0004") -> str:
        return fail(registry, "refund_items", {"order_id": order_id, "items": items, "reason": "damaged"})[0]

    too_many = [{"product_id": line.product_id, "quantity": line.quantity + 1}]
    assert refund(too_many) == "rule_violation"
    split = [{"product_id": line.product_id, "quantity": line.quantity}, {"product_id": line.product_id}]
    assert refund(split) == "rule_violation"  # repeated products add up
    assert refund([{"product_id": "P999", "quantity": 1}]) == "rule_violation"
    assert refund([]) == "invalid_arguments"
    assert refund([{"product_id": line.product_id, "quantity": 0}]) == "invalid_arguments"
    assert refund([{"product_id": line.product_id, "quantity": "two"}]) == "invalid_arguments"
    assert refund("everything") == "invalid_arguments"
    assert refund([{"product_id": line.product_id}], order_id="#W0003") == "rule_violation"
    assert refund([{"product_id": line.product_id}], order_id="#W9999") == "not_found"
    assert order(kit, "#W0004").refunded_cents == 0


# ----------------------------------------------------------------------------- returns


def test_create_return(registry: ToolRegistry, kit: RetailToolkit) -> None:
    line = order(kit, "#W0004").items[0]
    result = ok(
        registry,
        "create_return",
        order_id="#W0004",
        reason="size_or_fit",
        items=[{"product_id": line.product_id, "quantity": line.quantity}],
    )
    assert result == {
        "id": "R-W0004-1",
        "order_id": "#W0004",
        "reason": "size_or_fit",
        "status": "requested",
        "items": {line.product_id: line.quantity},
    }
    assert order(kit, "#W0004").returned_units == {line.product_id: line.quantity}
    assert kit.check_invariants() == []


def test_create_return_misuse(registry: ToolRegistry, kit: RetailToolkit) -> None:
    returned = order(kit, "#W0006").items[0]
    assert order(kit, "#W0006").returned_units == {returned.product_id: returned.quantity}
    again = [{"product_id": returned.product_id, "quantity": 1}]
    kind, message = fail(registry, "create_return", {"order_id": "#W0006", "items": again, "reason": "other"})
    assert kind == "rule_violation" and "can still be returned" in message
    pending = [{"product_id": order(kit, "#W0001").items[0].product_id}]
    kind, message = fail(registry, "create_return", {"order_id": "#W0001", "items": pending, "reason": "other"})
    assert kind == "rule_violation" and "cancel it instead" in message
    assert fail(registry, "create_return", {"order_id": "#W9999", "items": again, "reason": "other"})[0] == "not_found"
    assert (
        fail(registry, "create_return", {"order_id": "#W0004", "items": again, "reason": "meh"})[0]
        == "invalid_arguments"
    )


# ----------------------------------------------------------------------------- exchanges


def _exchange_target(kit: RetailToolkit, order_id: str) -> tuple[str, Product]:
    """An item of the order and an in-stock sibling variant."""
    for line in order(kit, order_id).items:
        family = product(kit, line.product_id).family
        for other in kit.products.lookup("family", family):
            if other.id != line.product_id and other.stock > 0:
                return line.product_id, other
    raise AssertionError("no exchange candidate")


def test_exchange_item(registry: ToolRegistry, kit: RetailToolkit) -> None:
    pid, new = _exchange_target(kit, "#W0004")
    result = ok(
        registry, "exchange_item", order_id="#W0004", product_id=pid, new_product_id=new.id, reason="size_or_fit"
    )
    assert result["id"] == "X-W0004-1" and result["quantity"] == 1 and result["new_product_id"] == new.id
    assert product(kit, new.id).stock == new.stock - 1
    assert order(kit, "#W0004").exchanged_units == {pid: 1}
    assert kit.check_invariants() == []


def test_exchange_item_misuse(registry: ToolRegistry, kit: RetailToolkit) -> None:
    pid, new = _exchange_target(kit, "#W0004")
    base = {"order_id": "#W0004", "product_id": pid, "new_product_id": new.id, "reason": "color"}
    other_family = next(p for p in kit.products.values() if p.family != new.family)
    kind, message = fail(registry, "exchange_item", {**base, "new_product_id": other_family.id})
    assert kind == "rule_violation" and "same product" in message
    assert fail(registry, "exchange_item", {**base, "new_product_id": pid})[0] == "rule_violation"
    assert fail(registry, "exchange_item", {**base, "new_product_id": "P999"})[0] == "not_found"
    assert fail(registry, "exchange_item", {**base, "order_id": "#W0003"})[0] == "rule_violation"
    assert fail(registry, "exchange_item", {**base, "quantity": 0})[0] == "invalid_arguments"
    assert fail(registry, "exchange_item", {**base, "quantity": 99})[0] == "rule_violation"
    assert fail(registry, "exchange_item", {**base, "reason": "bored"})[0] == "invalid_arguments"
    kit.products.put(new.id, new.model_copy(update={"stock": 0}))
    kind, message = fail(registry, "exchange_item", base)
    assert kind == "rule_violation" and "in stock" in message
    assert product(kit, new.id).stock == 0


# ----------------------------------------------------------------------------- shipping address


def test_update_shipping_address(registry: ToolRegistry, kit: RetailToolkit) -> None:
    result = ok(
        registry,
        "update_shipping_address",
        order_id="#W0002",
        line1="  12   maple  st ",
        city="austin",
        state="tx",
        zip_code="78701-1234",
        line2="apt 4b",
    )
    expected = {"line1": "12 Maple St", "line2": "Apt 4B", "city": "Austin", "state": "TX", "zip_code": "78701"}
    assert result["shipping_address"] == expected
    assert order(kit, "#W0002").shipping_address.model_dump() == expected


def test_update_shipping_address_misuse(registry: ToolRegistry) -> None:
    address = {"line1": "12 Maple St", "city": "Austin", "state": "TX", "zip_code": "78701"}
    kind, message = fail(registry, "update_shipping_address", {"order_id": "#W0003", **address})
    assert kind == "rule_violation" and "before the order ships" in message
    assert fail(registry, "update_shipping_address", {"order_id": "#W0008", **address})[0] == "rule_violation"
    assert fail(registry, "update_shipping_address", {"order_id": "#W9999", **address})[0] == "not_found"
    assert (
        fail(registry, "update_shipping_address", {"order_id": "#W0001", **address, "zip_code": "7870"})[0]
        == "invalid_arguments"
    )
    assert (
        fail(registry, "update_shipping_address", {"order_id": "#W0001", **address, "state": "Texas"})[0]
        == "invalid_arguments"
    )
    assert (
        fail(registry, "update_shipping_address", {"order_id": "#W0001", **address, "zip_code": 78701})[0]
        == "invalid_arguments"
    )


# ----------------------------------------------------------------------------- hand-off


def test_transfer_to_human(registry: ToolRegistry, kit: RetailToolkit) -> None:
    result: ToolResult = registry.call(
        "transfer_to_human", {"reason": "complaint", "summary": "Angry about #W0003.", "subject_id": "C0001"}
    )
    assert result.ok and result.ends_episode and result.flags.escalation
    assert json.loads(result.content)["status"] == "transferred"
    assert [h.reason for h in kit.handoffs.values()] == ["complaint"]


def test_transfer_to_human_misuse(registry: ToolRegistry) -> None:
    assert fail(registry, "transfer_to_human", {"reason": "bored", "summary": "x"})[0] == "invalid_arguments"
    assert fail(registry, "transfer_to_human", {"reason": "complaint"})[0] == "invalid_arguments"


# ----------------------------------------------------------------------------- state and invariants


def test_summary_wording_does_not_change_the_state(small_base: World) -> None:
    hashes = set()
    for summary in ("Customer wants a manager.", "wants manager!!"):
        world = small_base.fork()
        ToolRegistry([RetailToolkit(world)]).call("transfer_to_human", {"reason": "complaint", "summary": summary})
        hashes.add(world.state_hash())
    assert len(hashes) == 1


def test_state_does_not_depend_on_the_order_of_independent_actions(small_base: World) -> None:
    calls = [
        ("refund_order", {"order_id": "#W0004", "reason": "damaged"}),
        ("refund_order", {"order_id": "#W0009", "reason": "order_cancelled"}),
        ("cancel_order", {"order_id": "#W0001", "reason": "other"}),
    ]
    hashes = set()
    for sequence in (calls, calls[::-1]):
        world = small_base.fork()
        registry = ToolRegistry([RetailToolkit(world)])
        for name, args in sequence:
            assert registry.call(name, args).ok
        hashes.add(world.state_hash())
    assert len(hashes) == 1


def test_invariants_hold_after_many_operations(default_base: World) -> None:
    world = default_base.fork()
    kit = RetailToolkit(world)
    registry = ToolRegistry([kit])
    base_hash = world.state_hash()
    succeeded: dict[str, int] = {}

    def call(name: str, args: dict[str, Any]) -> None:
        if registry.call(name, args).ok:
            succeeded[name] = succeeded.get(name, 0) + 1

    for o in list(kit.orders.values())[:300]:
        if o.status in ("pending", "processing"):
            call("cancel_order", {"order_id": o.id, "reason": "no_longer_needed"})
            call("refund_order", {"order_id": o.id, "reason": "order_cancelled"})
        elif o.status == "delivered":
            first, last = o.items[0].product_id, o.items[-1].product_id
            call("create_return", {"order_id": o.id, "items": [{"product_id": first}], "reason": "other"})
            siblings = kit.products.lookup("family", product(kit, last).family)
            sibling = max((p for p in siblings if p.id != last), key=lambda p: p.stock)
            call(
                "exchange_item", {"order_id": o.id, "product_id": last, "new_product_id": sibling.id, "reason": "color"}
            )
            call("refund_items", {"order_id": o.id, "items": [{"product_id": first}], "reason": "returned"})
            call("refund_order", {"order_id": o.id, "reason": "goodwill"})
        call("refund_order", {"order_id": o.id, "reason": "other"})  # mostly refused
    assert (
        min(
            succeeded.get(name, 0)
            for name in ("cancel_order", "create_return", "exchange_item", "refund_items", "refund_order")
        )
        >= 20
    ), succeeded
    assert world.state_hash() != base_hash
    assert kit.check_invariants() == []
    world.reset()
    assert world.state_hash() == base_hash


def test_check_invariants_reports_violations(kit: RetailToolkit) -> None:
    p = product(kit, "P001")
    kit.products.put("P001", p.model_copy(update={"stock": -1}))
    o = order(kit, "#W0009")
    kit.orders.put(o.id, o.model_copy(update={"refunded_cents": o.total_cents + 1}))
    messages = kit.check_invariants()
    assert any("negative stock" in m for m in messages)
    assert any("#W0009" in m and "refunds sum to 0" in m for m in messages)
    assert any("#W0009" in m and "refunded units are worth" in m for m in messages)


def test_registered_toolkit_and_overrides() -> None:
    assert get_toolkit("retail") is RetailToolkit
    world = build_world(("retail",), "small", SEED, None, {"orders": {"#W0003": {"status": "delivered"}}})
    registry = ToolRegistry([RetailToolkit(world)])
    assert ok(registry, "get_order", order_id="#W0003")["order"]["status"] == "delivered"
    assert ok(registry, "refund_order", order_id="#W0003", reason="late_delivery")["refundable_left_cents"] == 0
    assert registry.check_invariants() == []


# ----------------------------------------------------------------------------- speed


def test_tool_calls_are_fast(default_base: World) -> None:
    world = default_base.fork()
    registry = ToolRegistry([RetailToolkit(world)])
    registry.call("get_order", {"order_id": "#W0500"})  # warm the indexes
    n = 2000
    per_call = timeit.timeit(lambda: registry.call("get_order", {"order_id": "#W0500"}), number=n) / n
    assert per_call < 200e-6  # about 10 µs on a laptop; generous for slow CI machines
