"""JSON for money: ``Decimal`` out as an exact literal, non-integers in as ``Decimal``.

Vendor APIs carry money as JSON numbers; ``json`` would refuse a ``Decimal`` on
the way out and turn ``0.1`` into a float on the way in.  Both directions here
are exact, so no connector ever routes money through binary floating point.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

__all__ = ["exact_json_dumps", "exact_json_loads"]


def exact_json_dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON with each ``Decimal`` written as its exact fixed-point literal."""
    return _encode(value).encode("utf-8")


def _encode(value: Any) -> str:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("a non-finite Decimal cannot be sent as JSON")
        return format(value, "f")
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{json.dumps(str(k))}:{_encode(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_encode(v) for v in value) + "]"
    return json.dumps(value, separators=(",", ":"))


def exact_json_loads(content: bytes | str) -> Any:
    """Parse JSON with every non-integer number as ``Decimal`` (money is never a float)."""
    return json.loads(content, parse_float=Decimal)
