"""Logins and sessions (B2): session tokens with a lifetime, HTTP Basic, per-session read limits.

A token from either ``/dxweb/rest/login`` or ``/dxsca-web/login`` works on both surfaces
(one host, one session store).  ``/ping`` extends a token's life by the full timeout.
User logins are gated by the dxFeed rules of seed 004 §2.2.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hmac
import secrets
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from brokergraph_dxtrade.sandbox.errors import forbidden, not_found, rate_limited, unauthorized
from brokergraph_dxtrade.sandbox.rules import REGISTER
from brokergraph_dxtrade.sandbox.seed import ADMIN_DOMAIN, ADMIN_LOGIN, ADMIN_PASSWORD
from brokergraph_dxtrade.sandbox.state import DxState
from brokergraph_dxtrade.sandbox.wire import now

#: Admin users: (login, domain) -> password.  Admins may register and update users.
ADMINS: dict[tuple[str, str], str] = {(ADMIN_LOGIN, ADMIN_DOMAIN): ADMIN_PASSWORD}


@dataclass(frozen=True)
class Principal:
    login: str
    domain: str
    admin: bool
    token: str | None = None
    permissions: frozenset[str] = frozenset()

    @property
    def key(self) -> tuple[str, str]:
        return (self.domain, self.login)

    @property
    def limit_key(self) -> str:
        return self.token or f"basic:{self.login}@{self.domain}"


@dataclass
class Session:
    principal: Principal
    expires_at: float


def split_username(username: str, domain: str | None) -> tuple[str, str]:
    """``{username, domain}``, or ``login@domain`` in ``username`` when no domain is given."""
    if domain:
        return username, domain
    login, at, rest = username.rpartition("@")
    return (login, rest) if at else (username, "default")


def check_credentials(state: DxState, login: str, domain: str, password: str) -> Principal:
    """Who these credentials are, applying the DISABLED and dxFeed login rules."""
    admin_password = ADMINS.get((login, domain))
    if admin_password is not None:
        if not hmac.compare_digest(admin_password, password):
            raise unauthorized("wrong username or password")
        return admit(state, login, domain)
    client = state.clients.get((domain, login))
    if (
        client is None
        or client.password is None
        or not hmac.compare_digest(client.password, password)
    ):
        raise unauthorized("wrong username or password")
    return admit(state, login, domain)


def admit(state: DxState, login: str, domain: str) -> Principal:
    """The principal of a known user whose identity is established (by password, or by
    a caller allowed to log in on its behalf), after the DISABLED and dxFeed rules."""
    if (login, domain) in ADMINS:
        granted = frozenset(state.permissions.get((domain, login), ()))
        return Principal(login, domain, admin=REGISTER in granted, permissions=granted)
    client = state.clients.get((domain, login))
    if client is None:
        raise not_found(f"no user {login}@{domain}")
    if client.status == "DISABLED":
        raise forbidden(f"user {login}@{domain} is DISABLED", "USER_DISABLED")
    if client.dx_feed_account_id is not None and not any(
        s.active for s in state.subscriptions(client)
    ):
        raise forbidden(
            "the user's dxFeed subscription set is empty: login refused (seed 004 §2.2)",
            "NO_MARKET_DATA",
        )
    state.link_feed_account_at_login(client)  # DxTradeXT: first login creates the account
    client.last_login = now()
    return Principal(login, domain, admin=False)


class Sessions:
    """Session tokens and their read budgets."""

    def __init__(self, timeout_ms: int, reads_per_second: int) -> None:
        self.timeout_ms = timeout_ms
        self.reads_per_second = reads_per_second
        self._sessions: dict[str, Session] = {}
        self._reads: dict[str, deque[float]] = {}

    def open(self, principal: Principal) -> str:
        token = secrets.token_urlsafe(24)
        self._sessions[token] = Session(
            dataclasses.replace(principal, token=token),
            time.monotonic() + self.timeout_ms / 1000,
        )
        return token

    def get(self, token: str, ended: int = 401) -> Principal:
        """The session's principal; an unknown or expired token answers ``ended``
        (``rules.expired_session_status``: 401, or 403 as some hosts do)."""
        session = self._sessions.get(token)
        if session is None or time.monotonic() >= session.expires_at:
            self.close(token)
            message = "unknown, logged-out or expired session token"
            raise unauthorized(message) if ended == 401 else forbidden(message, "SESSION_ENDED")
        return session.principal

    def ping(self, token: str, ended: int = 401) -> None:
        self.get(token, ended)
        self._sessions[token].expires_at = time.monotonic() + self.timeout_ms / 1000

    def close(self, token: str) -> None:
        self._sessions.pop(token, None)
        self._reads.pop(token, None)

    def logout_user(self, domain: str, login: str) -> int:
        tokens = [t for t, s in self._sessions.items() if s.principal.key == (domain, login)]
        for token in tokens:
            self.close(token)
        return len(tokens)

    def clear(self) -> None:
        self._sessions.clear()
        self._reads.clear()

    def count_read(self, principal: Principal) -> None:
        """At most ``reads_per_second`` reads in any one-second window per session."""
        clock = time.monotonic()
        window = self._reads.setdefault(principal.limit_key, deque())
        while window and clock - window[0] >= 1.0:
            window.popleft()
        if len(window) >= self.reads_per_second:
            raise rate_limited(f"more than {self.reads_per_second} read requests per second")
        window.append(clock)

    def authenticate(self, state: DxState, headers: Mapping[str, str]) -> Principal:
        """The caller of a request: ``Authorization: DXAPI <token>`` or ``Basic``."""
        scheme, _, credentials = headers.get("authorization", "").strip().partition(" ")
        credentials = credentials.strip()
        if scheme.upper() == "DXAPI" and credentials:
            return self.get(credentials, state.rules.expired_session_status)
        if scheme.lower() == "basic" and credentials:
            try:
                decoded = base64.b64decode(credentials, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                raise unauthorized("malformed Basic credentials") from None
            username, colon, password = decoded.partition(":")
            if not colon:
                raise unauthorized("malformed Basic credentials")
            login, domain = split_username(username, None)
            return check_credentials(state, login, domain, password)
        raise unauthorized(
            "send Authorization: DXAPI <sessionToken> or Basic login@domain:password"
        )


def token_of(headers: Mapping[str, str]) -> str | None:
    scheme, _, credentials = headers.get("authorization", "").strip().partition(" ")
    return credentials.strip() if scheme.upper() == "DXAPI" and credentials.strip() else None


__all__ = [
    "ADMINS",
    "Principal",
    "Sessions",
    "admit",
    "check_credentials",
    "split_username",
    "token_of",
]
