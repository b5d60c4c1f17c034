"""The retail orders toolkit: look up customers, orders and products; cancel, refund, return, exchange.

Business rules (each broken rule is a ``rule_violation`` error observation):

- only ``pending`` or ``processing`` orders can be cancelled or get a new shipping address;
  cancelling puts the units back in stock and voids a payment that was only authorized;
- only ``delivered`` orders, or ``cancelled`` orders whose payment was captured, can be refunded,
  and never more units than were bought (exchanged units cannot be refunded), so refunds never
  exceed the captured payment;
- only ``delivered`` orders can be returned or exchanged; an exchange is for another variant of
  the same product family (same price) and needs stock, which it takes;
- a unit that was bought is either exchanged, or kept, returned and/or refunded, never both.

Arguments that have the right type but an impossible value (an empty item list, a malformed
ZIP code) give ``invalid_arguments``, like the type errors the registry catches.

Example:
    >>> from envsim.tools import ToolRegistry
    >>> from envsim.world import World
    >>> registry = ToolRegistry([RetailToolkit(World(RetailToolkit.fixtures["small"](0)))])
    >>> registry.call("get_customer", {"customer_id": "C9999"}).content
    '{"error":{"type":"not_found","message":"customer \\'C9999\\' not found"}}'
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from envsim.errors import RecordNotFound, RuleViolation, ToolFailure
from envsim.tools import Toolkit, tool
from envsim.world import Table, World, WorldState
from tools_mock.common import Handoff, HumanHandoff
from tools_mock.retail.fixtures import default as default_fixture
from tools_mock.retail.fixtures import small as small_fixture
from tools_mock.retail.models import (
    Address,
    CancelReason,
    Customer,
    Exchange,
    ExchangeReason,
    ItemQuantity,
    Order,
    OrderStatus,
    Payment,
    Product,
    Refund,
    RefundReason,
    RetailState,
    ReturnReason,
    ReturnRequest,
)


class InvalidArgument(ToolFailure):
    """An argument has the right type but an impossible value (an empty list, a malformed ZIP code)."""

    kind = "invalid_arguments"


class Result(BaseModel):
    """Base of the tools' result models (frozen)."""

    model_config = ConfigDict(frozen=True)


class OrderDetails(Result):
    """An order with its payment and everything done to it since (refunds, returns, exchanges)."""

    order: Order
    payment: Payment | None
    refunds: list[Refund]
    returns: list[ReturnRequest]
    exchanges: list[Exchange]


class OrderSummary(Result):
    """One line of a customer's order list."""

    order_id: str
    status: OrderStatus
    placed_on: str
    total_cents: int
    item_count: int


class CancelResult(Result):
    """The cancelled order, its payment, and what is left to refund (a captured payment is not refunded by itself)."""

    order: Order
    payment: Payment
    refund_due_cents: int


class RefundResult(Result):
    """The refund created, and the order's refund totals after it."""

    refund: Refund
    order_refunded_cents: int
    refundable_left_cents: int


_ZIP = re.compile(r"^(\d{5})(?:-\d{4})?$")
_STATE = re.compile(r"^[A-Za-z]{2}$")


def order_key(order_id: str) -> str:
    """The canonical id of an order: ``"W0042"``, ``"#w0042"`` and ``" #W0042 "`` all become ``"#W0042"``.

    Example:
        >>> order_key(" w0042")
        '#W0042'
    """
    key = order_id.strip().upper()
    return key if key.startswith("#") else f"#{key}"


def normalize_phone(phone: str) -> str:
    """The stored form ``ddd-ddd-dddd`` of a US phone number written any usual way.

    Example:
        >>> normalize_phone("+1 (512) 555-0199")
        '512-555-0199'
    """
    digits = "".join(ch for ch in phone if ch.isdigit())
    if len(digits) == 11 and digits.startswith("1"):
        digits = digits[1:]
    if len(digits) != 10:
        raise InvalidArgument(f"phone number {phone!r} does not have 10 digits")
    return f"{digits[:3]}-{digits[3:6]}-{digits[6:]}"


def _in_line_order(order: Order, counts: dict[str, int], more: dict[str, int] | None = None) -> dict[str, int]:
    """``counts`` (plus ``more``) per product, positive entries only, in the order of the lines.

    Keeping one order makes equal states serialise (and hash) equally, whatever the order of the calls.
    """
    out: dict[str, int] = {}
    for line in order.items:
        pid = line.product_id
        n = counts.get(pid, 0) + more.get(pid, 0) if more is not None else counts.get(pid, 0)
        if n > 0:
            out[pid] = n
    return out


def _words(text: str) -> str:
    """Single spaces and title case: the stored form of address lines, cities and last names."""
    return " ".join(text.split()).title()


class RetailToolkit(HumanHandoff, Toolkit):
    """An online shop's back office: customers, orders, products, payments, refunds, returns and exchanges."""

    name: ClassVar[str] = "retail"
    state_model = RetailState
    fixtures: ClassVar[dict[str, Callable[[int], WorldState]]] = {"default": default_fixture, "small": small_fixture}

    def __init__(self, world: World) -> None:
        """Take the retail tables from ``world``."""
        super().__init__(world)
        self.customers = world.table("customers", Customer)
        self.orders = world.table("orders", Order)
        self.products = world.table("products", Product)
        self.payments = world.table("payments", Payment)
        self.refunds = world.table("refunds", Refund)
        self.returns = world.table("returns", ReturnRequest)
        self.exchanges = world.table("exchanges", Exchange)
        self.handoffs = world.table("handoffs", Handoff)

    # ----------------------------------------------------------------------------- helpers

    def _order(self, order_id: str) -> Order:
        """The order ``order_id`` (``#`` optional, any case), or ``not_found``."""
        return self.orders.require(order_key(order_id), "order")

    @staticmethod
    def _next_id(table: Table[Refund] | Table[ReturnRequest] | Table[Exchange], prefix: str, order_id: str) -> str:
        """``{prefix}-W0042-{n}``: numbered per order, so it does not depend on what happened to other orders.

        The first free number is found by probing keys (an order has few such records), which
        costs the same whatever the number of records in the table or changed in the episode.
        """
        n = 1
        while f"{prefix}-{order_id[1:]}-{n}" in table:
            n += 1
        return f"{prefix}-{order_id[1:]}-{n}"

    @staticmethod
    def _wanted(order: Order, items: list[ItemQuantity]) -> dict[str, int]:
        """Units asked for, per product of the order (repeated products add up)."""
        if not items:
            raise InvalidArgument("items must list at least one product of the order")
        lines = {line.product_id for line in order.items}
        wanted: dict[str, int] = {}
        for item in items:
            pid = item.product_id.strip().upper()
            if pid not in lines:
                raise RuleViolation(
                    f"product {pid!r} is not an item of order {order.id}; "
                    f"its items are {', '.join(line.product_id for line in order.items)}"
                )
            wanted[pid] = wanted.get(pid, 0) + item.quantity
        return wanted

    def _captured_payment(self, order: Order) -> Payment:
        """The payment of an order that may be refunded (delivered, or cancelled after capture)."""
        if order.status not in ("delivered", "cancelled"):
            raise RuleViolation(
                f"order {order.id} is {order.status}; only delivered orders, or cancelled orders "
                "whose payment was captured, can be refunded"
            )
        payment = self.payments.require(order.payment_id, "payment")
        if payment.status != "captured":
            raise RuleViolation(
                f"order {order.id} is {order.status} and its payment was {payment.status}, "
                "never captured: there is nothing to refund"
            )
        return payment

    def _refund(self, order: Order, payment: Payment, wanted: dict[str, int], reason: RefundReason) -> RefundResult:
        """Pay back ``wanted`` units (product id -> units) of ``order``, within what is left to refund."""
        done, exchanged = order.refunded_units, order.exchanged_units
        amount = 0
        for line in order.items:
            pid = line.product_id
            quantity = wanted.get(pid, 0)
            if quantity:
                left = line.quantity - exchanged.get(pid, 0) - done.get(pid, 0)
                if quantity > left:
                    raise RuleViolation(
                        f"only {left} unit(s) of {pid} in order {order.id} can still be refunded "
                        f"(bought {line.quantity}, refunded {done.get(pid, 0)}, exchanged {exchanged.get(pid, 0)})"
                    )
                amount += quantity * line.unit_price_cents
        total = order.refunded_cents + amount
        if total > payment.amount_cents:  # cannot happen while the invariants hold; never pay back more anyway
            raise RuleViolation(
                f"refunding {amount} cents would exceed the {payment.amount_cents} cents captured for order {order.id}"
            )
        refund_id = self._next_id(self.refunds, "RF", order.id)
        refund = Refund(
            id=refund_id,
            order_id=order.id,
            payment_id=payment.id,
            amount_cents=amount,
            reason=reason,
            items=_in_line_order(order, wanted),
        )
        self.refunds.put(refund_id, refund)
        self.orders.put(
            order.id,
            order.model_copy(update={"refunded_units": _in_line_order(order, done, wanted), "refunded_cents": total}),
        )
        return RefundResult(
            refund=refund, order_refunded_cents=total, refundable_left_cents=payment.amount_cents - total
        )

    # ----------------------------------------------------------------------------- read tools

    @tool()
    def find_customer_by_email(self, email: str) -> Customer:
        """Find a customer by email address (case does not matter).

        Args:
            email: The customer's email address, e.g. "olivia.smith12@example.com".
        """
        found = self.customers.lookup("email", email.strip().lower())
        if not found:
            raise RecordNotFound(f"no customer with email {email!r}")
        return found[0]

    @tool()
    def find_customer_by_phone(self, phone: str) -> Customer:
        """Find a customer by phone number (any usual US format).

        Args:
            phone: The customer's 10-digit US phone number, e.g. "512-555-0199" or "(512) 555 0199".
        """
        found = self.customers.lookup("phone", normalize_phone(phone))
        if not found:
            raise RecordNotFound(f"no customer with phone number {phone!r}")
        return found[0]

    @tool()
    def find_customers_by_name(self, first_name: str, last_name: str) -> list[Customer]:
        """Find the customers with a given first and last name (there may be several: confirm with another detail).

        Args:
            first_name: The customer's first name.
            last_name: The customer's last name.
        """
        first = first_name.strip().lower()
        found = [c for c in self.customers.lookup("last_name", _words(last_name)) if c.first_name.lower() == first]
        if not found:
            raise RecordNotFound(f"no customer named {first_name} {last_name}")
        return found

    @tool()
    def get_customer(self, customer_id: str) -> Customer:
        """Get a customer's profile: name, email, phone, address and membership.

        Args:
            customer_id: The customer's id, e.g. "C0042".
        """
        return self.customers.require(customer_id.strip().upper(), "customer")

    @tool()
    def list_customer_orders(self, customer_id: str, status: OrderStatus | None = None) -> list[OrderSummary]:
        """List a customer's orders, oldest first, optionally only those with a given status.

        Args:
            customer_id: The customer's id, e.g. "C0042".
            status: Only orders with this status; all orders when omitted.
        """
        cid = customer_id.strip().upper()
        self.customers.require(cid, "customer")
        orders = sorted(self.orders.lookup("customer_id", cid), key=lambda o: (o.placed_on, o.id))
        return [
            OrderSummary(
                order_id=o.id,
                status=o.status,
                placed_on=o.placed_on,
                total_cents=o.total_cents,
                item_count=sum(line.quantity for line in o.items),
            )
            for o in orders
            if status is None or o.status == status
        ]

    @tool()
    def get_order(self, order_id: str) -> OrderDetails:
        """Get an order: its items, status, shipping address, payment, and any refunds, returns and exchanges.

        Args:
            order_id: The order's id, e.g. "#W0042".
        """
        order = self._order(order_id)
        return OrderDetails(
            order=order,
            payment=self.payments.get(order.payment_id),
            refunds=self.refunds.lookup("order_id", order.id),
            returns=self.returns.lookup("order_id", order.id),
            exchanges=self.exchanges.lookup("order_id", order.id),
        )

    @tool()
    def get_product(self, product_id: str) -> Product:
        """Get a product variant: name, family, variant, price and units in stock.

        Args:
            product_id: The product's id, e.g. "P007".
        """
        return self.products.require(product_id.strip().upper(), "product")

    @tool()
    def list_product_variants(self, product_id: str) -> list[Product]:
        """List every variant (colour, size) of a product's family, with stock: the candidates for an exchange.

        Args:
            product_id: Any product of the family, e.g. "P007".
        """
        product = self.products.require(product_id.strip().upper(), "product")
        return sorted(self.products.lookup("family", product.family), key=lambda p: p.id)

    # ----------------------------------------------------------------------------- write tools

    @tool(write=True)
    def cancel_order(self, order_id: str, reason: CancelReason) -> CancelResult:
        """Cancel a pending or processing order; its units go back in stock. A captured payment must then be refunded.

        Args:
            order_id: The order's id, e.g. "#W0042".
            reason: Why the customer cancels.
        """
        order = self._order(order_id)
        if order.status == "cancelled":
            raise RuleViolation(f"order {order.id} is already cancelled")
        if order.status not in ("pending", "processing"):
            raise RuleViolation(
                f"order {order.id} is {order.status} and can no longer be cancelled; "
                "once delivered, the customer can return it"
            )
        for line in order.items:
            product = self.products.get(line.product_id)
            if product is not None:
                self.products.put(product.id, product.model_copy(update={"stock": product.stock + line.quantity}))
        payment = self.payments.require(order.payment_id, "payment")
        if payment.status == "authorized":
            payment = payment.model_copy(update={"status": "voided"})
            self.payments.put(payment.id, payment)
        order = order.model_copy(update={"status": "cancelled", "cancel_reason": reason})
        self.orders.put(order.id, order)
        due = payment.amount_cents - order.refunded_cents if payment.status == "captured" else 0
        return CancelResult(order=order, payment=payment, refund_due_cents=due)

    @tool(write=True)
    def refund_order(self, order_id: str, reason: RefundReason) -> RefundResult:
        """Refund everything not yet refunded of a delivered order, or of a cancelled order whose payment was captured.

        Args:
            order_id: The order's id, e.g. "#W0042".
            reason: Why the money is paid back.
        """
        order = self._order(order_id)
        payment = self._captured_payment(order)
        done, exchanged = order.refunded_units, order.exchanged_units
        wanted = {
            line.product_id: left
            for line in order.items
            if (left := line.quantity - exchanged.get(line.product_id, 0) - done.get(line.product_id, 0)) > 0
        }
        if not wanted:
            note = " (exchanged units cannot be refunded)" if exchanged else ""
            raise RuleViolation(f"order {order.id} is {order.status} and already fully refunded{note}")
        return self._refund(order, payment, wanted, reason)

    @tool(write=True)
    def refund_items(self, order_id: str, items: list[ItemQuantity], reason: RefundReason) -> RefundResult:
        """Refund some units of a delivered order (or of a cancelled order whose payment was captured).

        Args:
            order_id: The order's id, e.g. "#W0042".
            items: The products of the order to refund, each with a number of units.
            reason: Why the money is paid back.
        """
        order = self._order(order_id)
        payment = self._captured_payment(order)
        return self._refund(order, payment, self._wanted(order, items), reason)

    @tool(write=True)
    def create_return(self, order_id: str, items: list[ItemQuantity], reason: ReturnReason) -> ReturnRequest:
        """Open a return for some units of a delivered order (the refund is a separate step).

        Args:
            order_id: The order's id, e.g. "#W0042".
            items: The products of the order to send back, each with a number of units.
            reason: Why the customer returns them.
        """
        order = self._order(order_id)
        if order.status != "delivered":
            hint = "; cancel it instead" if order.status in ("pending", "processing") else ""
            raise RuleViolation(f"order {order.id} is {order.status}; only delivered orders can be returned{hint}")
        wanted = self._wanted(order, items)
        done, exchanged = order.returned_units, order.exchanged_units
        for line in order.items:
            pid = line.product_id
            quantity = wanted.get(pid, 0)
            left = line.quantity - exchanged.get(pid, 0) - done.get(pid, 0)
            if quantity > left:
                raise RuleViolation(
                    f"only {left} unit(s) of {pid} in order {order.id} can still be returned "
                    f"(bought {line.quantity}, returned {done.get(pid, 0)}, exchanged {exchanged.get(pid, 0)})"
                )
        return_id = self._next_id(self.returns, "R", order.id)
        request = ReturnRequest(id=return_id, order_id=order.id, items=_in_line_order(order, wanted), reason=reason)
        self.returns.put(return_id, request)
        self.orders.put(order.id, order.model_copy(update={"returned_units": _in_line_order(order, done, wanted)}))
        return request

    @tool(write=True)
    def exchange_item(
        self, order_id: str, product_id: str, new_product_id: str, reason: ExchangeReason, quantity: int = 1
    ) -> Exchange:
        """Exchange units of a delivered order for another variant (colour, size) of the same product, if in stock.

        Args:
            order_id: The order's id, e.g. "#W0042".
            product_id: The product of the order to exchange, e.g. "P003".
            new_product_id: The variant the customer wants instead; see list_product_variants.
            reason: Why the customer exchanges it.
            quantity: How many units to exchange (at least 1).
        """
        order = self._order(order_id)
        if order.status != "delivered":
            raise RuleViolation(f"order {order.id} is {order.status}; only delivered orders can be exchanged")
        if quantity < 1:
            raise InvalidArgument("quantity must be at least 1")
        pid, new_pid = product_id.strip().upper(), new_product_id.strip().upper()
        line = next((line for line in order.items if line.product_id == pid), None)
        if line is None:
            raise RuleViolation(
                f"product {pid!r} is not an item of order {order.id}; "
                f"its items are {', '.join(line.product_id for line in order.items)}"
            )
        old = self.products.require(pid, "product")
        new = self.products.require(new_pid, "product")
        if new.id == old.id:
            raise RuleViolation(f"{new.id} is the product already ordered; pick another variant")
        if new.family != old.family:
            raise RuleViolation(
                f"{new.id} ({new.family}) is not a variant of {old.id} ({old.family}); "
                "exchanges are only for another variant of the same product"
            )
        exchanged, returned, refunded = (
            order.exchanged_units.get(pid, 0),
            order.returned_units.get(pid, 0),
            order.refunded_units.get(pid, 0),
        )
        left = line.quantity - exchanged - max(returned, refunded)
        if quantity > left:
            raise RuleViolation(
                f"only {left} unit(s) of {pid} in order {order.id} can still be exchanged (bought {line.quantity}, "
                f"exchanged {exchanged}, returned {returned}, refunded {refunded})"
            )
        if new.stock < quantity:
            raise RuleViolation(f"{new.id} ({new.name}) has {new.stock} unit(s) in stock, {quantity} needed")
        self.products.put(new.id, new.model_copy(update={"stock": new.stock - quantity}))
        units = _in_line_order(order, order.exchanged_units, {pid: quantity})
        self.orders.put(order.id, order.model_copy(update={"exchanged_units": units}))
        exchange_id = self._next_id(self.exchanges, "X", order.id)
        exchange = Exchange(
            id=exchange_id, order_id=order.id, product_id=pid, new_product_id=new.id, quantity=quantity, reason=reason
        )
        self.exchanges.put(exchange_id, exchange)
        return exchange

    @tool(write=True)
    def update_shipping_address(
        self, order_id: str, line1: str, city: str, state: str, zip_code: str, line2: str | None = None
    ) -> Order:
        """Change the shipping address of an order that has not shipped yet (pending or processing).

        Args:
            order_id: The order's id, e.g. "#W0042".
            line1: Street address, e.g. "12 Maple St".
            city: City.
            state: Two-letter US state code, e.g. "TX".
            zip_code: Five-digit ZIP code (ZIP+4 is accepted).
            line2: Apartment, suite or unit, if any.
        """
        order = self._order(order_id)
        if order.status == "cancelled":
            raise RuleViolation(f"order {order.id} is cancelled; its shipping address can no longer be changed")
        if order.status not in ("pending", "processing"):
            raise RuleViolation(
                f"order {order.id} is {order.status}; the shipping address can only be changed before the order ships"
            )
        zip_match = _ZIP.match(zip_code.strip())
        if zip_match is None:
            raise InvalidArgument(f"zip_code {zip_code!r} is not a 5-digit ZIP code")
        if not _STATE.match(state.strip()):
            raise InvalidArgument(f"state {state!r} is not a two-letter state code")
        if not line1.strip() or not city.strip():
            raise InvalidArgument("line1 and city must not be empty")
        address = Address(
            line1=_words(line1),
            line2=(_words(line2) or None) if line2 else None,
            city=_words(city),
            state=state.strip().upper(),
            zip_code=zip_match.group(1),
        )
        order = order.model_copy(update={"shipping_address": address})
        self.orders.put(order.id, order)
        return order

    # ----------------------------------------------------------------------------- invariants

    def check_invariants(self) -> list[str]:
        """Violations of: stock >= 0; refunds of an order == its ``refunded_cents`` <= its captured payment;
        line quantities consistent with the refund, return and exchange records; references that resolve."""
        out: list[str] = []
        for product in self.products.values():
            if product.stock < 0:
                out.append(f"product {product.id} has negative stock ({product.stock})")
        refunded: dict[str, int] = {}
        units: dict[tuple[str, str, str], int] = {}  # (kind, order, product) -> units
        for refund in self.refunds.values():
            refunded[refund.order_id] = refunded.get(refund.order_id, 0) + refund.amount_cents
            if refund.amount_cents <= 0:
                out.append(f"refund {refund.id} has a non-positive amount")
            for pid, n in refund.items.items():
                key = ("refunded", refund.order_id, pid)
                units[key] = units.get(key, 0) + n
        for ret in self.returns.values():
            for pid, n in ret.items.items():
                key = ("returned", ret.order_id, pid)
                units[key] = units.get(key, 0) + n
        for exchange in self.exchanges.values():
            key = ("exchanged", exchange.order_id, exchange.product_id)
            units[key] = units.get(key, 0) + exchange.quantity
            new = self.products.get(exchange.new_product_id)
            old = self.products.get(exchange.product_id)
            if new is None or old is None or new.family != old.family:
                out.append(f"exchange {exchange.id} is not between two variants of one product family")
        for order in self.orders.values():
            out.extend(self._order_violations(order, refunded.pop(order.id, 0), units))
        out.extend(f"refunds of unknown order {oid}" for oid in refunded)
        out.extend(
            f"{kind} units of {pid} recorded for order {oid}, which has no such item" for kind, oid, pid in units
        )
        return out

    def _order_violations(self, order: Order, refunded: int, units: dict[tuple[str, str, str], int]) -> list[str]:
        """Violations for one order; pops the order's entries from ``units``."""
        out: list[str] = []
        oid = order.id
        if order.customer_id not in self.customers:
            out.append(f"order {oid} belongs to unknown customer {order.customer_id}")
        total = sum(line.unit_price_cents * line.quantity for line in order.items)
        if order.total_cents != total:
            out.append(f"order {oid} total {order.total_cents} != sum of its lines {total}")
        payment = self.payments.get(order.payment_id)
        captured = 0
        if payment is None:
            out.append(f"order {oid} has no payment {order.payment_id}")
        else:
            if payment.amount_cents != order.total_cents:
                out.append(f"payment {payment.id} amount {payment.amount_cents} != order {oid} total {total}")
            if payment.status == "captured":
                captured = payment.amount_cents
            elif order.status in ("processing", "shipped", "delivered"):
                out.append(f"order {oid} is {order.status} but its payment is {payment.status}")
        if refunded != order.refunded_cents:
            out.append(f"order {oid} records {order.refunded_cents} cents refunded but its refunds sum to {refunded}")
        if refunded > captured:
            out.append(f"refunds of order {oid} ({refunded}) exceed its captured payment ({captured})")
        prices = {line.product_id: line.unit_price_cents for line in order.items}
        by_units = sum(prices.get(pid, 0) * n for pid, n in order.refunded_units.items())
        if by_units != order.refunded_cents:
            out.append(f"order {oid} refunded units are worth {by_units} cents, not {order.refunded_cents}")
        for kind, counts in (
            ("refunded", order.refunded_units),
            ("returned", order.returned_units),
            ("exchanged", order.exchanged_units),
        ):
            for pid, n in counts.items():
                if pid not in prices:
                    out.append(f"order {oid} has {kind} units of {pid}, which is not one of its items")
                elif n <= 0:
                    out.append(f"order {oid} has {n} {kind} units of {pid}")
            for pid in prices:
                counted, marked = units.pop((kind, oid, pid), 0), counts.get(pid, 0)
                if counted != marked:
                    out.append(f"order {oid} line {pid}: {marked} units marked {kind}, records say {counted}")
        for line in order.items:
            pid = line.product_id
            exchanged = order.exchanged_units.get(pid, 0)
            kept = max(order.returned_units.get(pid, 0), order.refunded_units.get(pid, 0))
            if line.quantity <= 0:
                out.append(f"order {oid} line {pid} has a quantity of {line.quantity}")
            if exchanged + kept > line.quantity:
                out.append(
                    f"order {oid} line {pid}: exchanged {exchanged} + returned/refunded {kept} > bought {line.quantity}"
                )
        return out


__all__ = ["InvalidArgument", "RetailToolkit"]
