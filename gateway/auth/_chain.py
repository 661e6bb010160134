"""The authenticator a running gateway uses: one per ``Authorization`` scheme.

``Bearer`` tokens go to the JWT verifier whose algorithms include the token's
``alg`` header (HS* to the shared secret, RS*/ES* to the public keys, never
crosswise), ``ApiKey`` credentials to the API-key authenticator.  A scheme that
is not configured is refused like an unknown one.

A token verified once is remembered (exactly, by its whole text) until it expires,
for at most :data:`VERIFIED_SECONDS`: a client sends the same token with every
request, and checking its signature and claims again each time was a third of a
cached read's cost.  Nothing revokes a JWT before its ``exp`` here, so remembering it
changes no answer — except that a key withdrawn from the configured public keys
stops accepting the tokens it signed up to :data:`VERIFIED_SECONDS` later.
"""

from __future__ import annotations

import base64
import time
from collections import OrderedDict
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Protocol

import orjson

from gateway.auth._api_keys import ApiKeyAuthenticator
from gateway.auth._decode import check_token_shape, refuse, unverified_header
from gateway.auth._header import split_authorization_header
from gateway.auth._jwt import JwtAuthenticator
from gateway.auth._public_keys import UnknownKeyId
from gateway.auth._viewer import Role, Viewer
from gateway.errors import Unauthenticated

__all__ = ["AuthenticatorChain", "TokenVerifier"]

_MALFORMED = "malformed Authorization header"
#: How long a verified token is remembered at most (seconds), and how many are.
VERIFIED_SECONDS = 60.0
VERIFIED_TOKENS = 10_000


class TokenVerifier(Protocol):
    """A JWT verifier: the ``alg`` values it handles, and the check itself."""

    @property
    def algorithms(self) -> frozenset[str]: ...

    def viewer_from_token(self, token: str) -> Viewer: ...


class AuthenticatorChain:
    """Dispatches on the ``Authorization`` scheme; an :class:`Authenticator`."""

    __slots__ = ("_api_keys", "_issuer", "_verified", "_verifiers")

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
        #: token -> (its viewer, until when it may be trusted without checking), LRU.
        self._verified: OrderedDict[str, tuple[Viewer, float]] = OrderedDict()

    @property
    def api_keys(self) -> ApiKeyAuthenticator | None:
        """The API-key authenticator (to revoke a key in this process), if enabled."""
        return self._api_keys

    @property
    def accepts_tokens(self) -> bool:
        return bool(self._verifiers)

    def viewer_from_token(self, token: str) -> Viewer:
        """The viewer of a bearer token, checked by the verifier of its ``alg``."""
        remembered = self._verified.get(token)
        now = time.time()
        if remembered is not None:
            viewer, until = remembered
            if now < until:
                self._verified.move_to_end(token)
                return viewer
            del self._verified[token]
        token = check_token_shape(token)
        algorithm = unverified_header(token).get("alg")
        for verifier in self._verifiers:
            if algorithm in verifier.algorithms:
                viewer = verifier.viewer_from_token(token)
                self._remember(token, viewer, now)
                return viewer
        refuse("algorithm not allowed")

    def _remember(self, token: str, viewer: Viewer, now: float) -> None:
        # Verified, so its claims are the issuer's: ``exp`` is required and numeric.
        payload = token.split(".")[1]
        claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        until = min(float(claims["exp"]), now + VERIFIED_SECONDS)
        self._verified[token] = (viewer, until)
        if len(self._verified) > VERIFIED_TOKENS:
            self._verified.popitem(last=False)

    async def viewer_from_authorization_header(self, value: str | None) -> Viewer:
        """The viewer of a ``Bearer <jwt>`` or ``ApiKey <key>`` header."""
        scheme, credentials = split_authorization_header(value)
        if scheme == "bearer" and self._verifiers:
            try:
                return self.viewer_from_token(credentials)
            except UnknownKeyId as unknown:
                # Keys fetched by URL may have rotated: refresh (bounded), then once more.
                if unknown.refresh is None or not await unknown.refresh():
                    raise
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
