"""Deterministic seed data for the banking system.

Everything comes from ``random.Random(seed)`` and fixed November 2026 timestamps, so the
same seed always gives the same state (and the same :meth:`envsim.world.World.state_hash`).
A few cards are set apart by position, whatever the seed, so that every fixture holds
each interesting case: every 20th card (from the 3rd) is frozen, every 25th (from the 4th)
was reported lost and has a fraud case, every 15th (from the 6th) has an unauthorized
dispute with its provisional credit, and every 15th (from the 8th) has a reversed
transaction. The most recent transactions (from November 27th) are still pending.

Example:
    >>> state = small(7)
    >>> len(state.customers), next(iter(state.customers))
    (15, 'BC0001')
    >>> small(7) == state
    True
"""

from __future__ import annotations

import random

from tools_mock.banking.models import (
    Account,
    AccountKind,
    BankingState,
    Card,
    CardNetwork,
    Customer,
    Dispute,
    FraudCase,
    MerchantCategory,
    Transaction,
    TransactionStatus,
)

_FIRST = (
    "Ada",
    "Ben",
    "Carla",
    "Dmitri",
    "Elena",
    "Farid",
    "Grace",
    "Hiro",
    "Ines",
    "Jamal",
    "Kira",
    "Luis",
    "Maya",
    "Noah",
    "Olga",
    "Priya",
    "Quentin",
    "Rosa",
    "Sam",
    "Tara",
    "Umar",
    "Vera",
    "Wei",
    "Xena",
    "Yusuf",
    "Zoe",
)
_LAST = (
    "Adams",
    "Baker",
    "Chen",
    "Diaz",
    "Evans",
    "Fischer",
    "Garcia",
    "Haddad",
    "Ito",
    "Johnson",
    "Kim",
    "Lopez",
    "Martin",
    "Nguyen",
    "Okafor",
    "Patel",
    "Quinn",
    "Rossi",
    "Smith",
    "Tanaka",
    "Usman",
    "Varga",
    "Weber",
    "Young",
)
_AREA = ("212", "303", "312", "415", "503", "617", "702", "808", "919")

# (merchant, category, min cents, max cents)
_MERCHANTS: tuple[tuple[str, MerchantCategory, int, int], ...] = (
    ("FreshMart", "grocery", 1_200, 18_000),
    ("Green Basket", "grocery", 800, 9_500),
    ("Luigi's Trattoria", "restaurant", 1_800, 14_000),
    ("Noodle Bar", "restaurant", 900, 4_500),
    ("SkyJet Airlines", "travel", 9_000, 95_000),
    ("Harbor Hotel", "travel", 12_000, 60_000),
    ("QuickFuel", "fuel", 2_500, 9_000),
    ("ShopStream", "online", 500, 25_000),
    ("PixelPlay Games", "entertainment", 499, 6_999),
    ("CineMax", "entertainment", 1_200, 4_800),
    ("City Power & Light", "utilities", 4_000, 22_000),
    ("Urban Outfit", "retail", 2_000, 30_000),
)

FROZEN_EVERY, FROZEN_FROM = 20, 2
LOST_EVERY, LOST_FROM = 25, 3
DISPUTED_EVERY, DISPUTED_FROM = 15, 5
REVERSED_EVERY, REVERSED_FROM = 15, 7
PENDING_FROM_DAY = 27

# Draws of ``rng.choice`` from these give the same numbers, from the same random stream, as the
# ``rng.randint(low, high)`` they stand for (both take one ``_randbelow(high - low + 1)``), faster:
# the hot loop of a world of 4,000 transactions, built for every seed a suite draws.
_AREA_EXCHANGE = range(200, 1000)
_LINE = tuple(f"{n:04d}" for n in range(10_000))
_BIRTH_YEAR = range(1940, 2006)
_MONTH = tuple(f"{n:02d}" for n in range(1, 13))
_DAY = tuple(f"{n:02d}" for n in range(1, 29))
_TXN_DAY = tuple(f"{n:02d}" for n in range(1, 31))
_HOUR = tuple(f"{n:02d}" for n in range(6, 23))
_MINUTE = tuple(f"{n:02d}" for n in range(60))
_EXPIRY_YEAR = range(27, 32)
_TXNS_PER_CARD = range(5, 12)
_AMOUNTS = {(low, high): range(low, high + 1) for _, _, low, high in _MERCHANTS}


def dispute_id_for(transaction_id: str) -> str:
    """The id of the dispute of a transaction (at most one each): ``TX000123`` → ``DP000123``.

    Deriving it from the transaction keeps it deterministic, cheap, and independent of the
    order in which transactions are disputed.
    """
    return "DP" + transaction_id.removeprefix("TX")


def generate(seed: int, n_customers: int) -> BankingState:
    """A state with ``n_customers`` customers, ~1.3 accounts each, a card per account, ~8 transactions a card."""
    rng = random.Random(seed)
    choice, random_ = rng.choice, rng.random
    customers: dict[str, Customer] = {}
    accounts: dict[str, Account] = {}
    cards: dict[str, Card] = {}
    transactions: dict[str, Transaction] = {}
    fraud_cases: dict[str, FraudCase] = {}
    disputes: dict[str, Dispute] = {}
    phones: set[str] = set()
    for c in range(1, n_customers + 1):
        customer_id = f"BC{c:04d}"
        phone = ""
        while not phone or phone in phones:
            phone = f"{choice(_AREA)}-{choice(_AREA_EXCHANGE)}-{choice(_LINE)}"
        phones.add(phone)
        dob = f"{choice(_BIRTH_YEAR)}-{choice(_MONTH)}-{choice(_DAY)}"
        customers[customer_id] = Customer(
            id=customer_id, name=f"{rng.choice(_FIRST)} {rng.choice(_LAST)}", phone=phone, date_of_birth=dob
        )
        kinds: list[AccountKind] = ["checking", "savings"] if rng.random() < 0.3 else ["checking"]
        for kind in kinds:
            account_id = f"AC{len(accounts) + 1:05d}"
            card_index = len(cards)
            card_id = f"CD{card_index + 1:05d}"
            balance = rng.randint(5_000, 800_000) if kind == "checking" else rng.randint(10_000, 2_500_000)
            network: CardNetwork = "visa" if rng.random() < 0.6 else "mastercard"
            card = Card(
                id=card_id,
                account_id=account_id,
                customer_id=customer_id,
                last4=choice(_LINE),
                network=network,
                expires=f"{choice(_MONTH)}/{choice(_EXPIRY_YEAR)}",
            )
            if card_index % FROZEN_EVERY == FROZEN_FROM:
                card = card.model_copy(update={"status": "frozen"})
            elif card_index % LOST_EVERY == LOST_FROM:
                card = card.model_copy(update={"status": "cancelled", "reported": "lost"})
                case_id = f"FC{len(fraud_cases) + 1:04d}"
                fraud_cases[case_id] = FraudCase(id=case_id, customer_id=customer_id, card_id=card_id, kind="lost")
            cards[card_id] = card
            times = sorted(
                f"2026-11-{choice(_TXN_DAY)}T{choice(_HOUR)}:{choice(_MINUTE)}:{choice(_MINUTE)}Z"
                for _ in range(choice(_TXNS_PER_CARD))
            )
            card_txns: list[Transaction] = []
            for ts in times:
                merchant, category, low, high = choice(_MERCHANTS)
                amount = choice(_AMOUNTS[low, high])
                if random_() < 0.04:
                    amount = -amount  # a merchant refund
                status: TransactionStatus = "pending" if int(ts[8:10]) >= PENDING_FROM_DAY else "posted"
                txn_id = f"TX{len(transactions) + 1:06d}"
                txn = Transaction(
                    id=txn_id,
                    card_id=card_id,
                    account_id=account_id,
                    merchant=merchant,
                    category=category,
                    amount_cents=amount,
                    timestamp=ts,
                    status=status,
                )
                transactions[txn_id] = txn
                card_txns.append(txn)
            eligible = [t for t in card_txns if t.status == "posted" and t.amount_cents > 0]
            if eligible and card_index % DISPUTED_EVERY == DISPUTED_FROM:
                txn = eligible[0]
                transactions[txn.id] = txn.model_copy(update={"status": "disputed"})
                dispute_id = dispute_id_for(txn.id)
                disputes[dispute_id] = Dispute(
                    id=dispute_id,
                    transaction_id=txn.id,
                    card_id=card_id,
                    account_id=account_id,
                    reason="unauthorized",
                    amount_cents=txn.amount_cents,
                    provisional_credit_cents=txn.amount_cents,
                )
            elif eligible and card_index % REVERSED_EVERY == REVERSED_FROM:
                txn = eligible[-1]
                transactions[txn.id] = txn.model_copy(update={"status": "reversed"})
            accounts[account_id] = Account(id=account_id, customer_id=customer_id, kind=kind, balance_cents=balance)
    return BankingState(
        customers=customers,
        accounts=accounts,
        cards=cards,
        transactions=transactions,
        fraud_cases=fraud_cases,
        disputes=disputes,
        replacement_cards={},
        handoffs={},
    )


def default(seed: int) -> BankingState:
    """The default fixture: 400 customers (~520 accounts and cards, ~4,200 transactions)."""
    return generate(seed, 400)


def small(seed: int) -> BankingState:
    """A small fixture: 15 customers (~20 accounts and cards, ~160 transactions)."""
    return generate(seed, 15)
