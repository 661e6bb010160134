"""The authenticator a running gateway uses: one per ``Authorization`` scheme.

``Bearer`` tokens go to the JWT verifier whose algorithms include the token's
``alg`` header (HS* to the shared secret, RS*/ES* to the public keys, never
crosswise), ``ApiKey`` credentials to the API-key authenticator.  A scheme that
is not configured is refused like an unknown one.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Protocol

from gateway.auth._api_keys import ApiKeyAuthenticator
from gateway.auth._decode import check_token_shape, refuse, unverified_header
from gateway.auth._header import split_authorization_header
from gateway.auth._jwt import JwtAuthenticator
from gateway.auth._viewer import Role, Viewer
from gateway.errors import Unauthenticated

__all__ = ["AuthenticatorChain", "TokenVerifier"]

_MALFORMED = "malformed Authorization header"


class TokenVerifier(Protocol):
    """A JWT verifier: the ``alg`` values it handles, and the check itself."""

    @property
    def algorithms(self) -> frozenset[str]: ...

    def viewer_from_token(self, token: str) -> Viewer: ...


class AuthenticatorChain:
    """Dispatches on the ``Authorization`` scheme; an :class:`Authenticator`."""

    __slots__ = ("_api_keys", "_issuer", "_verifiers")

    def __init__(
        self,
        jwt_verifiers: Sequence[TokenVerifier] = (),
        api_keys: ApiKeyAuthenticator | None = None,
    ) -> None:
        seen: set[str] = set()
        for verifier in jwt_verifiers:
            # Disjoint, so the header's alg names exactly one verifier and one key kind.
            if seen & verifier.algorithms:
                raise ValueError("two JWT verifiers claim the same algorithm")
            seen |= verifier.algorithms
        self._verifiers = tuple(jwt_verifiers)
        self._api_keys = api_keys
        issuers = [v for v in self._verifiers if isinstance(v, JwtAuthenticator)]
        self._issuer = issuers[0] if issuers else None

    @property
    def api_keys(self) -> ApiKeyAuthenticator | None:
        """The API-key authenticator (to revoke a key in this process), if enabled."""
        return self._api_keys

    @property
    def accepts_tokens(self) -> bool:
        return bool(self._verifiers)

    def viewer_from_token(self, token: str) -> Viewer:
        """The viewer of a bearer token, checked by the verifier of its ``alg``."""
        token = check_token_shape(token)
        algorithm = unverified_header(token).get("alg")
        for verifier in self._verifiers:
            if algorithm in verifier.algorithms:
                return verifier.viewer_from_token(token)
        refuse("algorithm not allowed")

    async def viewer_from_authorization_header(self, value: str | None) -> Viewer:
        """The viewer of a ``Bearer <jwt>`` or ``ApiKey <key>`` header."""
        scheme, credentials = split_authorization_header(value)
        if scheme == "bearer" and self._verifiers:
            return self.viewer_from_token(credentials)
        if scheme == "apikey" and self._api_keys is not None:
            return await self._api_keys.viewer_from_key(credentials)
        raise Unauthenticated(_MALFORMED)

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
        """An HS* token, as :meth:`JwtAuthenticator.issue`; for the demo and tests.

        The gateway never holds a private key, so with only public keys
        configured it cannot issue tokens and this raises ``RuntimeError``.
        """
        if self._issuer is None:
            raise RuntimeError("issuing tokens needs auth.jwt_secret")
        return self._issuer.issue(
            subject=subject,
            role=role,
            partner_code=partner_code,
            brokers=brokers,
            ttl_seconds=ttl_seconds,
            now=now,
        )
