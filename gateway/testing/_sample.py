"""Sample: the known ids and values a sandbox seeds, which the suite's cases use.

Every field is optional.  A case that needs a value the sample does not have is
skipped with a reason naming the field, so a new connector can start with a
few ids and fill the rest in as it grows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TypeVar

import pytest

__all__ = ["Sample", "need"]

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class Sample:
    #: Accounts the sandbox seeds (ACCOUNT_READS); the first one leads each batch.
    account_ids: Sequence[str] = ()
    #: Traders the sandbox seeds (ACCOUNT_READS, MARKET_DATA_ENTITLEMENTS); at least one
    #: owns an account and one has a market-data subscription.
    trader_ids: Sequence[str] = ()
    #: An id of the platform's shape that the sandbox does not know.
    unknown_id: str = "999999999"
    #: An account with free funds: FUNDING, CREDIT, BONUS and ACCOUNT_STREAM move money on it.
    funded_account_id: str | None = None
    #: The amount those cases move, in the account's currency.
    amount: Decimal = Decimal("12.34")
    #: An account with deals and balance operations inside ``period`` (ACCOUNT_HISTORY,
    #: ACCOUNT_ANALYTICS); ``period`` is (start inclusive, end exclusive), aware UTC.
    history_account_id: str | None = None
    period: tuple[datetime, datetime] | None = None
    #: Where ORDER_ROUTING/ORDER_STREAM place and cancel a BUY limit order that will
    #: not fill: ``far_limit_price`` far below the market for ``order_symbol``.
    order_account_id: str | None = None
    order_symbol: str | None = None
    order_quantity: Decimal | None = None
    far_limit_price: Decimal | None = None
    #: Partner codes the platform knows (PARTNER_DIRECTORY, TAX, CLIENT_REPORTS,
    #: TRADING_ACCESS use the first).
    partner_codes: Sequence[str] = ()
    #: The partner new traders are created for (TRADER_PROVISIONING), and their currency.
    new_trader_partner_code: str | None = None
    currency: str = "USD"
    #: A leverage the platform accepts (TRADER_PROVISIONING, TRADING_ACCESS).
    leverage: Decimal = Decimal(50)


def need(value: T | None, name: str) -> T:
    """``value``, or skip the case: the sample does not provide ``name``."""
    if value is None or (isinstance(value, tuple | list) and not value):
        pytest.skip(
            f"sample.{name} is not set, and this case needs it (see gateway.testing.Sample)"
        )
    return value
