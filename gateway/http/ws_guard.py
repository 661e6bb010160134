"""A graphql-transport-ws connection that follows its credentials and its client.

Strawberry's handler authenticates once, at ``connection_init``; this one keeps
checking afterwards, because a socket may outlive the token that opened it:

* a ``Bearer`` socket is closed with 4403 at its JWT's ``exp`` (no leeway: the
  leeway is for clock skew at the door, not for extending a session), and every
  new ``subscribe`` re-verifies the credentials first, so an operation sent after
  expiry or revocation is never executed;
* an ``ApiKey`` socket re-reads its key's state on every new operation and every
  ``ws_credential_check_seconds``, and is closed with 4403 once it is revoked;
* API-key failures: a client address past ``api_key_failures_per_minute`` failed
  API-key attempts (counted with the HTTP side's when the app shares its windows) has
  its next ``ApiKey`` ``connection_init`` closed with 4429 before the key is checked
  (no scrypt), and each refused key counts one more;
* caps: ``max_sockets_per_viewer`` (one more socket is closed with 4429) and
  ``max_subscriptions_per_connection`` / ``max_subscriptions_per_viewer`` (one more
  operation is answered with an ``error`` coded RATE_LIMITED);
* keep-alive: the server sends ``ping`` every ``ws_ping_interval_seconds`` and closes
  with 4408 a client whose ``pong`` does not come within ``ws_pong_timeout_seconds``.

The caps count the sockets of this process (a cluster's replicas each apply them).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any, Final

from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage,
    Message,
    PongMessage,
)

from gateway.auth import AuthenticatorChain, api_key_id, bearer_expiry
from gateway.config import LimitSettings
from gateway.errors import RateLimited, Unauthenticated
from gateway.graphql import RequestContext
from gateway.http._client_limits import FailureWindows

__all__ = [
    "CLOSE_FORBIDDEN",
    "CLOSE_KEEPALIVE_TIMEOUT",
    "CLOSE_TOO_MANY",
    "GuardedTransportWSHandler",
    "SocketPolicy",
]

logger = logging.getLogger("gateway.http.websocket")

CLOSE_FORBIDDEN: Final = 4403
CLOSE_TOO_MANY: Final = 4429
CLOSE_KEEPALIVE_TIMEOUT: Final = 4408


class SocketPolicy:
    """What every socket of one app shares: settings, the authenticator, the open sockets."""

    def __init__(
        self,
        limits: LimitSettings,
        authenticator: AuthenticatorChain,
        authorization: Callable[[RequestContext], str | None],
        key_failures: FailureWindows,
    ) -> None:
        self.limits = limits
        self.authenticator = authenticator
        self.authorization = authorization
        #: Failed API-key attempts per client address (the HTTP handler's, when shared).
        self.key_failures = key_failures
        self._by_viewer: defaultdict[str, set[GuardedTransportWSHandler]] = defaultdict(set)
        #: Subscriptions streamed over HTTP (SSE, multipart) per viewer: they count
        #: towards ``max_subscriptions_per_viewer`` with the sockets' operations.
        self.http_streams: Counter[str] = Counter()

    def admit(self, subject: str, handler: GuardedTransportWSHandler) -> bool:
        """Register ``handler`` as one of ``subject``'s sockets, unless that is one too many."""
        sockets = self._by_viewer[subject]
        cap = self.limits.max_sockets_per_viewer
        if cap and len(sockets) >= cap:
            if not sockets:
                del self._by_viewer[subject]
            return False
        sockets.add(handler)
        return True

    def release(self, subject: str, handler: GuardedTransportWSHandler) -> None:
        sockets = self._by_viewer.get(subject)
        if sockets is not None:
            sockets.discard(handler)
            if not sockets:
                del self._by_viewer[subject]

    def operations_of(self, subject: str) -> int:
        """Operations in flight over all of ``subject``'s sockets and HTTP streams."""
        sockets = sum(len(h.operations) for h in self._by_viewer.get(subject, ()))
        return sockets + self.http_streams[subject]


class GuardedTransportWSHandler(BaseGraphQLTransportWSHandler[RequestContext, None]):
    """Strawberry's graphql-transport-ws handler, plus the checks the module describes."""

    #: Set on the subclass a view makes (see :func:`handler_class`).
    policy: SocketPolicy

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._subject: str | None = None
        self._authorization: str | None = None
        self._expires_at: float | None = None
        self._key_id: str | None = None
        self._watchers: list[asyncio.Task[None]] = []
        self._pong = asyncio.Event()
        self._closed = False

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        # Strawberry's steps, with the per-viewer socket cap between authentication
        # and the ack (its version can only refuse with 4403).
        if self.connection_timed_out:
            return
        if self.connection_init_timeout_task:
            self.connection_init_timeout_task.cancel()
            # Let it go: cancelled, the task would keep its CancelledError, traceback and
            # frames for the socket's whole life (objects every full collection walks).
            self.connection_init_timeout_task = None
        payload = message.get("payload", {})
        if not isinstance(payload, dict):
            await self._close(4400, "Invalid connection init payload")
            return
        if self.connection_init_received:
            await self._close(CLOSE_TOO_MANY, "Too many initialisation requests")
            return
        self.connection_init_received = True
        self.context.connection_params = payload
        authorization = self.policy.authorization(self.context)
        client = _client_address(self.context)
        by_api_key = _is_api_key(authorization)
        if by_api_key:
            try:
                self.policy.key_failures.check(client)  # before the key's scrypt
            except RateLimited:
                await self._close(CLOSE_TOO_MANY, "Too many failed API-key attempts")
                return
        try:
            await self.view.on_ws_connect(self.context)
        except ConnectionRejectionError:
            if by_api_key:
                self.policy.key_failures.failed(client)
            await self._close(CLOSE_FORBIDDEN, "Forbidden")
            return
        expires_at = bearer_expiry(authorization)
        if expires_at is not None and time.time() >= expires_at:
            # Accepted within the verifier's leeway, but a socket gets no leeway.
            await self._close(CLOSE_FORBIDDEN, "Token expired")
            return
        viewer = self.context.viewer
        if viewer is None:  # on_ws_connect sets it or raises; never trust that blindly
            await self._close(CLOSE_FORBIDDEN, "Forbidden")
            return
        subject = viewer.subject
        if not self.policy.admit(subject, self):
            await self._close(CLOSE_TOO_MANY, "Too many sockets for this viewer")
            return
        self._subject, self._authorization = subject, authorization
        self._expires_at, self._key_id = expires_at, api_key_id(authorization)
        await self.send_message({"type": "connection_ack"})
        self.connection_acknowledged = True
        self._start_watchers()

    async def handle_message(self, message: Message) -> None:
        if (
            isinstance(message, dict)
            and message.get("type") == "subscribe"
            and self.connection_acknowledged
        ):
            refusal = await self._credentials_refusal()
            if refusal is not None:
                await self._close(CLOSE_FORBIDDEN, refusal)
                return
            if await self._refused_by_caps(dict(message)):
                return
        await super().handle_message(message)

    async def handle_pong(self, message: PongMessage) -> None:
        self._pong.set()

    async def shutdown(self) -> None:
        current = asyncio.current_task()
        for watcher in self._watchers:
            if watcher is not current:
                watcher.cancel()
        for watcher in self._watchers:
            if watcher is not current:
                with suppress(asyncio.CancelledError, Exception):
                    await watcher
        if self._subject is not None:
            self.policy.release(self._subject, self)
        await super().shutdown()

    # -- checks -----------------------------------------------------------------------

    async def _credentials_refusal(self) -> str | None:
        """Why the socket's credentials no longer hold, or ``None`` while they do."""
        if self._expires_at is not None and time.time() >= self._expires_at:
            return "Token expired"
        try:
            await self.policy.authenticator.viewer_from_authorization_header(self._authorization)
        except Unauthenticated:
            return "Credentials no longer valid"
        if await self._key_revoked():
            return "API key revoked"
        return None

    async def _key_revoked(self) -> bool:
        api_keys = self.policy.authenticator.api_keys
        if self._key_id is None or api_keys is None:
            return False
        return await api_keys.is_revoked(self._key_id)

    async def _refused_by_caps(self, message: dict[str, Any]) -> bool:
        if message.get("id") in self.operations:
            return False  # strawberry closes the socket with 4409 for a reused id
        limits = self.policy.limits
        per_socket = limits.max_subscriptions_per_connection
        per_viewer = limits.max_subscriptions_per_viewer
        if per_socket and len(self.operations) >= per_socket:
            reason = f"at most {per_socket} operations per socket"
        elif per_viewer and self.policy.operations_of(self._subject or "") >= per_viewer:
            reason = f"at most {per_viewer} operations per viewer over all sockets"
        else:
            return False
        error = RateLimited(f"Subscription limit reached: {reason}")
        await self.send_message(
            {
                "id": message["id"],
                "type": "error",
                "payload": [{"message": error.message, "extensions": {"code": error.code}}],
            }
        )
        return True

    # -- watchers ---------------------------------------------------------------------

    def _start_watchers(self) -> None:
        limits = self.policy.limits
        jobs: list[Awaitable[None]] = []
        if self._expires_at is not None:
            jobs.append(self._close_at_expiry(self._expires_at))
        if self._key_id is not None and limits.ws_credential_check_seconds > 0:
            jobs.append(self._watch_key(limits.ws_credential_check_seconds))
        if limits.ws_ping_interval_seconds > 0:
            jobs.append(
                self._keep_alive(limits.ws_ping_interval_seconds, limits.ws_pong_timeout_seconds)
            )
        for job in jobs:
            task: asyncio.Task[None] = asyncio.ensure_future(job)
            task.add_done_callback(self._task_done)
            self._watchers.append(task)

    async def _close_at_expiry(self, expires_at: float) -> None:
        await asyncio.sleep(max(0.0, expires_at - time.time()))
        await self._close(CLOSE_FORBIDDEN, "Token expired")

    async def _watch_key(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                revoked = await self._key_revoked()
            except Exception:
                # The store is unreachable: say so, and decide on the next tick.
                logger.warning("could not check an API key's state", exc_info=True)
                continue
            if revoked:
                await self._close(CLOSE_FORBIDDEN, "API key revoked")
                return

    async def _keep_alive(self, interval: float, pong_within: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self._pong.clear()
            await self.send_message({"type": "ping"})
            try:
                await asyncio.wait_for(self._pong.wait(), pong_within)
            except TimeoutError:
                await self._close(CLOSE_KEEPALIVE_TIMEOUT, "Keep-alive timeout")
                return

    async def _close(self, code: int, reason: str) -> None:
        if self._closed:
            return
        self._closed = True
        # The peer may be gone already: closing is best effort, and the read loop
        # then ends on its own.
        with suppress(Exception):
            await self.websocket.close(code=code, reason=reason)


def _is_api_key(authorization: str | None) -> bool:
    """An ``ApiKey`` credential, as the HTTP side counts one (well-formed or not)."""
    return authorization is not None and authorization.lstrip().lower().startswith("apikey ")


def _client_address(context: RequestContext) -> str:
    client = getattr(context.request, "client", None)
    return str(client.host) if client is not None else "unknown"


def handler_class(policy: SocketPolicy) -> type[GuardedTransportWSHandler]:
    """The handler class a view hands strawberry, bound to that view's ``policy``."""
    return type("BoundTransportWSHandler", (GuardedTransportWSHandler,), {"policy": policy})
