"""Request ids, access lines, and the log format: an ASGI middleware and two formatters.

Every HTTP request and WebSocket connection gets a request id — the client's
``X-Request-Id`` when it is 1-128 safe characters, a fresh one otherwise — echoed
in the response.  A contextvar carries it (and the trace id) to every log record
made while the request runs, so each line of a request can be found by its id.

One access line (logger ``gateway.access``, INFO) is written per HTTP request, per
WebSocket operation and per WebSocket connection: request id, operation name,
viewer (the subject, never a credential), status, duration and the upstream
calls made.  ``[observability] log_format`` picks text for people (the default)
or JSON, one object a line; either is redacted like every other record.

WebSocket metrics are taken here too, from the frames as they pass (a connection
opened and closed, a subscription started and ended, each event delivered or
dropped), so the socket code needs no hook of its own; a client frame is parsed
only when it may be a ``subscribe``, a server frame never beyond its head.  Frames
written past ``send`` (the fan-out's, see :mod:`gateway.http.ws_frames`) are counted
through the :class:`~gateway.http.ws_frames.FrameWriter` put in the socket's scope.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from gateway.http.ws_frames import DIRECT_FRAMES, FrameWriter
from gateway.logging_redaction import redact
from gateway.observability import _context, metrics, tracing
from gateway.observability._context import RequestRecord

__all__ = [
    "REQUEST_ID_HEADER",
    "JsonFormatter",
    "ObservabilityMiddleware",
    "RequestContextFilter",
    "TextFormatter",
    "install_request_fields",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

REQUEST_ID_HEADER: Final = "X-Request-Id"
_REQUEST_ID_KEY: Final = b"x-request-id"
_SAFE_ID: Final = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")
_TRACE_HEADERS: Final = (b"traceparent", b"tracestate")
#: A server frame's head: ``{"id": "…", "type": "next"`` (both writers put id first).
_FRAME_HEAD: Final = re.compile(
    r'\{\s*"id"\s*:\s*"((?:[^"\\]|\\.){0,128})"\s*,\s*"type"\s*:\s*"(\w+)"'
)
_OPERATION: Final = re.compile(r"^\s*(query|mutation|subscription)\b\s*(\w*)")
_ROOT_FIELD: Final = re.compile(r"\{\s*(?:\w+\s*:\s*)?(\w+)")

access_logger = logging.getLogger("gateway.access")


def _request_id(headers: list[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name == _REQUEST_ID_KEY and _SAFE_ID.fullmatch(value):
            return value.decode("ascii")
    return uuid.uuid4().hex


def _trace_headers(headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    return {n.decode(): v.decode("latin-1") for n, v in headers if n in _TRACE_HEADERS}


class ObservabilityMiddleware:
    """Request id, access line and request span around every HTTP request and socket."""

    def __init__(self, app: ASGIApp, *, access_log: bool, topics: frozenset[str]) -> None:
        self.app = app
        self.access_log = access_log
        #: The schema's subscription fields: a topic label is one of them or ``other``.
        self.topics = topics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await _Socket(self, scope).run(receive, send)
        else:
            await self.app(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        record = RequestRecord(_request_id(headers))
        echoed = (_REQUEST_ID_KEY, record.request_id.encode("ascii"))
        status = 500  # until the app answers: an exception before it did is a 500

        async def answer(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), echoed]
            await send(message)

        token = _context.current.set(record)
        try:
            if tracing.tracer() is None:  # no span, so no name or parent for it to build
                await self.app(scope, receive, answer)
            else:
                name = f"{scope['method']} {scope['path']}"
                with tracing.server_span(name, _trace_headers(headers)):
                    record.trace_id = tracing.current_trace_id()
                    await self.app(scope, receive, answer)
        finally:
            if self.access_log:  # still in the request's context: the line carries its ids
                _log_access(
                    record,
                    status,
                    kind="http",
                    method=scope["method"],
                    path=scope["path"],
                )
            _context.current.reset(token)


@dataclass(slots=True)
class _Operation:
    name: str
    topic: str | None
    started: float
    calls_before: int
    #: The topic's delivered and dropped counters, looked up once: a busy stream
    #: sends thousands of frames a second through :meth:`_Socket._sending`.
    counters: tuple[Any, Any] | None = None
    events: int = 0


class _Socket:
    """One WebSocket connection: its operations, seen in the frames."""

    def __init__(self, middleware: ObservabilityMiddleware, scope: Scope) -> None:
        self.middleware = middleware
        self.scope = scope
        self.record = RequestRecord(_request_id(scope["headers"]))
        self.operations: dict[str, _Operation] = {}
        self.accepted = False
        #: The close code, whichever side closed first (1006: none was seen).
        self.close_code = 1006

    async def run(self, receive: Receive, send: Send) -> None:
        token = _context.current.set(self.record)
        extensions = self.scope.get("extensions")
        if isinstance(extensions, dict):
            # Frames written past ``send`` (the fan-out's) are counted as ``send``'s are.
            writer = FrameWriter.for_server_send(send, self._delivered, self._dropped)
            if writer is not None:
                extensions[DIRECT_FRAMES] = writer
        try:
            await self.middleware.app(self.scope, self._receiving(receive), self._sending(send))
        finally:
            for operation_id in list(self.operations):
                self._end(operation_id, "closed")
            if self.accepted:
                metrics.WEBSOCKETS.dec()
                if self.middleware.access_log:
                    _log_access(
                        self.record, self.close_code, kind="websocket", path=self.scope["path"]
                    )
            _context.current.reset(token)

    def _receiving(self, receive: Receive) -> Receive:
        async def receiving() -> Message:
            message = await receive()
            if message["type"] == "websocket.disconnect" and self.close_code == 1006:
                self.close_code = message.get("code", 1005)
            text = message.get("text")
            if text and ('"subscribe"' in text or '"complete"' in text):
                self._client_frame(text)
            return message

        return receiving

    def _sending(self, send: Send) -> Send:
        # A plain function handing back the server's own awaitable: a data frame costs a
        # look at its head and, for a counted event, one coroutine around the send.  Only
        # control messages (accept, close) and a stream's last frame take the slow road.
        def sending(message: Message) -> Awaitable[None]:
            if message["type"] != "websocket.send":
                return self._control(send, message)
            text = message.get("text")
            if not text:
                return send(message)
            head = _frame_head(text)
            if head is None:
                return send(message)
            operation_id, frame = head
            if frame == "next":
                operation = self.operations.get(operation_id)
                if operation is None or operation.counters is None:
                    return send(message)
                return self._deliver(send(message), operation, operation.counters)
            if frame in ("complete", "error"):
                return self._last(send(message), operation_id, frame)
            return send(message)

        return sending

    async def _control(self, send: Send, message: Message) -> None:
        kind = message["type"]
        if kind == "websocket.accept":
            message["headers"] = [
                *message.get("headers", ()),
                (_REQUEST_ID_KEY, self.record.request_id.encode("ascii")),
            ]
            await send(message)
            self.accepted = True
            metrics.WEBSOCKETS.inc()
            return
        if kind == "websocket.close" and self.close_code == 1006:
            self.close_code = message.get("code", 1000)
        await send(message)

    async def _deliver(
        self, sent: Awaitable[None], operation: _Operation, counters: tuple[Any, Any]
    ) -> None:
        try:
            await sent
        except BaseException:
            counters[1].inc()  # dropped
            raise
        operation.events += 1
        counters[0].inc()  # delivered

    def _delivered(self, operation_id: str, frames: int) -> None:
        operation = self.operations.get(operation_id)
        if operation is not None and operation.counters is not None:
            operation.events += frames
            operation.counters[0].inc(frames)

    def _dropped(self, operation_id: str, frames: int) -> None:
        operation = self.operations.get(operation_id)
        if operation is not None and operation.counters is not None:
            operation.counters[1].inc(frames)

    async def _last(self, sent: Awaitable[None], operation_id: str, frame: str) -> None:
        await sent
        self._end(operation_id, frame)

    def _client_frame(self, text: str) -> None:
        try:
            frame = orjson.loads(text)
        except orjson.JSONDecodeError:
            return  # the protocol handler answers it
        if not isinstance(frame, dict) or not isinstance(frame.get("id"), str):
            return
        operation_id = frame["id"]
        if frame.get("type") == "complete":
            self._end(operation_id, "cancelled")
            return
        payload = frame.get("payload")
        if frame.get("type") != "subscribe" or not isinstance(payload, dict):
            return
        if operation_id in self.operations:
            return  # a duplicate id: the handler closes the socket (4409)
        query = payload.get("query")
        query = query if isinstance(query, str) else ""
        name = payload.get("operationName")
        declared = _OPERATION.match(query)
        if not isinstance(name, str) or not name:
            name = declared.group(2) if declared else None
        topic = None
        if declared is not None and declared.group(1) == "subscription":
            field = _ROOT_FIELD.search(query, declared.end())
            topic = field.group(1) if field else "other"
            topic = topic if topic in self.middleware.topics else "other"
            metrics.SUBSCRIPTIONS.labels(topic).inc()
        self.operations[operation_id] = _Operation(
            metrics.operation_label(name),
            topic,
            time.perf_counter(),
            self.record.upstream_calls,
            None if topic is None else metrics.subscription_events(topic),
        )

    def _end(self, operation_id: str, status: str) -> None:
        operation = self.operations.pop(operation_id, None)
        if operation is None:
            return
        if operation.topic is not None:
            metrics.SUBSCRIPTIONS.labels(operation.topic).dec()
        if not self.middleware.access_log or not access_logger.isEnabledFor(logging.INFO):
            return
        fields = {
            "request_id": self.record.request_id,
            "operation_id": operation_id[:64],
            "operation": operation.name,
            "viewer": self.record.viewer,
            "status": status,
            "duration_ms": round((time.perf_counter() - operation.started) * 1000, 1),
            "upstream_calls": self.record.upstream_calls - operation.calls_before,
            "events": operation.events,
            "kind": "websocket operation",
        }
        _emit(fields)


def _frame_head(text: str) -> tuple[str, str] | None:
    """A server frame's operation id and type, read from its head only."""
    # Both writers put the id first, compactly; the id is read as is when it has no
    # escape in it (the common case), else the pattern decodes the head.
    if text.startswith('{"id":"'):
        end = text.find('"', 7, 200)
        if end > 0 and "\\" not in text[7:end] and text.startswith(',"type":"', end + 1):
            start = end + 10
            stop = text.find('"', start, start + 16)
            if stop > 0:
                return text[7:end], text[start:stop]
    head = _FRAME_HEAD.match(text, 0, 300)
    if head is None:
        return None
    operation_id: str = head.group(1)
    if "\\" in operation_id:
        operation_id = orjson.loads(f'"{operation_id}"')
    return operation_id, head.group(2)


def _log_access(record: RequestRecord, status: int | str, **extra: Any) -> None:
    if not access_logger.isEnabledFor(logging.INFO):
        return  # nothing built for a line nobody writes
    fields = {
        "request_id": record.request_id,
        "trace_id": record.trace_id,
        "operation": record.operation,
        "viewer": record.viewer,
        "status": status,
        "duration_ms": round((time.perf_counter() - record.started) * 1000, 1),
        "upstream_calls": record.upstream_calls,
        **extra,
    }
    _emit(fields)


def _emit(fields: dict[str, Any]) -> None:
    """One access line: ``key=value`` pairs in the message, the same as ``record.access``."""
    message = " ".join(f"{key}={value}" for key, value in fields.items() if value is not None)
    access_logger.info("%s", message, extra={"access": fields})


class RequestContextFilter(logging.Filter):
    """Stamps a record with the request id and trace id of the request making it."""

    def filter(self, record: logging.LogRecord) -> bool:
        current = _context.current.get()
        record.request_id = current.request_id if current is not None else None
        record.trace_id = (
            current.trace_id if current is not None else None
        ) or tracing.current_trace_id()
        return True


_FILTER: Final = RequestContextFilter()


def install_request_fields() -> None:
    """Every record made in this process from now on carries ``request_id`` and
    ``trace_id`` (``None`` outside a request); idempotent.  Done in the record
    factory, like the redaction, so every handler (and pytest's capture) sees them."""
    current = logging.getLogRecordFactory()
    if getattr(current, "_brokergraph_request_fields", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = current(*args, **kwargs)
        _FILTER.filter(record)
        return record

    factory._brokergraph_request_fields = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


class TextFormatter(logging.Formatter):
    """The CLI's line for people, with the request's ids when there is a request."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = getattr(record, "request_id", None)
        if request_id is None or hasattr(record, "access"):
            return line
        trace_id = getattr(record, "trace_id", None)
        suffix = f" [request_id={request_id}" + (f" trace_id={trace_id}]" if trace_id else "]")
        head, newline, rest = line.partition("\n")  # before a traceback, if any
        return head + suffix + newline + rest


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, request and trace ids,
    the access fields of an access line, and the traceback; redacted as a whole."""

    converter = time.gmtime  # type: ignore[assignment]  # UTC, as the "Z" says

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in ("request_id", "trace_id"):
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        access = getattr(record, "access", None)
        if isinstance(access, dict):
            entry.update({k: v for k, v in access.items() if v is not None})
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        # The message was redacted when the record was made; the extra fields were not.
        return redact(orjson.dumps(entry, default=str).decode())
