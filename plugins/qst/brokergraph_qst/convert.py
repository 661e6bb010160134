"""QST's decoded values (``wire``) -> the standard models: pure functions of what they read.

The connector passes in what only it knows (the account's currency from the OE login,
the trader, the position as it stood), so each conversion is checked on its own by the
property-based tests of the wire.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from brokergraph_qst import wire
from gateway.contract import Account, Money, OrderSide, Position

__all__ = ["account", "position", "summary_account"]

PLATFORM = wire.PLATFORM


def position(p: wire.NetPosition, *, currency: str, previous: Position | None) -> Position:
    """A net position; a flat one keeps the side it had, an open one its opening time."""
    if p.net_quantity > 0:
        side = OrderSide.BUY
    elif p.net_quantity < 0:
        side = OrderSide.SELL
    else:
        side = previous.side if previous is not None else OrderSide.BUY
    opened = previous.opened_at if previous is not None and previous.volume else None
    return Position(
        platform=PLATFORM,
        id=f"{p.account_id}:{p.contract}",
        account_id=p.account_id,
        symbol=p.contract,
        side=side,
        volume=abs(p.net_quantity),
        open_price=p.average_price or Decimal(0),
        opened_at=opened or datetime.now(UTC),
        unrealized_pnl=None if p.open_pnl is None else Money(p.open_pnl, currency),
        raw={
            "net_quantity": str(p.net_quantity),
            "realized_pnl": None if p.realized_pnl is None else str(p.realized_pnl),
        },
    )


def account(
    info: wire.AccountInfo, *, trader_id: str, summary: wire.AccountSummary | None
) -> Account:
    """Account information; ``summary`` is the OE login's entry of the account, if listed."""
    fallback = summary.currency if summary is not None else "USD"
    currency = info.currency or fallback

    def money(value: Decimal | None) -> Money | None:
        return None if value is None else Money(value, currency)

    return Account(
        platform=PLATFORM,
        id=info.account_id,
        number=info.account_id,
        currency=currency,
        trader_id=trader_id,
        is_live=summary.is_live if summary is not None else info.is_live,
        balance=money(info.balance),
        equity=money(info.equity),
        margin=money(info.margin),
        free_margin=money(info.available_funds),
    )


def summary_account(summary: wire.AccountSummary, *, trader_id: str) -> Account:
    """An account as the OE login lists it (no money)."""
    return Account(
        platform=PLATFORM,
        id=summary.account_id,
        number=summary.account_id,
        currency=summary.currency,
        trader_id=trader_id,
        is_live=summary.is_live,
    )
