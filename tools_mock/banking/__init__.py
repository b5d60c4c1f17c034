"""The mocked banking system (card fraud desk): customers, accounts, cards, transactions, fraud cases, disputes.

Example:
    >>> from envsim.world import World
    >>> kit = BankingToolkit(World(BankingToolkit.fixtures["small"](0)))
    >>> kit.name, sorted(BankingToolkit.fixtures)
    ('banking', ['default', 'small'])
"""

from tools_mock.banking.models import BankingState
from tools_mock.banking.toolkit import BankingToolkit

__all__ = ["BankingState", "BankingToolkit"]
