"""The banking (card fraud) toolkit: identity checks, cards, transactions, fraud cases and disputes.

Example:
    >>> from envsim.tools import ToolRegistry
    >>> from envsim.world import World
    >>> from tools_mock.banking.fixtures import small
    >>> tools = ToolRegistry([BankingToolkit(World(small(0)))])
    >>> tools.call("freeze_card", {"card_id": "CD00001"}).content
    '{"card_id":"CD00001","status":"frozen"}'
    >>> tools.call("freeze_card", {"card_id": "CD00001"}).error_type
    'rule_violation'
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any, ClassVar

from envsim.errors import RecordNotFound, RuleViolation
from envsim.tools import Toolkit, tool
from envsim.world import Table, World, WorldState
from tools_mock.banking import fixtures
from tools_mock.banking.fixtures import dispute_id_for
from tools_mock.banking.models import (
    Account,
    BankingState,
    Card,
    Customer,
    Dispute,
    DisputeReason,
    FraudCase,
    LossKind,
    ReplacementCard,
    Shipping,
    Transaction,
)
from tools_mock.common import Handoff, HumanHandoff

MAX_TRANSACTIONS = 50


def _next_id(table: Table[Any], prefix: str, width: int) -> str:
    """The first free id ``prefix`` + zero-padded number, starting after the table's size (deterministic)."""
    n = len(table) + 1
    while (key := f"{prefix}{n:0{width}d}") in table:
        n += 1
    return key


def _normalize_phone(phone: str) -> str:
    """``NNN-NNN-NNNN`` from any spelling of a 10-digit (or +1 11-digit) phone number, else ``""``."""
    digits = "".join(ch for ch in phone if ch.isdigit())
    if len(digits) == 11 and digits[0] == "1":
        digits = digits[1:]
    if len(digits) != 10:
        return ""
    return f"{digits[:3]}-{digits[3:6]}-{digits[6:]}"


class BankingToolkit(HumanHandoff, Toolkit):
    """A retail bank's card-fraud desk: verify customers, freeze or replace cards, open fraud cases and disputes."""

    name = "banking"
    state_model = BankingState
    fixtures: ClassVar[dict[str, Callable[[int], WorldState]]] = {
        "default": fixtures.default,
        "small": fixtures.small,
    }

    def __init__(self, world: World) -> None:
        """Take the banking tables from ``world``."""
        super().__init__(world)
        self.customers = world.table("customers", Customer)
        self.accounts = world.table("accounts", Account)
        self.cards = world.table("cards", Card)
        self.transactions = world.table("transactions", Transaction)
        self.fraud_cases = world.table("fraud_cases", FraudCase)
        self.disputes = world.table("disputes", Dispute)
        self.replacement_cards = world.table("replacement_cards", ReplacementCard)
        self.handoffs = world.table("handoffs", Handoff)

    # ------------------------------------------------------------------ read tools

    @tool()
    def verify_customer(self, phone: str, date_of_birth: str) -> dict[str, str]:
        """Verify a caller's identity from their phone number and date of birth; returns their customer id.

        Args:
            phone: The phone number on file, 10 digits in any format (e.g. "415-555-0134").
            date_of_birth: The date of birth, as YYYY-MM-DD.
        """
        normalized = _normalize_phone(phone)
        if not normalized:
            raise RuleViolation(f"phone {phone!r} is not a 10-digit phone number")
        found = self.customers.lookup("phone", normalized)
        if not found:
            raise RecordNotFound(f"no customer with phone {normalized!r}")
        customer = found[0]
        if customer.date_of_birth != date_of_birth.strip():
            raise RuleViolation("identity not verified: the date of birth does not match the one on file")
        return {"customer_id": customer.id, "name": customer.name, "status": "verified"}

    @tool()
    def get_customer(self, customer_id: str) -> Customer:
        """Get a customer's profile.

        Args:
            customer_id: The customer's id, e.g. "BC0001".
        """
        return self.customers.require(customer_id, "customer")

    @tool()
    def list_accounts(self, customer_id: str) -> list[Account]:
        """List a customer's accounts with their balances (in cents).

        Args:
            customer_id: The customer's id, e.g. "BC0001".
        """
        self.customers.require(customer_id, "customer")
        return sorted(self.accounts.lookup("customer_id", customer_id), key=lambda a: a.id)

    @tool()
    def list_cards(self, customer_id: str) -> list[Card]:
        """List a customer's cards with their status and last four digits.

        Args:
            customer_id: The customer's id, e.g. "BC0001".
        """
        self.customers.require(customer_id, "customer")
        return sorted(self.cards.lookup("customer_id", customer_id), key=lambda c: c.id)

    @tool()
    def find_card(self, customer_id: str, last4: str) -> Card:
        """Find a customer's card from the last four digits of its number.

        Args:
            customer_id: The customer's id, e.g. "BC0001".
            last4: The last four digits of the card number.
        """
        self.customers.require(customer_id, "customer")
        for card in self.cards.lookup("last4", last4.strip()):
            if card.customer_id == customer_id:
                return card
        raise RecordNotFound(f"customer {customer_id!r} has no card ending in {last4!r}")

    @tool()
    def list_transactions(self, card_id: str, limit: int = 10) -> list[Transaction]:
        """List a card's transactions, most recent first.

        Args:
            card_id: The card's id, e.g. "CD00001".
            limit: How many transactions to return, from 1 to 50.
        """
        if not 1 <= limit <= MAX_TRANSACTIONS:
            raise RuleViolation(f"limit must be between 1 and {MAX_TRANSACTIONS}, got {limit}")
        self.cards.require(card_id, "card")
        txns = sorted(self.transactions.lookup("card_id", card_id), key=lambda t: (t.timestamp, t.id), reverse=True)
        return txns[:limit]

    @tool()
    def get_transaction(self, transaction_id: str) -> Transaction:
        """Get one transaction.

        Args:
            transaction_id: The transaction's id, e.g. "TX000001".
        """
        return self.transactions.require(transaction_id, "transaction")

    @tool()
    def list_cases(self, card_id: str) -> dict[str, list[FraudCase] | list[Dispute] | list[ReplacementCard]]:
        """List the fraud cases, disputes and replacement orders of a card.

        Args:
            card_id: The card's id, e.g. "CD00001".
        """
        self.cards.require(card_id, "card")
        return {
            "fraud_cases": sorted(self.fraud_cases.lookup("card_id", card_id), key=lambda r: r.id),
            "disputes": sorted(self.disputes.lookup("card_id", card_id), key=lambda r: r.id),
            "replacement_cards": sorted(self.replacement_cards.lookup("card_id", card_id), key=lambda r: r.id),
        }

    # ------------------------------------------------------------------ write tools

    @tool(write=True)
    def freeze_card(self, card_id: str) -> dict[str, str]:
        """Freeze an active card temporarily; it can be unfrozen later.

        Args:
            card_id: The card's id, e.g. "CD00001".
        """
        card = self.cards.require(card_id, "card")
        if card.status != "active":
            raise RuleViolation(f"card {card_id!r} is {card.status}; only an active card can be frozen")
        self.cards.put(card_id, card.model_copy(update={"status": "frozen"}))
        return {"card_id": card_id, "status": "frozen"}

    @tool(write=True)
    def unfreeze_card(self, card_id: str) -> dict[str, str]:
        """Unfreeze a frozen card so that it can be used again.

        Args:
            card_id: The card's id, e.g. "CD00001".
        """
        card = self.cards.require(card_id, "card")
        if card.status != "frozen":
            raise RuleViolation(f"card {card_id!r} is {card.status}; only a frozen card can be unfrozen")
        if card.reported is not None:
            raise RuleViolation(f"card {card_id!r} was reported {card.reported} and cannot be reactivated")
        self.cards.put(card_id, card.model_copy(update={"status": "active"}))
        return {"card_id": card_id, "status": "active"}

    @tool(write=True)
    def report_card_lost_or_stolen(self, card_id: str, kind: LossKind) -> dict[str, str]:
        """Report a card lost or stolen: the card is cancelled for good and a fraud case is opened.

        Args:
            card_id: The card's id, e.g. "CD00001".
            kind: Whether the card was lost or stolen.
        """
        card = self.cards.require(card_id, "card")
        if card.status == "cancelled":
            raise RuleViolation(f"card {card_id!r} is already cancelled")
        self.cards.put(card_id, card.model_copy(update={"status": "cancelled", "reported": kind}))
        case_id = _next_id(self.fraud_cases, "FC", 4)
        self.fraud_cases.put(case_id, FraudCase(id=case_id, customer_id=card.customer_id, card_id=card_id, kind=kind))
        return {"card_id": card_id, "status": "cancelled", "fraud_case_id": case_id}

    @tool(write=True)
    def open_fraud_case(self, card_id: str, transaction_ids: list[str]) -> FraudCase:
        """Open a fraud case for suspicious transactions on a card.

        Args:
            card_id: The card's id, e.g. "CD00001".
            transaction_ids: The ids of the suspicious transactions; all must be on this card.
        """
        card = self.cards.require(card_id, "card")
        if not transaction_ids:
            raise RuleViolation("a fraud case needs at least one transaction id")
        ids = tuple(sorted(set(transaction_ids)))
        if len(ids) != len(transaction_ids):
            raise RuleViolation("transaction_ids lists the same transaction twice")
        for txn_id in ids:
            txn = self.transactions.require(txn_id, "transaction")
            if txn.card_id != card_id:
                raise RuleViolation(f"transaction {txn_id!r} is on card {txn.card_id!r}, not on {card_id!r}")
        for case in self.fraud_cases.lookup("card_id", card_id):
            if case.status == "open":
                already = sorted(set(case.transaction_ids) & set(ids))
                if already:
                    raise RuleViolation(f"transaction(s) {', '.join(already)} are already in open fraud case {case.id}")
        case_id = _next_id(self.fraud_cases, "FC", 4)
        case = FraudCase(
            id=case_id,
            customer_id=card.customer_id,
            card_id=card_id,
            kind="unauthorized_activity",
            transaction_ids=ids,
        )
        self.fraud_cases.put(case_id, case)
        return case

    @tool(write=True)
    def dispute_transaction(self, transaction_id: str, reason: DisputeReason) -> dict[str, str | int]:
        """Dispute a posted card transaction; an unauthorized one gets a provisional credit of its amount.

        Args:
            transaction_id: The transaction's id, e.g. "TX000001".
            reason: Why the customer disputes it.
        """
        txn = self.transactions.require(transaction_id, "transaction")
        dispute_id = dispute_id_for(transaction_id)
        if txn.status == "disputed" or dispute_id in self.disputes:
            raise RuleViolation(f"transaction {transaction_id!r} is already disputed")
        if txn.status == "pending":
            raise RuleViolation(f"transaction {transaction_id!r} is still pending; it can be disputed once posted")
        if txn.status != "posted":
            raise RuleViolation(f"transaction {transaction_id!r} was already {txn.status}")
        if txn.amount_cents <= 0:
            raise RuleViolation(f"transaction {transaction_id!r} is a refund or credit, not a charge")
        account = self.accounts.require(txn.account_id, "account")
        credit = txn.amount_cents if reason == "unauthorized" else 0
        self.disputes.put(
            dispute_id,
            Dispute(
                id=dispute_id,
                transaction_id=transaction_id,
                card_id=txn.card_id,
                account_id=txn.account_id,
                reason=reason,
                amount_cents=txn.amount_cents,
                provisional_credit_cents=credit,
            ),
        )
        self.transactions.put(transaction_id, txn.model_copy(update={"status": "disputed"}))
        balance = account.balance_cents + credit
        if credit:
            self.accounts.put(account.id, account.model_copy(update={"balance_cents": balance}))
        return {
            "dispute_id": dispute_id,
            "transaction_id": transaction_id,
            "status": "open",
            "amount_cents": txn.amount_cents,
            "provisional_credit_cents": credit,
            "balance_cents": balance,
        }

    @tool(write=True)
    def order_replacement_card(self, card_id: str, shipping: Shipping = "standard") -> ReplacementCard:
        """Order a replacement for a cancelled or frozen card.

        Args:
            card_id: The id of the card to replace, e.g. "CD00001".
            shipping: Standard (5-7 business days) or expedited (1-2 business days).
        """
        card = self.cards.require(card_id, "card")
        if card.status == "active":
            raise RuleViolation(f"card {card_id!r} is active; freeze it or report it lost or stolen first")
        for order in self.replacement_cards.lookup("card_id", card_id):
            if order.status in ("ordered", "shipped"):
                raise RuleViolation(f"card {card_id!r} already has replacement {order.id} {order.status}")
        order_id = _next_id(self.replacement_cards, "RC", 4)
        order = ReplacementCard(id=order_id, card_id=card_id, customer_id=card.customer_id, shipping=shipping)
        self.replacement_cards.put(order_id, order)
        return order

    # ------------------------------------------------------------------ invariants

    def check_invariants(self) -> list[str]:
        """Violations: an active card reported lost/stolen, credits above disputed amounts, double disputes."""
        out: list[str] = []
        for card in self.cards.values():
            if card.status == "active" and card.reported is not None:
                out.append(f"card {card.id} is active but was reported {card.reported}")
        per_txn: Counter[str] = Counter()
        for dispute in self.disputes.values():
            per_txn[dispute.transaction_id] += 1
            if not 0 <= dispute.provisional_credit_cents <= dispute.amount_cents:
                out.append(
                    f"dispute {dispute.id} credits {dispute.provisional_credit_cents} cents "
                    f"for {dispute.amount_cents} cents disputed"
                )
            txn = self.transactions.get(dispute.transaction_id)
            if txn is None:
                out.append(f"dispute {dispute.id} is about missing transaction {dispute.transaction_id}")
            elif dispute.amount_cents > txn.amount_cents:
                out.append(
                    f"dispute {dispute.id} disputes {dispute.amount_cents} cents of a "
                    f"{txn.amount_cents}-cent transaction {txn.id}"
                )
        out.extend(f"transaction {txn_id} is disputed {n} times" for txn_id, n in per_txn.items() if n > 1)
        return out
