"""DXtrade's JSON (B4, B5.1) to the standard models, and the ids that join them.

* Trader id: ``login@domain`` (B1's full username form; split at the last ``@``).
* Account id: ``clearingCode:accountCode`` (B1, the dxsca-web account id).
* Money: JSON numbers decoded as ``Decimal`` (never float) in the account currency.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from gateway.contract import (
    Account,
    AccountStatus,
    BalanceOperation,
    BalanceOperationKind,
    Deal,
    Money,
    OrderSide,
    Position,
    ProtocolError,
    Trader,
    TraderStatus,
)

__all__ = [
    "ACCOUNT_STATUS_IN",
    "ACCOUNT_STATUS_OUT",
    "PLATFORM",
    "account_id",
    "account_model",
    "balance_operations",
    "deals_of_order",
    "decimal",
    "iso",
    "parse_account_id",
    "parse_time",
    "parse_trader_id",
    "position_model",
    "trader_id",
    "trader_model",
]

PLATFORM = "dxtrade"

ACCOUNT_STATUS_IN: Mapping[str, AccountStatus] = {
    "FULL_TRADING": AccountStatus.FULL_TRADING,
    "CLOSE_ONLY": AccountStatus.CLOSE_ONLY,
    "NO_TRADING": AccountStatus.NO_TRADING,
    "TERMINATED": AccountStatus.TERMINATED,
    "EXPIRED": AccountStatus.EXPIRED,
}
#: NO_LOGIN has no DXtrade account status (logins belong to the user, not the account).
ACCOUNT_STATUS_OUT: Mapping[AccountStatus, str] = {v: k for k, v in ACCOUNT_STATUS_IN.items()}

#: ONLINE and OFFLINE are both usable users (OFFLINE is what reactivation sets, seed 004).
TRADER_STATUS_IN: Mapping[str, TraderStatus] = {
    "ONLINE": TraderStatus.ACTIVE,
    "OFFLINE": TraderStatus.ACTIVE,
    "DISABLED": TraderStatus.DISABLED,
}

#: Cash transaction types (B6) to balance operation kinds; the rest are trading costs.
TRANSFER_KINDS: Mapping[str, BalanceOperationKind] = {
    "DEPOSIT": BalanceOperationKind.DEPOSIT,
    "WITHDRAWAL": BalanceOperationKind.WITHDRAWAL,
    "ADJUSTMENT": BalanceOperationKind.ADJUSTMENT,
    "NEGATIVE_BALANCE_CORRECTION": BalanceOperationKind.ADJUSTMENT,
}


# --------------------------------------------------------------------------- ids


def trader_id(login: str, domain: str) -> str:
    return f"{login}@{domain}"


def parse_trader_id(value: str) -> tuple[str, str] | None:
    """``(login, domain)`` of ``login@domain``, or None when it has not that shape."""
    login, at, domain = value.rpartition("@")
    if not at or not login or not domain or "/" in value:
        return None
    return login, domain


def account_id(clearing_code: str, account_code: str) -> str:
    return f"{clearing_code}:{account_code}"


def parse_account_id(value: str) -> tuple[str, str] | None:
    """``(clearingCode, accountCode)`` of ``clearingCode:accountCode``, or None."""
    clearing, colon, code = value.partition(":")
    if not colon or not clearing or not code or "/" in value:
        return None
    return clearing, code


# --------------------------------------------------------------------------- values


def decimal(value: Any, what: str) -> Decimal:
    if isinstance(value, bool) or value is None:
        raise ProtocolError(f"DXtrade sent no number for {what}")
    try:
        result = Decimal(value) if isinstance(value, int | Decimal) else Decimal(str(value))
    except InvalidOperation:
        raise ProtocolError(f"DXtrade sent a bad number for {what}") from None
    if not result.is_finite():
        raise ProtocolError(f"DXtrade sent a non-finite number for {what}")
    return result


def _money(value: Any, currency: str, what: str) -> Money | None:
    return None if value is None else Money(decimal(value, what), currency)


def parse_time(value: Any) -> datetime | None:
    """ISO-8601 (``...Z`` or an offset) as aware UTC; None for null or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.astimezone(UTC)


def iso(moment: datetime) -> str:
    """Aware datetime as DXtrade writes it: UTC, milliseconds, ``Z`` (B7)."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


# --------------------------------------------------------------------------- models


def trader_model(client: Mapping[str, Any]) -> Trader:
    login, domain = client.get("login"), client.get("domain")
    if not isinstance(login, str) or not isinstance(domain, str) or not login or not domain:
        raise ProtocolError("DXtrade sent a user without login and domain")
    status = TRADER_STATUS_IN.get(str(client.get("status")), TraderStatus.INACTIVE)
    return Trader(
        platform=PLATFORM,
        id=trader_id(login, domain),
        login=login,
        email=_text(client.get("email")),
        name=_text(client.get("fullName")),
        status=status,
        created_at=parse_time(client.get("createdDateTime")),
        raw=dict(client),
    )


def account_model(
    account: Mapping[str, Any],
    *,
    owner: str | None,
    metrics: Mapping[str, Any] | None = None,
) -> Account:
    """A dxweb Account, with the live money of its dxsca-web metrics when given."""
    clearing, code = account.get("clearingCode"), account.get("accountCode")
    currency = account.get("currency")
    if not (isinstance(clearing, str) and isinstance(code, str) and isinstance(currency, str)):
        raise ProtocolError("DXtrade sent an account without clearingCode/accountCode/currency")
    status = ACCOUNT_STATUS_IN.get(str(account.get("status")))
    if status is None:
        raise ProtocolError("DXtrade sent an account status outside B6")
    m: Mapping[str, Any] = metrics or {}
    metadata = account.get("metadata")
    leverage = metadata.get("leverage") if isinstance(metadata, Mapping) else None
    return Account(
        platform=PLATFORM,
        id=account_id(clearing, code),
        number=code,
        currency=currency,
        trader_id=owner,
        status=status,
        is_live=account.get("accountType", "LIVE") != "DEMO",
        group=None,
        leverage=None if leverage is None else decimal(leverage, "metadata.leverage"),
        balance=_money(m.get("balance", account.get("balance")), currency, "balance"),
        equity=_money(m.get("equity"), currency, "equity"),
        credit=_money(m.get("credit", account.get("credit")), currency, "credit"),
        margin=_money(m.get("margin"), currency, "margin"),
        free_margin=_money(m.get("marginFree"), currency, "marginFree"),
        raw={"account": dict(account), "metrics": dict(m) if metrics else None},
    )


def position_model(p: Mapping[str, Any], currency: str | None = None) -> Position:
    opened = parse_time(p.get("openTime"))
    side = p.get("side")
    if opened is None or side not in ("BUY", "SELL"):
        raise ProtocolError("DXtrade sent a position without openTime or side")
    code, account = p.get("positionCode"), p.get("account")
    if not isinstance(code, str) or not isinstance(account, str):
        raise ProtocolError("DXtrade sent a position without positionCode or account")
    return Position(
        platform=PLATFORM,
        id=code,
        account_id=account,
        symbol=str(p.get("symbol")),
        side=OrderSide(side),
        volume=decimal(p.get("quantity"), "quantity"),
        open_price=decimal(p.get("openPrice"), "openPrice"),
        opened_at=opened,
        raw=dict(p),
    )


def balance_operations(transfer: Mapping[str, Any]) -> list[BalanceOperation]:
    """The cash transactions of one CashTransfer (B5.1).

    DEPOSIT and WITHDRAWAL report the amount's size (the kind carries the direction);
    every other kind keeps DXtrade's sign.  ``external_id`` is the transfer code of a
    cash operation (deposit, withdrawal, adjustment: made by a PUT naming its own id),
    which for the gateway's own is the idempotency key it sent, as its PUT answered;
    ``id`` is DXtrade's transaction code.  Other transfers (commission, financing ...)
    have no id of their maker: ``external_id`` None (a transfer may hold several).
    """
    operations = []
    code = _text(transfer.get("transferCode"))
    for tx in transfer.get("cashTransactions") or []:
        kind = TRANSFER_KINDS.get(str(tx.get("type")), BalanceOperationKind.TRADE)
        value = decimal(tx.get("value"), "cash transaction value")
        if kind in (BalanceOperationKind.DEPOSIT, BalanceOperationKind.WITHDRAWAL):
            value = abs(value)
        at = parse_time(tx.get("transactionTime")) or parse_time(transfer.get("transactionTime"))
        account = tx.get("account") or transfer.get("account")
        op_id = _text(tx.get("transactionCode")) or code
        if at is None or not isinstance(account, str) or op_id is None:
            raise ProtocolError("DXtrade sent a cash transaction without time, account or code")
        operations.append(
            BalanceOperation(
                platform=PLATFORM,
                id=op_id,
                account_id=account,
                kind=kind,
                amount=Money(value, str(tx.get("currency"))),
                at=at,
                comment=_text(transfer.get("comment")),
                external_id=code if str(tx.get("type")) in TRANSFER_KINDS else None,
                raw=dict(tx),
            )
        )
    return operations


def deals_of_order(order: Mapping[str, Any]) -> list[Deal]:
    """The fills of one order of the order history (B5): one deal per execution with
    a quantity, or one for the whole order when it lists no executions."""
    account = order.get("account")
    if not isinstance(account, str):
        raise ProtocolError("DXtrade sent an order without account")
    deals = []
    executions: Sequence[Mapping[str, Any]] = order.get("executions") or []
    legs: Sequence[Mapping[str, Any]] = order.get("legs") or [{}]
    side = order.get("side") or legs[0].get("side")
    for execution in executions:
        quantity = execution.get("lastQuantity")
        at = parse_time(execution.get("transactionTime"))
        if not quantity or at is None or side not in ("BUY", "SELL"):
            continue
        deals.append(
            Deal(
                platform=PLATFORM,
                id=str(execution.get("executionCode")),
                account_id=account,
                symbol=str(execution.get("instrument") or order.get("instrument")),
                side=OrderSide(side),
                volume=decimal(quantity, "lastQuantity"),
                price=decimal(execution.get("lastPrice"), "lastPrice"),
                executed_at=at,
                position_id=_text(legs[0].get("positionCode")),
                raw=dict(execution),
            )
        )
    if not executions and side in ("BUY", "SELL"):
        filled = legs[0].get("filledQuantity")
        at = parse_time(order.get("transactionTime"))
        if filled and at is not None:
            deals.append(
                Deal(
                    platform=PLATFORM,
                    id=str(order.get("orderId") or order.get("orderCode")),
                    account_id=account,
                    symbol=str(order.get("instrument")),
                    side=OrderSide(side),
                    volume=decimal(filled, "filledQuantity"),
                    price=decimal(legs[0].get("averagePrice"), "averagePrice"),
                    executed_at=at,
                    position_id=_text(legs[0].get("positionCode")),
                    raw=dict(order),
                )
            )
    return deals
