"""A partner's analytics across its accounts, in one reporting currency.

Each account's own analytics (``AccountAnalytics``, in its currency) are merged:

* counts need no currency: wins, losses, positions opened (ranked per level, every
  account's names merged; an account whose platform does not classify a level counts
  its positions under ``None`` there) and open volume per symbol in base units/lots;
* money (realised P&L, deposits, withdrawals, open notional) is converted into the
  reporting currency only with rates the platforms' own data gave
  (``AccountAnalytics.conversion_rates``: a currency in USD, with its source and
  as-of time).  Per currency the latest such rate of all the partner's accounts is
  used; ``X -> R`` is ``X -> USD`` divided by ``R -> USD`` (a USD leg is 1), rounded
  to :data:`RATE_PLACES`.  An account whose currency has no such path is never
  converted with a guess: its money is listed unconverted, with the reason.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal

from gateway.models import (
    AccountAnalytics,
    ConversionRate,
    Money,
    OpenedRank,
    RankingLevel,
)

__all__ = [
    "RATE_PLACES",
    "AccountFigures",
    "PartnerAnalytics",
    "PartnerSymbolVolume",
    "ReportingRate",
    "UnconvertedAccount",
    "UncoveredAccount",
    "merge",
]

RATE_PLACES = Decimal("1e-10")
USD = "USD"


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountFigures:
    """One analysed account: its analytics and the money it moved in the period."""

    platform: str
    account_id: str
    currency: str
    analytics: AccountAnalytics
    #: Deposits and withdrawals (positive amounts) the platform reports for the period.
    deposits: Sequence[Money] = ()
    withdrawals: Sequence[Money] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportingRate:
    """One unit of ``currency`` is worth ``rate`` of the reporting currency."""

    currency: str
    rate: Decimal
    #: The oldest as-of time of the legs (a chained rate is as old as its oldest leg).
    as_of: datetime
    sources: Sequence[str]
    accounts: Sequence[tuple[str, str]]


@dataclass(frozen=True, slots=True, kw_only=True)
class UnconvertedAccount:
    platform: str
    account_id: str
    currency: str
    realized_pnl: Money
    deposits: Money
    withdrawals: Money
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class UncoveredAccount:
    """A linked account with no analytics: its platform gives none, or its read failed."""

    platform: str
    account_id: str
    #: The error code the account's read answered (or CAPABILITY_NOT_SUPPORTED).
    code: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PartnerSymbolVolume:
    symbol: str
    volume: Decimal
    positions: int
    lots: Decimal | None
    #: In the reporting currency; None when a part has no notional or no rate.
    notional: Money | None


@dataclass(frozen=True, slots=True, kw_only=True)
class PartnerAnalytics:
    period_from: datetime
    period_to: datetime
    currency: str
    realized_pnl: Money
    deposits: Money
    withdrawals: Money
    wins: int
    losses: int
    open_volume_by_symbol: Sequence[PartnerSymbolVolume]
    opened_by_level: dict[RankingLevel, list[OpenedRank]]
    rates: Sequence[ReportingRate]
    converted_accounts: Sequence[tuple[str, str]]
    not_converted: Sequence[UnconvertedAccount]
    not_covered: Sequence[UncoveredAccount] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class _Factor:
    rate: Decimal
    legs: tuple[ConversionRate, ...]


def _usd_rates(figures: Sequence[AccountFigures]) -> dict[str, ConversionRate]:
    """Per currency, the latest rate to USD any account's data gave."""
    best: dict[str, ConversionRate] = {}
    for account in figures:
        for rate in account.analytics.conversion_rates:
            if rate.target != USD or rate.currency == USD:
                continue
            known = best.get(rate.currency)
            if known is None or (rate.as_of, rate.source) > (known.as_of, known.source):
                best[rate.currency] = rate
    return best


def _factor(currency: str, reporting: str, usd: dict[str, ConversionRate]) -> _Factor | str:
    """``currency -> reporting`` from the platforms' rates, or why there is none."""
    if currency == reporting:
        return _Factor(Decimal(1), ())
    legs: list[ConversionRate] = []
    value = Decimal(1)
    if currency != USD:
        to_usd = usd.get(currency)
        if to_usd is None:
            return f"no {currency} -> USD rate in the platforms' data of the period"
        legs.append(to_usd)
        value *= to_usd.rate
    if reporting != USD:
        reporting_usd = usd.get(reporting)
        if reporting_usd is None:
            return (
                f"no {reporting} -> USD rate in the platforms' data of the period "
                f"(needed to report {currency} in {reporting})"
            )
        legs.append(reporting_usd)
        value /= reporting_usd.rate
    return _Factor(value.quantize(RATE_PLACES, ROUND_HALF_EVEN), tuple(legs))


def _total(amounts: Sequence[Money], currency: str) -> Money:
    return Money(sum((m.amount for m in amounts), Decimal(0)), currency)


def merge(
    figures: Sequence[AccountFigures],
    *,
    reporting: str,
    start: datetime,
    end: datetime,
    not_covered: Sequence[UncoveredAccount] = (),
) -> PartnerAnalytics:
    """The partner-level view of ``figures`` in ``reporting`` (see the module doc)."""
    usd = _usd_rates(figures)
    factors: dict[str, _Factor | str] = {}

    def factor(currency: str) -> _Factor | str:
        if currency not in factors:
            factors[currency] = _factor(currency, reporting, usd)
        return factors[currency]

    pnl = deposits = withdrawals = Decimal(0)
    used: dict[str, _Factor] = {}
    used_by: dict[str, list[tuple[str, str]]] = defaultdict(list)
    converted: list[tuple[str, str]] = []
    unconverted: list[UnconvertedAccount] = []
    for account in figures:
        a = account.analytics
        moneys = [a.realized_pnl, *account.deposits, *account.withdrawals]
        found = {m.currency: factor(m.currency) for m in moneys}
        reasons = [f for f in found.values() if isinstance(f, str)]
        if reasons:
            unconverted.append(
                UnconvertedAccount(
                    platform=account.platform,
                    account_id=account.account_id,
                    currency=account.currency,
                    realized_pnl=a.realized_pnl,
                    deposits=_total(account.deposits, account.currency),
                    withdrawals=_total(account.withdrawals, account.currency),
                    reason=reasons[0],
                )
            )
            continue
        converted.append((account.platform, account.account_id))
        for currency, f in found.items():
            assert isinstance(f, _Factor)
            if currency != reporting:
                used[currency] = f
                used_by[currency].append((account.platform, account.account_id))

        rates = {c: f.rate for c, f in found.items() if isinstance(f, _Factor)}
        pnl += a.realized_pnl.amount * rates[a.realized_pnl.currency]
        deposits += sum((m.amount * rates[m.currency] for m in account.deposits), Decimal(0))
        withdrawals += sum((m.amount * rates[m.currency] for m in account.withdrawals), Decimal(0))

    return PartnerAnalytics(
        period_from=start,
        period_to=end,
        currency=reporting,
        realized_pnl=Money(pnl, reporting),
        deposits=Money(deposits, reporting),
        withdrawals=Money(withdrawals, reporting),
        wins=sum(f.analytics.wins for f in figures),
        losses=sum(f.analytics.losses for f in figures),
        open_volume_by_symbol=_volumes(figures, factor, reporting),
        opened_by_level=_opened(figures),
        rates=[
            ReportingRate(
                currency=currency,
                rate=f.rate,
                as_of=min(leg.as_of for leg in f.legs) if f.legs else end,
                sources=[leg.source for leg in f.legs],
                accounts=used_by[currency],
            )
            for currency, f in sorted(used.items())
        ],
        converted_accounts=converted,
        not_converted=unconverted,
        not_covered=list(not_covered),
    )


def _volumes(
    figures: Sequence[AccountFigures],
    factor: Callable[[str], _Factor | str],
    reporting: str,
) -> list[PartnerSymbolVolume]:
    volume: dict[str, Decimal] = defaultdict(Decimal)
    positions: dict[str, int] = defaultdict(int)
    lots: dict[str, Decimal | None] = {}
    notional: dict[str, Decimal | None] = {}
    for account in figures:
        for v in account.analytics.volume_by_symbol:
            volume[v.symbol] += v.volume
            positions[v.symbol] += v.positions
            before_lots = lots.get(v.symbol, Decimal(0))
            lots[v.symbol] = None if before_lots is None or v.lots is None else before_lots + v.lots
            before = notional.get(v.symbol, Decimal(0))
            f = None if v.notional is None else factor(v.notional.currency)
            if before is None or v.notional is None or not isinstance(f, _Factor):
                notional[v.symbol] = None
            else:
                notional[v.symbol] = before + v.notional.amount * f.rate
    result = []
    for symbol in sorted(volume):
        amount = notional[symbol]
        result.append(
            PartnerSymbolVolume(
                symbol=symbol,
                volume=volume[symbol],
                positions=positions[symbol],
                lots=lots[symbol],
                notional=None if amount is None else Money(amount, reporting),
            )
        )
    return result


def _opened(figures: Sequence[AccountFigures]) -> dict[RankingLevel, list[OpenedRank]]:
    """Every level's counts summed over the accounts; an account lacking a level (its
    platform does not classify) counts its positions under ``None`` there."""
    merged: dict[RankingLevel, dict[str | None, int]] = {
        level: defaultdict(int) for level in RankingLevel
    }
    for account in figures:
        levels = account.analytics.opened_by_level
        symbols = levels.get(RankingLevel.SYMBOL)
        if symbols is None:  # a platform without levels: its symbol ranking
            symbols = [
                OpenedRank(name=o.symbol, positions=o.positions)
                for o in account.analytics.most_opened_symbols
            ]
        total = sum(r.positions for r in symbols)
        for level in RankingLevel:
            entries = levels.get(level)
            if level is RankingLevel.SYMBOL:
                entries = symbols
            if entries is None:
                entries = [OpenedRank(name=None, positions=total)] if total else []
            for entry in entries:
                merged[level][entry.name] += entry.positions
    return {
        level: [
            OpenedRank(name=n, positions=counts[n])
            for n in sorted(counts, key=lambda n: (-counts[n], n is None, n or ""))
            if counts[n] > 0
        ]
        for level, counts in merged.items()
    }
