"""OpenTelemetry traces: a request's span tree down to every upstream call.

Off by default, and then every hook here is one ``is None`` test: no span, no
context lookup.  On (``[observability] tracing = true``, or ``OTEL_TRACES_EXPORTER``
naming an exporter), the SDK is configured from the standard ``OTEL_*`` variables
(service name and resource attributes, batch processor, the OTLP exporter's
endpoint and headers) and the gateway records:

* a server span per HTTP request, continuing a W3C ``traceparent`` the client sent;
* the GraphQL operation, its parse and validate steps, and each resolver that awaits
  (:mod:`gateway.observability.extension`);
* each connector call (:meth:`gateway.resilience.Upstream.call`), with the connector
  and family method, and the trace's ``traceparent`` as an attribute, which is how
  a trace reaches the platforms whose protocols carry no header (QST's gRPC session,
  QORT's), where an operator matches it against the vendor's logs by time;
* each cache lookup, each statement the store runs (its verb and the database
  system, never its text or parameters), and each HTTP request a connector makes: a
  client span with the vendor's host and path — never the query string, where
  cTrader carries its token, nor any header — and ``traceparent`` added to the request.

The HTTP propagation is ours rather than opentelemetry-instrumentation-httpx: one
wrapper of httpx's transport (every connector's client goes through it), which
leaves a request alone unless it is made inside a traced span, records no URL
query and needs no beta dependency.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

import httpx
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import Span, SpanKind, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from sqlalchemy import event
from sqlalchemy.engine import Engine

from gateway.config import ConfigError, ObservabilitySettings

__all__ = [
    "TRACER_NAME",
    "configure",
    "current_trace_id",
    "install",
    "server_span",
    "span",
    "tracer",
    "uninstall",
    "upstream_span",
]

TRACER_NAME: Final = "brokergraph"
_PROPAGATOR: Final = TraceContextTextMapPropagator()
_OFF: Final = contextlib.nullcontext()


class _State:
    tracer: Tracer | None = None
    provider: TracerProvider | None = None
    #: The provider was made here (from OTEL_*): shut it down (flush) when the gateway stops.
    owned: bool = False


_state = _State()


def tracer() -> Tracer | None:
    """The gateway's tracer, or ``None`` while tracing is off."""
    return _state.tracer


def install(provider: TracerProvider) -> None:
    """Trace into ``provider`` from now on (a test's in-memory exporter, say)."""
    _state.provider = provider
    _state.tracer = provider.get_tracer(TRACER_NAME)
    _state.owned = False
    _patch_httpx()
    _listen_to_the_store()


def uninstall() -> None:
    """Tracing off; the provider made by :func:`configure` is flushed and shut down."""
    provider, owned = _state.provider, _state.owned
    _state.tracer = _state.provider = None
    _state.owned = False
    if provider is not None and owned:
        provider.shutdown()


def _enabled(settings: ObservabilitySettings, environ: Mapping[str, str]) -> bool:
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    return settings.tracing or exporters not in ("", "none")


def _exporters(environ: Mapping[str, str]) -> list[SpanExporter]:
    names = [n.strip().lower() for n in environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",")]
    found: list[SpanExporter] = []
    for name in names:
        if name == "otlp":
            try:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[import-not-found,unused-ignore]
                    OTLPSpanExporter,
                )
            except ImportError as error:
                raise ConfigError(
                    "OTEL_TRACES_EXPORTER=otlp needs the OTLP exporter: "
                    "pip install 'brokergraph[otlp]' (or set OTEL_TRACES_EXPORTER=console/none)"
                ) from error
            found.append(OTLPSpanExporter())  # endpoint, headers: OTEL_EXPORTER_OTLP_*
        elif name == "console":
            found.append(ConsoleSpanExporter())
        elif name not in ("none", ""):
            raise ConfigError(f"OTEL_TRACES_EXPORTER: unknown exporter {name!r}")
    return found


def configure(settings: ObservabilitySettings, environ: Mapping[str, str] | None = None) -> bool:
    """Start tracing from the settings and ``OTEL_*``; whether it is on.

    A provider already installed (a test's) is kept as it is.
    """
    if _state.tracer is not None:
        return True
    env = os.environ if environ is None else environ
    if not _enabled(settings, env):
        return False
    # Resource.create reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES.
    defaults = {} if env.get("OTEL_SERVICE_NAME") else {"service.name": "brokergraph"}
    provider = TracerProvider(resource=Resource.create(defaults))
    processors: list[SpanProcessor] = [BatchSpanProcessor(e) for e in _exporters(env)]
    for processor in processors:
        provider.add_span_processor(processor)
    install(provider)
    _state.owned = True
    return True


def span(name: str, attributes: Mapping[str, Any] | None = None) -> Any:
    """A child span of the current one as a context manager (nothing while off)."""
    current = _state.tracer
    if current is None:
        return _OFF
    return current.start_as_current_span(name, attributes=attributes)


def upstream_span(connector: str, method: str) -> Any:
    """The span of one connector call (each attempt)."""
    current = _state.tracer
    if current is None:
        return _OFF
    return _upstream_span(current, connector, method)


@contextlib.contextmanager
def _upstream_span(current: Tracer, connector: str, method: str) -> Iterator[Span]:
    with current.start_as_current_span(
        f"{connector}.{method}",
        kind=SpanKind.CLIENT,
        attributes={"brokergraph.connector": connector, "brokergraph.method": method},
    ) as opened:
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier)
        if "traceparent" in carrier:
            opened.set_attribute("brokergraph.traceparent", carrier["traceparent"])
        yield opened


def server_span(name: str, headers: Mapping[str, str]) -> Any:
    """The span of one request, continuing the client's ``traceparent`` if it sent one."""
    current = _state.tracer
    if current is None:
        return _OFF
    parent = _PROPAGATOR.extract(headers)
    return current.start_as_current_span(name, context=parent, kind=SpanKind.SERVER)


def current_trace_id() -> str | None:
    """The current span's trace id (32 hex digits), for log lines; ``None`` while off."""
    if _state.tracer is None:
        return None
    found = trace.get_current_span().get_span_context()
    return format(found.trace_id, "032x") if found.is_valid else None


_patched = False


def _patch_httpx() -> None:
    """Wrap httpx's async transport once; the wrapper passes through while tracing is off."""
    global _patched
    if _patched:
        return
    _patched = True
    original = httpx.AsyncHTTPTransport.handle_async_request

    @functools.wraps(original)
    async def handle_async_request(
        self: httpx.AsyncHTTPTransport, request: httpx.Request
    ) -> httpx.Response:
        current = _state.tracer
        if current is None or not trace.get_current_span().get_span_context().is_valid:
            return await original(self, request)
        return await _traced_request(current, original, self, request)

    httpx.AsyncHTTPTransport.handle_async_request = handle_async_request  # type: ignore[method-assign]


async def _traced_request(
    current: Tracer,
    original: Callable[[httpx.AsyncHTTPTransport, httpx.Request], Any],
    transport: httpx.AsyncHTTPTransport,
    request: httpx.Request,
) -> httpx.Response:
    url = request.url
    attributes: dict[str, str | int] = {
        "http.request.method": request.method,
        "server.address": url.host,
        "server.port": url.port or (443 if url.scheme == "https" else 80),
        "url.scheme": url.scheme,
        # The path only: a query string may carry a credential (cTrader's token).
        "url.path": url.path,
    }
    with current.start_as_current_span(
        f"{request.method} {url.host}", kind=SpanKind.CLIENT, attributes=attributes
    ) as opened:
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier)
        request.headers.update(carrier)
        response: httpx.Response = await original(transport, request)
        opened.set_attribute("http.response.status_code", response.status_code)
        return response


_listening = False
_STORE_SPAN: Final = "_brokergraph_span"


def _listen_to_the_store() -> None:
    """A span per SQL statement of every engine (SQLAlchemy's events reach the asyncio
    engines' statements too, in the request's context); idle while tracing is off."""
    global _listening
    if _listening:
        return
    _listening = True
    event.listen(Engine, "before_cursor_execute", _statement_starts)
    event.listen(Engine, "after_cursor_execute", _statement_ends)
    event.listen(Engine, "handle_error", _statement_failed)


def _statement_starts(
    connection: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
) -> None:
    current = _state.tracer
    if current is None or context is None:
        return
    verb = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "SQL"
    opened = current.start_span(
        f"store {verb}",
        kind=SpanKind.CLIENT,
        attributes={"db.system": connection.dialect.name, "db.operation": verb},
    )
    setattr(context, _STORE_SPAN, opened)


def _statement_ends(
    connection: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
) -> None:
    opened: Span | None = getattr(context, _STORE_SPAN, None)
    if opened is not None:
        opened.end()


def _statement_failed(failure: Any) -> None:
    opened: Span | None = getattr(failure.execution_context, _STORE_SPAN, None)
    if opened is not None:
        opened.set_status(trace.StatusCode.ERROR, type(failure.original_exception).__name__)
        opened.end()
