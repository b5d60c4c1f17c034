"""Tests of the banking (card fraud) toolkit, through the tool registry as an agent calls it."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from envsim.tools import ToolRegistry, ToolResult
from envsim.world import World
from tools_mock.banking import BankingToolkit
from tools_mock.banking.fixtures import default, dispute_id_for, small
from tools_mock.banking.models import Card, Customer, Dispute, Transaction

SEED = 11

EXPECTED_TOOLS = {
    "verify_customer": (False, False),
    "get_customer": (False, False),
    "list_accounts": (False, False),
    "list_cards": (False, False),
    "find_card": (False, False),
    "list_transactions": (False, False),
    "get_transaction": (False, False),
    "list_cases": (False, False),
    "freeze_card": (True, False),
    "unfreeze_card": (True, False),
    "report_card_lost_or_stolen": (True, False),
    "open_fraud_case": (True, False),
    "dispute_transaction": (True, False),
    "order_replacement_card": (True, False),
    "transfer_to_human": (True, True),
}


class Bank:
    """A world on the default fixture, its toolkit and registry, with handy records."""

    def __init__(self) -> None:
        """Build the world once and pick records for the tests."""
        self.world = World(default(SEED))
        self.kit = BankingToolkit(self.world)
        self.registry = ToolRegistry([self.kit])
        self.base_hash = self.world.state_hash()
        cards = list(self.kit.cards.values())
        self.active: Card = next(c for c in cards if c.status == "active")
        self.frozen: Card = next(c for c in cards if c.status == "frozen" and c.reported is None)
        self.cancelled: Card = next(c for c in cards if c.status == "cancelled")
        owner = self.active.customer_id
        self.other_active: Card = next(c for c in cards if c.status == "active" and c.customer_id != owner)
        self.customer: Customer = self.kit.customers.require(self.active.customer_id)
        txns = list(self.kit.transactions.values())
        self.posted: Transaction = next(t for t in txns if t.status == "posted" and t.amount_cents > 0)
        self.pending: Transaction = next(t for t in txns if t.status == "pending" and t.amount_cents > 0)
        self.refund: Transaction = next(t for t in txns if t.status == "posted" and t.amount_cents < 0)
        self.disputed: Transaction = next(t for t in txns if t.status == "disputed")
        self.reversed: Transaction = next(t for t in txns if t.status == "reversed")

    def call(self, name: str, args: Any) -> ToolResult:
        """Call a tool through the registry."""
        return self.registry.call(name, args)

    def ok(self, name: str, args: Any) -> Any:
        """Call a tool that must succeed; its decoded result."""
        result = self.call(name, args)
        assert result.ok, result.content
        return json.loads(result.content)

    def error(self, name: str, args: Any) -> str:
        """Call a tool that must fail; the error type the agent sees."""
        result = self.call(name, args)
        assert not result.ok, result.content
        data = json.loads(result.content)
        assert data["error"]["message"]
        assert result.error_type == data["error"]["type"]
        return str(data["error"]["type"])


@pytest.fixture(scope="module")
def shared() -> Bank:
    """One bank for the whole module (building it is the slow part)."""
    return Bank()


@pytest.fixture
def bank(shared: Bank) -> Iterator[Bank]:
    """The shared bank, reset to its fixture before and after each test."""
    shared.world.reset()
    yield shared
    shared.world.reset()


# ---------------------------------------------------------------- fixtures


def test_default_fixture_sizes(bank: Bank) -> None:
    kit = bank.kit
    n_customers, n_accounts, n_cards = len(kit.customers), len(kit.accounts), len(kit.cards)
    assert n_customers >= 400
    assert 1.2 <= n_accounts / n_customers <= 1.45
    assert n_cards == n_accounts
    assert {c.account_id for c in kit.cards.values()} == set(kit.accounts.keys())
    assert 6 <= len(kit.transactions) / n_cards <= 10
    assert all(t.timestamp.startswith("2026-11-") for t in kit.transactions.values())
    assert next(iter(kit.customers.keys())) == "BC0001"
    assert next(iter(kit.accounts.keys())) == "AC00001"
    assert next(iter(kit.cards.keys())) == "CD00001"
    assert next(iter(kit.transactions.keys())) == "TX000001"
    assert len({c.phone for c in kit.customers.values()}) == n_customers
    statuses = Counter(t.status for t in kit.transactions.values())
    assert set(statuses) == {"posted", "pending", "disputed", "reversed"}


def test_small_fixture() -> None:
    state = small(SEED)
    assert len(state.customers) == 15
    assert {c.status for c in state.cards.values()} == {"active", "frozen", "cancelled"}
    assert len(state.disputes) >= 1 and len(state.fraud_cases) >= 1


@pytest.mark.parametrize("make", [default, small])
def test_fixture_determinism(make: Any, bank: Bank) -> None:
    first = World(make(SEED)).state_hash()
    assert World(make(SEED)).state_hash() == first
    assert World(make(SEED + 1)).state_hash() != first
    if make is default:
        assert first == bank.base_hash


def test_toolkit_fixtures_registered() -> None:
    assert BankingToolkit.name == "banking"
    assert set(BankingToolkit.fixtures) == {"default", "small"}


# ---------------------------------------------------------------- schemas


def test_tools_flags_and_schemas(bank: Bank) -> None:
    assert set(bank.registry.names) == set(EXPECTED_TOOLS)
    for name, (write, ends) in EXPECTED_TOOLS.items():
        spec = bank.registry.spec(name)
        assert spec is not None
        assert (spec.flags.write, spec.flags.ends_episode) == (write, ends), name
    assert bank.registry.spec("transfer_to_human").flags.escalation  # type: ignore[union-attr]
    for schema in bank.registry.schemas():
        fn = schema["function"]
        assert fn["description"], fn["name"]
        params = fn["parameters"]
        assert params["additionalProperties"] is False
        spec = bank.registry.spec(fn["name"])
        assert spec is not None
        assert set(params["properties"]) == set(spec.args_model.model_fields), fn["name"]
        for pname, prop in params["properties"].items():
            assert prop.get("description"), f"{fn['name']}.{pname}"
    reasons = next(s for s in bank.registry.schemas() if s["function"]["name"] == "dispute_transaction")
    assert set(reasons["function"]["parameters"]["properties"]["reason"]["enum"]) == {
        "unauthorized",
        "duplicate",
        "not_received",
        "incorrect_amount",
    }


# ---------------------------------------------------------------- read tools


def test_verify_customer(bank: Bank) -> None:
    c = bank.customer
    digits = c.phone.replace("-", "")
    out = bank.ok(
        "verify_customer", {"phone": f"+1 ({digits[:3]}) {digits[3:6]} {digits[6:]}", "date_of_birth": c.date_of_birth}
    )
    assert out == {"customer_id": c.id, "name": c.name, "status": "verified"}
    assert bank.world.state_hash() == bank.base_hash


def test_verify_customer_misuse(bank: Bank) -> None:
    c = bank.customer
    assert bank.error("verify_customer", {"phone": c.phone, "date_of_birth": "1900-01-01"}) == "rule_violation"
    assert bank.error("verify_customer", {"phone": "000-000-0000", "date_of_birth": c.date_of_birth}) == "not_found"
    assert bank.error("verify_customer", {"phone": "12", "date_of_birth": c.date_of_birth}) == "rule_violation"
    assert bank.error("verify_customer", {"phone": 4155550134, "date_of_birth": c.date_of_birth}) == "invalid_arguments"
    assert bank.error("verify_customer", {"phone": c.phone}) == "invalid_arguments"


def test_get_customer(bank: Bank) -> None:
    assert bank.ok("get_customer", {"customer_id": bank.customer.id})["name"] == bank.customer.name
    assert bank.error("get_customer", {"customer_id": "BC9999"}) == "not_found"
    assert bank.error("get_customer", {"customer_id": ["BC0001"]}) == "invalid_arguments"


def test_list_accounts(bank: Bank) -> None:
    accounts = bank.ok("list_accounts", {"customer_id": bank.customer.id})
    assert accounts and all(a["customer_id"] == bank.customer.id for a in accounts)
    assert bank.active.account_id in {a["id"] for a in accounts}
    assert bank.error("list_accounts", {"customer_id": "BC9999"}) == "not_found"
    assert bank.error("list_accounts", {"customer_id": None}) == "invalid_arguments"


def test_list_cards(bank: Bank) -> None:
    cards = bank.ok("list_cards", {"customer_id": bank.customer.id})
    assert bank.active.id in {c["id"] for c in cards}
    assert all(c["customer_id"] == bank.customer.id for c in cards)
    assert [c["id"] for c in cards] == sorted(c["id"] for c in cards)
    assert bank.error("list_cards", {"customer_id": "BC9999"}) == "not_found"
    assert bank.error("list_cards", {"customer_id": "BC0001", "extra": 1}) == "invalid_arguments"


def test_find_card(bank: Bank) -> None:
    card = bank.active
    assert bank.ok("find_card", {"customer_id": card.customer_id, "last4": card.last4})["id"] == card.id
    other = bank.other_active
    if other.last4 != card.last4:
        assert bank.error("find_card", {"customer_id": card.customer_id, "last4": other.last4}) == "not_found"
    assert bank.error("find_card", {"customer_id": "BC9999", "last4": card.last4}) == "not_found"
    assert bank.error("find_card", {"customer_id": card.customer_id}) == "invalid_arguments"


def test_list_transactions(bank: Bank) -> None:
    card_id = bank.active.id
    txns = bank.ok("list_transactions", {"card_id": card_id, "limit": 50})
    assert txns and all(t["card_id"] == card_id for t in txns)
    stamps = [t["timestamp"] for t in txns]
    assert stamps == sorted(stamps, reverse=True)
    assert len(bank.ok("list_transactions", {"card_id": card_id, "limit": 2})) == 2
    assert len(bank.ok("list_transactions", {"card_id": card_id})) == min(10, len(txns))


def test_list_transactions_misuse(bank: Bank) -> None:
    card_id = bank.active.id
    assert bank.error("list_transactions", {"card_id": "CD99999"}) == "not_found"
    assert bank.error("list_transactions", {"card_id": card_id, "limit": 0}) == "rule_violation"
    assert bank.error("list_transactions", {"card_id": card_id, "limit": 51}) == "rule_violation"
    assert bank.error("list_transactions", {"card_id": card_id, "limit": "many"}) == "invalid_arguments"


def test_get_transaction(bank: Bank) -> None:
    assert bank.ok("get_transaction", {"transaction_id": bank.posted.id})["amount_cents"] == bank.posted.amount_cents
    assert bank.error("get_transaction", {"transaction_id": "TX999999"}) == "not_found"
    assert bank.error("get_transaction", {}) == "invalid_arguments"


def test_list_cases(bank: Bank) -> None:
    cases = bank.ok("list_cases", {"card_id": bank.cancelled.id})
    assert [c["kind"] for c in cases["fraud_cases"]] == [bank.cancelled.reported]
    assert cases["disputes"] == [] or all(d["card_id"] == bank.cancelled.id for d in cases["disputes"])
    disputed = bank.ok("list_cases", {"card_id": bank.disputed.card_id})["disputes"]
    assert [d["transaction_id"] for d in disputed] == [bank.disputed.id]
    assert bank.error("list_cases", {"card_id": "CD99999"}) == "not_found"
    assert bank.error("list_cases", {"card_id": 3}) == "invalid_arguments"


# ---------------------------------------------------------------- write tools


def test_freeze_and_unfreeze_card(bank: Bank) -> None:
    card_id = bank.active.id
    assert bank.ok("freeze_card", {"card_id": card_id}) == {"card_id": card_id, "status": "frozen"}
    assert bank.kit.cards.require(card_id).status == "frozen"
    assert bank.error("freeze_card", {"card_id": card_id}) == "rule_violation"
    assert bank.ok("unfreeze_card", {"card_id": card_id}) == {"card_id": card_id, "status": "active"}
    assert bank.world.state_hash() == bank.base_hash


def test_freeze_card_misuse(bank: Bank) -> None:
    assert bank.error("freeze_card", {"card_id": "CD99999"}) == "not_found"
    assert bank.error("freeze_card", {"card_id": bank.cancelled.id}) == "rule_violation"
    assert bank.error("freeze_card", {"card_id": bank.frozen.id}) == "rule_violation"
    assert bank.error("freeze_card", {"card": bank.active.id}) == "invalid_arguments"


def test_unfreeze_card_misuse(bank: Bank) -> None:
    assert bank.ok("unfreeze_card", {"card_id": bank.frozen.id})["status"] == "active"
    assert bank.error("unfreeze_card", {"card_id": "CD99999"}) == "not_found"
    assert bank.error("unfreeze_card", {"card_id": bank.active.id}) == "rule_violation"
    assert bank.error("unfreeze_card", {"card_id": bank.cancelled.id}) == "rule_violation"
    assert bank.error("unfreeze_card", {"card_id": None}) == "invalid_arguments"


def test_report_card_lost_or_stolen(bank: Bank) -> None:
    card = bank.active
    out = bank.ok("report_card_lost_or_stolen", {"card_id": card.id, "kind": "stolen"})
    assert out["status"] == "cancelled"
    stored = bank.kit.cards.require(card.id)
    assert (stored.status, stored.reported) == ("cancelled", "stolen")
    case = bank.kit.fraud_cases.require(out["fraud_case_id"])
    assert (case.card_id, case.kind, case.customer_id, case.status) == (card.id, "stolen", card.customer_id, "open")
    assert bank.error("report_card_lost_or_stolen", {"card_id": card.id, "kind": "lost"}) == "rule_violation"
    assert bank.error("unfreeze_card", {"card_id": card.id}) == "rule_violation"
    # a frozen card can be reported too
    assert bank.ok("report_card_lost_or_stolen", {"card_id": bank.frozen.id, "kind": "lost"})["status"] == "cancelled"
    assert bank.kit.check_invariants() == []


def test_report_card_lost_or_stolen_misuse(bank: Bank) -> None:
    assert bank.error("report_card_lost_or_stolen", {"card_id": "CD99999", "kind": "lost"}) == "not_found"
    assert bank.error("report_card_lost_or_stolen", {"card_id": bank.cancelled.id, "kind": "lost"}) == "rule_violation"
    assert (
        bank.error("report_card_lost_or_stolen", {"card_id": bank.active.id, "kind": "misplaced"})
        == "invalid_arguments"
    )
    assert bank.world.state_hash() == bank.base_hash


def test_open_fraud_case(bank: Bank) -> None:
    card_id = bank.posted.card_id
    txns = [t.id for t in bank.kit.transactions.lookup("card_id", card_id)][:3]
    case = bank.ok("open_fraud_case", {"card_id": card_id, "transaction_ids": list(reversed(txns))})
    assert case["kind"] == "unauthorized_activity" and case["status"] == "open"
    assert case["transaction_ids"] == sorted(txns)
    assert bank.kit.fraud_cases.require(case["id"]).card_id == card_id
    # the same transactions cannot be in two open cases
    assert bank.error("open_fraud_case", {"card_id": card_id, "transaction_ids": txns[:1]}) == "rule_violation"


def test_open_fraud_case_is_order_independent(bank: Bank) -> None:
    card_id = bank.posted.card_id
    txns = sorted(t.id for t in bank.kit.transactions.lookup("card_id", card_id))[:3]
    bank.ok("open_fraud_case", {"card_id": card_id, "transaction_ids": txns})
    first = bank.world.state_hash()
    bank.world.reset()
    bank.ok("open_fraud_case", {"card_id": card_id, "transaction_ids": txns[::-1]})
    assert bank.world.state_hash() == first


def test_open_fraud_case_misuse(bank: Bank) -> None:
    card_id = bank.active.id
    mine = bank.kit.transactions.lookup("card_id", card_id)[0].id
    theirs = bank.kit.transactions.lookup("card_id", bank.other_active.id)[0].id
    assert bank.error("open_fraud_case", {"card_id": "CD99999", "transaction_ids": [mine]}) == "not_found"
    assert bank.error("open_fraud_case", {"card_id": card_id, "transaction_ids": ["TX999999"]}) == "not_found"
    assert bank.error("open_fraud_case", {"card_id": card_id, "transaction_ids": [mine, theirs]}) == "rule_violation"
    assert bank.error("open_fraud_case", {"card_id": card_id, "transaction_ids": []}) == "rule_violation"
    assert bank.error("open_fraud_case", {"card_id": card_id, "transaction_ids": [mine, mine]}) == "rule_violation"
    assert bank.error("open_fraud_case", {"card_id": card_id, "transaction_ids": mine}) == "invalid_arguments"
    assert bank.world.state_hash() == bank.base_hash


def test_dispute_transaction_unauthorized_credits_account(bank: Bank) -> None:
    txn = bank.posted
    before = bank.kit.accounts.require(txn.account_id).balance_cents
    out = bank.ok("dispute_transaction", {"transaction_id": txn.id, "reason": "unauthorized"})
    assert out["provisional_credit_cents"] == txn.amount_cents == out["amount_cents"]
    assert out["balance_cents"] == before + txn.amount_cents
    assert bank.kit.accounts.require(txn.account_id).balance_cents == before + txn.amount_cents
    assert bank.kit.transactions.require(txn.id).status == "disputed"
    dispute = bank.kit.disputes.require(out["dispute_id"])
    assert (dispute.transaction_id, dispute.reason, dispute.status) == (txn.id, "unauthorized", "open")
    assert bank.error("dispute_transaction", {"transaction_id": txn.id, "reason": "duplicate"}) == "rule_violation"
    assert bank.kit.check_invariants() == []


def test_dispute_transaction_other_reason_no_credit(bank: Bank) -> None:
    txn = bank.posted
    before = bank.kit.accounts.require(txn.account_id).balance_cents
    out = bank.ok("dispute_transaction", {"transaction_id": txn.id, "reason": "not_received"})
    assert out["provisional_credit_cents"] == 0
    assert bank.kit.accounts.require(txn.account_id).balance_cents == before


def test_dispute_transaction_misuse(bank: Bank) -> None:
    def err(txn_id: str, reason: Any = "unauthorized") -> str:
        return bank.error("dispute_transaction", {"transaction_id": txn_id, "reason": reason})

    assert err("TX999999") == "not_found"
    assert err(bank.pending.id) == "rule_violation"
    assert err(bank.refund.id) == "rule_violation"
    assert err(bank.disputed.id) == "rule_violation"
    assert err(bank.reversed.id) == "rule_violation"
    assert err(bank.posted.id, "fraud") == "invalid_arguments"
    assert err(bank.posted.id, 3) == "invalid_arguments"
    assert bank.world.state_hash() == bank.base_hash
    # a dispute put there by a scenario override, without the transaction's status, still blocks a second one
    txn = bank.posted
    bank.kit.disputes.put(
        dispute_id_for(txn.id),
        Dispute(
            id=dispute_id_for(txn.id),
            transaction_id=txn.id,
            card_id=txn.card_id,
            account_id=txn.account_id,
            reason="duplicate",
            amount_cents=txn.amount_cents,
        ),
    )
    assert err(txn.id) == "rule_violation"


def test_order_replacement_card(bank: Bank) -> None:
    card = bank.cancelled
    order = bank.ok("order_replacement_card", {"card_id": card.id, "shipping": "expedited"})
    assert (order["card_id"], order["shipping"], order["status"]) == (card.id, "expedited", "ordered")
    assert bank.error("order_replacement_card", {"card_id": card.id}) == "rule_violation"
    assert bank.ok("order_replacement_card", {"card_id": bank.frozen.id})["shipping"] == "standard"
    listed = bank.ok("list_cases", {"card_id": card.id})["replacement_cards"]
    assert [r["id"] for r in listed] == [order["id"]]


def test_order_replacement_card_misuse(bank: Bank) -> None:
    assert bank.error("order_replacement_card", {"card_id": "CD99999"}) == "not_found"
    assert bank.error("order_replacement_card", {"card_id": bank.active.id}) == "rule_violation"
    assert (
        bank.error("order_replacement_card", {"card_id": bank.cancelled.id, "shipping": "drone"}) == "invalid_arguments"
    )


def test_transfer_to_human(bank: Bank) -> None:
    result = bank.call(
        "transfer_to_human",
        {"reason": "fraud_suspected", "summary": "Card skimmed at a fuel pump.", "subject_id": bank.customer.id},
    )
    assert result.ok and result.ends_episode and result.flags.escalation
    handoff_id = json.loads(result.content)["handoff_id"]
    stored = bank.kit.handoffs.require(handoff_id)
    assert (stored.reason, stored.subject_id) == ("fraud_suspected", bank.customer.id)
    assert bank.error("transfer_to_human", {"reason": "bored", "summary": "x"}) == "invalid_arguments"
    assert bank.error("transfer_to_human", {"reason": "other"}) == "invalid_arguments"


# ---------------------------------------------------------------- ids, invariants, state


def test_created_ids_are_deterministic_and_readable(bank: Bank) -> None:
    out = bank.ok("dispute_transaction", {"transaction_id": bank.posted.id, "reason": "duplicate"})
    assert out["dispute_id"] == "DP" + bank.posted.id.removeprefix("TX")
    n_cases = len(bank.kit.fraud_cases)
    case_id = bank.ok("report_card_lost_or_stolen", {"card_id": bank.active.id, "kind": "lost"})["fraud_case_id"]
    assert case_id == f"FC{n_cases + 1:04d}"
    assert bank.ok("order_replacement_card", {"card_id": bank.active.id})["id"] == "RC0001"
    # a deleted record (e.g. by a scenario override) does not make ids collide
    bank.kit.fraud_cases.delete("FC0001")
    again = bank.ok("report_card_lost_or_stolen", {"card_id": bank.other_active.id, "kind": "lost"})["fraud_case_id"]
    assert again == f"FC{n_cases + 2:04d}"


def test_disputes_in_any_order_give_the_same_state(bank: Bank) -> None:
    first, second = [t.id for t in bank.kit.transactions.values() if t.status == "posted" and t.amount_cents > 0][:2]
    for txn_id in (first, second):
        bank.ok("dispute_transaction", {"transaction_id": txn_id, "reason": "unauthorized"})
    forward = bank.world.state_hash()
    bank.world.reset()
    for txn_id in (second, first):
        bank.ok("dispute_transaction", {"transaction_id": txn_id, "reason": "unauthorized"})
    assert bank.world.state_hash() == forward != bank.base_hash


def test_invariants_hold_after_many_operations(bank: Bank) -> None:
    assert bank.kit.check_invariants() == []
    assert bank.registry.check_invariants() == []
    posted = [t for t in bank.kit.transactions.values() if t.status == "posted" and t.amount_cents > 0][:20]
    for i, txn in enumerate(posted):
        reason = ("unauthorized", "duplicate", "not_received", "incorrect_amount")[i % 4]
        bank.ok("dispute_transaction", {"transaction_id": txn.id, "reason": reason})
        bank.error("dispute_transaction", {"transaction_id": txn.id, "reason": reason})
    for card in [c for c in bank.kit.cards.values() if c.status == "active"][:10]:
        bank.ok("freeze_card", {"card_id": card.id})
        bank.ok("report_card_lost_or_stolen", {"card_id": card.id, "kind": "stolen"})
        bank.ok("order_replacement_card", {"card_id": card.id})
        bank.error("unfreeze_card", {"card_id": card.id})
    assert bank.kit.check_invariants() == []
    bank.world.reset()
    assert bank.world.state_hash() == bank.base_hash


def test_invariants_detect_violations(bank: Bank) -> None:
    kit = bank.kit
    kit.cards.put(bank.active.id, bank.active.model_copy(update={"reported": "stolen"}))
    dispute = next(iter(kit.disputes.values()))
    kit.disputes.put(dispute.id, dispute.model_copy(update={"provisional_credit_cents": dispute.amount_cents + 1}))
    kit.disputes.put(
        "DP9999",
        Dispute(
            id="DP9999",
            transaction_id=dispute.transaction_id,
            card_id=dispute.card_id,
            account_id=dispute.account_id,
            reason="duplicate",
            amount_cents=dispute.amount_cents * 2,
        ),
    )
    messages = kit.check_invariants()
    assert any(bank.active.id in m and "stolen" in m for m in messages)
    assert any(dispute.id in m and "credits" in m for m in messages)
    assert any("DP9999" in m for m in messages)
    assert any(dispute.transaction_id in m and "2 times" in m for m in messages)
    assert all(m.startswith("banking: ") for m in bank.registry.check_invariants())


def test_read_tools_do_not_change_state(bank: Bank) -> None:
    for name, args in [
        ("get_customer", {"customer_id": bank.customer.id}),
        ("list_accounts", {"customer_id": bank.customer.id}),
        ("list_cards", {"customer_id": bank.customer.id}),
        ("list_transactions", {"card_id": bank.active.id}),
        ("get_transaction", {"transaction_id": bank.posted.id}),
        ("list_cases", {"card_id": bank.active.id}),
    ]:
        bank.ok(name, args)
    assert bank.world.changed() == {}


def test_unknown_tool_and_non_object_arguments(bank: Bank) -> None:
    assert bank.error("freeze_cards", {"card_id": bank.active.id}) == "unknown_tool"
    assert bank.error("freeze_card", [bank.active.id]) == "invalid_arguments"
