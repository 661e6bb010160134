"""HS256 JSON Web Tokens: verification for every request, issuing for the demo."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import jwt
from jwt.algorithms import HMACAlgorithm

from gateway.auth._claims import claims_for_viewer
from gateway.auth._decode import check_token_shape, verified_viewer
from gateway.auth._header import split_authorization_header
from gateway.auth._viewer import Role, Viewer
from gateway.errors import Unauthenticated

__all__ = ["HMAC_ALGORITHMS", "JwtAuthenticator", "JwtSettings"]

# RFC 7518 §3.2: an HMAC key must be at least as long as the hash output.  The
# table is also the allow-list: asymmetric algorithms need keys, not a shared
# secret, and mixing them with HS* is the classic algorithm-confusion hole.
_HMAC_MIN_KEY_BYTES: Final[dict[str, int]] = {
    "HS256": hashlib.sha256().digest_size,
    "HS384": hashlib.sha384().digest_size,
    "HS512": hashlib.sha512().digest_size,
}

HMAC_ALGORITHMS: Final = frozenset(_HMAC_MIN_KEY_BYTES)


@dataclass(frozen=True, slots=True)
class JwtSettings:
    """How tokens are signed and checked.  ``secret`` never appears in a repr."""

    secret: str = field(repr=False)
    issuer: str = "brokergraph"
    audience: str = "brokergraph"
    leeway_seconds: int = 30
    algorithms: tuple[str, ...] = ("HS256",)

    def __post_init__(self) -> None:
        # Frozen: normalise a list a config loader may hand over, so it hashes.
        object.__setattr__(self, "algorithms", tuple(self.algorithms))
        if not self.algorithms:
            raise ValueError("JWT algorithms must not be empty")
        for algorithm in self.algorithms:
            if algorithm not in _HMAC_MIN_KEY_BYTES:
                raise ValueError(
                    f"JWT algorithm {algorithm!r} is not supported; use one of "
                    + ", ".join(_HMAC_MIN_KEY_BYTES)
                )
        if not self.issuer or not self.audience:
            raise ValueError("JWT issuer and audience must not be empty")
        if self.leeway_seconds < 0:
            raise ValueError("JWT leeway_seconds must not be negative")
        if not isinstance(self.secret, str):
            raise ValueError("JWT secret must be a string")
        # Messages below name the rule, never the secret or its length (a length
        # is a hint, and a short secret could even be a substring of a message).
        strongest = max(self.algorithms, key=_HMAC_MIN_KEY_BYTES.__getitem__)
        minimum = _HMAC_MIN_KEY_BYTES[strongest]
        if len(self.secret.encode("utf-8")) < minimum:
            raise ValueError(f"JWT secret must be at least {minimum} bytes for {strongest}")
        try:
            # PyJWT refuses, on every decode, secrets that look like PEM, SSH or
            # JWK keys; find that out at start-up rather than refuse every token.
            HMACAlgorithm(HMACAlgorithm.SHA256).prepare_key(self.secret)
        except jwt.InvalidKeyError:
            raise ValueError("JWT secret looks like a key, not a shared secret") from None


class JwtAuthenticator:
    """Verifies (and issues) HS256 bearer tokens; an :class:`Authenticator`."""

    __slots__ = ("_settings",)

    def __init__(self, settings: JwtSettings) -> None:
        self._settings = settings

    @property
    def settings(self) -> JwtSettings:
        return self._settings

    @property
    def algorithms(self) -> frozenset[str]:
        """The ``alg`` header values this authenticator verifies (HS* only)."""
        return frozenset(self._settings.algorithms)

    def viewer_from_token(self, token: str) -> Viewer:
        """The viewer a valid token names; :class:`Unauthenticated` otherwise."""
        settings = self._settings
        return verified_viewer(
            check_token_shape(token),
            settings.secret,
            algorithms=settings.algorithms,
            issuer=settings.issuer,
            audience=settings.audience,
            leeway_seconds=settings.leeway_seconds,
        )

    async def viewer_from_authorization_header(self, value: str | None) -> Viewer:
        """The viewer of a ``Bearer <token>`` header (scheme case-insensitive)."""
        scheme, credentials = split_authorization_header(value)
        if scheme != "bearer":
            raise Unauthenticated("malformed Authorization header")
        return self.viewer_from_token(credentials)

    def issue(
        self,
        *,
        subject: str,
        role: Role,
        partner_code: str | None = None,
        brokers: Collection[str] = (),
        ttl_seconds: int = 3600,
        now: datetime | None = None,
    ) -> str:
        """A signed token for the viewer described; for the demo and tests.

        The viewer is built first, so a token this returns is always one
        :meth:`viewer_from_token` accepts until it expires.
        """
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        if now is None:
            now = datetime.now(UTC)
        elif now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("now must be timezone-aware")
        if isinstance(brokers, str):
            raise ValueError("brokers must be a collection of broker codes, not a string")
        viewer = Viewer(
            subject=subject,
            role=role,
            partner_code=partner_code,
            brokers=frozenset(brokers),
            token_id=uuid.uuid4().hex,
        )
        settings = self._settings
        payload: dict[str, Any] = {
            **claims_for_viewer(viewer),
            "iss": settings.issuer,
            "aud": settings.audience,
            "iat": int(now.timestamp()),
            "exp": int((now + timedelta(seconds=ttl_seconds)).timestamp()),
        }
        return jwt.encode(payload, settings.secret, algorithm=settings.algorithms[0])
