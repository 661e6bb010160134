"""Checks every JWT verifier shares: the token's shape, the claims PyJWT must see,
and refusing without saying why (to the caller) or what (to the log)."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any, Final, NoReturn

import jwt
from jwt.types import Options

from gateway.auth._claims import InvalidClaims, viewer_from_claims
from gateway.auth._header import MAX_CREDENTIALS_LENGTH
from gateway.auth._viewer import Viewer
from gateway.errors import Unauthenticated

__all__ = ["REFUSED", "check_token_shape", "refuse", "unverified_header", "verified_viewer"]

logger = logging.getLogger("gateway.auth")

REFUSED: Final = "invalid or expired token"

# Compact JWS, unpadded base64url (RFC 7515 §2), with a non-empty signature; anything
# else is refused before PyJWT sees it, which also refuses unsigned "alg: none" tokens.
_TOKEN_SHAPE: Final = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")

# PyJWT checks exp/nbf/iat/iss/aud/sub/jti only when present unless required.
_DECODE_OPTIONS: Final[Options] = {
    "require": ["exp", "sub", "iss", "aud"],
    "enforce_minimum_key_length": True,
}


def refuse(reason: str) -> NoReturn:
    """Log ``reason`` (a fixed word, never token data) and refuse with the one message."""
    logger.debug("token refused: %s", reason)
    raise Unauthenticated(REFUSED)


def check_token_shape(token: object) -> str:
    """``token`` if it looks like a compact JWS of sane length; refused otherwise."""
    if (
        not isinstance(token, str)
        or len(token) > MAX_CREDENTIALS_LENGTH
        or _TOKEN_SHAPE.fullmatch(token) is None
    ):
        raise Unauthenticated(REFUSED)
    return token


def unverified_header(token: str) -> dict[str, Any]:
    """The JOSE header of a shape-checked token, to pick a verifier or key; trust nothing in it."""
    try:
        header = jwt.get_unverified_header(token)
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        reason = type(exc).__name__
    else:
        return header
    refuse(reason)


def verified_viewer(
    token: str,
    key: Any,
    *,
    algorithms: Sequence[str],
    issuer: str,
    audience: str,
    leeway_seconds: int,
) -> Viewer:
    """The viewer of ``token`` once its signature (``key``, one of ``algorithms``),
    expiry, issuer and audience check out; :class:`Unauthenticated` otherwise."""
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=list(algorithms),
            options=_DECODE_OPTIONS,
            audience=audience,
            issuer=issuer,
            leeway=leeway_seconds,
        )
        return viewer_from_claims(claims)
    except (jwt.PyJWTError, InvalidClaims, ValueError, TypeError, ArithmeticError) as exc:
        # Only the class name is logged: PyJWT messages may quote claims.  The
        # chain is dropped so a traceback shown anywhere carries no token data.
        logger.debug("token refused: %s", type(exc).__name__)
        raise Unauthenticated(REFUSED) from None
