"""Deterministic seed data for the medical supply system.

Every fixture is a function of the seed alone (``random.Random(seed)``, fixed dates from
``2026-12-01``, never the real clock): the same seed gives identical data.

Whatever the seed, the first patients cover the cases tests and scenarios rely on:

- ``PT-0001``: a well-insured patient with an orderable prescription and a pending order;
- ``PT-0002``: an uninsured patient with an orderable prescription and a scheduled delivery;
- ``PT-0003``: a terminated plan, an expired and a cancelled prescription;
- ``PT-0004``: an active prescription without refills (already delivered) and one for an
  out-of-stock item.

Example:
    >>> state = small(7)
    >>> len(state.patients), len(state.catalogue)
    (15, 22)
    >>> small(7) == small(7)
    True
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import date, timedelta

from envsim.world import WorldState
from tools_mock.medical_supply.models import (
    TODAY,
    DeliverySlot,
    DeliveryWindow,
    EquipmentItem,
    EquipmentOrder,
    InsurancePlan,
    ItemCategory,
    MedicalSupplyState,
    OrderStatus,
    Patient,
    Prescription,
    PrescriptionStatus,
    copay_for,
    order_id_for,
)

FIRST_SLOT_DATE = date(2026, 12, 1)
SLOT_DAYS = 15
WINDOWS: tuple[DeliveryWindow, ...] = ("08:00-10:00", "10:00-12:00", "13:00-15:00", "15:00-17:00")

# name, category, unit price (cents), life support
CATALOGUE: tuple[tuple[str, ItemCategory, int, bool], ...] = (
    ("Stationary oxygen concentrator (5 L/min), monthly rental", "oxygen", 32_000, True),
    ("Portable oxygen concentrator, monthly rental", "oxygen", 45_000, True),
    ("Oxygen cylinder refill (size E)", "oxygen", 3_500, True),
    ("Nasal cannula with tubing (pack of 10)", "oxygen", 1_800, False),
    ("CPAP machine", "sleep_apnea", 65_000, False),
    ("CPAP full-face mask", "sleep_apnea", 9_500, False),
    ("CPAP filters (pack of 6)", "sleep_apnea", 1_500, False),
    ("Heated humidifier water chamber", "sleep_apnea", 4_500, False),
    ("Compressor nebuliser", "respiratory", 6_500, False),
    ("Nebuliser kit, mask and tubing", "respiratory", 1_200, False),
    ("Home mechanical ventilator, monthly rental", "respiratory", 250_000, True),
    ("Standard wheelchair", "mobility", 28_000, False),
    ("Lightweight transport wheelchair", "mobility", 22_000, False),
    ("Rollator walker with seat", "mobility", 12_000, False),
    ("Semi-electric hospital bed, monthly rental", "mobility", 95_000, False),
    ("Glucose test strips (box of 50)", "diabetes", 3_800, False),
    ("Blood glucose meter", "diabetes", 2_500, False),
    ("Lancets (box of 100)", "diabetes", 900, False),
    ("Continuous glucose monitor sensor, 14 days", "diabetes", 7_500, False),
    ("Fingertip pulse oximeter", "monitoring", 3_000, False),
    ("Automatic blood pressure monitor", "monitoring", 4_500, False),
    ("Apnea monitor, monthly rental", "monitoring", 18_000, True),
)
CONSUMABLE_ITEMS = frozenset({3, 4, 7, 8, 10, 16, 18, 19})  # 1-based catalogue positions ordered by the box

# id, name, status, coverage percent per category
PLANS: tuple[tuple[str, str, str, dict[ItemCategory, int]], ...] = (
    (
        "INS-01",
        "Medicare Part B",
        "active",
        {"oxygen": 80, "sleep_apnea": 80, "respiratory": 80, "mobility": 80, "diabetes": 80},
    ),
    (
        "INS-02",
        "BlueShield PPO Gold",
        "active",
        {"oxygen": 90, "sleep_apnea": 90, "respiratory": 90, "mobility": 90, "diabetes": 90, "monitoring": 90},
    ),
    ("INS-03", "Aetna HMO Silver", "active", {"oxygen": 70, "sleep_apnea": 70, "respiratory": 70, "diabetes": 70}),
    ("INS-04", "UnitedCare Basic", "active", {"oxygen": 50, "diabetes": 50}),
    (
        "INS-05",
        "State Medicaid",
        "active",
        {"oxygen": 100, "respiratory": 100, "mobility": 100, "diabetes": 100, "sleep_apnea": 100},
    ),
    ("INS-06", "Cigna Bronze", "terminated", {"oxygen": 60, "diabetes": 60, "mobility": 60}),
)

FIRST_NAMES = (
    "Margaret",
    "Harold",
    "Dorothy",
    "Walter",
    "Evelyn",
    "Frank",
    "Gloria",
    "Raymond",
    "Shirley",
    "Eugene",
    "Barbara",
    "Arthur",
    "Patricia",
    "Howard",
    "Linda",
    "Gerald",
    "Carol",
    "Dennis",
    "Nancy",
    "Roger",
    "Maria",
    "Jose",
    "Aisha",
    "Mohammed",
    "Mei",
    "Wei",
    "Priya",
    "Rahul",
    "Fatima",
    "Omar",
    "Sofia",
    "Luis",
    "Grace",
    "Daniel",
    "Hannah",
    "Samuel",
    "Olivia",
    "Noah",
    "Chloe",
    "Ethan",
)
LAST_NAMES = (
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Nguyen",
    "Hill",
    "Flores",
    "Green",
    "Adams",
)
STREETS = (
    "Maple",
    "Oak",
    "Cedar",
    "Elm",
    "Pine",
    "Birch",
    "Willow",
    "Chestnut",
    "Lakeview",
    "Hillcrest",
    "Sunset",
    "Riverside",
    "Park",
    "Washington",
    "Lincoln",
    "Jefferson",
    "Madison",
    "Franklin",
    "Highland",
    "Meadow",
)
STREET_TYPES = ("St", "Ave", "Rd", "Blvd", "Ln", "Dr", "Ct")
CITIES = (
    ("Springfield", "IL", "627"),
    ("Columbus", "OH", "432"),
    ("Madison", "WI", "537"),
    ("Albany", "NY", "122"),
    ("Salem", "OR", "973"),
    ("Austin", "TX", "787"),
    ("Raleigh", "NC", "276"),
    ("Boise", "ID", "837"),
)
PRESCRIBERS = (
    "Dr. Anita Rao",
    "Dr. Michael Chen",
    "Dr. Susan Patel",
    "Dr. Robert Okafor",
    "Dr. Laura Becker",
    "Dr. James Whitfield",
    "Dr. Elena Morales",
    "Dr. David Kim",
)


def _day(d: date) -> str:
    return d.isoformat()


class _Builder:
    """Accumulates the records of one fixture; every choice comes from ``rng``."""

    def __init__(self, seed: int, n_patients: int) -> None:
        self.rng = random.Random(seed)
        self.n_patients = n_patients
        self.today = date.fromisoformat(TODAY)
        self.patients: dict[str, Patient] = {}
        self.prescriptions: dict[str, Prescription] = {}
        self.catalogue: dict[str, EquipmentItem] = {}
        self.plans: dict[str, InsurancePlan] = {}
        self.orders: dict[str, EquipmentOrder] = {}
        self.slots: dict[str, DeliverySlot] = {}
        self.out_of_stock = ""

    def build(self) -> MedicalSupplyState:
        self._catalogue()
        self._plans()
        self._slots()
        self._patients()
        self._fill_slots()
        return MedicalSupplyState(
            patients=self.patients,
            prescriptions=self.prescriptions,
            catalogue=self.catalogue,
            insurance_plans=self.plans,
            equipment_orders=self.orders,
            delivery_slots=self.slots,
            dispatches={},
            handoffs={},
        )

    # -- reference tables ---------------------------------------------------------------

    def _catalogue(self) -> None:
        rng = self.rng
        out_of_stock = rng.randrange(len(CATALOGUE))
        for i, (name, category, price, life_support) in enumerate(CATALOGUE):
            item_id = f"EQ-{i + 1:02d}"
            stock = 0 if i == out_of_stock else rng.randint(3, 40)
            if i == out_of_stock:
                self.out_of_stock = item_id
            self.catalogue[item_id] = EquipmentItem(
                id=item_id,
                name=name,
                category=category,
                unit_price_cents=price,
                stock=stock,
                life_support=life_support,
            )

    def _plans(self) -> None:
        for plan_id, name, status, coverage in PLANS:
            self.plans[plan_id] = InsurancePlan(
                id=plan_id,
                name=name,
                status="active" if status == "active" else "terminated",
                coverage_percent=dict(coverage),
            )

    def _slots(self) -> None:
        rng = self.rng
        n = 0
        full = {rng.randrange(SLOT_DAYS * len(WINDOWS)) for _ in range(4)}
        for day in range(SLOT_DAYS):
            when = _day(FIRST_SLOT_DATE + timedelta(days=day))
            for window in WINDOWS:
                n += 1
                slot_id = f"DS-{n:03d}"
                capacity = rng.randint(2, 6)
                self.slots[slot_id] = DeliverySlot(
                    id=slot_id, date=when, window=window, capacity=capacity, booked=capacity if n - 1 in full else 0
                )

    # -- patients, prescriptions and orders -------------------------------------------

    def _patients(self) -> None:
        rng = self.rng
        phones = rng.sample(range(200, 1000), self.n_patients)  # 555-01xx is left to scenarios
        active_plans = [p for p in self.plans if self.plans[p].status == "active"]
        for i in range(self.n_patients):
            patient_id = f"PT-{i + 1:04d}"
            city, state, zip3 = rng.choice(CITIES)
            address = (
                f"{rng.randint(1, 9899)} {rng.choice(STREETS)} {rng.choice(STREET_TYPES)}, "
                f"{city}, {state} {zip3}{rng.randint(0, 99):02d}"
            )
            born = date(1930, 1, 1) + timedelta(days=rng.randrange(365 * 75))
            plan: str | None
            if i == 0:
                plan = "INS-02"
            elif i == 1:
                plan = None
            elif i == 2:
                plan = "INS-06"
            else:
                roll = rng.random()
                plan = None if roll < 0.08 else "INS-06" if roll < 0.12 else rng.choice(active_plans)
            self.patients[patient_id] = Patient(
                id=patient_id,
                name=f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}",
                phone=f"555-{phones[i]:04d}",
                date_of_birth=_day(born),
                address=address,
                insurance_plan_id=plan,
            )
            self._prescriptions_for(i, patient_id)

    def _prescriptions_for(self, index: int, patient_id: str) -> None:
        rng = self.rng
        in_stock = [k for k, item in self.catalogue.items() if item.stock > 0]
        if index == 0:
            self._rx(patient_id, rng.choice(in_stock), "active", refills=3)
            rx = self._rx(patient_id, rng.choice(in_stock), "active", refills=2)
            self._order(rx, "pending")
        elif index == 1:
            self._rx(patient_id, rng.choice(in_stock), "active", refills=2)
            rx = self._rx(patient_id, rng.choice(in_stock), "active", refills=1)
            self._order(rx, "scheduled")
        elif index == 2:
            self._rx(patient_id, rng.choice(in_stock), "expired", refills=2)
            self._rx(patient_id, rng.choice(in_stock), "cancelled", refills=1)
        elif index == 3:
            rx = self._rx(patient_id, rng.choice(in_stock), "active", refills=0)
            self._order(rx, "delivered")
            self._rx(patient_id, self.out_of_stock, "active", refills=2)
        elif rng.random() < 0.88:
            for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
                roll = rng.random()
                status: PrescriptionStatus = "active" if roll < 0.78 else "expired" if roll < 0.92 else "cancelled"
                refills = rng.randint(0, 5)
                rx = self._rx(patient_id, rng.choice(list(self.catalogue)), status, refills=refills)
                if status == "cancelled":
                    continue
                roll = rng.random()
                if roll < 0.35:
                    self._order(rx, "delivered")
                elif status == "active" and roll < 0.45:
                    self._order(rx, "scheduled" if rng.random() < 0.6 else "pending")

    def _rx(self, patient_id: str, item_id: str, status: PrescriptionStatus, *, refills: int) -> Prescription:
        rng = self.rng
        rx_id = f"RX-{len(self.prescriptions) + 1:04d}"
        if status == "expired":
            expires = self.today - timedelta(days=rng.randint(1, 300))
        else:
            expires = self.today + timedelta(days=rng.randint(30, 365))
        quantity = rng.randint(1, 3) if int(item_id[3:]) in CONSUMABLE_ITEMS else 1
        rx = Prescription(
            id=rx_id,
            patient_id=patient_id,
            item_id=item_id,
            quantity=quantity,
            refills_left=refills,
            expires_on=_day(expires),
            status=status,
            prescriber=rng.choice(PRESCRIBERS),
        )
        self.prescriptions[rx_id] = rx
        return rx

    def _order(self, rx: Prescription, status: OrderStatus) -> None:
        rng = self.rng
        order_id = order_id_for(rx.id, 1)
        item = self.catalogue[rx.item_id]
        patient = self.patients.get(rx.patient_id)
        plan_id = patient.insurance_plan_id if patient is not None else None
        plan = self.plans.get(plan_id) if plan_id is not None else None
        _, copay = copay_for(item, rx.quantity, plan)
        slot_id: str | None = None
        delivered_on: str | None = None
        if status == "scheduled":
            open_slots = [s for s in self.slots.values() if s.booked < s.capacity]
            slot = rng.choice(open_slots)
            slot_id = slot.id
            self.slots[slot.id] = slot.model_copy(update={"booked": slot.booked + 1})
        elif status == "delivered":
            delivered_on = _day(self.today - timedelta(days=rng.randint(3, 120)))
        self.orders[order_id] = EquipmentOrder(
            id=order_id,
            patient_id=rx.patient_id,
            prescription_id=rx.id,
            item_id=rx.item_id,
            quantity=rx.quantity,
            status=status,
            copay_cents=copay,
            slot_id=slot_id,
            delivered_on=delivered_on,
        )

    def _fill_slots(self) -> None:
        """Bookings from outside this data set; slots not made full keep at least one free place."""
        rng = self.rng
        for slot_id, slot in self.slots.items():
            if slot.booked < slot.capacity:
                extra = rng.randint(0, slot.capacity - slot.booked - 1) if slot.capacity - slot.booked > 1 else 0
                self.slots[slot_id] = slot.model_copy(update={"booked": slot.booked + extra})


def default(seed: int) -> MedicalSupplyState:
    """320 patients with their prescriptions and orders, 22 catalogue items, 6 plans, 60 delivery slots."""
    return _Builder(seed, 320).build()


def small(seed: int) -> MedicalSupplyState:
    """15 patients (the same guaranteed cases as ``default``), for fast tests."""
    return _Builder(seed, 15).build()


FIXTURES: dict[str, Callable[[int], WorldState]] = {"default": default, "small": small}
"""Fixture name → generator, as the toolkit exposes them."""
