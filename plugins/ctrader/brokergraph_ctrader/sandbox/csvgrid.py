"""The CSV grids of openPositions (4.12) and closedPositions (4.13), in the documented
column order (A4.5), one header row, ``\\n`` line ends.

Numbers: prices with the symbol's digits; ``volume`` in base-asset units with 2
decimals; ``commission`` and ``swap`` in USD with 2 decimals; ``usedMargin``,
``stake`` and ``pnl`` in deposit currency with moneyDigits decimals; conversion
rates with up to 10 decimals.  ``depositConversionRate`` converts the symbol's quote
currency to the deposit currency and ``usdConversionRate`` the base asset to USD [I].
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from decimal import Decimal

from brokergraph_ctrader.sandbox.market import BY_NAME
from brokergraph_ctrader.sandbox.model import ClosingDeal, Position
from brokergraph_ctrader.sandbox.money import fixed
from brokergraph_ctrader.sandbox.times import wire_time

OPEN_HEADER = (
    "login", "positionId", "openTimestamp", "entryPrice", "direction", "volume", "symbol",
    "commission", "swap", "bookType", "stake", "spreadBetting", "usedMargin",
)  # fmt: skip
CLOSED_HEADER = (
    "login", "positionId", "dealId", "openTimestamp", "closeTimestamp", "entryPrice",
    "closePrice", "direction", "volume", "symbol", "commission", "swap", "pnl",
    "depositConversionRate", "usdConversionRate", "bookType", "stake", "spreadBetting",
)  # fmt: skip


def _rate(value: Decimal) -> str:
    text = format(value.quantize(Decimal("1E-10")), "f").rstrip("0")
    return text + "0" if text.endswith(".") else text


def _price(symbol: str, value: Decimal) -> str:
    return format(BY_NAME[symbol].price(value), "f")


def open_row(position: Position, digits: int) -> list[str]:
    return [
        str(position.login),
        str(position.position_id),
        wire_time(position.opened_at),
        _price(position.symbol, position.entry_price),
        position.direction,
        fixed(position.volume, 2),
        position.symbol,
        fixed(position.commission, 2),
        fixed(position.swap, 2),
        position.book_type,
        fixed(Decimal(0), digits),
        "false",
        fixed(position.used_margin, digits),
    ]


def closed_row(deal: ClosingDeal, digits: int) -> list[str]:
    return [
        str(deal.login),
        str(deal.position_id),
        str(deal.deal_id),
        wire_time(deal.opened_at),
        wire_time(deal.closed_at),
        _price(deal.symbol, deal.entry_price),
        _price(deal.symbol, deal.close_price),
        deal.direction,
        fixed(deal.volume, 2),
        deal.symbol,
        fixed(deal.commission, 2),
        fixed(deal.swap, 2),
        fixed(deal.pnl, digits),
        _rate(deal.deposit_conversion_rate),
        _rate(deal.usd_conversion_rate),
        deal.book_type,
        fixed(Decimal(0), digits),
        "false",
    ]


def render(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()
