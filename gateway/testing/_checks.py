"""Checkers for every standard model: the contract, asserted with a message that says why.

The models validate a few fields on construction, but not all (``Account.balance``
may hold anything, an enum field may hold a string, ``object.__setattr__`` bypasses
everything), so the checkers trust nothing and look at every field.  Each takes the
connector's ``platform`` when the model carries one.  They use plain ``assert`` with
explicit messages, so they read the same with or without pytest's rewriting.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from gateway import models

__all__ = [
    "check_account",
    "check_account_event",
    "check_analytics",
    "check_balance_operation",
    "check_business_partner",
    "check_client_report",
    "check_deal",
    "check_execution",
    "check_instrument",
    "check_market_data_subscription",
    "check_market_data_subscription_event",
    "check_money",
    "check_order",
    "check_order_event",
    "check_position",
    "check_tax_calculation",
    "check_trader",
]


def _show(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


def _instance(value: Any, cls: type, what: str) -> None:
    assert isinstance(value, cls), (
        f"{what} must be a {cls.__module__}.{cls.__name__}, got {_show(value)}"
    )


def _id(value: Any, what: str, optional: bool = False) -> None:
    if optional and value is None:
        return
    valid = isinstance(value, str) and bool(value.strip())
    assert valid, f"{what} must be a non-empty string id (never an int), got {_show(value)}"


def _text(value: Any, what: str, optional: bool = False) -> None:
    if optional and value is None:
        return
    assert isinstance(value, str), f"{what} must be a str, got {_show(value)}"


def _currency(value: Any, what: str) -> None:
    valid = isinstance(value, str) and bool(value.strip())
    assert valid, f"{what} must be a non-empty currency code, got {_show(value)}"


def _flag(value: Any, what: str) -> None:
    assert isinstance(value, bool), f"{what} must be a bool, got {_show(value)}"


def _count(value: Any, what: str) -> None:
    valid = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    assert valid, f"{what} must be a non-negative int, got {_show(value)}"


def _decimal(value: Any, what: str, optional: bool = False) -> None:
    if optional and value is None:
        return
    assert not isinstance(value, float), f"{what} must be a Decimal, never a float: got {value!r}"
    assert isinstance(value, Decimal), f"{what} must be a Decimal, got {_show(value)}"
    assert value.is_finite(), f"{what} must be finite, got {value!r}"


def _time(value: Any, what: str, optional: bool = False) -> None:
    if optional and value is None:
        return
    assert isinstance(value, datetime), f"{what} must be a datetime, got {_show(value)}"
    offset = value.utcoffset()
    assert offset is not None, f"{what} must be timezone-aware (UTC), got naive {value!r}"
    assert offset == timedelta(0), f"{what} must be in UTC, got offset {offset} in {value!r}"


def _enum(value: Any, cls: type[enum.Enum], what: str) -> None:
    assert isinstance(value, cls), (
        f"{what} must be a {cls.__name__} member (not its value), got {_show(value)}"
    )


def _platform(m: Any, platform: str | None, what: str) -> None:
    _id(m.platform, f"{what}.platform")
    if platform is not None:
        assert m.platform == platform, (
            f"{what}.platform must be the connector's platform {platform!r}, got {m.platform!r}"
        )


def _raw(m: Any, what: str) -> None:
    raw = m.raw
    assert raw is None or isinstance(raw, Mapping), (
        f"{what}.raw must be None or the vendor payload as a mapping, got {_show(raw)}"
    )


def check_money(m: models.Money | None, what: str = "Money", optional: bool = False) -> None:
    """An exact amount: a finite Decimal (never float) and a non-empty currency."""
    if optional and m is None:
        return
    assert isinstance(m, models.Money), f"{what} must be a gateway.models.Money, got {_show(m)}"
    _decimal(m.amount, f"{what}.amount")
    _currency(m.currency, f"{what}.currency")


def check_trader(m: models.Trader, platform: str | None = None) -> None:
    _instance(m, models.Trader, "Trader")
    _platform(m, platform, "Trader")
    _id(m.id, "Trader.id")
    for name in ("login", "email", "name"):
        _text(getattr(m, name), f"Trader.{name}", optional=True)
    _enum(m.status, models.TraderStatus, "Trader.status")
    _time(m.created_at, "Trader.created_at", optional=True)
    _raw(m, "Trader")


def check_account(m: models.Account, platform: str | None = None) -> None:
    _instance(m, models.Account, "Account")
    _platform(m, platform, "Account")
    _id(m.id, "Account.id")
    _id(m.number, "Account.number")
    _id(m.trader_id, "Account.trader_id", optional=True)
    _currency(m.currency, "Account.currency")
    _enum(m.status, models.AccountStatus, "Account.status")
    _flag(m.is_live, "Account.is_live")
    _text(m.group, "Account.group", optional=True)
    _decimal(m.leverage, "Account.leverage", optional=True)
    for name in ("balance", "equity", "credit", "bonus", "margin", "free_margin"):
        check_money(getattr(m, name), f"Account.{name}", optional=True)
    _time(m.created_at, "Account.created_at", optional=True)
    _raw(m, "Account")


def check_position(m: models.Position, platform: str | None = None) -> None:
    _instance(m, models.Position, "Position")
    _platform(m, platform, "Position")
    _id(m.id, "Position.id")
    _id(m.account_id, "Position.account_id")
    _id(m.symbol, "Position.symbol")
    _enum(m.side, models.OrderSide, "Position.side")
    _decimal(m.volume, "Position.volume")
    _decimal(m.open_price, "Position.open_price")
    _decimal(m.current_price, "Position.current_price", optional=True)
    _time(m.opened_at, "Position.opened_at")
    for name in ("unrealized_pnl", "swap", "commission"):
        check_money(getattr(m, name), f"Position.{name}", optional=True)
    _raw(m, "Position")


def check_order(m: models.Order, platform: str | None = None) -> None:
    _instance(m, models.Order, "Order")
    _platform(m, platform, "Order")
    _id(m.id, "Order.id")
    _id(m.account_id, "Order.account_id")
    _id(m.symbol, "Order.symbol")
    _enum(m.side, models.OrderSide, "Order.side")
    _enum(m.type, models.OrderType, "Order.type")
    _enum(m.status, models.OrderStatus, "Order.status")
    _enum(m.time_in_force, models.TimeInForce, "Order.time_in_force")
    _decimal(m.quantity, "Order.quantity")
    _decimal(m.filled_quantity, "Order.filled_quantity")
    for name in ("price", "stop_price", "average_fill_price"):
        _decimal(getattr(m, name), f"Order.{name}", optional=True)
    for name in ("expires_at", "created_at", "updated_at"):
        _time(getattr(m, name), f"Order.{name}", optional=True)
    _id(m.client_order_id, "Order.client_order_id", optional=True)
    _text(m.reject_reason, "Order.reject_reason", optional=True)
    if m.executions is not None:
        assert isinstance(m.executions, tuple), "Order.executions must be None or a tuple"
        for execution in m.executions:
            check_execution(execution)
        total = sum((e.quantity for e in m.executions), Decimal(0))
        assert total == m.filled_quantity, (
            f"Order {m.id}: its executions add up to {total}, its filled_quantity is"
            f" {m.filled_quantity} (list every fill, or none: executions None)"
        )
    _raw(m, "Order")


def check_execution(m: models.Execution) -> None:
    _instance(m, models.Execution, "Execution")
    _id(m.id, "Execution.id")
    _decimal(m.quantity, "Execution.quantity")
    assert m.quantity > 0, f"Execution {m.id}: a fill trades a positive quantity"
    _decimal(m.price, "Execution.price")
    _time(m.executed_at, "Execution.executed_at")
    _raw(m, "Execution")


def check_instrument(m: models.Instrument, platform: str | None = None) -> None:
    """A specification: each rule None or a positive Decimal, hours well formed."""
    _instance(m, models.Instrument, "Instrument")
    _platform(m, platform, "Instrument")
    _id(m.symbol, "Instrument.symbol")
    for name in ("description", "kind", "currency", "trading_status"):
        _text(getattr(m, name), f"Instrument.{name}", optional=True)
    for name in (
        "tick_size",
        "contract_size",
        "lot_size",
        "min_quantity",
        "max_quantity",
        "quantity_increment",
    ):
        value = getattr(m, name)
        _decimal(value, f"Instrument.{name}", optional=True)
        assert value is None or value > 0, f"Instrument {m.symbol}: {name} must be > 0"
    if m.min_quantity is not None and m.max_quantity is not None:
        assert m.min_quantity <= m.max_quantity, f"Instrument {m.symbol}: min above max"
    if m.trading_hours is not None:
        assert isinstance(m.trading_hours, tuple), "Instrument.trading_hours: None or a tuple"
        for entry in m.trading_hours:
            _instance(entry, models.TradingHoursEvent, "Instrument.trading_hours[]")
    _raw(m, "Instrument")


def check_deal(m: models.Deal, platform: str | None = None) -> None:
    _instance(m, models.Deal, "Deal")
    _platform(m, platform, "Deal")
    _id(m.id, "Deal.id")
    _id(m.account_id, "Deal.account_id")
    _id(m.position_id, "Deal.position_id", optional=True)
    _id(m.symbol, "Deal.symbol")
    _enum(m.side, models.OrderSide, "Deal.side")
    _decimal(m.volume, "Deal.volume")
    _decimal(m.price, "Deal.price")
    _time(m.executed_at, "Deal.executed_at")
    for name in ("realized_pnl", "commission", "swap"):
        check_money(getattr(m, name), f"Deal.{name}", optional=True)
    _raw(m, "Deal")


def check_balance_operation(m: models.BalanceOperation, platform: str | None = None) -> None:
    _instance(m, models.BalanceOperation, "BalanceOperation")
    _platform(m, platform, "BalanceOperation")
    _id(m.id, "BalanceOperation.id")
    _id(m.account_id, "BalanceOperation.account_id")
    _enum(m.kind, models.BalanceOperationKind, "BalanceOperation.kind")
    check_money(m.amount, "BalanceOperation.amount")
    check_money(m.balance_after, "BalanceOperation.balance_after", optional=True)
    _time(m.at, "BalanceOperation.at")
    _text(m.comment, "BalanceOperation.comment", optional=True)
    _id(m.external_id, "BalanceOperation.external_id", optional=True)
    _raw(m, "BalanceOperation")


def check_market_data_subscription(
    m: models.MarketDataSubscription, platform: str | None = None
) -> None:
    _instance(m, models.MarketDataSubscription, "MarketDataSubscription")
    _platform(m, platform, "MarketDataSubscription")
    _id(m.id, "MarketDataSubscription.id")
    _id(m.trader_id, "MarketDataSubscription.trader_id")
    _text(m.name, "MarketDataSubscription.name")
    _flag(m.active, "MarketDataSubscription.active")
    _time(m.ends_at, "MarketDataSubscription.ends_at", optional=True)
    _raw(m, "MarketDataSubscription")


def check_tax_calculation(m: models.TaxCalculation, platform: str | None = None) -> None:
    _instance(m, models.TaxCalculation, "TaxCalculation")
    _platform(m, platform, "TaxCalculation")
    _id(m.partner_code, "TaxCalculation.partner_code")
    _enum(m.kind, models.TaxKind, "TaxCalculation.kind")
    check_money(m.tax_base, "TaxCalculation.tax_base")
    check_money(m.tax_amount, "TaxCalculation.tax_amount")
    for name in ("period_from", "period_to", "calculated_at"):
        _time(getattr(m, name), f"TaxCalculation.{name}", optional=True)
    _raw(m, "TaxCalculation")


def check_client_report(m: models.ClientReport, platform: str | None = None) -> None:
    _instance(m, models.ClientReport, "ClientReport")
    _platform(m, platform, "ClientReport")
    _id(m.id, "ClientReport.id")
    _id(m.partner_code, "ClientReport.partner_code")
    _enum(m.status, models.ReportStatus, "ClientReport.status")
    _enum(m.format, models.ReportFormat, "ClientReport.format")
    _time(m.requested_at, "ClientReport.requested_at")
    for name in ("period_from", "period_to", "ready_at"):
        _time(getattr(m, name), f"ClientReport.{name}", optional=True)
    _raw(m, "ClientReport")


def check_analytics(m: models.AccountAnalytics, platform: str | None = None) -> None:
    """``platform`` is accepted for symmetry; analytics carry none of their own."""
    del platform
    _instance(m, models.AccountAnalytics, "AccountAnalytics")
    _id(m.account_id, "AccountAnalytics.account_id")
    _time(m.period_from, "AccountAnalytics.period_from")
    _time(m.period_to, "AccountAnalytics.period_to")
    check_money(m.realized_pnl, "AccountAnalytics.realized_pnl")
    _count(m.wins, "AccountAnalytics.wins")
    _count(m.losses, "AccountAnalytics.losses")
    _decimal(m.open_volume, "AccountAnalytics.open_volume")
    for i, symbol in enumerate(m.most_traded_symbols):
        what = f"AccountAnalytics.most_traded_symbols[{i}]"
        _instance(symbol, models.SymbolVolume, what)
        _id(symbol.symbol, f"{what}.symbol")
        _decimal(symbol.volume, f"{what}.volume")
        _count(symbol.deals, f"{what}.deals")
    for i, sub in enumerate(m.copy_sub_accounts):
        what = f"AccountAnalytics.copy_sub_accounts[{i}]"
        _instance(sub, models.CopySubAccount, what)
        _id(sub.account_id, f"{what}.account_id")
        check_money(sub.balance, f"{what}.balance")
        check_money(sub.equity, f"{what}.equity", optional=True)
    totals: set[int] = set()
    for level, ranks in m.opened_by_level.items():
        what = f"AccountAnalytics.opened_by_level[{level}]"
        _enum(level, models.RankingLevel, what)
        for i, rank in enumerate(ranks):
            _instance(rank, models.OpenedRank, f"{what}[{i}]")
            _text(rank.name, f"{what}[{i}].name", optional=True)
            _count(rank.positions, f"{what}[{i}].positions")
        counts = [r.positions for r in ranks]
        assert counts == sorted(counts, reverse=True), f"{what} must rank most first"
        totals.add(sum(counts))
    assert len(totals) <= 1, "every ranking level must count the same positions opened"
    for i, rate in enumerate(m.conversion_rates):
        what = f"AccountAnalytics.conversion_rates[{i}]"
        _instance(rate, models.ConversionRate, what)
        assert rate.currency == m.realized_pnl.currency, f"{what}: not the account's currency"
        _currency(rate.target, f"{what}.target")
        _time(rate.as_of, f"{what}.as_of")
        _text(rate.source, f"{what}.source")
        assert rate.source, f"{what}.source must say where the rate comes from"


def check_business_partner(m: models.BusinessPartner, platform: str | None = None) -> None:
    _instance(m, models.BusinessPartner, "BusinessPartner")
    if m.platform is not None or platform is not None:
        _platform(m, platform, "BusinessPartner")
    _id(m.code, "BusinessPartner.code")
    _text(m.name, "BusinessPartner.name")
    _enum(m.kind, models.PartnerKind, "BusinessPartner.kind")
    for name in ("short_name", "email", "phone", "tax_id", "residency", "broker"):
        _text(getattr(m, name), f"BusinessPartner.{name}", optional=True)
    _flag(m.is_qualified_investor, "BusinessPartner.is_qualified_investor")
    _flag(m.kyc_passed, "BusinessPartner.kyc_passed")
    assert isinstance(m.attributes, Mapping), (
        f"BusinessPartner.attributes must be a mapping, got {_show(m.attributes)}"
    )
    _raw(m, "BusinessPartner")


def check_order_event(
    m: models.OrderEvent, platform: str | None = None, account_id: str | None = None
) -> None:
    _instance(m, models.OrderEvent, "OrderEvent")
    _platform(m, platform, "OrderEvent")
    _id(m.account_id, "OrderEvent.account_id")
    if account_id is not None:
        assert m.account_id == account_id, (
            f"OrderEvent.account_id must be the followed account {account_id!r}, "
            f"got {m.account_id!r}"
        )
    _count(m.sequence, "OrderEvent.sequence")
    _enum(m.kind, models.OrderEventKind, "OrderEvent.kind")
    _time(m.at, "OrderEvent.at")
    if m.order is not None:
        check_order(m.order, platform)
    if m.position is not None:
        check_position(m.position, platform)
    if m.account is not None:
        check_account(m.account, platform)
    _text(m.text, "OrderEvent.text", optional=True)
    _raw(m, "OrderEvent")


def check_account_event(
    m: models.AccountEvent, platform: str | None = None, account_id: str | None = None
) -> None:
    _instance(m, models.AccountEvent, "AccountEvent")
    _platform(m, platform, "AccountEvent")
    _id(m.account_id, "AccountEvent.account_id")
    if account_id is not None:
        assert m.account_id == account_id, (
            f"AccountEvent.account_id must be the followed account {account_id!r}, "
            f"got {m.account_id!r}"
        )
    _count(m.sequence, "AccountEvent.sequence")
    _time(m.at, "AccountEvent.at")
    if m.account is not None:
        check_account(m.account, platform)
    if m.balance_operation is not None:
        check_balance_operation(m.balance_operation, platform)
    _text(m.text, "AccountEvent.text", optional=True)


def check_market_data_subscription_event(
    m: models.MarketDataSubscriptionEvent, platform: str | None = None
) -> None:
    _instance(m, models.MarketDataSubscriptionEvent, "MarketDataSubscriptionEvent")
    _platform(m, platform, "MarketDataSubscriptionEvent")
    _id(m.trader_id, "MarketDataSubscriptionEvent.trader_id")
    _id(m.kind, "MarketDataSubscriptionEvent.kind")
    _time(m.at, "MarketDataSubscriptionEvent.at")
    if m.subscription is not None:
        check_market_data_subscription(m.subscription, platform)
