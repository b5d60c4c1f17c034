"""The retail orders system: customers, orders, products, payments, refunds, returns and exchanges.

See :mod:`tools_mock.retail.toolkit` for the tools and business rules, :mod:`tools_mock.retail.models`
for the records and :mod:`tools_mock.retail.fixtures` for the seed data.
"""

from tools_mock.retail.models import RetailState
from tools_mock.retail.toolkit import RetailToolkit

__all__ = ["RetailState", "RetailToolkit"]
