"""Deterministic seed data for the retail system.

Everything comes from one ``random.Random(seed)`` and small built-in word lists, so the same
seed always gives the same world and a different seed a different one. The first orders
cycle through every kind of order (pending, processing, shipped, delivered, delivered with a
partial refund / a return / an exchange, cancelled before or after capture, cancelled and
refunded) so that even the small fixture holds each kind, whatever the seed; the rest are drawn
by weight. So, for every seed: ``#W0001`` pending (payment authorized), ``#W0002`` processing,
``#W0003`` shipped, ``#W0004`` delivered, ``#W0005`` delivered with one unit (of several) refunded, ``#W0006``
delivered with a return, ``#W0007`` delivered with an exchange, ``#W0008`` cancelled before
capture (payment voided), ``#W0009`` cancelled after capture (not refunded yet), ``#W0010``
cancelled and fully refunded.

Example:
    >>> state = small(0)
    >>> len(state.customers), len(state.orders)
    (20, 40)
    >>> small(0) == small(0), small(0) == small(1)
    (True, False)
"""

from __future__ import annotations

import random
from datetime import date, timedelta

from tools_mock.retail.models import (
    Address,
    Customer,
    Exchange,
    LineItem,
    Membership,
    Order,
    OrderStatus,
    Payment,
    PaymentMethod,
    Product,
    RefundReason,
    RetailState,
    ReturnReason,
    ReturnRequest,
)
from tools_mock.retail.models import Refund as RefundRecord

FIRST_NAMES = (
    "Olivia",
    "Liam",
    "Emma",
    "Noah",
    "Ava",
    "Elijah",
    "Sophia",
    "James",
    "Isabella",
    "Lucas",
    "Mia",
    "Mason",
    "Amelia",
    "Ethan",
    "Harper",
    "Aiden",
    "Evelyn",
    "Mateo",
    "Abigail",
    "Logan",
    "Yusuf",
    "Priya",
    "Chen",
    "Fatima",
    "Diego",
    "Hana",
    "Kwame",
    "Ingrid",
    "Raj",
    "Sofia",
    "Omar",
    "Leila",
)
LAST_NAMES = (
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Lopez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Nguyen",
    "Patel",
    "Kim",
    "Silva",
    "Okafor",
    "Kowalski",
    "Haddad",
    "Schmidt",
    "Tanaka",
    "Rossi",
    "Dubois",
    "Novak",
    "Cohen",
    "Ali",
)
STREETS = (
    "Maple",
    "Oak",
    "Pine",
    "Cedar",
    "Elm",
    "Willow",
    "Lake",
    "Hill",
    "Park",
    "Sunset",
    "River",
    "Main",
    "Church",
    "Highland",
    "Meadow",
    "Forest",
    "Spring",
    "Ridge",
    "Valley",
    "Harbor",
)
STREET_TYPES = ("St", "Ave", "Rd", "Blvd", "Ln", "Dr", "Ct", "Way")
CITIES = (
    ("Austin", "TX", "787"),
    ("Denver", "CO", "802"),
    ("Seattle", "WA", "981"),
    ("Portland", "OR", "972"),
    ("Chicago", "IL", "606"),
    ("Boston", "MA", "021"),
    ("Atlanta", "GA", "303"),
    ("Phoenix", "AZ", "850"),
    ("Columbus", "OH", "432"),
    ("Raleigh", "NC", "276"),
    ("Madison", "WI", "537"),
    ("Tampa", "FL", "336"),
    ("San Diego", "CA", "921"),
    ("Nashville", "TN", "372"),
    ("Omaha", "NE", "681"),
    ("Buffalo", "NY", "142"),
)
EMAIL_DOMAINS = ("example.com", "mail.test", "inbox.test", "post.example")
AREA_CODES = ("212", "303", "312", "404", "415", "503", "512", "602", "617", "702", "713", "919")

# (family, price in cents, colours, sizes); the catalogue does not depend on the seed, its stock does.
CATALOGUE: tuple[tuple[str, int, tuple[str, ...], tuple[str, ...]], ...] = (
    ("Classic T-Shirt", 1999, ("Black", "White", "Navy"), ("S", "M", "L", "XL")),
    ("Zip Hoodie", 4999, ("Grey", "Black", "Olive"), ("S", "M", "L", "XL")),
    ("Running Shoes", 8999, ("Blue", "Red"), ("8", "9", "10", "11")),
    ("Water Bottle", 1499, ("Steel", "Green", "Pink"), ()),
    ("Hiking Backpack", 5999, ("Black", "Orange", "Teal"), ()),
    ("Wireless Earbuds", 7999, ("Black", "White", "Sand"), ()),
    ("Desk Lamp", 3499, ("Black", "Brass", "White"), ()),
    ("Yoga Mat", 2999, ("Purple", "Blue", "Grey"), ()),
    ("Coffee Mug", 1299, ("White", "Red", "Blue"), ()),
    ("Phone Case", 1999, ("Clear", "Black", "Coral"), ()),
)

# Kinds of orders: the first orders take them in turn, the rest are drawn with these weights.
ORDER_KINDS = (
    "pending",
    "processing",
    "shipped",
    "delivered",
    "delivered_refunded",
    "delivered_returned",
    "delivered_exchanged",
    "cancelled_voided",
    "cancelled_captured",
    "cancelled_refunded",
)
KIND_WEIGHTS = (10, 10, 15, 35, 5, 5, 3, 7, 4, 6)
KIND_STATUS: dict[str, OrderStatus] = {
    "pending": "pending",
    "processing": "processing",
    "shipped": "shipped",
    "delivered": "delivered",
    "delivered_refunded": "delivered",
    "delivered_returned": "delivered",
    "delivered_exchanged": "delivered",
    "cancelled_voided": "cancelled",
    "cancelled_captured": "cancelled",
    "cancelled_refunded": "cancelled",
}
PAYMENT_METHODS: tuple[PaymentMethod, ...] = ("credit_card", "credit_card", "credit_card", "paypal", "gift_card")
MEMBERSHIPS: tuple[Membership, ...] = ("regular", "regular", "regular", "silver", "gold")
REFUND_REASONS: tuple[RefundReason, ...] = ("damaged", "defective", "wrong_item", "late_delivery")
RETURN_REASONS: tuple[ReturnReason, ...] = ("size_or_fit", "no_longer_needed", "not_as_described", "defective")
FIRST_DAY = date(2024, 1, 1)


def catalogue(rng: random.Random) -> dict[str, Product]:
    """The products (ids ``P001``...): every colour/size variant of :data:`CATALOGUE`, stock from ``rng``."""
    products: dict[str, Product] = {}
    for family, price, colours, sizes in CATALOGUE:
        for colour in colours:
            for size in sizes or (None,):
                pid = f"P{len(products) + 1:03d}"
                variant = f"{colour} / {size}" if size else colour
                stock = 0 if rng.random() < 0.1 else rng.randrange(1, 40)
                products[pid] = Product(
                    id=pid, name=f"{family} ({variant})", family=family, variant=variant, price_cents=price, stock=stock
                )
    return products


def _address(rng: random.Random) -> Address:
    city, state, zip_prefix = rng.choice(CITIES)
    line2 = f"Apt {rng.randrange(1, 40)}" if rng.random() < 0.25 else None
    return Address(
        line1=f"{rng.randrange(1, 9999)} {rng.choice(STREETS)} {rng.choice(STREET_TYPES)}",
        line2=line2,
        city=city,
        state=state,
        zip_code=f"{zip_prefix}{rng.randrange(100):02d}",
    )


def _customers(rng: random.Random, count: int) -> dict[str, Customer]:
    subscribers = rng.sample(range(10_000_000), count)  # distinct, so every phone number is unique
    customers: dict[str, Customer] = {}
    for n in range(1, count + 1):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        sub = subscribers[n - 1]
        cid = f"C{n:04d}"
        customers[cid] = Customer(
            id=cid,
            first_name=first,
            last_name=last,
            email=f"{first.lower()}.{last.lower()}{n}@{rng.choice(EMAIL_DOMAINS)}",  # n makes it unique
            phone=f"{rng.choice(AREA_CODES)}-{sub // 10_000:03d}-{sub % 10_000:04d}",
            address=_address(rng),
            membership=rng.choice(MEMBERSHIPS),
        )
    return customers


def _order(
    n: int, kind: str, customer: Customer, rng: random.Random, products: list[Product], state: RetailState
) -> None:
    """Add order ``n`` of ``kind`` for ``customer``, with its payment and any refund, return or exchange."""
    oid, num = f"#W{n:04d}", f"W{n:04d}"
    status = KIND_STATUS[kind]
    chosen = rng.sample(products, rng.choice((1, 1, 2, 2, 3, 4)))
    items = [
        LineItem(product_id=p.id, name=p.name, unit_price_cents=p.price_cents, quantity=rng.choice((1, 1, 1, 2, 3)))
        for p in chosen
    ]
    if kind == "delivered_refunded" and items[0].quantity == 1:  # one unit is refunded: keep the refund partial
        items[0] = items[0].model_copy(update={"quantity": 2})
    total = sum(i.unit_price_cents * i.quantity for i in items)
    first = items[0]
    refunded = 0
    refunded_units: dict[str, int] = {}
    returned_units: dict[str, int] = {}
    exchanged_units: dict[str, int] = {}
    if kind == "delivered_refunded":
        refunded, refunded_units = first.unit_price_cents, {first.product_id: 1}
        state.refunds[f"RF-{num}-1"] = RefundRecord(
            id=f"RF-{num}-1",
            order_id=oid,
            payment_id=f"PAY{n:04d}",
            amount_cents=refunded,
            reason=rng.choice(REFUND_REASONS),
            items=refunded_units,
        )
    elif kind == "delivered_returned":
        returned_units = {first.product_id: first.quantity}
        state.returns[f"R-{num}-1"] = ReturnRequest(
            id=f"R-{num}-1",
            order_id=oid,
            items=returned_units,
            reason=rng.choice(RETURN_REASONS),
            status=rng.choice(("requested", "received")),
        )
    elif kind == "delivered_exchanged":
        family = [p for p in products if p.family == chosen[0].family and p.id != first.product_id]
        exchanged_units = {first.product_id: 1}
        state.exchanges[f"X-{num}-1"] = Exchange(
            id=f"X-{num}-1",
            order_id=oid,
            product_id=first.product_id,
            new_product_id=rng.choice(family).id,
            quantity=1,
            reason="size_or_fit",
            status="shipped",
        )
    elif kind == "cancelled_refunded":
        refunded, refunded_units = total, {i.product_id: i.quantity for i in items}
        state.refunds[f"RF-{num}-1"] = RefundRecord(
            id=f"RF-{num}-1",
            order_id=oid,
            payment_id=f"PAY{n:04d}",
            amount_cents=total,
            reason="order_cancelled",
            items=refunded_units,
        )
    shipping = customer.address if rng.random() < 0.9 else _address(rng)
    placed = FIRST_DAY + timedelta(days=rng.randrange(365))
    tracking = f"1Z{rng.randrange(10**10):010d}" if status in ("shipped", "delivered") else None
    method = rng.choice(PAYMENT_METHODS)
    captured = kind not in ("pending", "cancelled_voided")
    state.payments[f"PAY{n:04d}"] = Payment(
        id=f"PAY{n:04d}",
        order_id=oid,
        customer_id=customer.id,
        method=method,
        amount_cents=total,
        status="captured" if captured else ("voided" if status == "cancelled" else "authorized"),
        card_last4=f"{rng.randrange(10_000):04d}" if method == "credit_card" else None,
    )
    state.orders[oid] = Order(
        id=oid,
        customer_id=customer.id,
        status=status,
        placed_on=placed.isoformat(),
        items=tuple(items),
        total_cents=total,
        shipping_address=shipping,
        payment_id=f"PAY{n:04d}",
        tracking_number=tracking,
        cancel_reason=rng.choice(("no_longer_needed", "ordered_by_mistake", "found_better_price"))
        if status == "cancelled"
        else None,
        refunded_cents=refunded,
        refunded_units=refunded_units,
        returned_units=returned_units,
        exchanged_units=exchanged_units,
    )


def generate(seed: int, customers: int, orders: int) -> RetailState:
    """A retail world with ``customers`` customers and ``orders`` orders, all drawn from ``seed``."""
    rng = random.Random(seed)
    state = RetailState(
        customers={}, orders={}, products=catalogue(rng), payments={}, refunds={}, returns={}, exchanges={}, handoffs={}
    )
    state.customers.update(_customers(rng, customers))
    people = list(state.customers.values())
    products = list(state.products.values())
    kinds = rng.choices(ORDER_KINDS, weights=KIND_WEIGHTS, k=orders)
    kinds[: len(ORDER_KINDS)] = ORDER_KINDS[:orders]
    for n, kind in enumerate(kinds, start=1):
        _order(n, kind, rng.choice(people), rng, products, state)
    return state


def default(seed: int) -> RetailState:
    """The default world: 500 customers, 1,000 orders, 53 products."""
    return generate(seed, customers=500, orders=1000)


def small(seed: int) -> RetailState:
    """A small world for fast tests: 20 customers, 40 orders, 53 products."""
    return generate(seed, customers=20, orders=40)
