"""Money on the cTrader wire: integers scaled by ``10**moneyDigits``; amounts in units.

Trader objects carry ``balance``, ``equity`` and the rest as scaled integers
(``moneyDigits`` 2 for fiat, 8 for BTC/ETH); balance and bonus changes carry
``preciseAmount`` as a decimal number of currency units, positive, with at most
``moneyDigits`` decimals.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from brokergraph_ctrader.sandbox.errors import CTraderError

#: moneyDigits of the currencies that are not 2 (fiat).
CRYPTO_DIGITS = {"BTC": 8, "ETH": 8}
#: The largest amount (units) one change may move.
MAX_AMOUNT = Decimal(10) ** 12


def money_digits(currency: str) -> int:
    return CRYPTO_DIGITS.get(currency, 2)


def to_units(scaled: int, digits: int) -> Decimal:
    """12345, 2 -> Decimal('123.45')."""
    return Decimal(scaled).scaleb(-digits)


def to_scaled(amount: Decimal, digits: int) -> int:
    """Decimal('123.456'), 2 -> 12346 (half-even)."""
    return int(amount.scaleb(digits).to_integral_value(rounding=ROUND_HALF_EVEN))


def fixed(amount: Decimal, digits: int) -> str:
    """Decimal units as text with exactly ``digits`` decimals ('123.40'; never '-0.00')."""
    value = amount.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_EVEN)
    return format(abs(value) if value.is_zero() else value, "f")


def _bad(value: object, why: str) -> CTraderError:
    return CTraderError("CHANGE_BALANCE_BAD_AMOUNT", f"preciseAmount {value!r}: {why}")


def parse_precise_amount(value: object, digits: int) -> int:
    """A ``preciseAmount`` (JSON number or string) to the scaled integer it moves."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise _bad(value, "a positive decimal number is required")
    try:
        amount = Decimal(repr(value) if isinstance(value, float) else value)
    except InvalidOperation:
        raise _bad(value, "not a number") from None
    if not amount.is_finite() or amount <= 0:
        raise _bad(value, "must be greater than zero")
    if amount > MAX_AMOUNT:
        raise _bad(value, "too large")
    if amount != amount.quantize(Decimal(1).scaleb(-digits)):
        raise _bad(value, f"at most {digits} decimals for this account")
    return to_scaled(amount, digits)
