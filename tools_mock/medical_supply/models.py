"""Records and state of the home medical equipment (HME) supply system.

Every table is a ``dict[str, Record]`` keyed by the record's ``id``. Dates are ISO strings
(``YYYY-MM-DD``, which compare correctly as strings), money is integer cents, and every
enumerated value (statuses, reasons, emergency types) is a ``Literal`` so that stored state
never holds free text written by the agent.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from envsim.world import Record, WorldState
from tools_mock.common import Handoff

TODAY = "2026-11-30"
"""The simulated current date: prescriptions expiring before it are no longer valid."""

ItemCategory = Literal["oxygen", "sleep_apnea", "respiratory", "mobility", "diabetes", "monitoring"]
PrescriptionStatus = Literal["active", "expired", "cancelled"]
OrderStatus = Literal["pending", "scheduled", "delivered", "cancelled"]
PlanStatus = Literal["active", "terminated"]
DeliveryWindow = Literal["08:00-10:00", "10:00-12:00", "13:00-15:00", "15:00-17:00"]
CancelReason = Literal[
    "patient_request",
    "duplicate_order",
    "prescription_changed",
    "insurance_issue",
    "delivery_problem",
    "other",
]
EmergencyType = Literal[
    "cardiac_arrest",
    "breathing_difficulty",
    "unresponsive",
    "fall_injury",
    "equipment_failure_life_support",
    "other",
]

OPEN_ORDER_STATUSES: frozenset[str] = frozenset({"pending", "scheduled"})
"""Statuses of an order that has not been delivered or cancelled yet."""


def order_id_for(prescription_id: str, fill: int) -> str:
    """The id of the ``fill``-th order of a prescription: ``RX-0012``'s second order is ``EO-0012-2``.

    Local to the prescription, so a scenario author knows the id of an order the agent will
    create (``RX-9001`` → ``EO-9001-1``) without counting the fixture's orders.
    """
    return f"EO-{prescription_id.removeprefix('RX-')}-{fill}"


class Patient(Record):
    """A patient who receives equipment at home."""

    id: str
    name: str
    phone: str
    date_of_birth: str
    address: str
    insurance_plan_id: str | None = None


class Prescription(Record):
    """A prescription for one catalogue item; each fill uses one of ``refills_left``."""

    id: str
    patient_id: str
    item_id: str
    quantity: int
    refills_left: int
    expires_on: str
    status: PrescriptionStatus
    prescriber: str


class EquipmentItem(Record):
    """A catalogue item, its unit price (cents) and the units in stock."""

    id: str
    name: str
    category: ItemCategory
    unit_price_cents: int
    stock: int
    life_support: bool = False


class InsurancePlan(Record):
    """An insurance plan: the percentage of the price it covers, per item category.

    A category missing from ``coverage_percent`` is not covered at all.
    """

    id: str
    name: str
    status: PlanStatus
    coverage_percent: dict[ItemCategory, int]


class DeliverySlot(Record):
    """A delivery window on one date, with how many deliveries it takes and has booked."""

    id: str
    date: str
    window: DeliveryWindow
    capacity: int
    booked: int


class EquipmentOrder(Record):
    """An order filling one prescription; ``copay_cents`` is what the patient pays."""

    id: str
    patient_id: str
    prescription_id: str
    item_id: str
    quantity: int
    status: OrderStatus
    copay_cents: int
    slot_id: str | None = None
    delivered_on: str | None = None
    cancel_reason: CancelReason | None = None


class Dispatch(Record):
    """Emergency services sent to a patient's address on record."""

    id: str
    patient_id: str
    emergency: EmergencyType
    address: str
    address_confirmed: bool


class MedicalSupplyState(WorldState):
    """The tables of the medical supply system."""

    patients: dict[str, Patient]
    prescriptions: dict[str, Prescription]
    catalogue: dict[str, EquipmentItem]
    insurance_plans: dict[str, InsurancePlan]
    equipment_orders: dict[str, EquipmentOrder]
    delivery_slots: dict[str, DeliverySlot]
    dispatches: dict[str, Dispatch]
    handoffs: dict[str, Handoff]


class Eligibility(BaseModel):
    """The answer of an insurance eligibility check (returned, never stored)."""

    model_config = ConfigDict(frozen=True)

    patient_id: str
    item_id: str
    quantity: int
    insurance_plan_id: str | None
    covered: bool
    coverage_percent: int
    total_price_cents: int
    copay_cents: int
    reason: str


class DispatchConfirmation(BaseModel):
    """What the agent sees after dispatching emergency services (the details are only echoed)."""

    model_config = ConfigDict(frozen=True)

    dispatch: Dispatch
    status: Literal["dispatched"]
    details: str
    instructions: str


def copay_for(item: EquipmentItem, quantity: int, plan: InsurancePlan | None) -> tuple[int, int]:
    """``(coverage percent, copay in cents)`` of ``quantity`` units under ``plan`` (rounded half up)."""
    percent = 0
    if plan is not None and plan.status == "active":
        percent = plan.coverage_percent.get(item.category, 0)
    total = item.unit_price_cents * quantity
    return percent, (total * (100 - percent) + 50) // 100
