"""Seed 003 analytics: win/loss is counted per position, not per closing deal."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from brokergraph_ctrader.analytics import summarize

from gateway.contract import Deal, Money, OrderSide

START = datetime(2026, 1, 1, tzinfo=UTC)
END = datetime(2026, 2, 1, tzinfo=UTC)


def _deal(deal_id: str, position_id: str | None, pnl: str) -> Deal:
    return Deal(
        platform="ctrader",
        id=deal_id,
        account_id="1",
        symbol="EURUSD",
        side=OrderSide.SELL,
        volume=Decimal(1000),
        price=Decimal("1.1"),
        executed_at=datetime(2026, 1, 10, tzinfo=UTC),
        position_id=position_id,
        realized_pnl=Money(Decimal(pnl), "USD"),
    )


def test_position_closed_in_two_deals_is_one_win() -> None:
    deals = [
        _deal("d1", "P1", "5"),
        _deal("d2", "P1", "3"),  # second partial close of the same position
        _deal("d3", "P2", "4"),
        _deal("d4", "P2", "-6"),  # net loss over the position
        _deal("d5", None, "2"),  # no position id: its own position
    ]
    a = summarize(account_id="1", currency="USD", start=START, end=END, deals=deals, positions=[])
    assert (a.wins, a.losses) == (2, 1)
    assert a.realized_pnl.amount == Decimal(8)
