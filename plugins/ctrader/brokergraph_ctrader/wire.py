"""cTrader's JSON and CSV rows to the gateway's standard models, and back.

Model mapping (the design in the README):

* gateway ``Trader``  = cTrader **user** (cTID), ``id = str(userId)``;
* gateway ``Account`` = cTrader **trader** (trading account), ``id = str(login)``,
  ``trader_id = str(userId)`` when the link is known;
* money fields are exact ``Money`` in ``depositCurrency`` (scaled integers on the
  wire); ``credit`` is ``nonWithdrawableBonus``; ``leverage = leverageInCents / 100``;
* ``status`` follows ``accessRights`` (FULL_ACCESS → FULL_TRADING, CLOSE_ONLY,
  NO_TRADING, NO_LOGIN).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from brokergraph_ctrader.csvwire import ClosedDealRow, OpenPositionRow
from brokergraph_ctrader.money import from_scaled, leverage_from_cents, money_digits_of
from gateway.contract import (
    Account,
    AccountStatus,
    Deal,
    InvalidInput,
    Money,
    OrderSide,
    Position,
    ProtocolError,
)

__all__ = [
    "ACCESS_RIGHTS",
    "COMMISSION_CURRENCY",
    "access_rights_for",
    "account_from_trader",
    "deal_from_row",
    "epoch_ms",
    "position_from_row",
]

ACCESS_RIGHTS: Mapping[str, AccountStatus] = {
    "FULL_ACCESS": AccountStatus.FULL_TRADING,
    "CLOSE_ONLY": AccountStatus.CLOSE_ONLY,
    "NO_TRADING": AccountStatus.NO_TRADING,
    "NO_LOGIN": AccountStatus.NO_LOGIN,
}
_RIGHTS_OF: Mapping[AccountStatus, str] = {status: name for name, status in ACCESS_RIGHTS.items()}
#: The CSV grids give commission and swap in USD (A4.5), whatever the deposit currency.
COMMISSION_CURRENCY = "USD"


def access_rights_for(status: AccountStatus, field: str = "status") -> str:
    """cTrader's ``accessRights`` for an account status; InvalidInput when it has none."""
    rights = _RIGHTS_OF.get(status)
    if rights is None:
        raise InvalidInput(
            f"cTrader has no access rights for {status.value}; use one of "
            + ", ".join(s.value for s in _RIGHTS_OF),
            field=[field],
        )
    return rights


def _bounded(value: Any, what: str) -> Any:
    """``value``, unless it is a JSON number int() must not see: ``1e999999999`` (a Decimal)
    would become a billion-digit integer, minutes of CPU in the event loop."""
    if isinstance(value, Decimal) and not (value.is_finite() and value.adjusted() < 20):
        raise ProtocolError(f"cTrader sent a {what} that is out of range")
    return value


def epoch_ms(value: Any, what: str = "timestamp") -> datetime | None:
    """An epoch-milliseconds JSON timestamp as aware UTC (None when absent)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise ProtocolError(f"cTrader sent a {what} that is not epoch milliseconds")
    _bounded(value, what)
    try:
        return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
    except (ValueError, ArithmeticError, OSError):  # not a number, or out of datetime's range
        raise ProtocolError(f"cTrader sent a {what} that is not epoch milliseconds") from None


def account_from_trader(
    data: Mapping[str, Any],
    platform: str,
    *,
    is_live: bool,
    trader_id: str | None = None,
) -> Account:
    """A trader object (4.1/4.2, items of 4.3) as an Account."""
    try:
        login = str(int(_bounded(data["login"], "login")))
        currency = data["depositCurrency"]
        if not isinstance(currency, str) or not currency:
            raise ProtocolError("cTrader sent a trader without depositCurrency")
        digits = money_digits_of(data.get("moneyDigits", 2))

        def money(key: str) -> Money | None:
            value = data.get(key)
            return None if value is None else Money(from_scaled(value, digits, key), currency)

        rights = data.get("accessRights")
        status = ACCESS_RIGHTS.get(rights) if isinstance(rights, str) else None
        if status is None:
            raise ProtocolError("cTrader sent a trader with unknown accessRights")
        leverage = data.get("leverageInCents")
        group = data.get("groupName")
        return Account(
            platform=platform,
            id=login,
            number=login,
            currency=currency,
            trader_id=trader_id,
            status=status,
            is_live=is_live,
            group=group if isinstance(group, str) else None,
            leverage=None if leverage is None else leverage_from_cents(leverage),
            balance=money("balance"),
            equity=money("equity"),
            credit=money("nonWithdrawableBonus"),
            bonus=money("bonus"),
            margin=money("usedMargin"),
            free_margin=money("freeMargin"),
            created_at=epoch_ms(data.get("registrationTimestamp"), "registrationTimestamp"),
            raw=dict(data),
        )
    except (KeyError, TypeError, ValueError, ArithmeticError) as error:
        # ArithmeticError: a number beyond Decimal's precision (leverageInCents 10**40)
        raise ProtocolError("cTrader sent an incomplete trader object") from error


def _side(direction: str) -> OrderSide:
    return OrderSide.BUY if direction == "BUY" else OrderSide.SELL


def position_from_row(row: OpenPositionRow, platform: str) -> Position:
    return Position(
        platform=platform,
        id=row.position_id,
        account_id=row.login,
        symbol=row.symbol,
        side=_side(row.direction),
        volume=row.volume,
        open_price=row.entry_price,
        opened_at=row.opened_at,
        swap=Money(row.swap, COMMISSION_CURRENCY),
        commission=Money(row.commission, COMMISSION_CURRENCY),
        raw=dict(row.raw),
    )


def deal_from_row(row: ClosedDealRow, platform: str, currency: str) -> Deal:
    """A closing deal; ``pnl`` (net realised) is in the deposit currency ``currency``."""
    return Deal(
        platform=platform,
        id=row.deal_id,
        account_id=row.login,
        symbol=row.symbol,
        side=_side(row.direction),
        volume=row.volume,
        price=row.close_price,
        executed_at=row.closed_at,
        position_id=row.position_id,
        realized_pnl=Money(row.pnl, currency),
        commission=Money(row.commission, COMMISSION_CURRENCY),
        swap=Money(row.swap, COMMISSION_CURRENCY),
        raw=dict(row.raw),
    )
