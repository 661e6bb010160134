"""Scalars: exact Decimal and UTC DateTime, strict in what they accept.

``Decimal`` travels as a string and refuses JSON floats, whose binary value is
already wrong before we see it; ``DateTime`` refuses naive times rather than
guessing a zone.  Both replace Strawberry's built-ins through ``StrawberryConfig.scalar_map``.
"""

from __future__ import annotations

import decimal
from datetime import UTC, datetime
from typing import Any

import strawberry
from strawberry.types.scalar import ScalarDefinition

from gateway.models import ensure_utc

__all__ = ["SCALAR_MAP", "DateTimeScalar", "DecimalScalar", "parse_datetime", "parse_decimal"]

MAX_DECIMAL_DIGITS = 38
#: No platform keeps records before the Unix epoch, and far from datetime's own limits a
#: period's arithmetic (a connector's lookback, the cost model's 366 days) cannot overflow:
#: year 1 or 9999 crashed cTrader's history reads and the cost rule before any check.
EARLIEST_DATETIME = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_DATETIME = datetime(9000, 1, 1, tzinfo=UTC)


def parse_decimal(value: Any) -> decimal.Decimal:
    """A finite Decimal from a string or an integer; floats and junk raise ValueError."""
    if isinstance(value, bool | float):
        raise ValueError('Decimal values must be sent as strings, e.g. "100.25"')
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str) or len(value) > MAX_DECIMAL_DIGITS + 2:
        raise ValueError("Decimal values must be strings of at most 40 characters")
    try:
        parsed = decimal.Decimal(value.strip())
    except decimal.InvalidOperation as error:
        raise ValueError(f"{value!r} is not a decimal number") from error
    if not parsed.is_finite():
        raise ValueError("Decimal values must be finite")
    return parsed


def _serialize_decimal(value: decimal.Decimal) -> str:
    return format(value, "f")


def parse_datetime(value: Any) -> datetime:
    """An aware UTC datetime from an ISO-8601 string in the range below; else ValueError."""
    if not isinstance(value, str):
        raise ValueError("DateTime values must be ISO-8601 strings")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as error:
        raise ValueError(f"{value!r} is not an ISO-8601 date-time") from error
    if parsed.tzinfo is None:
        raise ValueError("DateTime values need a UTC offset, e.g. 2026-01-31T12:00:00Z")
    if not EARLIEST_DATETIME <= parsed < LATEST_DATETIME:
        raise ValueError("DateTime values must lie in the years 1970 to 8999")
    return ensure_utc(parsed)


def _serialize_datetime(value: datetime) -> str:
    return ensure_utc(value).isoformat().replace("+00:00", "Z")


DecimalScalar: ScalarDefinition = strawberry.scalar(
    name="Decimal",
    description='An exact decimal number, sent as a string ("1250.50"); floats are refused.',
    serialize=_serialize_decimal,
    parse_value=parse_decimal,
)

DateTimeScalar: ScalarDefinition = strawberry.scalar(
    name="DateTime",
    description='An ISO-8601 date-time in UTC, e.g. "2026-01-31T12:00:00Z".',
    serialize=_serialize_datetime,
    parse_value=parse_datetime,
)

SCALAR_MAP: dict[object, Any] = {
    decimal.Decimal: DecimalScalar,
    datetime: DateTimeScalar,
}
