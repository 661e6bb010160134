"""A vendor session token fetched once, however many requests need it at the same moment.

Every manager API here logs in for a token and refuses it later (expiry, another
login, a server restart).  :class:`TokenSession` holds one token, lets exactly one
caller log in while the others wait for its result (single flight), renews ahead
of a known expiry, and replaces a token the platform refused (``stale=``) without
replacing a newer one another request already fetched.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

__all__ = ["IssuedToken", "TokenSession"]


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A token and, when the vendor says, how many seconds it stays valid."""

    value: str
    expires_in: float | None = None


class TokenSession:
    """One token for one credential; ``issue`` logs in and is never run concurrently.

    ``extend`` (optional) prolongs a token that is inside the renew margin but not
    expired nor refused (DXtrade's ping); it answers ``None`` when the platform
    would not, and the session logs in instead.
    """

    def __init__(
        self,
        issue: Callable[[], Awaitable[IssuedToken]],
        *,
        extend: Callable[[str], Awaitable[IssuedToken | None]] | None = None,
        renew_margin_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._issue = issue
        self._extend = extend
        self._margin = renew_margin_seconds
        self._clock = clock
        self._token: str | None = None
        self._expires_at: float | None = None
        self._lock = asyncio.Lock()
        #: Logins made, for tests and metrics.
        self.logins = 0

    @property
    def current(self) -> str | None:
        """The token held now, if any (no login)."""
        return self._token

    def _fresh(self, stale: str | None) -> bool:
        if self._token is None or self._token == stale:
            return False
        return self._expires_at is None or self._clock() < self._expires_at - self._margin

    async def token(self, *, stale: str | None = None) -> str:
        """A valid token; ``stale`` names one the platform just refused."""
        if self._fresh(stale):
            assert self._token is not None
            return self._token
        async with self._lock:
            if self._fresh(stale):  # another caller logged in while we waited
                assert self._token is not None
                return self._token
            issued = await self._extended(stale)
            if issued is None:
                issued = await self._issue()
                self.logins += 1
            self._token = issued.value
            self._expires_at = (
                None if issued.expires_in is None else self._clock() + issued.expires_in
            )
            return self._token

    @property
    def expires_at(self) -> float | None:
        """When the held token expires on this session's clock, if the vendor said."""
        return self._expires_at

    async def _extended(self, stale: str | None) -> IssuedToken | None:
        token, expires_at = self._token, self._expires_at
        if self._extend is None or token is None or token == stale:
            return None
        if expires_at is not None and self._clock() >= expires_at:
            return None  # too late to extend: the platform has dropped it
        return await self._extend(token)

    def forget(self) -> None:
        """Drop the token (logout, close); the next call logs in again."""
        self._token = None
        self._expires_at = None
