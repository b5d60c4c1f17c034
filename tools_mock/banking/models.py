"""Records and state of the mocked card-fraud banking system.

Money is in integer cents; timestamps are fixed ISO-8601 strings (never the real clock).
Nothing here stores free text from a tool's arguments: reasons and kinds are enums, so
that equal states hash equally whatever the agent's wording.
"""

from __future__ import annotations

from typing import Literal

from envsim.world import Record, WorldState
from tools_mock.common import Handoff

AccountKind = Literal["checking", "savings"]
AccountStatus = Literal["open", "frozen", "closed"]
CardStatus = Literal["active", "frozen", "cancelled"]
CardNetwork = Literal["visa", "mastercard"]
LossKind = Literal["lost", "stolen"]
TransactionStatus = Literal["posted", "pending", "disputed", "reversed"]
MerchantCategory = Literal["grocery", "restaurant", "travel", "fuel", "online", "entertainment", "utilities", "retail"]
DisputeReason = Literal["unauthorized", "duplicate", "not_received", "incorrect_amount"]
DisputeStatus = Literal["open", "resolved_customer", "resolved_merchant"]
FraudKind = Literal["lost", "stolen", "unauthorized_activity"]
FraudStatus = Literal["open", "closed"]
Shipping = Literal["standard", "expedited"]
ReplacementStatus = Literal["ordered", "shipped", "delivered", "cancelled"]


class Customer(Record):
    """A bank customer; ``phone`` is stored as ``NNN-NNN-NNNN`` and ``date_of_birth`` as ``YYYY-MM-DD``."""

    id: str
    name: str
    phone: str
    date_of_birth: str


class Account(Record):
    """A deposit account owned by one customer."""

    id: str
    customer_id: str
    kind: AccountKind
    balance_cents: int
    status: AccountStatus = "open"


class Card(Record):
    """A debit card linked to one account; ``reported`` is set once reported lost or stolen."""

    id: str
    account_id: str
    customer_id: str
    last4: str
    network: CardNetwork
    expires: str
    status: CardStatus = "active"
    reported: LossKind | None = None


class Transaction(Record):
    """A card transaction; a negative ``amount_cents`` is a merchant refund."""

    id: str
    card_id: str
    account_id: str
    merchant: str
    category: MerchantCategory
    amount_cents: int
    timestamp: str
    status: TransactionStatus = "posted"


class FraudCase(Record):
    """A fraud case on a card: a loss/theft report or suspicious transactions (ids sorted)."""

    id: str
    customer_id: str
    card_id: str
    kind: FraudKind
    transaction_ids: tuple[str, ...] = ()
    status: FraudStatus = "open"


class Dispute(Record):
    """A dispute of one transaction, with the provisional credit granted to the account."""

    id: str
    transaction_id: str
    card_id: str
    account_id: str
    reason: DisputeReason
    amount_cents: int
    provisional_credit_cents: int = 0
    status: DisputeStatus = "open"


class ReplacementCard(Record):
    """A replacement ordered for a cancelled or frozen card."""

    id: str
    card_id: str
    customer_id: str
    shipping: Shipping
    status: ReplacementStatus = "ordered"


class BankingState(WorldState):
    """Every table of the banking system."""

    customers: dict[str, Customer]
    accounts: dict[str, Account]
    cards: dict[str, Card]
    transactions: dict[str, Transaction]
    fraud_cases: dict[str, FraudCase]
    disputes: dict[str, Dispute]
    replacement_cards: dict[str, ReplacementCard]
    handoffs: dict[str, Handoff]
