"""Mocked enterprise systems for envsim scenarios.

Each system is a :class:`envsim.tools.Toolkit` with a pydantic world model, seed-data
fixtures generated from a seed, and typed tools. They touch nothing outside their
in-memory state.

- ``retail``: customers, orders, items, payments, refunds, returns, exchanges, cancellations.
- ``medical_supply``: patients, prescriptions, equipment orders, insurance, delivery
  slots, hand-off to a human and emergency dispatch.
- ``banking``: accounts, cards, transactions, fraud cases and disputes.
"""

BUILTIN_TOOLKITS: dict[str, str] = {
    "retail": "tools_mock.retail:RetailToolkit",
    "medical_supply": "tools_mock.medical_supply:MedicalSupplyToolkit",
    "banking": "tools_mock.banking:BankingToolkit",
}
