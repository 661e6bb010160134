"""Exact money on cTrader's wire.

cTrader sends ``balance``, ``equity``, ``bonus``, ``nonWithdrawableBonus``,
``usedMargin``, ``freeMargin`` … as integers scaled by ``10 ** moneyDigits`` (A3),
and takes ``preciseAmount`` (changebalance / changebonus) as a decimal number in
currency units with at most ``moneyDigits`` decimals.  Leverage travels as
``leverageInCents`` (leverage x 100).  Everything here is exact ``Decimal``
arithmetic; a float is refused wherever one could sneak in.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from gateway.contract import InvalidInput, ProtocolError

__all__ = [
    "MAX_MONEY_DIGITS",
    "check_precision",
    "decimals_of",
    "from_scaled",
    "leverage_from_cents",
    "leverage_to_cents",
    "plain",
    "to_scaled",
    "wire_amount",
]

#: cTrader uses 2 for fiat and up to 8 for crypto deposit assets.
MAX_MONEY_DIGITS = 8


def plain(value: Decimal) -> Decimal:
    """``value`` without an exponent form: ``100`` rather than ``1E+2``, ``0.5`` not ``0.50``."""
    if value == value.to_integral_value():
        return value.quantize(Decimal(1))
    return value.normalize()


def decimals_of(amount: Decimal) -> int:
    """Significant decimal places: ``12.3400`` has 2, ``100`` has 0."""
    exponent = amount.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def check_precision(amount: Decimal, money_digits: int, field: str = "amount") -> Decimal:
    """``amount`` when it fits the account's ``moneyDigits``; InvalidInput otherwise.

    Called before any write, so an amount cTrader would round (or refuse with
    CHANGE_BALANCE_BAD_AMOUNT) never leaves the gateway.
    """
    if not amount.is_finite():
        raise InvalidInput("amount must be a finite number", field=[field])
    places = decimals_of(amount)
    if places > money_digits:
        raise InvalidInput(
            f"amount has {places} decimal places; this account takes at most {money_digits}",
            field=[field],
            details={"moneyDigits": money_digits},
        )
    return amount


def wire_amount(amount: Decimal, money_digits: int) -> str:
    """The JSON number literal of ``preciseAmount`` (positive, exact, no exponent)."""
    check_precision(amount, money_digits)
    return format(plain(amount), "f")


def _integer(value: Any, what: str) -> int:
    # bool is an int subclass; a float would already have lost digits.
    if isinstance(value, bool | float):
        raise ProtocolError(f"cTrader sent {what} as {type(value).__name__}, expected an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)  # the docs' own example sends "balance": "00"
    raise ProtocolError(f"cTrader sent {what} that is not an integer")


def money_digits_of(value: Any) -> int:
    digits = _integer(value, "moneyDigits")
    if not 0 <= digits <= 18:
        raise ProtocolError("cTrader sent an implausible moneyDigits")
    return digits


def from_scaled(value: Any, money_digits: int, what: str = "an amount") -> Decimal:
    """A wire integer scaled by ``10 ** money_digits`` as an exact Decimal in currency units."""
    return Decimal(_integer(value, what)).scaleb(-money_digits)


def to_scaled(amount: Decimal, money_digits: int) -> int:
    """Currency units to the wire integer; refuses what would need rounding."""
    check_precision(amount, money_digits)
    return int(amount.scaleb(money_digits))


def leverage_from_cents(value: Any) -> Decimal:
    """``leverageInCents`` (10000) as leverage (100)."""
    return plain(Decimal(_integer(value, "leverageInCents")).scaleb(-2))


def leverage_to_cents(leverage: Decimal, field: str = "leverage") -> int:
    """Leverage (e.g. ``100`` or ``33.33``) as ``leverageInCents``; at most 2 decimals."""
    if not leverage.is_finite() or leverage <= 0:
        raise InvalidInput("leverage must be greater than zero", field=[field])
    if decimals_of(leverage) > 2:
        raise InvalidInput("leverage takes at most 2 decimal places on cTrader", field=[field])
    return int(leverage.scaleb(2))
