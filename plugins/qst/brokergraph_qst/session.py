"""One QST order-routing session: a WebSocket per credential, held and multiplexed.

State machine (strict; QST closes the connection on a request sent too early)::

    DISCONNECTED ──connect──▶ CONNECTED ──LoginResponse(ok)──▶ LOGGED_IN
         ▲                                                      │ OELoginResponse(ok)
         └───────────── connection lost ◀──── OE_LOGGED_IN ◀────┘
    any ──close()──▶ CLOSED

Only ``LoginRequest`` may leave in CONNECTED, only ``OELoginRequest`` (or
``LogoutRequest``) in LOGGED_IN, and order-entry requests only in OE_LOGGED_IN.

Requests carry a client-chosen ``request_id`` and wait on a future each, so many
run at once over the one connection; responses may come back in any order.  That
QST echoes the id is our reading (its market-data API does; the order-routing docs
never mention it) [I]: a connection whose LoginResponse comes without it runs in
*lockstep* — one request in flight, the next sent once it is answered, which QST
documents as keeping responses in order [V] — and any response answers the one request.
Order-entry requests act on the session's *current* account: :class:`AccountGate`
lets any number of requests for the current account run together and serialises
switches, so a placement on account X switches to X first and no switch happens
while a request for another account is in flight.

A supervisor task holds the connection.  When it drops it reconnects with
exponential backoff and jitter, logs in again with ``is_relogin=true``, switches
back to the account that was current, subscribes to order activity again and then
calls ``on_ready`` — where the connector takes an order-book snapshot and emits
every change made while it was away.  Close code 4101 (the same user logged in
elsewhere) is not fought over: requests fail with UpstreamBusy and the session
waits a long backoff before trying once more.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import logging
import random
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from brokergraph_qst import wire
from gateway.contract import (
    BrokerGraphError,
    Conflict,
    InsufficientFunds,
    NotFound,
    Outcome,
    ProtocolError,
    UpstreamBusy,
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
    VendorError,
    VendorErrorTable,
    may_have_arrived,
    transport_error,
)

__all__ = [
    "CLOSE_CODES",
    "SERVER_ERRORS",
    "AccountGate",
    "QstSession",
    "SessionConfig",
    "SessionState",
    "refusal",
]

MAX_REQUEST_ID: Final = 2**32 - 1
#: QST as clients read it in messages (details carry the platform id, ``wire.PLATFORM``).
VENDOR: Final = "QST"
MAX_FRAME_BYTES: Final = 4 * 1024 * 1024


class SessionState(enum.Enum):
    DISCONNECTED = "DISCONNECTED"
    CONNECTED = "CONNECTED"
    LOGGED_IN = "LOGGED_IN"
    OE_LOGGED_IN = "OE_LOGGED_IN"
    CLOSED = "CLOSED"


_S = SessionState
_TRANSITIONS: Mapping[SessionState, frozenset[SessionState]] = {
    _S.DISCONNECTED: frozenset({_S.CONNECTED, _S.CLOSED}),
    _S.CONNECTED: frozenset({_S.LOGGED_IN, _S.DISCONNECTED, _S.CLOSED}),
    _S.LOGGED_IN: frozenset({_S.OE_LOGGED_IN, _S.DISCONNECTED, _S.CLOSED}),
    _S.OE_LOGGED_IN: frozenset({_S.LOGGED_IN, _S.DISCONNECTED, _S.CLOSED}),
    _S.CLOSED: frozenset(),
}
_LOGIN_STEPS = frozenset({"login", "oe_login"})
#: What may be sent in each state; everything else is refused before it leaves.
_SENDABLE: Mapping[SessionState, Callable[[str], bool]] = {
    _S.DISCONNECTED: lambda kind: False,
    _S.CONNECTED: lambda kind: kind == "login",
    _S.LOGGED_IN: lambda kind: kind in ("oe_login", "logout"),
    _S.OE_LOGGED_IN: lambda kind: kind not in _LOGIN_STEPS,
    _S.CLOSED: lambda kind: False,
}

_LOST = Outcome.UNKNOWN  # a request in flight when the connection went may have been applied

#: WebSocket close codes QST uses -> the error requests see meanwhile (``code=`` is the
#: close code).  The same table type as the refusals below: a close code is QST's answer
#: to everything still waiting on the connection.
CLOSE_CODES: Final = VendorErrorTable(
    platform=wire.PLATFORM,
    codes={
        "1000": VendorError(UpstreamUnavailable, "QST closed the session", outcome=_LOST),
        "1011": VendorError(UpstreamUnavailable, "QST dropped the connection", outcome=_LOST),
        # QST closes on the premature request instead of executing it.
        "4001": VendorError(
            ProtocolError, "QST closed the connection: a request was sent before login"
        ),
        "4101": VendorError(
            UpstreamBusy, "the QST user logged in from another session", outcome=_LOST
        ),
        "4102": VendorError(
            UpstreamUnavailable,
            "QST dropped the connection: too many messages queued",
            outcome=_LOST,
        ),
    },
    fallback=VendorError(UpstreamUnavailable, "QST connection lost", outcome=_LOST),
)

#: QST's error texts (ServerErrorMessage, reject text notifications) -> our errors; QST
#: sends no codes, only text.  First match wins; anything else is UpstreamRejected.  The
#: text is the message: it is safe to show (it names no secret).
SERVER_ERRORS: Final = VendorErrorTable(
    platform=wire.PLATFORM,
    patterns=(
        (r"order\b.*\bnot found|unknown order|no such order", VendorError(NotFound, "{text}")),
        (
            r"account\b.*\b(not found|invalid|unknown)|invalid account",
            VendorError(NotFound, "{text}"),
        ),
        (r"is not working|already (filled|canceled|cancelled)", VendorError(Conflict, "{text}")),
        (r"insufficient|not enough (money|funds)|margin", VendorError(InsufficientFunds, "{text}")),
        # Refused before it was looked at: nothing applied.
        (r"login required|not logged|not established", VendorError(UpstreamUnavailable, "{text}")),
        # A failure inside QST [D: the sandbox's fail_next text]: it may have been applied.
        (
            r"internal (server )?error|service unavailable",
            VendorError(UpstreamUnavailable, "{text}", outcome=Outcome.UNKNOWN),
        ),
    ),
    fallback=VendorError(UpstreamRejected, "{text}"),
)


def refusal(text: str) -> BrokerGraphError:
    """The error for one of QST's error texts; the text also goes to ``vendorMessage``."""
    vendor_message = " ".join(text.split())[:300] or "no reason given"
    return SERVER_ERRORS.error(text=text, details={"vendorMessage": vendor_message})


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionConfig:
    url: str
    username: str
    password_hash: str
    client_unique_id: str
    provider: str = "QOR"
    #: Bound on one request's response.
    request_timeout: float = 10.0
    #: How long a request waits for a (re)connection before UpstreamUnavailable.
    ready_wait: float = 5.0
    open_timeout: float = 5.0
    backoff_initial: float = 0.2
    backoff_max: float = 10.0
    #: After a 4101 (another session of the user took over): wait this long, not less.
    busy_backoff: float = 30.0
    #: WebSocket keep-alive (QST documents no heartbeat message).
    ping_interval: float | None = 20.0
    #: The TLS context checking QST for a ``wss://`` URL (None: the system's trust store).
    ssl: ssl.SSLContext | None = None


@dataclass(slots=True)
class _Pending:
    future: asyncio.Future[wire.Frame]
    request: wire.Request


class AccountGate:
    """Serialises switches of the current account; shares it between requests.

    ``async with gate.use(account, switch)`` returns once ``account`` is current (calling
    ``switch`` if it is not) and keeps it current until the block exits.  Requests for
    the current account run together; a request for another account waits until they
    are done, and meanwhile new requests for the current account queue behind it, so
    neither side starves.
    """

    def __init__(self) -> None:
        self._cond = asyncio.Condition()
        self.current: str | None = None
        self._users = 0
        self._switching = False
        self._waiting_other = 0

    def reset(self, current: str | None) -> None:
        """The server's current account changed under us (a new connection)."""
        self.current = current

    @contextlib.asynccontextmanager
    async def use(
        self, account: str, switch: Callable[[str], Awaitable[None]]
    ) -> AsyncIterator[None]:
        must_switch = False
        async with self._cond:
            other = False
            try:
                while True:
                    if self._switching:
                        pass
                    elif self.current == account and (self._waiting_other == 0 or other):
                        self._users += 1
                        break
                    elif self._users == 0:
                        self._switching = must_switch = True
                        break
                    if not other and self.current != account:
                        other = True
                        self._waiting_other += 1
                    await self._cond.wait()
            finally:
                if other:
                    self._waiting_other -= 1
        if must_switch:
            try:
                await switch(account)
            except BaseException:
                async with self._cond:
                    self._switching = False
                    self._cond.notify_all()
                raise
            async with self._cond:
                self._switching = False
                self.current = account
                self._users += 1
                self._cond.notify_all()
        try:
            yield
        finally:
            async with self._cond:
                self._users -= 1
                self._cond.notify_all()


NoticeHandler = Callable[[wire.Notice], None]
ReadyHandler = Callable[["QstSession", bool], Awaitable[None]]


class QstSession:
    """A logged-in, self-healing connection of one QST user; see the module docstring."""

    def __init__(
        self,
        config: SessionConfig,
        *,
        on_notice: NoticeHandler,
        on_ready: ReadyHandler | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.config = config
        self._on_notice = on_notice
        self._on_ready = on_ready
        self._log = logger or logging.getLogger("brokergraph_qst.session")
        self._state = SessionState.DISCONNECTED
        #: The last states entered, oldest first (for tests and debugging).
        self.history: deque[SessionState] = deque([self._state], maxlen=64)
        self._ws: ClientConnection | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        #: This connection's responses carry no request id: one request at a time.
        self.lockstep = False
        self._turn = asyncio.Lock()
        self._ready = asyncio.Event()
        self._first_outcome = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self._closing = False
        self._busy_until = 0.0
        self._busy_strikes = 0
        self._last_error: BrokerGraphError | None = None
        self._logged_in_once = False
        self.gate = AccountGate()
        #: The accounts of the OE login, by id, and the account to return to on reconnect.
        self.accounts: dict[str, wire.AccountSummary] = {}
        self.home_account: str | None = None
        #: Counters for health, tests and the README's numbers.
        self.connections = 0
        self.relogins = 0

    # -- state ------------------------------------------------------------------------

    @property
    def state(self) -> SessionState:
        return self._state

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    @property
    def busy(self) -> bool:
        return time.monotonic() < self._busy_until

    @property
    def logged_in_once(self) -> bool:
        return self._logged_in_once

    @property
    def last_error(self) -> BrokerGraphError | None:
        return self._last_error

    def _advance(self, new: SessionState) -> None:
        if new is self._state:
            return
        if new not in _TRANSITIONS[self._state]:
            raise RuntimeError(f"QST session: no transition {self._state.value} -> {new.value}")
        self._log.debug("QST session %s: %s -> %s", self.config.username, self._state, new)
        self._state = new
        self.history.append(new)

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self, wait: float | None = None) -> None:
        """Start the supervisor; wait (bounded) for the first login to succeed or fail.

        Never raises for an unreachable upstream: the session keeps trying in the
        background and requests fail with the reason meanwhile.
        """
        if self._supervisor is not None:
            return
        self._supervisor = asyncio.create_task(
            self._supervise(), name=f"qst-session-{self.config.username}"
        )
        limit = self.config.open_timeout + self.config.request_timeout if wait is None else wait
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(limit):
                await self._first_outcome.wait()

    async def close(self) -> None:
        """Log out of order entry and of QST, then close; idempotent."""
        if self._closing:
            return
        self._closing = True
        self._ready.clear()
        ws = self._ws
        try:
            if ws is not None and self._state is SessionState.OE_LOGGED_IN:
                with contextlib.suppress(BrokerGraphError):
                    await self._exchange(wire.oe_logout(), wait_seconds=2.0)
                    if self._state is SessionState.OE_LOGGED_IN:  # not lost meanwhile
                        self._advance(SessionState.LOGGED_IN)
            if ws is not None and self._state is SessionState.LOGGED_IN:
                with contextlib.suppress(BrokerGraphError, ConnectionClosed):
                    await self._send(wire.logout())
                    async with asyncio.timeout(2.0):
                        await ws.wait_closed()  # QST answers a logout by closing (1000)
        except TimeoutError:
            pass
        finally:
            if self._supervisor is not None:
                self._supervisor.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._supervisor
            if self._ws is not None:
                await self._ws.close()
            self._fail_pending(UpstreamUnavailable("the QST session was closed"))
            if self._state is not SessionState.CLOSED:
                self._advance(SessionState.CLOSED)

    async def drop(self, code: int = 1011) -> None:
        """Close the current connection (tests and benchmarks); the supervisor reconnects."""
        if self._ws is not None:
            await self._ws.close(code)

    # -- requests -----------------------------------------------------------------------

    async def call(
        self,
        request: wire.Request,
        *,
        account: str | None = None,
        wait_seconds: float | None = None,
        internal: bool = False,
    ) -> Any:
        """Send ``request`` (on ``account`` when it acts on the current account) and return
        the decoded response body; QST's refusals and losses as our errors.

        ``internal`` is for the resynchronisation after a (re)login: it does not wait for
        the session to be ready, since it is what makes it ready.
        """
        if not internal:
            await self._wait_ready()
        if account is None:
            if request.account_bound:
                raise RuntimeError(f"{request.kind} acts on an account: pass account=")
            return await self._exchange(request, wait_seconds=wait_seconds)
        self.known_account(account)
        async with self.gate.use(account, self._switch):
            return await self._exchange(request, wait_seconds=wait_seconds)

    async def wait_ready(self) -> None:
        """Return once logged in (bounded by ``ready_wait``), else raise why not."""
        await self._wait_ready()

    async def activate(self, account: str, *, internal: bool = False) -> None:
        """Make ``account`` the session's current account (no-op when it is)."""
        if not internal:
            await self._wait_ready()
        self.known_account(account)
        async with self.gate.use(account, self._switch):
            pass

    def known_account(self, account: str) -> wire.AccountSummary:
        summary = self.accounts.get(account)
        if summary is None:
            raise NotFound(
                "account not found", details={"platform": wire.PLATFORM, "accountId": account}
            )
        return summary

    async def _wait_ready(self) -> None:
        if self._closing:
            raise UpstreamUnavailable("the QST session is closed")
        if self._ready.is_set():
            return
        if self.busy or isinstance(self._last_error, UpstreamRejected):
            # Another session holds the user, or QST refused the login: no reconnection
            # is coming within ready_wait, so waiting for one only delays the answer.
            raise self._unavailable()
        try:
            async with asyncio.timeout(self.config.ready_wait):
                await self._ready.wait()
        except TimeoutError:
            raise self._unavailable() from None

    def _unavailable(self) -> BrokerGraphError:
        if self.busy:
            retry = round(self._busy_until - time.monotonic(), 1)
            return UpstreamBusy(
                "the QST user is logged in from another session; retrying later",
                details={"platform": wire.PLATFORM, "retryAfter": retry},
            )
        error = self._last_error
        if isinstance(error, UpstreamError):
            # This request is refused before it is sent: whatever the last error said
            # about the requests it cut off ("outcome": may have been applied) is not
            # true of this one, which is plainly not delivered.
            facts = {k: v for k, v in error.details.items() if k != "outcome"}
            return type(error)(error.message, details=facts)
        return UpstreamUnavailable(
            "the QST session is not logged in", details={"platform": wire.PLATFORM}
        )

    async def _switch(self, account: str) -> None:
        summary = self.known_account(account)
        switched = await self._exchange(wire.switch_account(account, is_live=summary.is_live))
        if not isinstance(switched, wire.Switched) or switched.account_id != account:
            raise ProtocolError(f"QST switched to {switched!r} when asked for {account}")
        self.home_account = account

    async def _send(self, request: wire.Request, request_id: int = 0) -> None:
        ws = self._ws
        if ws is None or not _SENDABLE[self._state](request.kind):
            raise UpstreamUnavailable(
                f"the QST session cannot send {request.kind} in state {self._state.value}",
                details={"platform": wire.PLATFORM},
            )
        try:
            await ws.send(wire.encode(request_id, request))
        except ConnectionClosed as error:
            # The frame may have left before the close arrived: a write's fate is unknown.
            if request.write and may_have_arrived(error):
                raise _outcome_unknown(request) from None
            raise transport_error(
                error, platform=wire.PLATFORM, vendor=VENDOR, what=request.kind
            ) from None

    def _next_id(self) -> int:
        request_id = next(self._ids)
        if request_id > MAX_REQUEST_ID:
            self._ids = itertools.count(2)
            request_id = 1
        return request_id

    async def _exchange(self, request: wire.Request, *, wait_seconds: float | None = None) -> Any:
        """Send one request and await its response frame (any order, by request id;
        in lockstep, after the request before it was answered)."""
        if not self.lockstep:
            return await self._exchange_once(request, wait_seconds)
        async with self._turn:
            return await self._exchange_once(request, wait_seconds)

    async def _exchange_once(self, request: wire.Request, wait_seconds: float | None) -> Any:
        request_id = self._next_id()
        future: asyncio.Future[wire.Frame] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = _Pending(future, request)
        try:
            await self._send(request, request_id)
            async with asyncio.timeout(wait_seconds or self.config.request_timeout):
                frame = await future
        except TimeoutError as error:
            if self.lockstep and self._ws is not None:
                # Its answer may still come, unnumbered, and would answer the next
                # request: a new connection is the only clean slate.
                await self._ws.close(1000, "unanswered request")
            raise transport_error(
                error,
                platform=wire.PLATFORM,
                vendor=VENDOR,
                what=request.kind,
                request=request.kind,
            ) from None
        finally:
            self._pending.pop(request_id, None)
        if frame.kind == wire.ERROR:
            raise refusal(frame.body.message)
        if frame.kind != request.kind:
            raise ProtocolError(
                f"QST answered {request.kind} with {frame.kind}",
                details={"platform": wire.PLATFORM},
            )
        return frame.body

    def _fail_pending(self, lost: BrokerGraphError) -> None:
        """Connection lost: reads were not answered (retry), writes' outcome is unknown."""
        pending, self._pending = self._pending, {}
        for entry in pending.values():
            if entry.future.done():
                continue
            if entry.request.write:
                entry.future.set_exception(_outcome_unknown(entry.request))
            else:
                entry.future.set_exception(type(lost)(lost.message, details=lost.details))

    # -- the connection ---------------------------------------------------------------

    async def _read(self, ws: ClientConnection) -> None:
        """Responses to their futures, notifications to the handler, in arrival order."""
        with contextlib.suppress(ConnectionClosed):
            async for data in ws:
                if isinstance(data, str):
                    self._log.warning("QST sent a text frame; ignored")
                    continue
                try:
                    frame = wire.decode(data)
                except ProtocolError as error:
                    self._log.warning("QST frame dropped: %s", error.message)
                    continue
                if frame.kind == wire.ASYNC:
                    try:
                        self._on_notice(frame.body)
                    except Exception:
                        self._log.exception("QST notification handler failed")
                elif frame.request_id == 0:
                    await self._unnumbered(ws, frame)
                else:
                    entry = self._pending.get(frame.request_id)
                    if entry is None:
                        self._log.debug("QST response %s to no request", frame.request_id)
                    elif not entry.future.done():
                        entry.future.set_result(frame)
                # Frames QST sent together are read without a pause: let whoever this
                # one woke (a placement waiting for its answer or first notification)
                # go on before the next frame is decoded and applied.
                await asyncio.sleep(0)
        # At once, not when the connection's owner notices: a login or resync step
        # waiting on its answer must not sit out the request timeout.
        self._fail_pending(_lost(ws))

    async def _unnumbered(self, ws: ClientConnection, frame: wire.Frame) -> None:
        """A response without our request id answers the one request in flight.

        The login, alone on a new connection, tells whether QST echoes ids.  Should
        unnumbered answers start while several requests are in flight, none can be
        told its answer, and later ones could answer the wrong request: the connection
        is closed (requests in flight fail as on any loss, a write's outcome unknown)
        and the next one, in lockstep from its login on, starts clean.
        """
        waiting = [entry for entry in self._pending.values() if not entry.future.done()]
        if not self.lockstep:
            self._log.warning("QST answers without request ids: one request at a time")
            self.lockstep = True
        if len(waiting) == 1:
            waiting[0].future.set_result(frame)
        elif not waiting:
            self._log.debug("QST %s response to no request", frame.kind)
        else:
            self._log.warning("QST answered without a request id, %d in flight", len(waiting))
            await ws.close(1002, "responses without request ids")

    async def _login(self, relogin: bool) -> wire.OELoginResult:
        config = self.config
        request = wire.login(config.username, config.password_hash, config.client_unique_id)
        result = await self._exchange(request)
        if not result.success:
            raise UpstreamRejected(
                f"QST refused the login: {result.message or 'no reason given'}",
                details={"platform": wire.PLATFORM},
            )
        self._advance(SessionState.LOGGED_IN)
        request = wire.oe_login(
            config.username, config.password_hash, config.provider, is_relogin=relogin
        )
        oe: wire.OELoginResult = await self._exchange(request)
        if not oe.success:
            raise UpstreamRejected(
                f"QST refused the order-entry login: {oe.message or 'no reason given'}",
                details={"platform": wire.PLATFORM},
            )
        self._advance(SessionState.OE_LOGGED_IN)
        return oe

    async def _establish(self, ws: ClientConnection) -> None:
        """Login, OE login, switch back, subscribe, resynchronise: then ready."""
        relogin = self._logged_in_once
        oe = await self._login(relogin)
        self._logged_in_once = True
        self.accounts = {a.account_id: a for a in oe.accounts}
        self.gate.reset(oe.current_account_id or None)
        home = self.home_account if self.home_account in self.accounts else None
        self.home_account = home or oe.current_account_id or None
        if self.home_account:
            await self.activate(self.home_account, internal=True)
        status = await self._exchange(wire.subscribe_order_activity())
        if not status.ok:
            raise UpstreamRejected("QST refused the order-activity subscription")
        if relogin:
            self.relogins += 1
        if self._on_ready is not None:
            await self._on_ready(self, relogin)

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.config.backoff_max, self.config.backoff_initial * 2**attempt)
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 (jitter, not a secret)

    async def _supervise(self) -> None:
        attempt = 0
        while not self._closing:
            established, delay = await self._connect_once()
            if self._closing:
                break
            if established:
                attempt = 0
            if delay is None:
                delay = self._backoff(attempt)
                attempt += 1
            self._log.info("QST session %s: reconnecting in %.2f s", self.config.username, delay)
            await asyncio.sleep(delay)

    async def _connect_once(self) -> tuple[bool, float | None]:
        """One connection's life: whether it got ready, and the delay to wait before the
        next attempt (None: the exponential backoff)."""
        config = self.config
        try:
            ws = await websockets.connect(
                config.url,
                open_timeout=config.open_timeout,
                ping_interval=config.ping_interval,
                max_size=MAX_FRAME_BYTES,
                compression=None,
                proxy=None,
                ssl=config.ssl,
            )
        except (OSError, InvalidHandshake, InvalidURI, ConnectionClosed, TimeoutError) as error:
            self._last_error = transport_error(error, platform=wire.PLATFORM, vendor=VENDOR)
            self._log.info("QST connect failed: %s", type(error).__name__)
            self._first_outcome.set()
            return False, None
        self._ws = ws
        self.connections += 1
        self.lockstep = False  # the login, alone in flight, finds out again
        self._advance(SessionState.CONNECTED)
        reader = asyncio.create_task(self._read(ws), name="qst-session-reader")
        next_delay: float | None = None
        established = False
        try:
            try:
                await self._establish(ws)
            except BrokerGraphError as error:
                if ws.close_code is None:  # a refusal, not a lost connection
                    self._last_error = error
                    self._log.warning("QST session setup failed: %s", error.message)
                    await ws.close(1000)
                    if isinstance(error, UpstreamRejected):
                        next_delay = self.config.backoff_max
            else:
                established = True
                self._busy_strikes = 0
                self._last_error = None
                self._ready.set()
                self._first_outcome.set()
                self._log.info(
                    "QST session %s ready (connection %d)", config.username, self.connections
                )
            await reader
        finally:
            reader.cancel()
            self._ready.clear()
            self._ws = None
            code, lost = _close_code(ws), _lost(ws)
            if self._state is not SessionState.CLOSED:
                self._advance(SessionState.DISCONNECTED)
            self._fail_pending(lost)
            self.gate.reset(None)
        if self._closing:
            return established, 0.0
        if code == 4101:
            self._busy_strikes += 1
            wait = self.config.busy_backoff * min(2 ** (self._busy_strikes - 1), 8)
            self._busy_until = time.monotonic() + wait
            self._last_error = lost
            self._log.warning(
                "QST user %s logged in elsewhere (4101): backing off %.1f s", config.username, wait
            )
            self._first_outcome.set()
            return established, wait
        if self._last_error is None or not isinstance(self._last_error, UpstreamRejected):
            self._last_error = lost
        self._log.info("QST connection closed (%d %s)", code, ws.close_reason or "")
        self._first_outcome.set()
        return established, next_delay


def _close_code(ws: ClientConnection) -> int:
    return ws.close_code if ws.close_code is not None else 1006  # no close frame: abnormal


def _lost(ws: ClientConnection) -> BrokerGraphError:
    """What the requests still waiting on a closed connection fail with."""
    return CLOSE_CODES.error(code=_close_code(ws))


def _outcome_unknown(request: wire.Request) -> UpstreamTimeout:
    return UpstreamTimeout(
        f"the QST connection was lost before {request.kind} was answered; its outcome is unknown",
        details={"platform": wire.PLATFORM, "request": request.kind},
    )
