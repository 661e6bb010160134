"""The five client-area analytics of seed 003, computed from WebServices reads.

WebServices has no analytics call: the connector fetches the account, its closing
deals (4.13, split into ≤ 2-day windows), its open positions (4.12) and its Copy
sub-accounts (4.4 + trader reads), and this module turns them into
:class:`gateway.contract.AccountAnalytics`, exactly (Decimal throughout):

a. **realised P&L** — the sum of ``pnl`` of every deal *closed* in ``[from, to)``;
b. **most-traded symbols** — per symbol, the volume and number of deals closed in the
   period, largest volume first (ties: more deals, then the symbol's name); and
   ``most_opened_symbols``, the seed's "frequently placed new orders": per symbol, the
   positions *opened* in the period (those still open, from 4.12, and those since
   closed, from 4.13's ``openTimestamp``), most first (ties: more volume, then name);
c. **open volume** — per symbol (``volume_by_symbol``), the base units, lots and
   notional of the positions open now; ``open_volume`` (base units summed across
   symbols, so 10,000 GBPUSD + 10 XAUUSD = 10,010) is kept for old clients only;
d. **Copy sub-accounts** — each one's balance and equity;
e. **wins / losses** — per *position*: the ``pnl`` of a position's deals closed in
   the period are summed first, so a position closed in two partial deals counts
   once; ``> 0`` is a win, ``< 0`` a loss, exactly zero neither (a deal without a
   position id counts as its own position); the ratio is wins / (wins + losses).

``closedPositions`` filters on the *position's creation time*, not the deal's, so a
deal closed inside the period may belong to a position opened before it: the
connector therefore also reads a look-back (``deals_lookback_days``, default 90)
before ``from`` and keeps the deals whose close time falls in the period.  A
position opened earlier than the look-back and closed inside the period is missed;
raise the setting when accounts hold positions longer.

The same positions opened are ranked at three levels (``opened_by_level``): by
symbol, and by the category and asset class cTrader's symbol list (6.1) gives each
symbol; a symbol the list does not carry is counted under ``None`` (unclassified).

For reports of several accounts in one currency, ``conversion_rates`` gives the
account's currency in USD from the latest deal closed before ``to``: a deal row
carries ``usdConversionRate`` (the base asset in USD) and ``depositConversionRate``
(the quote currency in the deposit currency), so one deposit unit is worth
``usdConversionRate / (closePrice * depositConversionRate)`` USD, rounded to
:data:`RATE_PLACES`.  Those meanings are inferred (cTrader lists the columns only);
the connector's ``deal_conversion_rates`` setting turns this off.

Lots and notional need a symbol's contract, which WebServices does not give (6.1
lists name, id, asset class and category; positions are in base units): the
:data:`CONTRACTS` table is **inferred** from cTrader's customary contract sizes.  A
symbol missing from it gets ``lots = None``.  Notional is ``volume * entryPrice`` (the
open positions read has no current price), in the account's currency only where the
symbol's quote (or base) *is* that currency — otherwise ``None``, never a guessed rate.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import NamedTuple

from gateway.contract import (
    AccountAnalytics,
    ConversionRate,
    CopySubAccount,
    Deal,
    Money,
    OpenedRank,
    Position,
    RankingLevel,
    SymbolOpened,
    SymbolOpenVolume,
    SymbolVolume,
)

__all__ = [
    "CONTRACTS",
    "MAX_SYMBOLS",
    "RATE_PLACES",
    "Contract",
    "Opening",
    "RateSample",
    "SymbolClass",
    "open_volumes",
    "summarize",
    "usd_rate",
]

#: How many symbols ``most_traded_symbols`` lists.
MAX_SYMBOLS = 10


class Contract(NamedTuple):
    """What WebServices does not say about a symbol: its lot and its currencies."""

    lot_size: Decimal
    base: str
    quote: str


class SymbolClass(NamedTuple):
    """What cTrader's symbol list (6.1) says of a symbol (``None``: it says nothing)."""

    category: str | None
    asset_class: str | None


class RateSample(NamedTuple):
    """A closing deal's conversion columns (4.13), as read."""

    deal_id: str
    closed_at: datetime
    close_price: Decimal
    deposit_conversion_rate: Decimal
    usd_conversion_rate: Decimal


#: Decimal places of a rate derived from a deal's conversion columns.
RATE_PLACES = Decimal("1e-10")


class Opening(NamedTuple):
    """A closing deal seen from its position's opening (4.13's ``openTimestamp``)."""

    position_id: str
    symbol: str
    opened_at: datetime
    volume: Decimal


_FX_LOT = Decimal(100_000)

#: Inferred (see the module doc): the sandbox's symbols at cTrader's usual sizes.
CONTRACTS: Mapping[str, Contract] = {
    "EURUSD": Contract(_FX_LOT, "EUR", "USD"),
    "GBPUSD": Contract(_FX_LOT, "GBP", "USD"),
    "USDJPY": Contract(_FX_LOT, "USD", "JPY"),
    "XAUUSD": Contract(Decimal(100), "XAU", "USD"),
    "BTCUSD": Contract(Decimal(1), "BTC", "USD"),
    "US500": Contract(Decimal(1), "US500", "USD"),
}


def open_volumes(
    positions: Sequence[Position],
    currency: str,
    contracts: Mapping[str, Contract] = CONTRACTS,
) -> list[SymbolOpenVolume]:
    """Per symbol (by name), the base units, lots and notional of ``positions``."""
    volume: dict[str, Decimal] = defaultdict(Decimal)
    value: dict[str, Decimal] = defaultdict(Decimal)
    count: dict[str, int] = defaultdict(int)
    for position in positions:
        volume[position.symbol] += position.volume
        value[position.symbol] += position.volume * position.open_price
        count[position.symbol] += 1
    result = []
    for symbol in sorted(volume):
        contract = contracts.get(symbol)
        notional: Money | None = None
        if contract is not None and contract.quote == currency:
            notional = Money(value[symbol], currency)
        elif contract is not None and contract.base == currency:
            notional = Money(volume[symbol], currency)
        result.append(
            SymbolOpenVolume(
                symbol=symbol,
                volume=volume[symbol],
                positions=count[symbol],
                lots=volume[symbol] / contract.lot_size if contract is not None else None,
                notional=notional,
            )
        )
    return result


def usd_rate(
    currency: str, login: str, samples: Sequence[RateSample], end: datetime
) -> ConversionRate | None:
    """``currency`` in USD from the latest deal closed before ``end`` whose columns
    give a rate (see the module doc), or ``None``: never a guessed rate."""
    usable = [
        s
        for s in samples
        if s.closed_at < end
        and s.close_price > 0
        and s.deposit_conversion_rate > 0
        and s.usd_conversion_rate > 0
    ]
    if currency == "USD" or not usable:
        return None
    latest = max(usable, key=lambda s: (s.closed_at, s.deal_id))
    value = latest.usd_conversion_rate / (latest.close_price * latest.deposit_conversion_rate)
    return ConversionRate(
        currency=currency,
        target="USD",
        rate=value.quantize(RATE_PLACES, ROUND_HALF_EVEN),
        as_of=latest.closed_at,
        source=(
            f"cTrader closedPositions deal {latest.deal_id} of account {login}: "
            "usdConversionRate / (closePrice * depositConversionRate)"
        ),
    )


def summarize(
    *,
    account_id: str,
    currency: str,
    start: datetime,
    end: datetime,
    deals: Sequence[Deal],
    positions: Sequence[Position],
    copy_sub_accounts: Sequence[CopySubAccount] = (),
    openings: Sequence[Opening] = (),
    classes: Mapping[str, SymbolClass] | None = None,
    conversion_rates: Sequence[ConversionRate] = (),
) -> AccountAnalytics:
    """The analytics of ``deals`` closed in ``[start, end)`` (others are ignored);
    ``classes`` (the symbol list) ranks openings by category and asset class too."""
    closed = [d for d in deals if start <= d.executed_at < end]
    pnl = [d.realized_pnl.amount for d in closed if d.realized_pnl is not None]
    per_position: dict[str, Decimal] = defaultdict(Decimal)
    for deal in closed:
        if deal.realized_pnl is not None:
            # Keyed apart from position ids so a lone deal never merges into one.
            key = f"p:{deal.position_id}" if deal.position_id else f"d:{deal.id}"
            per_position[key] += deal.realized_pnl.amount
    volume: dict[str, Decimal] = defaultdict(Decimal)
    count: dict[str, int] = defaultdict(int)
    for deal in closed:
        volume[deal.symbol] += deal.volume
        count[deal.symbol] += 1
    ranked = sorted(volume, key=lambda s: (-volume[s], -count[s], s))[:MAX_SYMBOLS]
    opened = opened_positions(start, end, positions, openings)
    most_opened = _by_symbol(opened)
    return AccountAnalytics(
        account_id=account_id,
        period_from=start,
        period_to=end,
        realized_pnl=Money(sum(pnl, Decimal(0)), currency),
        wins=sum(1 for p in per_position.values() if p > 0),
        losses=sum(1 for p in per_position.values() if p < 0),
        most_traded_symbols=[
            SymbolVolume(symbol=s, volume=volume[s], deals=count[s]) for s in ranked
        ],
        open_volume=sum((p.volume for p in positions), Decimal(0)),
        copy_sub_accounts=list(copy_sub_accounts),
        volume_by_symbol=open_volumes(positions, currency),
        most_opened_symbols=most_opened[:MAX_SYMBOLS],
        opened_by_level=_levels(opened, classes),
        conversion_rates=list(conversion_rates),
    )


def opened_positions(
    start: datetime, end: datetime, positions: Sequence[Position], openings: Sequence[Opening]
) -> dict[str, tuple[str, Decimal]]:
    """Position id -> (symbol, volume) of the positions opened in ``[start, end)``; a
    position partly closed is in both reads and counts once, its volume the closed
    deals' plus what is still open."""
    opened: dict[str, tuple[str, Decimal]] = {}
    for key, symbol, at, volume in [
        *((p.id, p.symbol, p.opened_at, p.volume) for p in positions),
        *((o.position_id, o.symbol, o.opened_at, o.volume) for o in openings),
    ]:
        if start <= at < end:
            _, before = opened.get(key, (symbol, Decimal(0)))
            opened[key] = (symbol, before + volume)
    return opened


def _by_symbol(opened: Mapping[str, tuple[str, Decimal]]) -> list[SymbolOpened]:
    volume: dict[str, Decimal] = defaultdict(Decimal)
    count: dict[str, int] = defaultdict(int)
    for symbol, units in opened.values():
        volume[symbol] += units
        count[symbol] += 1
    ranked = sorted(count, key=lambda s: (-count[s], -volume[s], s))
    return [SymbolOpened(symbol=s, positions=count[s], volume=volume[s]) for s in ranked]


def rank(counts: Mapping[str | None, int]) -> list[OpenedRank]:
    """Most positions first, then by name; the unclassified (``None``) last of its tie."""
    ordered = sorted(counts, key=lambda n: (-counts[n], n is None, n or ""))
    return [OpenedRank(name=n, positions=counts[n]) for n in ordered if counts[n] > 0]


def _levels(
    opened: Mapping[str, tuple[str, Decimal]], classes: Mapping[str, SymbolClass] | None
) -> dict[RankingLevel, list[OpenedRank]]:
    """Every name of each level (the symbol list absent: symbols only)."""
    symbols: dict[str | None, int] = defaultdict(int)
    categories: dict[str | None, int] = defaultdict(int)
    asset_classes: dict[str | None, int] = defaultdict(int)
    for symbol, _ in opened.values():
        symbols[symbol] += 1
        if classes is not None:
            known = classes.get(symbol, SymbolClass(None, None))
            categories[known.category] += 1
            asset_classes[known.asset_class] += 1
    levels = {RankingLevel.SYMBOL: rank(symbols)}
    if classes is not None:
        levels[RankingLevel.CATEGORY] = rank(categories)
        levels[RankingLevel.ASSET_CLASS] = rank(asset_classes)
    return levels
