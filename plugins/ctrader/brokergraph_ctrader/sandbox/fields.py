"""Readers of request fields: JSON values, or the strings an XML body carries.

Each reader takes the field's name (for the message) and its value, and returns the
typed value or raises ``INVALID_REQUEST``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from decimal import Decimal
from typing import Any

from brokergraph_ctrader.sandbox.errors import invalid

Reader = Callable[[str, Any], Any]
_INT = re.compile(r"-?\d{1,18}")
_MD5 = re.compile(r"[0-9a-fA-F]{32}")


def text(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise invalid(f"{name} must be a non-empty string")
    return value


def optional_text(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(f"{name} must be a string")
    return value


def integer(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise invalid(f"{name} must be an integer")
    if isinstance(value, int):
        return value
    # Bounded first: int(Decimal("1e1000000")) (a JSON body's 1e1000000) takes minutes.
    bounded = isinstance(value, Decimal) and value.is_finite() and value.adjusted() < 18
    if bounded and value == value.to_integral_value():
        return int(value)
    if isinstance(value, str) and _INT.fullmatch(value.strip()):
        return int(value)
    raise invalid(f"{name} must be an integer")


def positive_integer(name: str, value: Any) -> int:
    number = integer(name, value)
    if number <= 0:
        raise invalid(f"{name} must be positive")
    return number


def optional_positive_integer(name: str, value: Any) -> int | None:
    return None if value is None else positive_integer(name, value)


def boolean(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise invalid(f"{name} must be true or false")


def one_of(values: Collection[str]) -> Reader:
    def read(name: str, value: Any) -> str:
        if value not in values:
            raise invalid(f"{name} must be one of {', '.join(sorted(values))}")
        return str(value)

    return read


def optional(reader: Reader) -> Reader:
    def read(name: str, value: Any) -> Any:
        return None if value is None else reader(name, value)

    return read


def md5_hex(name: str, value: Any) -> str:
    if not isinstance(value, str) or not _MD5.fullmatch(value):
        raise invalid(f"{name} must be the MD5 hex digest of the password")
    return value.lower()
