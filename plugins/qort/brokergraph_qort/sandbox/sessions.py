"""Tokens of the web-services module: allowed applications, one at a time, with a lifetime."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from brokergraph_qort.sandbox.faults import QortFault

__all__ = ["ALLOWED_APPLICATIONS", "Session", "Sessions"]

#: The applications configured in the backQORT terminal: name -> (login, password).
ALLOWED_APPLICATIONS: Final[Mapping[str, tuple[str, str]]] = {
    "brokergraph-gateway": ("brokergraph", "qort-pass"),
    "backoffice-tool": ("backoffice", "bo-pass"),
}


@dataclass(slots=True)
class Session:
    token: str
    app_name: str
    expires_at: float


class Sessions:
    """At most one live token; ``clock`` is monotonic seconds (a test may move it).

    ``relogin_replaces``: what the holder's own second login does is not published.
    True (our reading [I]): it gets a new token and the old one dies, so a restarted
    gateway is back at once.  False: it is BUSY like any other application until the
    old token is logged out or expires.
    """

    def __init__(
        self,
        ttl_seconds: int,
        clock: Callable[[], float] = time.monotonic,
        *,
        relogin_replaces: bool = True,
    ) -> None:
        self.ttl_seconds = ttl_seconds
        self.relogin_replaces = relogin_replaces
        self._clock = clock
        self._current: Session | None = None

    def _live(self) -> Session | None:
        current = self._current
        if current is not None and current.expires_at <= self._clock():
            self._current = current = None
        return current

    def login(self, login: str, password: str, app_name: str) -> Session:
        """A new token for ``app_name``; the same application's older token stops working
        (or, without ``relogin_replaces``, the login is BUSY while that token lives)."""
        expected = ALLOWED_APPLICATIONS.get(app_name)
        if expected is None:
            raise QortFault("APP_NOT_ALLOWED", f"application {app_name!r} may not connect")
        if not (
            secrets.compare_digest(login.encode(), expected[0].encode())
            and secrets.compare_digest(password.encode(), expected[1].encode())
        ):
            raise QortFault("INVALID_CREDENTIALS", "wrong login or password")
        holder = self._live()
        if holder is not None and (holder.app_name != app_name or not self.relogin_replaces):
            raise QortFault(
                "BUSY", f"the service is in use by another application ({holder.app_name})"
            )
        self._current = Session(secrets.token_hex(16), app_name, self._clock() + self.ttl_seconds)
        return self._current

    def check(self, token: str) -> Session:
        """The live session of ``token``, or INVALID_TOKEN."""
        current = self._live()
        if current is None or not secrets.compare_digest(current.token.encode(), token.encode()):
            raise QortFault("INVALID_TOKEN", "the token is unknown or has expired")
        return current

    def ping(self, token: str) -> Session:
        """Extend the token's lifetime to a full TTL from now."""
        session = self.check(token)
        session.expires_at = self._clock() + self.ttl_seconds
        return session

    def logout(self, token: str) -> None:
        """End the session and free the service for any application."""
        self.check(token)
        self._current = None

    def expires_in(self, session: Session) -> int:
        return max(0, round(session.expires_at - self._clock()))

    def expire_all(self) -> None:
        """Every token stops working now (the ``force_expire_tokens`` knob)."""
        self._current = None
