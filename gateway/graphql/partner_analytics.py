"""``BusinessPartner.analytics``: the partner's accounts' analytics in one reporting
currency (the merge and its conversion rule: :mod:`gateway.partner_analytics`).

Every account takes the ordinary road of reads: the account and its open positions
through the batched loaders (one call each per platform for the whole partner),
then its analytics and balance operations, cached per account and period exactly as
``Account.analytics`` caches them.  An account whose platform gives no analytics,
or whose read fails, is listed in ``notCovered`` with the reason; the others still
answer.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal

import strawberry

from gateway import models
from gateway.connectors import Capability
from gateway.errors import BrokerGraphError, InvalidInput
from gateway.graphql.context import RequestContext
from gateway.graphql.errors import ErrorCode
from gateway.graphql.ids import encode_id
from gateway.graphql.rankings import OpenedRank, RankingLevel, ranking
from gateway.graphql.types import Money, _linked
from gateway.partner_analytics import (
    AccountFigures,
    UncoveredAccount,
    merge,
)
from gateway.partner_analytics import PartnerAnalytics as PartnerAnalyticsModel

__all__ = ["PartnerAnalytics", "partner_analytics"]

_CURRENCY = re.compile(r"[A-Z][A-Z0-9]{2,11}")


def _account_gid(platform: str, account_id: str) -> strawberry.ID:
    return strawberry.ID(encode_id("Account", platform, account_id))


@strawberry.type(description="A rate the partner's totals were converted with.")
class ReportingRate:
    currency: str = strawberry.field(description="Converted from this currency.")
    rate: Decimal = strawberry.field(
        description="One unit of `currency` in the reporting currency, to 10 places."
    )
    as_of: datetime = strawberry.field(
        description="When the platform's data gave it (the oldest leg of a chained rate)."
    )
    sources: list[str] = strawberry.field(
        description="The platform data each leg (currency -> USD) comes from."
    )
    account_ids: list[strawberry.ID] = strawberry.field(
        description="The accounts whose money was converted with it."
    )


@strawberry.type(description="One symbol's open positions summed over the partner's accounts.")
class PartnerSymbolVolume:
    symbol: str
    volume: Decimal = strawberry.field(description="Base-asset units (not lots).")
    positions: int
    lots: Decimal | None = strawberry.field(
        description="Null when some account's platform does not know the lot size."
    )
    notional: Money | None = strawberry.field(
        description="At entry prices, in the reporting currency; null when a part of it "
        "has no notional or no rate."
    )


@strawberry.type(description="An account whose money could not be put in the reporting currency.")
class UnconvertedAccountTotals:
    account_id: strawberry.ID
    platform: str
    currency: str
    realized_pnl: Money = strawberry.field(description="In the account's own currency.")
    deposits: Money = strawberry.field(description="In the account's own currency.")
    withdrawals: Money = strawberry.field(description="In the account's own currency.")
    reason: str = strawberry.field(description="Why no rate: none is ever guessed.")


@strawberry.type(
    name="UncoveredAccount", description="A linked account that is not in the totals at all."
)
class UncoveredAccountEntry:
    account_id: strawberry.ID
    platform: str
    code: ErrorCode = strawberry.field(
        description="Why: the account's read failed with it, or CAPABILITY_NOT_SUPPORTED."
    )
    reason: str


@strawberry.type(
    name="PartnerAnalytics",
    description="A partner's accounts' analytics over a period, money in one reporting "
    "currency converted only with rates the platforms' own data gave.",
)
class PartnerAnalytics:
    period_from: datetime
    period_to: datetime
    currency: str = strawberry.field(description="The reporting currency.")
    realized_pnl: Money = strawberry.field(description="Converted accounts only.")
    deposits: Money = strawberry.field(
        description="Converted accounts only; what each platform reports (cTrader: the "
        "operations made through this gateway, as WebServices has no balance history)."
    )
    withdrawals: Money = strawberry.field(description="Converted accounts only; positive.")
    wins: int = strawberry.field(description="Every analysed account (counts need no rate).")
    losses: int = strawberry.field(description="Every analysed account.")
    win_ratio: Decimal | None = strawberry.field(
        description="wins / (wins + losses) to 4 places; null when nothing closed."
    )
    open_volume_by_symbol: list[PartnerSymbolVolume]
    rates: list[ReportingRate]
    converted_account_ids: list[strawberry.ID]
    not_converted: list[UnconvertedAccountTotals]
    not_covered: list[UncoveredAccountEntry]
    opened_by_level: strawberry.Private[Mapping[models.RankingLevel, Sequence[models.OpenedRank]]]

    @strawberry.field(
        description="Positions opened in the period over every analysed account, ranked "
        "by symbol, category or asset class, most first, ties by name (null name: "
        "symbols their platform does not classify at that level)."
    )
    def most_opened(
        self,
        level: RankingLevel,  # type: ignore[valid-type]
        first: int = 10,
    ) -> list[OpenedRank] | None:
        return ranking(self.opened_by_level, level, first)

    @classmethod
    def from_model(cls, m: PartnerAnalyticsModel) -> PartnerAnalytics:
        total = m.wins + m.losses
        return cls(
            period_from=m.period_from,
            period_to=m.period_to,
            currency=m.currency,
            realized_pnl=Money.required(m.realized_pnl),
            deposits=Money.required(m.deposits),
            withdrawals=Money.required(m.withdrawals),
            wins=m.wins,
            losses=m.losses,
            win_ratio=(Decimal(m.wins) / Decimal(total)).quantize(
                Decimal("0.0001"), ROUND_HALF_EVEN
            )
            if total
            else None,
            open_volume_by_symbol=[
                PartnerSymbolVolume(
                    symbol=v.symbol,
                    volume=v.volume,
                    positions=v.positions,
                    lots=v.lots,
                    notional=Money.of(v.notional),
                )
                for v in m.open_volume_by_symbol
            ],
            rates=[
                ReportingRate(
                    currency=r.currency,
                    rate=r.rate,
                    as_of=r.as_of,
                    sources=list(r.sources),
                    account_ids=[_account_gid(p, a) for p, a in r.accounts],
                )
                for r in m.rates
            ],
            converted_account_ids=[_account_gid(p, a) for p, a in m.converted_accounts],
            not_converted=[
                UnconvertedAccountTotals(
                    account_id=_account_gid(u.platform, u.account_id),
                    platform=u.platform,
                    currency=u.currency,
                    realized_pnl=Money.required(u.realized_pnl),
                    deposits=Money.required(u.deposits),
                    withdrawals=Money.required(u.withdrawals),
                    reason=u.reason,
                )
                for u in m.not_converted
            ],
            not_covered=[
                UncoveredAccountEntry(
                    account_id=_account_gid(u.platform, u.account_id),
                    platform=u.platform,
                    code=ErrorCode[u.code]
                    if u.code in ErrorCode.__members__
                    else ErrorCode.INTERNAL,
                    reason=u.reason,
                )
                for u in m.not_covered
            ],
            opened_by_level=m.opened_by_level,
        )


def reporting_currency(text: str) -> str:
    """The reporting currency, upper case; InvalidInput (before any call) otherwise."""
    value = text.strip().upper()
    if not _CURRENCY.fullmatch(value):
        raise InvalidInput(
            "`currency` must be a currency code (3 to 12 letters or digits)", field=["currency"]
        )
    return value


async def partner_analytics(
    ctx: RequestContext, code: str, start: datetime, end: datetime, currency: str
) -> PartnerAnalytics:
    """The partner's analytics in ``currency`` (period and currency already checked)."""
    registry = ctx.services.registry
    loaders = ctx.loaders
    keys = await _linked(ctx, code, "account", None)
    uncovered: list[UncoveredAccount] = []

    async def one(platform: str, account_id: str) -> AccountFigures | None:
        key = (platform, account_id)
        try:
            # Batched with the partner's other accounts: one read each per platform,
            # which the connector's analytics then finds instead of reading again.
            account, _ = await asyncio.gather(
                loaders.accounts.load(key), loaders.positions.load(key)
            )
            if account is None:
                uncovered.append(
                    UncoveredAccount(
                        platform=platform,
                        account_id=account_id,
                        code="NOT_FOUND",
                        reason="the platform does not know this account",
                    )
                )
                return None
            analytics = await loaders.analytics(platform, account_id, start, end)
            operations: Sequence[models.BalanceOperation] = ()
            if registry.has(platform, Capability.ACCOUNT_HISTORY):
                operations = await loaders.balance_operations(platform, account_id, start, end)
        except BrokerGraphError as error:
            uncovered.append(
                UncoveredAccount(
                    platform=platform,
                    account_id=account_id,
                    code=error.code,
                    reason=error.message,
                )
            )
            return None
        kinds = models.BalanceOperationKind
        return AccountFigures(
            platform=platform,
            account_id=account_id,
            currency=account.currency,
            analytics=analytics,
            deposits=[o.amount for o in operations if o.kind is kinds.DEPOSIT],
            withdrawals=[
                models.Money(abs(o.amount.amount), o.amount.currency)
                for o in operations
                if o.kind is kinds.WITHDRAWAL
            ],
        )

    analysed = [k for k in keys if registry.has(k[0], Capability.ACCOUNT_ANALYTICS)]
    for platform, account_id in keys:
        if not registry.has(platform, Capability.ACCOUNT_ANALYTICS):
            uncovered.append(
                UncoveredAccount(
                    platform=platform,
                    account_id=account_id,
                    code="CAPABILITY_NOT_SUPPORTED",
                    reason=f"platform {platform!r} gives no analytics",
                )
            )
    found = await asyncio.gather(*(one(p, a) for p, a in analysed))
    figures = [f for f in found if f is not None]
    order = {key: n for n, key in enumerate(keys)}
    uncovered.sort(key=lambda u: order.get((u.platform, u.account_id), 0))
    model = merge(figures, reporting=currency, start=start, end=end, not_covered=uncovered)
    return PartnerAnalytics.from_model(model)
