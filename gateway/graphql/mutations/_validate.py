"""Checks of mutation input that need no store or platform: amounts, text, ids, JSON.

Each raises :class:`InvalidInput` naming the offending field, so bad input fails
before any upstream call.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from gateway.errors import InvalidInput
from gateway.graphql.ids import decode_id

__all__ = [
    "check_amount",
    "check_text",
    "decode_account",
    "decode_order",
    "decode_trader",
    "json_object",
]

MAX_AMOUNT = Decimal("1e12")
MAX_AMOUNT_DECIMALS = 8


def check_amount(amount: Decimal, *, signed: bool = False, field: str = "amount") -> Decimal:
    """A positive (or, when ``signed``, non-zero) amount with at most 8 decimals."""
    if amount == 0 or (amount < 0 and not signed):
        raise InvalidInput(
            "amount must be non-zero" if signed else "amount must be greater than zero",
            field=[field],
        )
    if abs(amount) > MAX_AMOUNT:
        raise InvalidInput("amount is too large", field=[field])
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > MAX_AMOUNT_DECIMALS:
        raise InvalidInput(
            f"amount has more than {MAX_AMOUNT_DECIMALS} decimal places", field=[field]
        )
    return amount


def check_text(value: str, field: str, *, max_length: int = 200) -> str:
    """``value`` stripped, which must leave 1 to ``max_length`` characters."""
    stripped = value.strip()
    if not stripped or len(stripped) > max_length:
        raise InvalidInput(f"{field} must be 1-{max_length} characters", field=[field])
    return stripped


def decode_account(global_id: str, field: str = "accountId") -> tuple[str, str]:
    """The platform and native id of an ``Account`` global id."""
    platform, native_id = _parts(global_id, "Account", 2, field)
    return platform, native_id


def decode_trader(global_id: str, field: str = "traderId") -> tuple[str, str]:
    """The platform and native id of a ``Trader`` global id."""
    platform, native_id = _parts(global_id, "Trader", 2, field)
    return platform, native_id


def decode_order(global_id: str) -> tuple[str, str, str]:
    """The platform, account and order id of an ``Order`` global id."""
    platform, account_id, order_id = _parts(global_id, "Order", 3, "orderId")
    return platform, account_id, order_id


def _parts(global_id: str, type_name: str, count: int, field: str) -> list[str]:
    _, parts = decode_id(global_id, type_name, field=field)
    if len(parts) != count:
        raise InvalidInput(f"{field} is not a valid {type_name} id", field=[field])
    return parts


def json_object(value: object, field: str) -> dict[str, Any]:
    """A JSON input that must be an object (``null`` means empty)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"{field} must be a JSON object", field=[field])
    return value
