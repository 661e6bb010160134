"""Opaque global ids: ``base64url(JSON [type, part, ...])``.

Clients must treat ids as opaque; the gateway needs to recover the platform and
the native id from them without a lookup.  JSON keeps any character a vendor
puts in its ids; base64url keeps the id safe in URLs.
"""

from __future__ import annotations

import base64
import binascii
import json

from gateway.errors import InvalidInput

__all__ = ["decode_id", "encode_id"]

MAX_ID_LENGTH = 512


def encode_id(type_name: str, *parts: str) -> str:
    raw = json.dumps([type_name, *parts], separators=(",", ":"), ensure_ascii=False)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_id(
    global_id: str, *expected: str, field: str = "id", size: int | None = None
) -> tuple[str, list[str]]:
    """The type name and parts of ``global_id``; ``expected`` restricts the type names and
    ``size`` says how many parts they have (an id with fewer or more is invalid input)."""
    if not isinstance(global_id, str):  # a federation representation's id is raw JSON
        raise InvalidInput("an id is a string", field=[field])
    error = InvalidInput(f"{global_id[:40]!r} is not a valid id", field=[field])
    if not 0 < len(global_id) <= MAX_ID_LENGTH:
        raise error
    try:
        padded = global_id + "=" * (-len(global_id) % 4)
        decoded = json.loads(base64.urlsafe_b64decode(padded.encode()).decode())
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise error from None
    if (
        not isinstance(decoded, list)
        or len(decoded) < 2
        or not all(isinstance(part, str) and part for part in decoded)
    ):
        raise error
    type_name, *parts = decoded
    if expected and type_name not in expected:
        raise InvalidInput(f"id is a {type_name}, expected {' or '.join(expected)}", field=[field])
    if size is not None and len(parts) != size:
        raise error
    return type_name, parts
