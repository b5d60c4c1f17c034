"""Tools of the medical supply system: patients, prescriptions, insurance, orders, deliveries.

Business rules (each broken rule is a ``rule_violation`` error observation):

- an order fills an *active*, unexpired prescription of the same patient that has refills
  left and no other open order, for an item in stock; it uses one refill and the stock;
- a delivery is booked into a slot with room left, for an order that is neither delivered
  nor cancelled (re-booking frees the previous slot);
- an order is cancelled only before delivery; cancelling gives back the stock, the refill
  and the delivery slot;
- emergency services go to the address on record; the caller's description is only echoed.
"""

from __future__ import annotations

import re
from datetime import date as Date
from typing import Annotated, TypeVar

from pydantic import BaseModel, Field

from envsim.errors import RecordNotFound, RuleViolation
from envsim.tools import Toolkit, tool
from envsim.world import Table, World
from tools_mock.common import Handoff, HumanHandoff
from tools_mock.medical_supply.fixtures import FIXTURES
from tools_mock.medical_supply.models import (
    OPEN_ORDER_STATUSES,
    TODAY,
    CancelReason,
    DeliverySlot,
    Dispatch,
    DispatchConfirmation,
    Eligibility,
    EmergencyType,
    EquipmentItem,
    EquipmentOrder,
    InsurancePlan,
    ItemCategory,
    MedicalSupplyState,
    Patient,
    Prescription,
    PrescriptionStatus,
    copay_for,
    order_id_for,
)

_NON_DIGITS = re.compile(r"\D")
R = TypeVar("R", bound=BaseModel)


def next_id(table: Table[R], prefix: str, width: int) -> str:
    """The first free id ``f"{prefix}{n:0{width}d}"`` after the contiguous run from 1.

    Deterministic (a function of the table's keys only) with O(log n) lookups, where
    ``len(table)`` would scan every row. Equals ``len(table) + 1`` when ids run 1..n.
    """
    template = f"{prefix}%0{width}d"
    get = table.get
    if get(template % 1) is None:
        return template % 1
    low, high = 1, 2  # invariant: id ``low`` taken; ``high`` is probed next
    while get(template % high) is not None:
        low, high = high, high * 2
    while high - low > 1:  # id ``low`` taken, id ``high`` free
        mid = (low + high) // 2
        if get(template % mid) is not None:
            low = mid
        else:
            high = mid
    return template % high


class MedicalSupplyToolkit(HumanHandoff, Toolkit):
    """Home medical equipment supplier: oxygen, CPAP, mobility aids, diabetes supplies."""

    name = "medical_supply"
    state_model = MedicalSupplyState
    fixtures = FIXTURES

    def __init__(self, world: World) -> None:
        super().__init__(world)
        self.patients = world.table("patients", Patient)
        self.prescriptions = world.table("prescriptions", Prescription)
        self.catalogue = world.table("catalogue", EquipmentItem)
        self.insurance_plans = world.table("insurance_plans", InsurancePlan)
        self.equipment_orders = world.table("equipment_orders", EquipmentOrder)
        self.delivery_slots = world.table("delivery_slots", DeliverySlot)
        self.dispatches = world.table("dispatches", Dispatch)
        self.handoffs = world.table("handoffs", Handoff)

    # -- helpers --------------------------------------------------------------------------

    def _patient(self, patient_id: str) -> Patient:
        return self.patients.require(patient_id, "patient")

    def _order(self, order_id: str) -> EquipmentOrder:
        return self.equipment_orders.require(order_id, "equipment order")

    def _plan_of(self, patient: Patient) -> InsurancePlan | None:
        if patient.insurance_plan_id is None:
            return None
        return self.insurance_plans.get(patient.insurance_plan_id)

    # -- patients -------------------------------------------------------------------------

    @tool()
    def lookup_patient(self, phone: str) -> Patient:
        """Find a patient by phone number (for example 555-0142).

        Args:
            phone: The phone number the patient is calling from or gives, digits with or without dashes.
        """
        found = self.patients.lookup("phone", phone.strip())
        if not found:
            digits = _NON_DIGITS.sub("", phone)
            if len(digits) == 7:
                found = self.patients.lookup("phone", f"{digits[:3]}-{digits[3:]}")
        if not found:
            raise RecordNotFound(f"no patient with phone {phone!r}")
        if len(found) > 1:
            raise RuleViolation(
                f"{len(found)} patients share phone {phone!r}; "
                "ask for the patient's full name and date of birth and use find_patient"
            )
        return found[0]

    @tool()
    def find_patient(self, name: str, date_of_birth: Date) -> Patient:
        """Find a patient by full name and date of birth (to verify identity or when the phone is unknown).

        Args:
            name: The patient's full name, first then last (case does not matter).
            date_of_birth: The patient's date of birth, YYYY-MM-DD.
        """
        wanted = " ".join(name.split()).casefold()
        for patient in self.patients.lookup("date_of_birth", date_of_birth.isoformat()):
            if patient.name.casefold() == wanted:
                return patient
        raise RecordNotFound(f"no patient named {name!r} born on {date_of_birth.isoformat()}")

    @tool()
    def get_patient(self, patient_id: str) -> Patient:
        """Get a patient's record: name, phone, date of birth, address and insurance plan.

        Args:
            patient_id: The patient's id, like PT-0001.
        """
        return self._patient(patient_id)

    # -- prescriptions and catalogue ------------------------------------------------------

    @tool()
    def list_prescriptions(self, patient_id: str, status: PrescriptionStatus | None = None) -> list[Prescription]:
        """List a patient's prescriptions: item, quantity per fill, refills left, expiry and status.

        Args:
            patient_id: The patient's id, like PT-0001.
            status: Only prescriptions with this status; all of them when omitted.
        """
        self._patient(patient_id)
        found = self.prescriptions.lookup("patient_id", patient_id)
        if status is not None:
            found = [rx for rx in found if rx.status == status]
        return sorted(found, key=lambda rx: rx.id)

    @tool()
    def get_item(self, item_id: str) -> EquipmentItem:
        """Get one catalogue item: name, category, unit price in cents and units in stock.

        Args:
            item_id: The item's id, like EQ-01.
        """
        return self.catalogue.require(item_id, "catalogue item")

    @tool()
    def list_catalogue(self, category: ItemCategory | None = None) -> list[EquipmentItem]:
        """List the equipment and supplies catalogue, with prices in cents and stock.

        Args:
            category: Only items of this category; the whole catalogue when omitted.
        """
        if category is None:
            return list(self.catalogue.values())
        return self.catalogue.lookup("category", category)

    # -- insurance ------------------------------------------------------------------------

    @tool()
    def check_insurance_eligibility(
        self, patient_id: str, item_id: str, quantity: Annotated[int, Field(ge=1, le=100)] = 1
    ) -> Eligibility:
        """Check whether a patient's insurance covers an item, and the copay in cents.

        Args:
            patient_id: The patient's id, like PT-0001.
            item_id: The catalogue item's id, like EQ-01.
            quantity: How many units (the prescription's quantity per fill).
        """
        patient = self._patient(patient_id)
        item = self.catalogue.require(item_id, "catalogue item")
        plan = self._plan_of(patient)
        percent, copay = copay_for(item, quantity, plan)
        if patient.insurance_plan_id is None:
            reason = "the patient has no insurance on file; they pay the full price"
        elif plan is None:
            reason = f"insurance plan {patient.insurance_plan_id!r} is unknown; the patient pays the full price"
        elif plan.status != "active":
            reason = f"the patient's plan {plan.name} ({plan.id}) is {plan.status}; the patient pays the full price"
        elif percent == 0:
            reason = f"{plan.name} does not cover {item.category} items; the patient pays the full price"
        else:
            reason = f"{plan.name} covers {percent}% of {item.category} items"
        return Eligibility(
            patient_id=patient_id,
            item_id=item_id,
            quantity=quantity,
            insurance_plan_id=patient.insurance_plan_id,
            covered=percent > 0,
            coverage_percent=percent,
            total_price_cents=item.unit_price_cents * quantity,
            copay_cents=copay,
            reason=reason,
        )

    # -- orders ---------------------------------------------------------------------------

    @tool()
    def list_equipment_orders(self, patient_id: str) -> list[EquipmentOrder]:
        """List a patient's equipment orders with their status and delivery slot.

        Args:
            patient_id: The patient's id, like PT-0001.
        """
        self._patient(patient_id)
        return sorted(self.equipment_orders.lookup("patient_id", patient_id), key=lambda o: o.id)

    @tool()
    def get_equipment_order(self, order_id: str) -> EquipmentOrder:
        """Get one equipment order: item, quantity, status, copay and delivery slot.

        Args:
            order_id: The order's id, like EO-0012-1.
        """
        return self._order(order_id)

    @tool(write=True)
    def create_equipment_order(self, patient_id: str, prescription_id: str) -> EquipmentOrder:
        """Order one fill of a prescription; uses one refill and reserves the stock. Schedule the delivery next.

        Args:
            patient_id: The patient's id, like PT-0001.
            prescription_id: The prescription to fill, like RX-0001; it must belong to the patient.
        """
        patient = self._patient(patient_id)
        rx = self.prescriptions.require(prescription_id, "prescription")
        if rx.patient_id != patient_id:
            raise RuleViolation(f"prescription {prescription_id} does not belong to patient {patient_id}")
        if rx.status != "active":
            raise RuleViolation(f"prescription {prescription_id} is {rx.status}; the patient needs a new prescription")
        if rx.expires_on < TODAY:
            raise RuleViolation(
                f"prescription {prescription_id} expired on {rx.expires_on}; the patient needs a new prescription"
            )
        if rx.refills_left < 1:
            raise RuleViolation(f"prescription {prescription_id} has no refills left; the prescriber must renew it")
        previous = self.equipment_orders.lookup("prescription_id", prescription_id)
        for other in previous:
            if other.status in OPEN_ORDER_STATUSES:
                raise RuleViolation(
                    f"prescription {prescription_id} already has open order {other.id} "
                    f"({other.status}); schedule or cancel that order instead"
                )
        item = self.catalogue.require(rx.item_id, "catalogue item")
        if item.stock < rx.quantity:
            raise RuleViolation(f"{item.name} ({item.id}) is out of stock: {item.stock} left, {rx.quantity} needed")
        _, copay = copay_for(item, rx.quantity, self._plan_of(patient))
        fill = len(previous) + 1
        order_id = order_id_for(prescription_id, fill)
        while order_id in self.equipment_orders:  # only when a scenario removed an earlier order
            fill += 1
            order_id = order_id_for(prescription_id, fill)
        order = EquipmentOrder(
            id=order_id,
            patient_id=patient_id,
            prescription_id=prescription_id,
            item_id=item.id,
            quantity=rx.quantity,
            status="pending",
            copay_cents=copay,
        )
        self.equipment_orders.put(order_id, order)
        self.catalogue.put(item.id, item.model_copy(update={"stock": item.stock - rx.quantity}))
        self.prescriptions.put(rx.id, rx.model_copy(update={"refills_left": rx.refills_left - 1}))
        return order

    @tool()
    def list_delivery_slots(self, date: Date | None = None, include_full: bool = False) -> list[DeliverySlot]:
        """List delivery slots (date, time window, capacity and deliveries booked).

        Args:
            date: Only slots on this date, YYYY-MM-DD; every upcoming slot when omitted.
            include_full: Also list slots that have no room left.
        """
        slots = self.delivery_slots.values() if date is None else self.delivery_slots.lookup("date", date.isoformat())
        return [s for s in slots if s.date >= TODAY and (include_full or s.booked < s.capacity)]

    @tool(write=True)
    def schedule_delivery(self, order_id: str, slot_id: str) -> EquipmentOrder:
        """Book the delivery of an order into a slot (re-booking moves it out of its previous slot).

        Args:
            order_id: The order's id, like EO-0012-1.
            slot_id: The delivery slot's id, like DS-001, from list_delivery_slots.
        """
        order = self._order(order_id)
        slot = self.delivery_slots.require(slot_id, "delivery slot")
        if order.status in ("delivered", "cancelled"):
            raise RuleViolation(f"order {order_id} is {order.status}; it cannot be scheduled")
        if order.slot_id == slot_id:
            raise RuleViolation(f"order {order_id} is already scheduled in slot {slot_id}")
        if slot.date < TODAY:
            raise RuleViolation(f"slot {slot_id} ({slot.date}) is in the past")
        if slot.booked >= slot.capacity:
            raise RuleViolation(f"slot {slot_id} ({slot.date} {slot.window}) is full; pick another slot")
        if order.slot_id is not None:
            previous = self.delivery_slots.get(order.slot_id)
            if previous is not None and previous.booked > 0:
                self.delivery_slots.put(previous.id, previous.model_copy(update={"booked": previous.booked - 1}))
        self.delivery_slots.put(slot_id, slot.model_copy(update={"booked": slot.booked + 1}))
        updated = order.model_copy(update={"status": "scheduled", "slot_id": slot_id})
        self.equipment_orders.put(order_id, updated)
        return updated

    @tool(write=True)
    def cancel_equipment_order(self, order_id: str, reason: CancelReason) -> EquipmentOrder:
        """Cancel an order that has not been delivered; gives back the stock, the refill and the delivery slot.

        Args:
            order_id: The order's id, like EO-0012-1.
            reason: Why the order is cancelled.
        """
        order = self._order(order_id)
        if order.status == "delivered":
            raise RuleViolation(
                f"order {order_id} was delivered on {order.delivered_on}; a delivered order cannot be cancelled"
            )
        if order.status == "cancelled":
            raise RuleViolation(f"order {order_id} is already cancelled")
        item = self.catalogue.get(order.item_id)
        if item is not None:
            self.catalogue.put(item.id, item.model_copy(update={"stock": item.stock + order.quantity}))
        rx = self.prescriptions.get(order.prescription_id)
        if rx is not None:
            self.prescriptions.put(rx.id, rx.model_copy(update={"refills_left": rx.refills_left + 1}))
        if order.slot_id is not None:
            slot = self.delivery_slots.get(order.slot_id)
            if slot is not None and slot.booked > 0:
                self.delivery_slots.put(slot.id, slot.model_copy(update={"booked": slot.booked - 1}))
        updated = order.model_copy(update={"status": "cancelled", "slot_id": None, "cancel_reason": reason})
        self.equipment_orders.put(order_id, updated)
        return updated

    # -- emergencies ----------------------------------------------------------------------

    @tool(write=True, ends_episode=True, escalation=True)
    def dispatch_emergency_services(
        self, patient_id: str, emergency: EmergencyType, address_confirmed: bool, details: str
    ) -> DispatchConfirmation:
        """Send emergency services (ambulance) to the patient's address on record; this ends the conversation.

        Use it at once for a medical emergency: someone not breathing or unresponsive, chest pain,
        severe breathing difficulty, a fall with injury, or life-support equipment failing.

        Args:
            patient_id: The patient's id, like PT-0001.
            emergency: The kind of emergency.
            address_confirmed: Whether the caller confirmed that the patient is at the address on record.
            details: What is happening, in one or two sentences, for the responders.
        """
        patient = self._patient(patient_id)
        dispatch_id = next_id(self.dispatches, "DP-", 4)
        dispatch = Dispatch(
            id=dispatch_id,
            patient_id=patient_id,
            emergency=emergency,
            address=patient.address,
            address_confirmed=address_confirmed,
        )
        self.dispatches.put(dispatch_id, dispatch)
        instructions = "Stay on the line with the caller until responders arrive."
        if not address_confirmed:
            instructions = (
                "The address on record was not confirmed: responders will call the patient's phone "
                f"({patient.phone}) on the way. " + instructions
            )
        return DispatchConfirmation(dispatch=dispatch, status="dispatched", details=details, instructions=instructions)

    # -- invariants -----------------------------------------------------------------------

    def check_invariants(self) -> list[str]:
        """Negative stock or refills, and slots booked beyond capacity (or below zero)."""
        out: list[str] = []
        for item in self.catalogue.values():
            if item.stock < 0:
                out.append(f"catalogue item {item.id} has negative stock {item.stock}")
        for rx in self.prescriptions.values():
            if rx.refills_left < 0:
                out.append(f"prescription {rx.id} has negative refills_left {rx.refills_left}")
        for slot in self.delivery_slots.values():
            if slot.booked > slot.capacity:
                out.append(f"delivery slot {slot.id} has {slot.booked} bookings for capacity {slot.capacity}")
            if slot.booked < 0:
                out.append(f"delivery slot {slot.id} has negative bookings {slot.booked}")
        return out
