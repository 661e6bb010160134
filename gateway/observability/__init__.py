"""Operating brokergraph: Prometheus metrics, OpenTelemetry traces, structured logs.

:class:`Observability` is started by the runner around the gateway: it sets the
log format and the request fields of every record, starts tracing when asked,
adds the GraphQL extension to the schema, wraps the app in the access middleware
and, when ``[observability] metrics_port`` is set, serves ``/metrics`` there.
On the gateway's own port, ``/metrics`` is a route the built-ins contribute
through ``brokergraph_routes``, like any plugin's (:func:`metrics_routes`).

Choices: prometheus-client (the Prometheus project's own client, with a
multiprocess mode) and the OpenTelemetry API and SDK (the OTLP exporter is the
``otlp`` extra); logs stay on the standard library's ``logging`` with a JSON
formatter rather than structlog, because every library the gateway runs
(uvicorn, httpx, websockets, SQLAlchemy) logs through ``logging`` already and the
redaction is a record factory there: one pipeline, redacted once.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from gateway.asgi_server import ServedApp, serve_asgi
from gateway.config import ObservabilitySettings, Settings
from gateway.observability import metrics, tracing
from gateway.observability.access_log import (
    JsonFormatter,
    ObservabilityMiddleware,
    TextFormatter,
    install_request_fields,
)
from gateway.observability.extension import ObservedOperation, ResolverSpans, TracedOperation

if TYPE_CHECKING:
    from gateway.graphql import BrokerGraphSchema
    from gateway.services import GatewayServices

__all__ = ["Observability", "configure_logging", "metrics_routes"]


def configure_logging(settings: ObservabilitySettings) -> None:
    """The log format on the handlers ``brokergraph``'s command line installed.

    Only plain ``StreamHandler``s of the root logger (``logging.basicConfig``'s) are
    given the format; handlers others installed (a test runner's, say) keep theirs.
    """
    install_request_fields()
    for handler in logging.getLogger().handlers:
        if type(handler) is logging.StreamHandler:
            json = settings.log_format == "json"
            handler.setFormatter(JsonFormatter() if json else TextFormatter())


def metrics_routes(services: GatewayServices) -> list[BaseRoute]:
    """``/metrics`` (or ``metrics_path``), unless metrics are off or on their own port."""
    settings = services.settings.observability
    if not settings.metrics or settings.metrics_port:
        return []
    return [Route(settings.metrics_path, _endpoint(services), methods=["GET"])]


def _endpoint(services: GatewayServices) -> Any:
    settings = services.settings.observability
    expected = (
        None
        if settings.metrics_token is None
        else f"Bearer {settings.metrics_token.reveal()}".encode()
    )
    health = metrics.HealthCollector(services.upstream_health.report)

    async def scrape(request: Request) -> Response:
        if expected is not None:
            given = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return JSONResponse(
                    {"error": {"code": "UNAUTHENTICATED", "message": "metrics need a token"}},
                    401,
                    headers={"WWW-Authenticate": 'Bearer realm="brokergraph-metrics"'},
                )
        return Response(metrics.exposition([health]), media_type=metrics.CONTENT_TYPE_LATEST)

    return scrape


@dataclass
class Observability:
    """What the runner starts with the gateway and stops after it."""

    settings: Settings
    #: Tracing was started here (so stopped here); ``False`` when off or a test's.
    owns_tracing: bool
    metrics_server: ServedApp | None = None

    @classmethod
    def start(cls, settings: Settings, schema: BrokerGraphSchema) -> Observability:
        """Logs and traces configured, the schema instrumented (before the app is made)."""
        configure_logging(settings.observability)
        installed = tracing.tracer() is not None
        traced = tracing.configure(settings.observability)
        # Outermost, so it sees the errors as the other extensions leave them.
        observed = TracedOperation if traced else ObservedOperation
        extensions: list[Any] = [observed, *schema.extensions]
        if traced:
            extensions.append(ResolverSpans)
        schema.extensions = tuple(extensions)
        return cls(settings, owns_tracing=traced and not installed)

    def wrap(self, app: Any, schema: BrokerGraphSchema) -> ObservabilityMiddleware:
        subscription = schema._schema.subscription_type
        topics = frozenset(subscription.fields) if subscription is not None else frozenset()
        return ObservabilityMiddleware(
            app, access_log=self.settings.observability.access_log, topics=topics
        )

    async def serve_metrics(self, services: GatewayServices, host: str) -> None:
        """``/metrics`` on a port of its own, when ``metrics_port`` asks for one."""
        settings = self.settings.observability
        if not settings.metrics or not settings.metrics_port:
            return
        app = Starlette(routes=[Route(settings.metrics_path, _endpoint(services))])
        self.metrics_server = await serve_asgi(
            app, host=host, port=settings.metrics_port, name="the metrics server"
        )

    async def stop(self) -> None:
        if self.metrics_server is not None:
            await self.metrics_server.stop()
        if self.owns_tracing:
            tracing.uninstall()
