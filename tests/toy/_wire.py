"""The toy wire format to standard models: one function per object, ``raw`` kept.

The tables are the whole vocabulary of the toy platform; a value outside them is
a ``ProtocolError`` (the platform said something we do not understand), never a
guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from gateway import models
from gateway.errors import ProtocolError

E = TypeVar("E")

ACCESS = {
    "FULL": models.AccountStatus.FULL_TRADING,
    "CLOSE_ONLY": models.AccountStatus.CLOSE_ONLY,
    "NO_TRADING": models.AccountStatus.NO_TRADING,
    "NO_LOGIN": models.AccountStatus.NO_LOGIN,
}
ACCESS_OUT = {status: wire for wire, status in ACCESS.items()}
SIDES = {"buy": models.OrderSide.BUY, "sell": models.OrderSide.SELL}
SIDES_OUT = {side: wire for wire, side in SIDES.items()}
ORDER_TYPES = {
    "limit": models.OrderType.LIMIT,
    "market": models.OrderType.MARKET,
    "stop": models.OrderType.STOP,
    "stopLimit": models.OrderType.STOP_LIMIT,
}
ORDER_TYPES_OUT = {kind: wire for wire, kind in ORDER_TYPES.items()}
TIME_IN_FORCE = {
    "day": models.TimeInForce.DAY,
    "gtc": models.TimeInForce.GTC,
    "gtd": models.TimeInForce.GTD,
}
TIME_IN_FORCE_OUT = {tif: wire for wire, tif in TIME_IN_FORCE.items()}
ORDER_STATES = {
    "WORKING": models.OrderStatus.WORKING,
    "FILLED": models.OrderStatus.FILLED,
    "CANCELED": models.OrderStatus.CANCELLED,  # the platform spells it the US way
    "REJECTED": models.OrderStatus.REJECTED,
}
TRADER_STATES = {"enabled": models.TraderStatus.ACTIVE, "disabled": models.TraderStatus.INACTIVE}
#: Operation kind on the wire, and whether the amount is negative, to the standard kind.
OPERATION_KINDS = {
    ("deposit", False): models.BalanceOperationKind.DEPOSIT,
    ("withdrawal", False): models.BalanceOperationKind.WITHDRAWAL,
    ("credit", False): models.BalanceOperationKind.CREDIT_IN,
    ("credit", True): models.BalanceOperationKind.CREDIT_OUT,
    ("bonus", False): models.BalanceOperationKind.BONUS_IN,
    ("bonus", True): models.BalanceOperationKind.BONUS_OUT,
}


def lookup(table: Mapping[Any, E], value: Any, what: str) -> E:
    try:
        return table[value]
    except (KeyError, TypeError):
        raise ProtocolError(f"the toy platform sent an unknown {what}") from None


def decimal(value: Any) -> Decimal:
    if not isinstance(value, str):  # money is a string on this wire; a number would be lossy
        raise ProtocolError("the toy platform sent a number that is not a string")
    try:
        result = Decimal(value)
    except InvalidOperation:
        raise ProtocolError("the toy platform sent a malformed number") from None
    if not result.is_finite():
        raise ProtocolError("the toy platform sent a non-finite number")
    return result


def opt_decimal(value: Any) -> Decimal | None:
    return None if value is None else decimal(value)


def time(value: Any) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise ProtocolError("the toy platform sent a malformed time") from None
    if parsed.tzinfo is None:
        raise ProtocolError("the toy platform sent a time without an offset")
    return models.ensure_utc(parsed)


def opt_time(value: Any) -> datetime | None:
    return None if value is None else time(value)


def money(value: Any, currency: str) -> models.Money:
    return models.Money(decimal(value), currency)


def opt_money(value: Any, currency: str) -> models.Money | None:
    return None if value is None else money(value, currency)


def trader(d: Mapping[str, Any], platform: str) -> models.Trader:
    return models.Trader(
        platform=platform,
        id=str(d["id"]),
        login=str(d["id"]),
        email=d.get("email"),
        name=d.get("name"),
        status=lookup(TRADER_STATES, d.get("state"), "trader state"),
        created_at=opt_time(d.get("createdAt")),
        raw=d,
    )


def account(d: Mapping[str, Any], platform: str) -> models.Account:
    currency = str(d["currency"])
    return models.Account(
        platform=platform,
        id=str(d["id"]),
        number=str(d["id"]),
        currency=currency,
        trader_id=str(d["traderId"]),
        status=lookup(ACCESS, d.get("access"), "account access"),
        is_live=bool(d.get("live", True)),
        group=d.get("group"),
        leverage=opt_decimal(d.get("leverage")),
        balance=money(d["balance"], currency),
        equity=opt_money(d.get("equity"), currency),
        credit=opt_money(d.get("credit"), currency),
        bonus=opt_money(d.get("bonus"), currency),
        margin=opt_money(d.get("margin"), currency),
        free_margin=opt_money(d.get("freeMargin"), currency),
        created_at=opt_time(d.get("createdAt")),
        raw=d,
    )


def position(d: Mapping[str, Any], platform: str) -> models.Position:
    currency = str(d["currency"])
    return models.Position(
        platform=platform,
        id=str(d["id"]),
        account_id=str(d["accountId"]),
        symbol=str(d["symbol"]),
        side=lookup(SIDES, d.get("side"), "side"),
        volume=decimal(d["volume"]),
        open_price=decimal(d["openPrice"]),
        opened_at=time(d["openedAt"]),
        current_price=opt_decimal(d.get("currentPrice")),
        unrealized_pnl=opt_money(d.get("pnl"), currency),
        swap=opt_money(d.get("swap"), currency),
        commission=opt_money(d.get("commission"), currency),
        raw=d,
    )


def order(d: Mapping[str, Any], platform: str) -> models.Order:
    return models.Order(
        platform=platform,
        id=str(d["id"]),
        account_id=str(d["accountId"]),
        symbol=str(d["symbol"]),
        side=lookup(SIDES, d.get("side"), "side"),
        type=lookup(ORDER_TYPES, d.get("type"), "order type"),
        quantity=decimal(d["quantity"]),
        status=lookup(ORDER_STATES, d.get("state"), "order state"),
        time_in_force=lookup(TIME_IN_FORCE, d.get("tif"), "time in force"),
        filled_quantity=decimal(d.get("filledQuantity", "0")),
        price=opt_decimal(d.get("price")),
        stop_price=opt_decimal(d.get("stopPrice")),
        average_fill_price=opt_decimal(d.get("avgFillPrice")),
        created_at=opt_time(d.get("createdAt")),
        updated_at=opt_time(d.get("updatedAt")),
        client_order_id=d.get("clientOrderId") or None,
        raw=d,
    )


def deal(d: Mapping[str, Any], platform: str) -> models.Deal:
    currency = str(d["currency"])
    return models.Deal(
        platform=platform,
        id=str(d["id"]),
        account_id=str(d["accountId"]),
        symbol=str(d["symbol"]),
        side=lookup(SIDES, d.get("side"), "side"),
        volume=decimal(d["volume"]),
        price=decimal(d["price"]),
        executed_at=time(d["executedAt"]),
        position_id=d.get("positionId"),
        realized_pnl=opt_money(d.get("pnl"), currency),
        commission=opt_money(d.get("commission"), currency),
        raw=d,
    )


def operation(d: Mapping[str, Any], platform: str) -> models.BalanceOperation:
    currency = str(d["currency"])
    amount = decimal(d["amount"])
    kind = lookup(OPERATION_KINDS, (d.get("kind"), amount < 0), "operation kind")
    return models.BalanceOperation(
        platform=platform,
        id=str(d["id"]),
        account_id=str(d["accountId"]),
        kind=kind,
        # The kind carries the direction; the amount is its size.
        amount=models.Money(abs(amount), currency),
        at=time(d["at"]),
        balance_after=opt_money(d.get("balanceAfter"), currency),
        comment=d.get("comment"),
        external_id=d.get("clientId"),
        raw=d,
    )


def subscription(d: Mapping[str, Any], platform: str) -> models.MarketDataSubscription:
    return models.MarketDataSubscription(
        platform=platform,
        id=str(d["id"]),
        trader_id=str(d["traderId"]),
        name=str(d["name"]),
        active=bool(d["active"]),
        ends_at=opt_time(d.get("endsAt")),
        raw=d,
    )


def order_event(d: Mapping[str, Any], platform: str, account_id: str) -> models.OrderEvent:
    snapshot = d.get("kind") == "snapshot"
    kind = models.OrderEventKind.ORDER_BOOK_SNAPSHOT if snapshot else models.OrderEventKind.ORDER
    return models.OrderEvent(
        platform=platform,
        account_id=account_id,
        sequence=int(d["sequence"]),
        kind=kind,
        at=time(d["at"]),
        order=order(d["order"], platform) if d.get("order") else None,
        raw=d,
    )


def account_event(d: Mapping[str, Any], platform: str, account_id: str) -> models.AccountEvent:
    return models.AccountEvent(
        platform=platform,
        account_id=account_id,
        sequence=int(d["sequence"]),
        at=time(d["at"]),
        account=account(d["account"], platform) if d.get("account") else None,
        balance_operation=operation(d["operation"], platform) if d.get("operation") else None,
    )


def market_data_event(
    d: Mapping[str, Any], platform: str, trader_id: str
) -> models.MarketDataSubscriptionEvent:
    return models.MarketDataSubscriptionEvent(
        platform=platform,
        trader_id=trader_id,
        kind=str(d["kind"]).upper(),
        at=time(d["at"]),
        subscription=subscription(d["subscription"], platform) if d.get("subscription") else None,
    )
