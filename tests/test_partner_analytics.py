"""The partner-level merge of accounts' analytics: which rate converts what, what is
left unconverted, and how rankings merge across platforms that classify differently.
(The whole road, against a sandbox's REST, is plugins/ctrader/tests/test_analytics_levels.py.)"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import brokergraph_ctrader.plugin

from gateway.graphql.cost import DeclaredCosts
from gateway.graphql.schema import build_schema
from gateway.models import (
    AccountAnalytics,
    ConversionRate,
    Money,
    OpenedRank,
    RankingLevel,
    SymbolOpened,
    SymbolOpenVolume,
)
from gateway.partner_analytics import AccountFigures, merge
from gateway.plugins import load_plugins
from tests.test_flood_cost import ANALYTICS, CTRADER, LIST, LOOKBACK, certain_calls, cost, windows

START, END = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)
D = Decimal


def _rate(currency: str, value: str, day: int, source: str) -> ConversionRate:
    return ConversionRate(
        currency=currency,
        target="USD",
        rate=D(value),
        as_of=datetime(2026, 10, day, tzinfo=UTC),
        source=source,
    )


def _account(
    account_id: str,
    currency: str,
    pnl: str,
    *,
    rates: tuple[ConversionRate, ...] = (),
    levels: dict[RankingLevel, list[OpenedRank]] | None = None,
    opened: tuple[SymbolOpened, ...] = (),
    volumes: tuple[SymbolOpenVolume, ...] = (),
    platform: str = "ctrader",
) -> AccountFigures:
    analytics = AccountAnalytics(
        account_id=account_id,
        period_from=START,
        period_to=END,
        realized_pnl=Money(D(pnl), currency),
        wins=1,
        losses=2,
        most_opened_symbols=opened,
        volume_by_symbol=volumes,
        opened_by_level=levels or {},
        conversion_rates=rates,
    )
    return AccountFigures(
        platform=platform,
        account_id=account_id,
        currency=currency,
        analytics=analytics,
        deposits=[Money(D(100), currency)],
    )


def test_the_latest_rate_of_a_currency_converts_every_account_in_it() -> None:
    figures = [
        _account("1", "EUR", "10", rates=(_rate("EUR", "1.05", 3, "old"),)),
        _account("2", "EUR", "20", rates=(_rate("EUR", "1.10", 9, "new"),)),
        _account("3", "USD", "5"),
    ]
    result = merge(figures, reporting="USD", start=START, end=END)
    assert result.realized_pnl == Money(D("38.00"), "USD")  # 30 x 1.10 + 5
    assert result.deposits == Money(D(320), "USD")
    (rate,) = result.rates
    assert (rate.currency, rate.rate, rate.sources) == ("EUR", D("1.1000000000"), ["new"])
    assert rate.accounts == [("ctrader", "1"), ("ctrader", "2")]
    assert (result.wins, result.losses) == (3, 6)


def test_a_chained_rate_goes_through_usd_and_a_missing_leg_is_never_guessed() -> None:
    figures = [
        _account("1", "EUR", "10", rates=(_rate("EUR", "1.10", 3, "eur"),)),
        _account("2", "GBP", "4", rates=(_rate("GBP", "1.25", 5, "gbp"),)),
        _account("3", "CHF", "7"),  # no rate anywhere
    ]
    result = merge(figures, reporting="GBP", start=START, end=END)
    eur_gbp = (D("1.10") / D("1.25")).quantize(D("1e-10"))
    assert result.realized_pnl.amount == 4 + 10 * eur_gbp
    (rate,) = result.rates
    assert (rate.currency, rate.rate, rate.sources) == ("EUR", eur_gbp, ["eur", "gbp"])
    assert rate.as_of == datetime(2026, 10, 3, tzinfo=UTC)  # the older leg
    (left,) = result.not_converted
    assert (left.account_id, left.realized_pnl, left.deposits) == (
        "3",
        Money(D(7), "CHF"),
        Money(D(100), "CHF"),
    )
    assert "CHF -> USD" in left.reason


def test_rankings_merge_and_an_unclassifying_platform_counts_as_unclassified() -> None:
    classified = {
        RankingLevel.SYMBOL: [OpenedRank(name="EURUSD", positions=2)],
        RankingLevel.CATEGORY: [OpenedRank(name="Majors", positions=2)],
        RankingLevel.ASSET_CLASS: [OpenedRank(name="Forex", positions=2)],
    }
    figures = [
        _account("1", "USD", "0", levels=classified),
        _account(
            "2",
            "USD",
            "0",
            platform="other",
            opened=(SymbolOpened(symbol="EURUSD", positions=1, volume=D(1000)),),
        ),
    ]
    result = merge(figures, reporting="USD", start=START, end=END)
    assert result.opened_by_level[RankingLevel.SYMBOL] == [OpenedRank(name="EURUSD", positions=3)]
    assert result.opened_by_level[RankingLevel.CATEGORY] == [
        OpenedRank(name="Majors", positions=2),
        OpenedRank(name=None, positions=1),
    ]


def test_a_notional_without_a_rate_makes_the_symbol_notional_null() -> None:
    volume = SymbolOpenVolume(
        symbol="EURUSD", volume=D(1000), positions=1, lots=D("0.01"), notional=None
    )
    priced = SymbolOpenVolume(
        symbol="XAUUSD", volume=D(2), positions=1, lots=D("0.02"), notional=Money(D(5300), "USD")
    )
    figures = [
        _account("1", "USD", "0", volumes=(volume, priced)),
        _account("2", "USD", "0", volumes=(priced,)),
    ]
    result = merge(figures, reporting="USD", start=START, end=END)
    by_symbol = {v.symbol: v for v in result.open_volume_by_symbol}
    assert by_symbol["EURUSD"].notional is None
    assert by_symbol["XAUUSD"].notional == Money(D(10600), "USD")
    assert by_symbol["XAUUSD"].lots == D("0.04")


def test_a_partners_analytics_costs_a_list_of_its_accounts_analytics() -> None:
    """At validation the partner's accounts are unknown: its analytics costs what
    ``default_list_size`` accounts' analytics of the period cost (none is certain)."""
    schema = build_schema(load_plugins(entry_points=False, extra=[brokergraph_ctrader.plugin]))
    declared = DeclaredCosts({"ctrader": CTRADER}, {"CTraderAccount": "ctrader"})
    query = (
        '{ businessPartner(code: "P") { analytics(from: "2026-10-01T00:00:00Z",'
        ' to: "2026-11-01T00:00:00Z") { wins } } }'
    )
    per_account = ANALYTICS.calls + windows(START - LOOKBACK, END)
    # businessPartner 1 + analytics (LIST accounts' reads) + wins 1
    assert cost(schema._schema, query, declared) == 1 + LIST * per_account + 1
    assert certain_calls(schema._schema, query, declared) == 0
