"""Subscriptions streamed over HTTP: GraphQL over SSE, and the shared stream runner.

``POST /graphql`` (or ``GET``) with ``Accept: text/event-stream`` is the graphql-sse
protocol's *distinct connections* mode: one operation per request, its results as
``event: next`` and its end as ``event: complete``.  ``Accept: multipart/mixed;
subscriptionSpec=1.0`` is Apollo's multipart protocol (:mod:`gateway.http._multipart`).
Both frame the same stream, run as the WebSocket runs a subscriber's own stream (the
leak-free executor of :mod:`gateway.http._fanout`, the schema's validation rules for
depth and cost, the resolvers' access checks, ``afterSequence`` and its
RESUME_POINT_EXPIRED / STREAM_INTERRUPTED errors as GraphQL errors in the stream), and
follow the WebSocket's rules (:mod:`gateway.http.ws_guard`):

* the request is authenticated like any HTTP request (401 without credentials); a
  ``Bearer`` stream ends at its JWT's ``exp`` with no leeway, an ``ApiKey`` stream when
  its key is found revoked (checked every ``ws_credential_check_seconds``): the client
  gets an UNAUTHENTICATED error in the stream where a socket would be closed with 4403;
* ``max_subscriptions_per_viewer`` counts these streams with the sockets' operations
  (one more is refused with 429 RATE_LIMITED before anything runs);
* heartbeats (an SSE comment, an empty multipart part) keep proxies from closing an
  idle stream; a client that leaves ends the stream and closes the connector's.

Strawberry's view implements both protocols, but it would bypass the HTTP handler's
negotiation, authentication, budgets and persisted operations: only its framing
(encoders and heartbeat merge) is reused here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine, Mapping
from typing import Any, ClassVar, Final, cast

import orjson
from graphql import GraphQLError
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from strawberry.http.streaming import SSETransport, merge_stream_with_heartbeat
from strawberry.types.execution import ExecutionResult, PreExecutionError
from strawberry.types.graphql import OperationType

from gateway.auth import ApiKeyAuthenticator, Viewer, api_key_id, bearer_expiry
from gateway.graphql import BrokerGraphSchema, RequestContext
from gateway.http._fanout import leak_free
from gateway.http.persisted import PersistedOperationRefused, PersistedOperations
from gateway.http.websocket import GraphQLWebSocket
from gateway.http.ws_guard import GuardedTransportWSHandler, SocketPolicy
from gateway.services import GatewayServices

__all__ = ["Framing", "HTTPSubscriptions", "SSEFraming", "socket_policy"]

#: What a stream answers to a query or a mutation sent with a streaming Accept.
_ANY_OVER_POST: Final = (OperationType.QUERY, OperationType.MUTATION, OperationType.SUBSCRIPTION)
#: GET must not change state (as for plain GET requests).
_SAFE_OVER_GET: Final = (OperationType.QUERY, OperationType.SUBSCRIPTION)
_END: Final = object()

logger = logging.getLogger("gateway.http.streams")


def encode_json(value: object) -> str:
    return orjson.dumps(value).decode()


class Framing:
    """How one protocol frames a stream of GraphQL results on the wire."""

    headers: ClassVar[Mapping[str, str]]
    heartbeat_seconds: ClassVar[float]
    #: Send a heartbeat as soon as the stream opens (multipart: so a client knows the
    #: subscription is accepted before the first event).
    initial_heartbeat: ClassVar[bool]

    def opening(self) -> str:
        return ""

    def next(self, result: dict[str, Any]) -> str:
        raise NotImplementedError

    def fatal(self, errors: list[dict[str, Any]]) -> str:
        """The stream's last frames after a transport-level error (credentials lapsed)."""
        raise NotImplementedError

    def complete(self) -> str:
        raise NotImplementedError

    def heartbeat(self) -> str:
        raise NotImplementedError


class SSEFraming(Framing):
    """graphql-sse, distinct connections mode (``event: next`` / ``event: complete``).

    Lines end with LF alone, as graphql-sse's own server writes them: Strawberry's
    encoder ends them with CRLF, which the SSE specification allows but Hive Gateway's
    subgraph client (it splits events on a blank LF line) never reads as an event end.
    """

    _sse: ClassVar[SSETransport] = SSETransport()
    headers: ClassVar[Mapping[str, str]] = SSETransport.headers
    heartbeat_seconds: ClassVar[float] = 15.0
    initial_heartbeat: ClassVar[bool] = False

    @classmethod
    def accepting(cls, accept: str | None) -> SSEFraming | None:
        return cls() if accept and cls._sse.accepts(accept) else None

    def next(self, result: dict[str, Any]) -> str:
        return f"event: next\ndata: {encode_json(result)}\n\n"  # orjson writes no newline

    def fatal(self, errors: list[dict[str, Any]]) -> str:
        # The protocol has no error event in this mode: errors travel as a result.
        return self.next({"errors": errors}) + self.complete()

    def complete(self) -> str:
        return "event: complete\ndata:\n\n"  # a data field, or browsers drop the event

    def heartbeat(self) -> str:
        return ": ping\n\n"


def socket_policy(websocket: GraphQLWebSocket) -> SocketPolicy:
    """The caps and open sockets of ``websocket`` (its handler class carries them)."""
    return cast(
        type[GuardedTransportWSHandler], websocket.graphql_transport_ws_handler_class
    ).policy


class HTTPSubscriptions:
    """Runs one operation per request as a framed stream (see the module's docstring)."""

    def __init__(
        self,
        services: GatewayServices,
        schema: BrokerGraphSchema,
        persisted: PersistedOperations,
        policy: SocketPolicy,
        format_error: Callable[[GraphQLError], dict[str, Any]],
    ) -> None:
        """``policy``: the WebSocket's, so that streams and sockets share the caps."""
        self.services = services
        self.schema = schema
        self.persisted = persisted
        self.policy = policy
        self.format_error = format_error

    async def respond(
        self,
        framing: Framing,
        params: dict[str, Any],
        viewer: Viewer,
        authorization: str | None,
        request: Request,
    ) -> Response:
        expires_at = bearer_expiry(authorization)
        if expires_at is not None and time.time() >= expires_at:
            # Accepted within the verifier's leeway, but a stream gets none (as a socket).
            return _refusal(401, "Token expired", "UNAUTHENTICATED")
        subject = viewer.subject
        cap = self.policy.limits.max_subscriptions_per_viewer
        if cap and self.policy.operations_of(subject) >= cap:
            message = f"Subscription limit reached: at most {cap} operations per viewer"
            return _refusal(429, message, "RATE_LIMITED")
        try:
            query, register = await self.persisted.resolve(params)
        except PersistedOperationRefused as refused:
            return _refusal(400, refused.message, refused.code)
        # Counted before the first await that runs resolvers, so that two requests
        # racing cannot both pass the cap.
        self.policy.http_streams[subject] += 1
        released = False
        source: AsyncGenerator[Any, None] | None = None

        async def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            self.policy.http_streams[subject] -= 1
            if self.policy.http_streams[subject] <= 0:
                del self.policy.http_streams[subject]
            if source is not None:
                await source.aclose()

        try:
            context = RequestContext(
                services=self.services,
                account_types=self.schema.account_types,
                viewer=viewer,
                request=request,
                loaders_cache=False,  # a cache would go stale over a long-lived stream
            )
            # Nothing runs before the stream is iterated: the response starts at once
            # (with its heartbeats), however long the first event takes.
            source = cast(
                AsyncGenerator[Any, None],
                await leak_free(self.schema).stream(
                    query,
                    variable_values=params["variables"],
                    context_value=context,
                    operation_name=params["operationName"],
                    allowed_operation_types=(
                        _SAFE_OVER_GET if request.method == "GET" else _ANY_OVER_POST
                    ),
                ),
            )
        except BaseException:
            await release()
            raise
        registration = None if register is None or query is None else (register, query)
        frames = self._frames(framing, source, authorization, registration)
        merged = merge_stream_with_heartbeat(
            lambda: frames,
            framing.heartbeat,
            framing.heartbeat_seconds,
            send_initial_heartbeat=framing.initial_heartbeat,
        )
        # The release runs after the response, also when the client left before the
        # stream started (then the generators above never ran).
        return StreamingResponse(
            _opened(framing, merged()),
            headers=dict(framing.headers),
            background=BackgroundTask(release),
        )

    async def _frames(
        self,
        framing: Framing,
        source: AsyncGenerator[Any, None],
        authorization: str | None,
        registration: tuple[str, str] | None,
    ) -> AsyncGenerator[str, None]:
        """The stream's frames; ``registration``: an APQ hash and text to store once the
        text proved valid (it ran)."""
        watch = self._credentials_lapse(authorization)
        lapse = None if watch is None else asyncio.ensure_future(watch)
        upcoming: asyncio.Future[Any] | None = None
        try:
            while True:
                upcoming = asyncio.ensure_future(anext(source, _END))
                waited = (upcoming,) if lapse is None else (upcoming, lapse)
                await asyncio.wait(waited, return_when=asyncio.FIRST_COMPLETED)
                if lapse is not None and not upcoming.done():
                    lapsed = {"message": lapse.result(), "extensions": {"code": "UNAUTHENTICATED"}}
                    yield framing.fatal([lapsed])
                    return
                result = upcoming.result()
                upcoming = None
                if result is _END:
                    break
                if isinstance(result, PreExecutionError):
                    # Parse, validation (depth, cost), operation type: as the WebSocket's
                    # ``error`` message, the operation's only result.
                    errors = [self.format_error(e) for e in result.errors or ()]
                    yield framing.next({"errors": errors})
                    break
                if not isinstance(result, ExecutionResult):
                    # @defer / @stream frames: not served on a subscription transport.
                    refusal = {"message": "incremental delivery is not supported"}
                    yield framing.next(
                        {"errors": [{**refusal, "extensions": {"code": "BAD_REQUEST"}}]}
                    )
                    break
                if registration is not None:
                    await self.persisted.register(*registration)
                    registration = None
                yield framing.next(self._payload(result))
            yield framing.complete()
        finally:
            for task in (upcoming, lapse):
                if task is not None and not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    def _payload(self, result: ExecutionResult) -> dict[str, Any]:
        payload: dict[str, Any] = {"data": result.data}
        if result.errors:
            payload["errors"] = [self.format_error(e) for e in result.errors]
        if result.extensions:
            payload["extensions"] = result.extensions
        return payload

    def _credentials_lapse(self, authorization: str | None) -> Coroutine[Any, Any, str] | None:
        """A wait that ends with why the credentials stopped holding (None: they cannot
        lapse while the stream runs)."""
        expires_at = bearer_expiry(authorization)
        if expires_at is not None:
            return _expiry(expires_at)
        key_id = api_key_id(authorization)
        api_keys = self.policy.authenticator.api_keys
        interval = self.policy.limits.ws_credential_check_seconds
        if key_id is None or api_keys is None or interval <= 0:
            return None
        return _revocation(api_keys, key_id, interval)


async def _expiry(expires_at: float) -> str:
    await asyncio.sleep(max(0.0, expires_at - time.time()))
    return "Token expired"


async def _revocation(api_keys: ApiKeyAuthenticator, key_id: str, interval: float) -> str:
    while True:
        await asyncio.sleep(interval)
        try:
            if await api_keys.is_revoked(key_id):
                return "API key revoked"
        except Exception:
            # The store is unreachable: say so, and decide on the next tick (as a socket).
            logger.warning("could not check an API key's state", exc_info=True)


async def _opened(framing: Framing, frames: AsyncIterator[str]) -> AsyncGenerator[str, None]:
    opening = framing.opening()
    if opening:
        yield opening
    async for frame in frames:
        yield frame


def _refusal(status: int, message: str, code: str) -> Response:
    body = {"errors": [{"message": message, "extensions": {"code": code}}]}
    return Response(orjson.dumps(body), status, media_type="application/json")
