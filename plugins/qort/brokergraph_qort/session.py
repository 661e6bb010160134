"""The one QORT session the gateway holds, shared by every request.

QORT's web-services module lets exactly one external application work with it at
a time; after ``Login`` the application passes a token to every operation.  So
the gateway logs in once per connector and multiplexes all requests through that
token.  The single flight is the toolkit's :class:`~gateway.contract.TokenSession`
(one login at a time; operations run concurrently with the shared token); this
module adds QORT's rules around it:

* a wave of requests that waited for a login which failed (QORT down, say) shares
  that failure instead of queueing one more attempt per waiting request;
* an operation answered ``INVALID_TOKEN`` (expired, or replaced by our own newer
  login) drops that token and runs once more with a fresh one — never twice;
* ``BUSY`` at login (another application holds QORT) fails fast with
  :class:`UpstreamBusy` and starts a cool-down: until it ends, requests fail at
  once without calling QORT, so a locked-out gateway never storms the login;
* an optional keep-alive ``Ping`` extends the token while the gateway runs, so the
  gateway keeps its place instead of losing it to the next application after an
  idle spell (QORT's rule is one application, and the gateway is that one);
* :meth:`QortSession.close` logs out, freeing QORT for another application.

The session knows nothing of SOAP: it drives a :class:`SessionBackend` (the
client's ``Login``/``Logout``/``Ping``), which raises :class:`QortFault` for
QORT's fault codes and gateway errors for transport failures.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from brokergraph_qort.errors import QortFault
from gateway.contract import (
    BrokerGraphError,
    IssuedToken,
    TokenSession,
    UpstreamBusy,
    UpstreamRejected,
    UpstreamUnavailable,
)

__all__ = ["LoginResult", "QortSession", "SessionBackend"]

logger = logging.getLogger("brokergraph_qort.session")

T = TypeVar("T")

#: QORT fault codes the session itself acts on.
BUSY = "BUSY"
INVALID_TOKEN = "INVALID_TOKEN"
#: Login refusals that are about our configuration (wrong password, app not allowed).
LOGIN_REFUSALS = frozenset({"INVALID_CREDENTIALS", "APP_NOT_ALLOWED"})

#: How many logins had finished when this task asked for a token (see ``_issue``).
_ASKED_AFTER: contextvars.ContextVar[int] = contextvars.ContextVar("qort_asked_after")


@dataclass(frozen=True, slots=True)
class LoginResult:
    token: str
    expires_in_seconds: float | None


class SessionBackend(Protocol):
    """The three session operations of QORT's web service."""

    async def login(self) -> LoginResult: ...

    async def logout(self, token: str) -> None: ...

    async def ping(self, token: str) -> float | None:
        """Extend the token; returns its new lifetime in seconds when QORT says it."""
        ...


def _again(error: BrokerGraphError, **details: object) -> BrokerGraphError:
    """A fresh copy of ``error`` for another caller (an exception is raised once)."""
    return type(error)(error.message, field=error.field, details={**error.details, **details})


class QortSession:
    """One token, shared; see the module docstring for the rules."""

    def __init__(
        self,
        backend: SessionBackend,
        *,
        platform: str = "qort",
        busy_cooldown_seconds: float = 5.0,
        keepalive: bool = False,
        keepalive_seconds: float | None = None,
        expiry_margin_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._backend = backend
        self._platform = platform
        self._cooldown = busy_cooldown_seconds
        self._keepalive = keepalive
        self._keepalive_seconds = keepalive_seconds
        self._margin = expiry_margin_seconds
        self._clock = clock
        # The token's expiry is kept here, not in TokenSession: a Ping extends it, and
        # TokenSession has no way to be told (its expiry is fixed at login).
        self._tokens = TokenSession(self._issue, clock=clock)
        self._lifetime: float | None = None
        self._expires_at: float | None = None
        self._blocked_until = 0.0
        self._blocked_error: BrokerGraphError | None = None
        self._keepalive_task: asyncio.Task[None] | None = None
        #: Login attempts finished so far, and how the last one failed (None: it did not).
        self._finished = 0
        self._last_failure: BrokerGraphError | None = None
        self._closed = False

    # ------------------------------------------------------------------ state

    def _valid_token(self) -> str | None:
        token = self._tokens.current
        if token is None:
            return None
        if self._expires_at is not None and self._clock() >= self._expires_at:
            return None
        return token

    def _check_cooldown(self) -> None:
        error = self._blocked_error
        if error is None:
            return
        remaining = self._blocked_until - self._clock()
        if remaining <= 0:
            self._blocked_error = None
            return
        raise _again(error, retryAfter=round(remaining, 1))

    def _set_expiry(self, expires_in: float | None) -> None:
        self._lifetime = expires_in
        if expires_in is None or expires_in <= 0:
            self._expires_at = None
        else:
            # Renew a little early, but never more than a tenth of a short lifetime.
            margin = min(self._margin, expires_in / 10)
            self._expires_at = self._clock() + expires_in - margin

    # ------------------------------------------------------------------ login

    async def token(self) -> str:
        """The shared token, logging in first when there is none (one login at a time)."""
        token = self._valid_token()
        if token is not None:
            return token
        self._check_cooldown()
        asked = _ASKED_AFTER.set(self._finished)
        try:
            # An expired token is named stale, so a newer one fetched meanwhile is kept.
            return await self._tokens.token(stale=self._tokens.current)
        finally:
            _ASKED_AFTER.reset(asked)

    async def _issue(self) -> IssuedToken:
        """TokenSession's login (never run concurrently)."""
        self._check_cooldown()  # refused while this request waited
        failed = self._last_failure
        if self._finished != _ASKED_AFTER.get(self._finished) and failed is not None:
            # A login made while this request waited failed: share its answer.
            raise _again(failed)
        self._last_failure = None
        try:
            result = await self._login()
        except BrokerGraphError as error:
            self._last_failure = error
            raise
        finally:
            self._finished += 1
        return IssuedToken(result.token)

    def _closed_error(self) -> BrokerGraphError:
        return UpstreamUnavailable(
            "the QORT connector is closed", details={"platform": self._platform}
        )

    async def _login(self) -> LoginResult:
        if self._closed:
            raise self._closed_error()
        try:
            result = await self._backend.login()
        except QortFault as fault:
            error = self._login_error(fault)
            if error is None:
                raise
            self._blocked_error = error
            self._blocked_until = self._clock() + self._cooldown
            logger.warning(
                "QORT login refused (%s); next attempt in %.1f s", fault.code, self._cooldown
            )
            raise error from None
        if self._closed:
            # close() ran during this login: free QORT at once rather than hold it.
            await self._logout(result.token)
            raise self._closed_error()
        self._set_expiry(result.expires_in_seconds)
        self._blocked_error = None
        logger.info("QORT session opened")
        self._ensure_keepalive()
        return result

    def _login_error(self, fault: QortFault) -> BrokerGraphError | None:
        details = {"platform": self._platform, "vendorCode": fault.code}
        if fault.code == BUSY:
            return UpstreamBusy(
                "QORT is held by another application (it serves one at a time); "
                f"the gateway will try to connect again in {self._cooldown:g} s",
                details={**details, "retryAfter": self._cooldown},
            )
        if fault.code in LOGIN_REFUSALS:
            return UpstreamRejected(
                f"QORT refused the gateway's login ({fault.code}): check the connector's "
                "login, password and app_name settings",
                details=details,
            )
        return None

    def invalidate(self, token: str) -> None:
        """Forget ``token`` if it is still the current one (a newer one is kept)."""
        if self._tokens.current == token:
            self._tokens.forget()
            self._expires_at = None

    # ------------------------------------------------------------------ operations

    async def run(self, operation: Callable[[str], Awaitable[T]]) -> T:
        """Run ``operation(token)``; on INVALID_TOKEN log in again and run it once more."""
        token = await self.token()
        try:
            return await operation(token)
        except QortFault as fault:
            if fault.code != INVALID_TOKEN:
                raise
            logger.info("QORT token no longer valid; logging in again")
            self.invalidate(token)
        return await operation(await self.token())

    # ------------------------------------------------------------------ keep-alive

    def _ensure_keepalive(self) -> None:
        if not self._keepalive or self._closed:
            return
        if self._keepalive_task is None or self._keepalive_task.done():
            self._keepalive_task = asyncio.create_task(
                self._keepalive_loop(), name="qort-keepalive"
            )

    def keepalive_interval(self) -> float:
        """Seconds between pings: the setting, else a third of the token's lifetime."""
        if self._keepalive_seconds:
            return self._keepalive_seconds
        return max(1.0, self._lifetime / 3) if self._lifetime else 60.0

    async def _keepalive_loop(self) -> None:
        while not self._closed:
            await asyncio.sleep(self.keepalive_interval())
            token = self._valid_token()
            if token is None:
                continue  # the next request logs in; pinging needs a token
            try:
                self._set_expiry(await self._backend.ping(token))
            except QortFault as fault:
                if fault.code == INVALID_TOKEN:
                    self.invalidate(token)
                logger.warning("QORT keep-alive ping failed: %s", fault.code)
            except BrokerGraphError as error:
                logger.warning("QORT keep-alive ping failed: %s", error.message)
            except Exception:  # never let the keep-alive die silently
                logger.exception("QORT keep-alive ping failed unexpectedly")

    # ------------------------------------------------------------------ close

    async def close(self) -> None:
        """Stop the keep-alive and log out, so another application may use QORT."""
        self._closed = True
        task, self._keepalive_task = self._keepalive_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        token = self._tokens.current
        self._tokens.forget()
        if token is not None:
            await self._logout(token)

    async def _logout(self, token: str) -> None:
        try:
            await self._backend.logout(token)
            logger.info("QORT session closed")
        except QortFault as fault:
            if fault.code != INVALID_TOKEN:  # an expired token needs no logout
                logger.warning("QORT logout failed: %s", fault.code)
        except BrokerGraphError as error:
            logger.warning("QORT logout failed: %s", error.message)
