"""How long an already verified credential stays good: what a long-lived socket needs.

A WebSocket authenticates once, at ``connection_init``, and may then live for
hours; these helpers tell it when its bearer token expires and which API key it
holds, so it can close itself when either stops being valid.
"""

from __future__ import annotations

import re
from typing import Final

import jwt

from gateway.auth._header import split_authorization_header
from gateway.errors import Unauthenticated

__all__ = ["api_key_id", "bearer_expiry"]

_KEY_ID: Final = re.compile(r"bg_([0-9a-f]{16})_")


def bearer_expiry(authorization: str | None) -> float | None:
    """The ``exp`` (POSIX seconds) of a ``Bearer`` JWT; ``None`` for any other scheme.

    The signature is not checked here: call this only with a header an
    authenticator has just accepted (which also required ``exp``).
    """
    try:
        scheme, credentials = split_authorization_header(authorization)
    except Unauthenticated:
        return None
    if scheme != "bearer":
        return None
    try:
        claims = jwt.decode(credentials, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    expiry = claims.get("exp")
    return float(expiry) if isinstance(expiry, int | float) else None


def api_key_id(authorization: str | None) -> str | None:
    """The public id of an ``ApiKey`` credential, ``None`` for any other scheme."""
    try:
        scheme, credentials = split_authorization_header(authorization)
    except Unauthenticated:
        return None
    match = _KEY_ID.match(credentials) if scheme == "apikey" else None
    return match.group(1) if match else None
