"""Records of the retail orders system and its world state.

Money is always in integer cents. Reasons are closed enums (``Literal``), never free text,
so that two runs that do the same thing reach states with the same hash. Ids are readable
and deterministic: customers ``C0001``, orders ``#W0001``, products ``P001``, payments
``PAY0001``; refunds, returns and exchanges are numbered per order (``RF-W0042-1``,
``R-W0042-1``, ``X-W0042-1``) so that the id of a record does not depend on what was done
to other orders before.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from envsim.world import Record, WorldState
from tools_mock.common import Handoff

OrderStatus = Literal["pending", "processing", "shipped", "delivered", "cancelled"]
PaymentStatus = Literal["authorized", "captured", "voided"]
PaymentMethod = Literal["credit_card", "paypal", "gift_card"]
Membership = Literal["regular", "silver", "gold"]
CancelReason = Literal[
    "no_longer_needed", "ordered_by_mistake", "found_better_price", "shipping_too_slow", "duplicate_order", "other"
]
RefundReason = Literal[
    "damaged",
    "defective",
    "wrong_item",
    "not_as_described",
    "late_delivery",
    "order_cancelled",
    "returned",
    "goodwill",
    "other",
]
ReturnReason = Literal[
    "damaged", "defective", "wrong_item", "not_as_described", "size_or_fit", "no_longer_needed", "other"
]
ExchangeReason = Literal["size_or_fit", "color", "defective", "damaged", "other"]
ReturnStatus = Literal["requested", "received"]
ExchangeStatus = Literal["requested", "shipped"]


class Address(Record):
    """A US postal address (normalised: single spaces, title case, 2-letter state, 5-digit ZIP)."""

    line1: str
    line2: str | None = None
    city: str
    state: str
    zip_code: str


class Customer(Record):
    """A customer account; ``email`` is lower case and ``phone`` is ``ddd-ddd-dddd``."""

    id: str
    first_name: str
    last_name: str
    email: str
    phone: str
    address: Address
    membership: Membership = "regular"


class Product(Record):
    """One sellable variant (e.g. a colour and size) of a product family; variants of a family share a price."""

    id: str
    name: str
    family: str
    variant: str
    price_cents: int
    stock: int


class ItemQuantity(Record):
    """A product of an order and a number of units of it (a tool argument)."""

    product_id: str = Field(description='Product id of an item of the order, e.g. "P012".')
    quantity: int = Field(default=1, ge=1, description="Number of units (at least 1).")


class LineItem(Record):
    """One line of an order, as it was bought."""

    product_id: str
    name: str
    unit_price_cents: int
    quantity: int


class Order(Record):
    """An order with its line items and what has happened to their units since.

    ``total_cents`` is the sum of the lines and ``refunded_cents`` what was paid back.
    ``refunded_units``, ``returned_units`` and ``exchanged_units`` map a product of the order to a
    positive number of units, in the order of the lines. A unit is either exchanged, or kept,
    returned and/or refunded: ``exchanged + max(returned, refunded) <= quantity`` per line.
    """

    id: str
    customer_id: str
    status: OrderStatus
    placed_on: str
    items: tuple[LineItem, ...]
    total_cents: int
    shipping_address: Address
    payment_id: str
    tracking_number: str | None = None
    cancel_reason: CancelReason | None = None
    refunded_cents: int = 0
    refunded_units: dict[str, int] = Field(default_factory=dict)
    returned_units: dict[str, int] = Field(default_factory=dict)
    exchanged_units: dict[str, int] = Field(default_factory=dict)


class Payment(Record):
    """The payment of one order: authorized when placed, captured when processed, voided if cancelled before."""

    id: str
    order_id: str
    customer_id: str
    method: PaymentMethod
    amount_cents: int
    status: PaymentStatus
    card_last4: str | None = None


class Refund(Record):
    """Money paid back on an order's payment, for some of its units (``items``: product id -> units)."""

    id: str
    order_id: str
    payment_id: str
    amount_cents: int
    reason: RefundReason
    items: dict[str, int]


class ReturnRequest(Record):
    """Units of a delivered order that the customer sends back (``items``: product id -> units)."""

    id: str
    order_id: str
    items: dict[str, int]
    reason: ReturnReason
    status: ReturnStatus = "requested"


class Exchange(Record):
    """Units of a delivered order swapped for another variant of the same product family."""

    id: str
    order_id: str
    product_id: str
    new_product_id: str
    quantity: int
    reason: ExchangeReason
    status: ExchangeStatus = "requested"


class RetailState(WorldState):
    """Every table of the retail system."""

    customers: dict[str, Customer]
    orders: dict[str, Order]
    products: dict[str, Product]
    payments: dict[str, Payment]
    refunds: dict[str, Refund]
    returns: dict[str, ReturnRequest]
    exchanges: dict[str, Exchange]
    handoffs: dict[str, Handoff]
