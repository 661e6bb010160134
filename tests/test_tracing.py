"""A request's trace, from the client's ``traceparent`` down to the platform's HTTP call.

The gateway traces into an in-memory exporter; the toy sandbox records the
``traceparent`` each request reached it with, over its real socket.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from gateway.config import ObservabilitySettings
from gateway.observability import tracing
from tests.gateway_fixtures import open_gateway
from tests.test_metrics import BALANCE, PLACE_ORDER, order
from tests.test_websocket import ACCOUNT
from tests.toy.sandbox import API_KEY, ToySandbox

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{CLIENT_SPAN}-01"


class RecordingToy(ToySandbox):
    """The toy platform, remembering the ``traceparent`` of every request it served."""

    def __init__(self) -> None:
        super().__init__()
        self.traceparents: list[tuple[str, str | None]] = []

    def asgi_app(self) -> Any:
        app = super().asgi_app()

        async def recording(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                headers = dict(scope["headers"])
                parent = headers.get(b"traceparent")
                self.traceparents.append((scope["path"], parent.decode() if parent else None))
            await app(scope, receive, send)

        return recording


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    try:
        yield exporter
    finally:
        tracing.uninstall()


@pytest.fixture
async def toy() -> AsyncIterator[RecordingToy]:
    async with RecordingToy() as sandbox:
        yield sandbox


def by_id(finished: tuple[ReadableSpan, ...]) -> dict[int, ReadableSpan]:
    return {span.context.span_id: span for span in finished}


def ancestors(span: ReadableSpan, index: dict[int, ReadableSpan]) -> list[str]:
    """Names from ``span``'s parent up to the root, and the remote parent's id last."""
    names: list[str] = []
    while span.parent is not None:
        parent = index.get(span.parent.span_id)
        if parent is None:
            names.append(format(span.parent.span_id, "016x"))
            break
        names.append(parent.name)
        span = parent
    return names


async def test_a_mutation_is_traced_from_the_client_to_the_platform(
    spans: InMemorySpanExporter, toy: RecordingToy, tmp_path: Path
) -> None:
    async with open_gateway(toy, tmp_path) as gateway:
        toy.traceparents.clear()
        key = f"trace-{uuid.uuid4()}"
        status, body = await gateway.query(
            PLACE_ORDER, {"input": order(key)}, "client", headers={"traceparent": TRACEPARENT}
        )
        assert status == 200 and body["data"]["placeOrder"]["errors"] == [], body
    finished = spans.get_finished_spans()
    index = by_id(finished)
    assert {format(span.context.trace_id, "032x") for span in finished} >= {TRACE_ID}
    ours = [s for s in finished if format(s.context.trace_id, "032x") == TRACE_ID]
    names = {s.name for s in ours}
    assert {"POST /graphql", "graphql.mutation PlaceOrder", "graphql.parse"} <= names
    assert "graphql.validate" in names and "resolve Mutation.placeOrder" in names
    call = next(s for s in ours if s.name == "toy.place_order")
    assert call.kind is SpanKind.CLIENT
    assert call.attributes is not None and call.attributes["brokergraph.connector"] == "toy"
    assert TRACE_ID in str(call.attributes["brokergraph.traceparent"])
    # The chain: the HTTP call under the connector call under the resolver, under the
    # operation, under the request, under the client's span.
    http = next(
        s for s in ours if s.parent is not None and s.parent.span_id == call.context.span_id
    )
    assert ancestors(http, index) == [
        "toy.place_order",
        "resolve Mutation.placeOrder",
        "graphql.mutation PlaceOrder",
        "POST /graphql",
        CLIENT_SPAN,
    ]
    assert http.kind is SpanKind.CLIENT and http.attributes is not None
    assert http.attributes["http.request.method"] == "POST"
    assert http.attributes["http.response.status_code"] == 200
    assert "?" not in str(http.attributes["url.path"])
    # The platform got the trace: the order's request carried this trace's traceparent,
    # naming the HTTP client span as its parent.
    sent = [parent for _, parent in toy.traceparents if parent is not None]
    assert f"00-{TRACE_ID}-{format(http.context.span_id, '016x')}-01" in sent
    # The idempotency claim and its completion are store statements of this trace.
    store = [s for s in ours if s.name.startswith("store ")]
    assert {"store INSERT", "store UPDATE"} <= {s.name for s in store}, sorted(names)
    assert all("POST /graphql" in ancestors(s, index) for s in store)
    # No attribute anywhere holds a credential.
    text = repr([dict(s.attributes or {}) for s in finished])
    for secret in (*gateway.tokens.values(), API_KEY, key):
        assert secret not in text


async def test_a_read_traces_its_cache_lookup_and_untraced_requests_start_a_trace(
    spans: InMemorySpanExporter, toy: RecordingToy, tmp_path: Path
) -> None:
    async with open_gateway(toy, tmp_path) as gateway:
        await gateway.clear_cache()
        status, body = await gateway.query(BALANCE, {"id": ACCOUNT}, "client")
        assert status == 200 and "errors" not in body, body
    finished = spans.get_finished_spans()
    index = by_id(finished)
    request = next(s for s in finished if s.name == "POST /graphql")
    assert request.parent is None  # no traceparent: a trace of its own
    lookup = next(s for s in finished if s.name == "cache.get")
    assert lookup.context.trace_id == request.context.trace_id
    assert "POST /graphql" in ancestors(lookup, index)


def test_tracing_is_off_unless_asked() -> None:
    off = ObservabilitySettings()
    assert tracing.tracer() is None
    assert not tracing.configure(off, environ={})
    assert not tracing.configure(off, environ={"OTEL_TRACES_EXPORTER": "none"})
    on = ObservabilitySettings(tracing=True)
    assert not tracing.configure(on, environ={"OTEL_SDK_DISABLED": "true"})
    assert tracing.tracer() is None and tracing.span("x") is tracing.upstream_span("a", "b")
    assert tracing.configure(off, environ={"OTEL_TRACES_EXPORTER": "console"})
    try:
        assert tracing.tracer() is not None
    finally:
        tracing.uninstall()
    assert tracing.tracer() is None
