"""Tests of the medical supply toolkit, through the tool registry as an agent calls it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ValidationError

from envsim.toolkits import get_toolkit
from envsim.tools import ToolRegistry, ToolResult
from envsim.world import World
from tools_mock.medical_supply import MedicalSupplyToolkit
from tools_mock.medical_supply.fixtures import FIRST_SLOT_DATE, default, small
from tools_mock.medical_supply.models import (
    TODAY,
    DeliverySlot,
    Dispatch,
    EquipmentOrder,
    Patient,
    Prescription,
    order_id_for,
)
from tools_mock.medical_supply.toolkit import next_id

SEED = 7

# name -> (write, ends_episode, escalation)
EXPECTED_TOOLS = {
    "lookup_patient": (False, False, False),
    "find_patient": (False, False, False),
    "get_patient": (False, False, False),
    "list_prescriptions": (False, False, False),
    "get_item": (False, False, False),
    "list_catalogue": (False, False, False),
    "check_insurance_eligibility": (False, False, False),
    "list_equipment_orders": (False, False, False),
    "get_equipment_order": (False, False, False),
    "create_equipment_order": (True, False, False),
    "list_delivery_slots": (False, False, False),
    "schedule_delivery": (True, False, False),
    "cancel_equipment_order": (True, False, False),
    "dispatch_emergency_services": (True, True, True),
    "transfer_to_human": (True, True, True),
}


class Env:
    """A world on the small fixture, its toolkit and registry."""

    def __init__(self) -> None:
        """Build the world once; tests reset it between them."""
        self.world = World(small(SEED))
        self.kit = MedicalSupplyToolkit(self.world)
        self.registry = ToolRegistry([self.kit])
        self.base_hash = self.world.state_hash()

    def call(self, tool_name: str, /, **args: Any) -> Any:
        """Call a tool that must succeed; returns its decoded JSON."""
        result = self.registry.call(tool_name, args)
        assert result.ok, result.content
        return json.loads(result.content)

    def fail(self, tool_name: str, /, **args: Any) -> str:
        """Call a tool that must fail; returns the error type the agent sees."""
        return self.fail_with(tool_name, args)

    def fail_with(self, name: str, args: Any) -> str:
        """Call a tool with raw ``args`` that must fail; returns the error type."""
        result = self.registry.call(name, args)
        assert not result.ok, result.content
        assert not result.ends_episode
        error = json.loads(result.content)["error"]
        assert error["type"] == result.error_type
        assert error["message"]
        return str(error["type"])

    def rx(self, patient_id: str, **match: Any) -> Prescription:
        """The first prescription of a patient with the given field values."""
        for rx in sorted(self.kit.prescriptions.lookup("patient_id", patient_id), key=lambda r: r.id):
            if all(getattr(rx, k) == v for k, v in match.items()):
                return rx
        raise AssertionError(f"no prescription of {patient_id} with {match}")

    def order(self, patient_id: str, status: str) -> EquipmentOrder:
        """The first order of a patient with a status."""
        for order in self.kit.equipment_orders.lookup("patient_id", patient_id):
            if order.status == status:
                return order
        raise AssertionError(f"no {status} order of {patient_id}")

    def orderable(self) -> Prescription:
        """PT-0001's prescription without an open order."""
        open_rx = {
            o.prescription_id
            for o in self.kit.equipment_orders.lookup("patient_id", "PT-0001")
            if o.status in ("pending", "scheduled")
        }
        return next(rx for rx in self.kit.prescriptions.lookup("patient_id", "PT-0001") if rx.id not in open_rx)

    def free_slot(self, exclude: str | None = None) -> DeliverySlot:
        """A slot with room left."""
        return next(s for s in self.kit.delivery_slots.values() if s.booked < s.capacity and s.id != exclude)

    def full_slot(self) -> DeliverySlot:
        """A slot with no room left."""
        return next(s for s in self.kit.delivery_slots.values() if s.booked >= s.capacity)


@pytest.fixture(scope="module")
def module_env() -> Env:
    """One environment for the whole module."""
    return Env()


@pytest.fixture
def env(module_env: Env) -> Iterator[Env]:
    """The module's environment, reset before and after each test (microseconds)."""
    module_env.world.reset()
    yield module_env
    assert module_env.registry.check_invariants() == []
    module_env.world.reset()


@pytest.fixture(scope="module")
def default_world() -> World:
    """The default fixture for SEED."""
    return World(default(SEED))


# -- fixtures ------------------------------------------------------------------------------


def test_fixtures_are_deterministic(default_world: World) -> None:
    assert World(default(SEED)).state_hash() == default_world.state_hash()
    assert World(small(SEED)).state_hash() == World(small(SEED)).state_hash()
    assert World(default(SEED + 1)).state_hash() != default_world.state_hash()


def test_default_fixture_sizes(default_world: World) -> None:
    state = default(SEED)
    assert len(state.patients) >= 300
    assert 18 <= len(state.catalogue) <= 25
    assert 55 <= len(state.delivery_slots) <= 65
    assert len(state.insurance_plans) >= 4
    with_rx = {rx.patient_id for rx in state.prescriptions.values()}
    assert len(with_rx) >= 0.8 * len(state.patients)
    assert len({p.phone for p in state.patients.values()}) == len(state.patients)
    assert not any(p.phone.startswith("555-01") for p in state.patients.values())  # left to scenarios
    dates = sorted(s.date for s in state.delivery_slots.values())
    assert dates[0] == FIRST_SLOT_DATE.isoformat() == "2026-12-01"
    assert dates[-1] <= "2026-12-15"
    assert all(s.booked <= s.capacity for s in state.delivery_slots.values())
    assert default_world.table_names == list(type(state).model_fields)


def test_small_fixture_and_guaranteed_cases() -> None:
    for seed in (0, 1, SEED, 99):
        state = small(seed)
        assert len(state.patients) == 15
        assert state.patients["PT-0002"].insurance_plan_id is None
        assert state.insurance_plans[str(state.patients["PT-0003"].insurance_plan_id)].status == "terminated"
        statuses = {rx.status for rx in state.prescriptions.values()}
        assert statuses == {"active", "expired", "cancelled"}
        assert {o.status for o in state.equipment_orders.values()} >= {"pending", "scheduled", "delivered"}
        assert any(item.stock == 0 for item in state.catalogue.values())
        assert any(s.booked == s.capacity for s in state.delivery_slots.values())
        assert any(rx.status == "active" and rx.refills_left == 0 for rx in state.prescriptions.values())


def test_invariants_hold_on_fresh_fixtures(default_world: World) -> None:
    assert MedicalSupplyToolkit(default_world).check_invariants() == []
    assert MedicalSupplyToolkit(World(small(3))).check_invariants() == []


def test_toolkit_is_registered() -> None:
    kit = get_toolkit("medical_supply")
    assert kit is MedicalSupplyToolkit
    assert kit.name == "medical_supply"
    assert set(kit.fixtures) == {"default", "small"}


# -- schemas and flags ---------------------------------------------------------------------


def test_tools_and_flags(env: Env) -> None:
    assert set(env.registry.names) == set(EXPECTED_TOOLS)
    for name, (write, ends, escalation) in EXPECTED_TOOLS.items():
        spec = env.registry.spec(name)
        assert spec is not None
        assert (spec.flags.write, spec.flags.ends_episode, spec.flags.escalation) == (write, ends, escalation), name


def test_schemas_describe_every_parameter(env: Env) -> None:
    schemas = env.registry.schemas()
    assert len(schemas) == len(EXPECTED_TOOLS)
    for schema in schemas:
        fn = schema["function"]
        assert fn["description"], fn["name"]
        params = fn["parameters"]
        assert params["type"] == "object"
        assert params["additionalProperties"] is False
        spec = env.registry.spec(fn["name"])
        assert spec is not None
        assert set(params["properties"]) == set(spec.args_model.model_fields)
        for pname, prop in params["properties"].items():
            assert prop.get("description"), f"{fn['name']}.{pname}"
    dispatch = next(s for s in schemas if s["function"]["name"] == "dispatch_emergency_services")
    props = dispatch["function"]["parameters"]
    assert "cardiac_arrest" in props["properties"]["emergency"]["enum"]
    assert set(props["required"]) == {"patient_id", "emergency", "address_confirmed", "details"}


def test_unknown_tool_and_bad_arguments(env: Env) -> None:
    result = env.registry.call("lookup_patinet", {"phone": "555-0100"})
    assert json.loads(result.content)["error"]["type"] == "unknown_tool"
    assert "lookup_patient" in result.content
    assert env.fail_with("get_patient", ["PT-0001"]) == "invalid_arguments"
    assert env.fail("get_patient", patient_id="PT-0001", extra=1) == "invalid_arguments"


# -- patients ------------------------------------------------------------------------------


def test_lookup_patient(env: Env) -> None:
    patient = env.kit.patients.require("PT-0001")
    assert env.call("lookup_patient", phone=patient.phone) == patient.model_dump(mode="json")
    assert env.call("lookup_patient", phone=patient.phone.replace("-", ""))["id"] == "PT-0001"
    assert env.call("lookup_patient", phone=f" {patient.phone} ")["id"] == "PT-0001"


def test_lookup_patient_misuse(env: Env) -> None:
    used = {p.phone for p in env.kit.patients.values()}
    unused = next(f"555-{n:04d}" for n in range(100, 10000) if f"555-{n:04d}" not in used)
    assert env.fail("lookup_patient", phone=unused) == "not_found"
    assert env.fail("lookup_patient", phone=5550142) == "invalid_arguments"
    assert env.fail("lookup_patient") == "invalid_arguments"
    # two patients on one phone: the agent must disambiguate
    first = env.kit.patients.require("PT-0001")
    other = env.kit.patients.require("PT-0002")
    env.kit.patients.put(other.id, other.model_copy(update={"phone": first.phone}))
    assert env.fail("lookup_patient", phone=first.phone) == "rule_violation"


def test_find_patient(env: Env) -> None:
    patient = env.kit.patients.require("PT-0004")
    found = env.call("find_patient", name=f"  {patient.name.upper()} ", date_of_birth=patient.date_of_birth)
    assert found["id"] == "PT-0004"


def test_find_patient_misuse(env: Env) -> None:
    patient = env.kit.patients.require("PT-0004")
    assert env.fail("find_patient", name="Nobody Here", date_of_birth=patient.date_of_birth) == "not_found"
    assert env.fail("find_patient", name=patient.name, date_of_birth="1999-02-30") == "invalid_arguments"
    assert env.fail("find_patient", name=patient.name, date_of_birth="yesterday") == "invalid_arguments"


def test_get_patient(env: Env) -> None:
    assert env.call("get_patient", patient_id="PT-0002")["insurance_plan_id"] is None
    assert env.fail("get_patient", patient_id="PT-9999") == "not_found"
    assert env.fail("get_patient", patient_id=1) == "invalid_arguments"


# -- prescriptions and catalogue -------------------------------------------------------------


def test_list_prescriptions(env: Env) -> None:
    everything = env.call("list_prescriptions", patient_id="PT-0003")
    assert {rx["status"] for rx in everything} == {"expired", "cancelled"}
    assert [rx["id"] for rx in everything] == sorted(rx["id"] for rx in everything)
    expired = env.call("list_prescriptions", patient_id="PT-0003", status="expired")
    assert len(expired) == 1 and expired[0]["expires_on"] < TODAY
    assert env.call("list_prescriptions", patient_id="PT-0003", status="active") == []


def test_list_prescriptions_misuse(env: Env) -> None:
    assert env.fail("list_prescriptions", patient_id="PT-9999") == "not_found"
    assert env.fail("list_prescriptions", patient_id="PT-0001", status="valid") == "invalid_arguments"


def test_get_item(env: Env) -> None:
    item = env.call("get_item", item_id="EQ-01")
    assert item["category"] == "oxygen" and isinstance(item["unit_price_cents"], int)
    assert env.fail("get_item", item_id="EQ-99") == "not_found"
    assert env.fail("get_item", item_id=None) == "invalid_arguments"


def test_list_catalogue(env: Env) -> None:
    assert len(env.call("list_catalogue")) == 22
    diabetes = env.call("list_catalogue", category="diabetes")
    assert diabetes and all(i["category"] == "diabetes" for i in diabetes)
    assert env.fail("list_catalogue", category="toys") == "invalid_arguments"


# -- insurance -----------------------------------------------------------------------------


def test_check_insurance_eligibility_covered(env: Env) -> None:
    # PT-0001 is on BlueShield PPO Gold: 90% of every category
    item = env.kit.catalogue.require("EQ-16")  # glucose test strips
    result = env.call("check_insurance_eligibility", patient_id="PT-0001", item_id="EQ-16", quantity=2)
    total = item.unit_price_cents * 2
    assert result["covered"] is True and result["coverage_percent"] == 90
    assert result["total_price_cents"] == total
    assert result["copay_cents"] == (total * 10 + 50) // 100


def test_check_insurance_eligibility_not_covered(env: Env) -> None:
    uninsured = env.call("check_insurance_eligibility", patient_id="PT-0002", item_id="EQ-05")
    price = env.kit.catalogue.require("EQ-05").unit_price_cents
    assert uninsured["covered"] is False and uninsured["copay_cents"] == price
    assert "no insurance" in uninsured["reason"]
    terminated = env.call("check_insurance_eligibility", patient_id="PT-0003", item_id="EQ-01")
    assert terminated["covered"] is False and "terminated" in terminated["reason"]
    # a plan that does not cover the category: UnitedCare Basic covers only oxygen and diabetes
    patient = env.kit.patients.require("PT-0005")
    env.kit.patients.put(patient.id, patient.model_copy(update={"insurance_plan_id": "INS-04"}))
    wheelchair = env.call("check_insurance_eligibility", patient_id="PT-0005", item_id="EQ-12")
    assert wheelchair["covered"] is False and wheelchair["coverage_percent"] == 0


def test_check_insurance_eligibility_misuse(env: Env) -> None:
    assert env.fail("check_insurance_eligibility", patient_id="PT-9999", item_id="EQ-01") == "not_found"
    assert env.fail("check_insurance_eligibility", patient_id="PT-0001", item_id="EQ-99") == "not_found"
    assert (
        env.fail("check_insurance_eligibility", patient_id="PT-0001", item_id="EQ-01", quantity=0)
        == "invalid_arguments"
    )
    assert (
        env.fail("check_insurance_eligibility", patient_id="PT-0001", item_id="EQ-01", quantity="two")
        == "invalid_arguments"
    )


# -- orders --------------------------------------------------------------------------------


def test_list_and_get_equipment_orders(env: Env) -> None:
    orders = env.call("list_equipment_orders", patient_id="PT-0001")
    assert [o["status"] for o in orders] == ["pending"]
    assert env.call("get_equipment_order", order_id=orders[0]["id"]) == orders[0]
    assert env.fail("list_equipment_orders", patient_id="PT-9999") == "not_found"
    assert env.fail("get_equipment_order", order_id="EO-9999") == "not_found"
    assert env.fail("get_equipment_order", order_id=["EO-0001"]) == "invalid_arguments"


def test_create_equipment_order(env: Env) -> None:
    rx = env.orderable()
    item = env.kit.catalogue.require(rx.item_id)
    fills = len(env.kit.equipment_orders.lookup("prescription_id", rx.id))
    expected_id = f"EO-{rx.id.removeprefix('RX-')}-{fills + 1}"
    order = env.call("create_equipment_order", patient_id="PT-0001", prescription_id=rx.id)
    assert order["id"] == expected_id
    assert order["status"] == "pending" and order["slot_id"] is None
    assert order["quantity"] == rx.quantity and order["item_id"] == rx.item_id
    percent = env.kit.insurance_plans.require("INS-02").coverage_percent.get(item.category, 0)
    assert order["copay_cents"] == (item.unit_price_cents * rx.quantity * (100 - percent) + 50) // 100
    assert env.kit.prescriptions.require(rx.id).refills_left == rx.refills_left - 1
    assert env.kit.catalogue.require(item.id).stock == item.stock - rx.quantity
    assert env.kit.equipment_orders.require(expected_id).model_dump(mode="json") == order
    assert env.world.state_hash() != env.base_hash


def test_create_equipment_order_rule_violations(env: Env) -> None:
    def create(patient_id: str, rx: Prescription) -> str:
        return env.fail("create_equipment_order", patient_id=patient_id, prescription_id=rx.id)

    assert create("PT-0003", env.rx("PT-0003", status="expired")) == "rule_violation"
    assert create("PT-0003", env.rx("PT-0003", status="cancelled")) == "rule_violation"
    assert create("PT-0004", env.rx("PT-0004", refills_left=0)) == "rule_violation"
    out_of_stock = next(i.id for i in env.kit.catalogue.values() if i.stock == 0)
    assert create("PT-0004", env.rx("PT-0004", item_id=out_of_stock)) == "rule_violation"
    assert create("PT-0002", env.orderable()) == "rule_violation"  # someone else's prescription
    pending = env.order("PT-0001", "pending")
    assert create("PT-0001", env.kit.prescriptions.require(pending.prescription_id)) == "rule_violation"
    # "active" but past its expiry date (as a scenario override could set it)
    rx = env.orderable()
    env.kit.prescriptions.put(rx.id, rx.model_copy(update={"expires_on": "2026-11-01"}))
    assert create("PT-0001", rx) == "rule_violation"
    assert env.world.changed() == {"prescriptions": [rx.id]}


def test_create_equipment_order_uses_the_last_unit(env: Env) -> None:
    rx = env.orderable()
    item = env.kit.catalogue.require(rx.item_id)
    env.kit.catalogue.put(item.id, item.model_copy(update={"stock": rx.quantity}))
    env.call("create_equipment_order", patient_id="PT-0001", prescription_id=rx.id)
    assert env.kit.catalogue.require(item.id).stock == 0


def test_create_equipment_order_misuse(env: Env) -> None:
    assert env.fail("create_equipment_order", patient_id="PT-9999", prescription_id="RX-0001") == "not_found"
    assert env.fail("create_equipment_order", patient_id="PT-0001", prescription_id="RX-9999") == "not_found"
    assert env.fail("create_equipment_order", patient_id="PT-0001") == "invalid_arguments"
    assert env.fail("create_equipment_order", patient_id="PT-0001", prescription_id=3) == "invalid_arguments"


# -- delivery ------------------------------------------------------------------------------


def test_list_delivery_slots(env: Env) -> None:
    open_slots = env.call("list_delivery_slots")
    assert open_slots and all(s["booked"] < s["capacity"] for s in open_slots)
    everything = env.call("list_delivery_slots", include_full=True)
    assert len(everything) == 60 > len(open_slots)
    full = env.full_slot()
    day = env.call("list_delivery_slots", date=full.date, include_full=True)
    assert {s["date"] for s in day} == {full.date} and full.id in {s["id"] for s in day}
    assert full.id not in {s["id"] for s in env.call("list_delivery_slots", date=full.date)}
    assert env.call("list_delivery_slots", date="2027-06-01") == []


def test_list_delivery_slots_misuse(env: Env) -> None:
    assert env.fail("list_delivery_slots", date="next tuesday") == "invalid_arguments"
    assert env.fail("list_delivery_slots", include_full="sometimes") == "invalid_arguments"


def test_schedule_delivery(env: Env) -> None:
    order = env.order("PT-0001", "pending")
    slot = env.free_slot()
    scheduled = env.call("schedule_delivery", order_id=order.id, slot_id=slot.id)
    assert scheduled["status"] == "scheduled" and scheduled["slot_id"] == slot.id
    assert env.kit.delivery_slots.require(slot.id).booked == slot.booked + 1
    # moving it frees the first slot
    other = env.free_slot(exclude=slot.id)
    env.call("schedule_delivery", order_id=order.id, slot_id=other.id)
    assert env.kit.delivery_slots.require(slot.id).booked == slot.booked
    assert env.kit.delivery_slots.require(other.id).booked == other.booked + 1
    # the same end state as booking the second slot directly: equal hashes, whatever the path
    moved = env.world.state_hash()
    env.world.reset()
    env.call("schedule_delivery", order_id=order.id, slot_id=other.id)
    assert env.world.state_hash() == moved


def test_schedule_delivery_rule_violations(env: Env) -> None:
    pending = env.order("PT-0001", "pending")
    assert env.fail("schedule_delivery", order_id=pending.id, slot_id=env.full_slot().id) == "rule_violation"
    delivered = env.order("PT-0004", "delivered")
    assert env.fail("schedule_delivery", order_id=delivered.id, slot_id=env.free_slot().id) == "rule_violation"
    scheduled = env.order("PT-0002", "scheduled")
    assert env.fail("schedule_delivery", order_id=scheduled.id, slot_id=str(scheduled.slot_id)) == "rule_violation"
    env.call("cancel_equipment_order", order_id=pending.id, reason="patient_request")
    assert env.fail("schedule_delivery", order_id=pending.id, slot_id=env.free_slot().id) == "rule_violation"


def test_schedule_delivery_misuse(env: Env) -> None:
    pending = env.order("PT-0001", "pending")
    assert env.fail("schedule_delivery", order_id="EO-9999", slot_id=env.free_slot().id) == "not_found"
    assert env.fail("schedule_delivery", order_id=pending.id, slot_id="DS-999") == "not_found"
    assert env.fail("schedule_delivery", order_id=pending.id) == "invalid_arguments"


def test_cancel_equipment_order(env: Env) -> None:
    order = env.order("PT-0002", "scheduled")
    assert order.slot_id is not None
    slot = env.kit.delivery_slots.require(order.slot_id)
    item = env.kit.catalogue.require(order.item_id)
    rx = env.kit.prescriptions.require(order.prescription_id)
    cancelled = env.call("cancel_equipment_order", order_id=order.id, reason="patient_request")
    assert cancelled["status"] == "cancelled" and cancelled["cancel_reason"] == "patient_request"
    assert cancelled["slot_id"] is None
    assert env.kit.delivery_slots.require(slot.id).booked == slot.booked - 1
    assert env.kit.catalogue.require(item.id).stock == item.stock + order.quantity
    assert env.kit.prescriptions.require(rx.id).refills_left == rx.refills_left + 1


def test_order_then_cancel_gives_everything_back(env: Env) -> None:
    rx = env.orderable()
    order = env.call("create_equipment_order", patient_id="PT-0001", prescription_id=rx.id)
    env.call("schedule_delivery", order_id=order["id"], slot_id=env.free_slot().id)
    env.call("cancel_equipment_order", order_id=order["id"], reason="duplicate_order")
    assert order["id"].endswith("-1")
    assert set(env.world.changed()) == {"equipment_orders", "catalogue", "prescriptions", "delivery_slots"}
    # only the cancelled order itself remains as a difference from the base
    env.kit.equipment_orders.delete(order["id"])
    assert env.world.state_hash() == env.base_hash
    # the prescription can be filled again
    assert env.call("create_equipment_order", patient_id="PT-0001", prescription_id=rx.id)["id"] == order["id"]


def test_cancel_equipment_order_misuse(env: Env) -> None:
    delivered = env.order("PT-0004", "delivered")
    assert env.fail("cancel_equipment_order", order_id=delivered.id, reason="patient_request") == "rule_violation"
    pending = env.order("PT-0001", "pending")
    env.call("cancel_equipment_order", order_id=pending.id, reason="other")
    assert env.fail("cancel_equipment_order", order_id=pending.id, reason="other") == "rule_violation"
    assert env.fail("cancel_equipment_order", order_id="EO-9999", reason="other") == "not_found"
    assert env.fail("cancel_equipment_order", order_id=pending.id, reason="changed my mind") == "invalid_arguments"


# -- escalation ----------------------------------------------------------------------------


def test_dispatch_emergency_services(env: Env) -> None:
    patient = env.kit.patients.require("PT-0001")
    details = "Patient on home oxygen is gasping and turning blue."
    result: ToolResult = env.registry.call(
        "dispatch_emergency_services",
        {
            "patient_id": "PT-0001",
            "emergency": "breathing_difficulty",
            "address_confirmed": True,
            "details": details,
        },
    )
    assert result.ok and result.ends_episode and result.flags.escalation
    body = json.loads(result.content)
    assert body["status"] == "dispatched" and body["details"] == details
    assert body["dispatch"]["address"] == patient.address
    stored = env.kit.dispatches.require(body["dispatch"]["id"])
    assert stored.emergency == "breathing_difficulty" and stored.address_confirmed
    assert details not in json.dumps(env.world.to_dict())  # free text is never stored


def test_dispatch_with_unconfirmed_address(env: Env) -> None:
    first = env.call(
        "dispatch_emergency_services",
        patient_id="PT-0002",
        emergency="unresponsive",
        address_confirmed=False,
        details="Caller says her father does not respond.",
    )
    assert first["dispatch"]["id"] == "DP-0001"
    assert "not confirmed" in first["instructions"]
    second = env.call(
        "dispatch_emergency_services",
        patient_id="PT-0002",
        emergency="fall_injury",
        address_confirmed=True,
        details="x",
    )
    assert second["dispatch"]["id"] == "DP-0002"


def test_dispatch_emergency_services_misuse(env: Env) -> None:
    args = {"patient_id": "PT-0001", "emergency": "cardiac_arrest", "address_confirmed": True, "details": "x"}
    assert env.fail_with("dispatch_emergency_services", {**args, "patient_id": "PT-9999"}) == "not_found"
    assert env.fail_with("dispatch_emergency_services", {**args, "emergency": "heart attack"}) == "invalid_arguments"
    assert env.fail_with("dispatch_emergency_services", {**args, "address_confirmed": "maybe"}) == "invalid_arguments"
    assert env.fail_with("dispatch_emergency_services", {k: v for k, v in args.items() if k != "details"}) == (
        "invalid_arguments"
    )
    assert env.world.changed() == {}


def test_transfer_to_human(env: Env) -> None:
    summary = "Patient disputes the copay on her CPAP mask."
    result = env.registry.call(
        "transfer_to_human", {"reason": "complaint", "summary": summary, "subject_id": "PT-0001"}
    )
    assert result.ok and result.ends_episode and result.flags.escalation
    body = json.loads(result.content)
    handoff = env.kit.handoffs.require(body["handoff_id"])
    assert handoff.reason == "complaint" and handoff.subject_id == "PT-0001"
    assert summary not in json.dumps(env.world.to_dict())


def test_transfer_to_human_misuse(env: Env) -> None:
    assert env.fail("transfer_to_human", reason="bored", summary="x") == "invalid_arguments"
    assert env.fail("transfer_to_human", reason="other") == "invalid_arguments"


# -- invariants, ids and speed ---------------------------------------------------------------


def test_invariants_detect_violations(env: Env) -> None:
    assert env.registry.check_invariants() == []
    item = env.kit.catalogue.require("EQ-01")
    env.kit.catalogue.put(item.id, item.model_copy(update={"stock": -1}))
    rx = env.kit.prescriptions.require("RX-0001")
    env.kit.prescriptions.put(rx.id, rx.model_copy(update={"refills_left": -2}))
    slot = env.kit.delivery_slots.require("DS-001")
    env.kit.delivery_slots.put(slot.id, slot.model_copy(update={"booked": slot.capacity + 1}))
    problems = env.registry.check_invariants()
    assert len(problems) == 3
    assert all(p.startswith("medical_supply: ") for p in problems)
    env.world.reset()


def test_created_ids_are_deterministic(env: Env) -> None:
    assert next_id(env.kit.dispatches, "DP-", 4) == "DP-0001"
    template = Dispatch(id="", patient_id="PT-0001", emergency="other", address="x", address_confirmed=True)
    for k in range(1, 40):
        env.kit.dispatches.put(f"DP-{k:04d}", template.model_copy(update={"id": f"DP-{k:04d}"}))
        assert next_id(env.kit.dispatches, "DP-", 4) == f"DP-{k + 1:04d}"
    env.world.reset()
    # orders are numbered per prescription: a scenario's RX-9001 gives EO-9001-1, EO-9001-2...
    rx = env.orderable()
    env.kit.prescriptions.put("RX-9001", rx.model_copy(update={"id": "RX-9001"}))
    first = env.call("create_equipment_order", patient_id="PT-0001", prescription_id="RX-9001")
    assert first["id"] == order_id_for("RX-9001", 1) == "EO-9001-1"
    env.call("cancel_equipment_order", order_id="EO-9001-1", reason="patient_request")
    assert env.call("create_equipment_order", patient_id="PT-0001", prescription_id="RX-9001")["id"] == "EO-9001-2"
    # an id already taken (a scenario record) is skipped
    env.world.reset()
    env.kit.prescriptions.put("RX-9001", rx.model_copy(update={"id": "RX-9001"}))
    env.kit.equipment_orders.put(
        "EO-9001-1",
        EquipmentOrder(
            id="EO-9001-1",
            patient_id="PT-0001",
            prescription_id="RX-OTHER",
            item_id=rx.item_id,
            quantity=1,
            status="delivered",
            copay_cents=0,
        ),
    )
    assert env.call("create_equipment_order", patient_id="PT-0001", prescription_id="RX-9001")["id"] == "EO-9001-2"
    env.world.reset()


def test_tool_calls_are_fast(env: Env) -> None:
    phone = env.kit.patients.require("PT-0001").phone
    args = {"phone": phone}
    call = env.registry.call
    start = time.perf_counter()
    for _ in range(2000):
        call("lookup_patient", args)
    per_call = (time.perf_counter() - start) / 2000
    assert per_call < 200e-6  # about 5 µs on a laptop; generous for loaded CI machines


def test_patient_records_are_frozen(env: Env) -> None:
    patient: Patient = env.kit.patients.require("PT-0001")
    with pytest.raises(ValidationError):
        patient.name = "Changed"  # type: ignore[misc]
