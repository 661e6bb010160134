"""Running a gateway: services, schema and app under uvicorn, in the current event loop.

``brokergraph serve``, ``brokergraph demo`` and the test suite all start the
gateway through :func:`running_gateway`, so tests exercise the real server over
real sockets, exactly as deployed.
"""

from __future__ import annotations

import contextlib
import gc
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import uvicorn

from gateway.asgi_server import ServedApp, serve_asgi
from gateway.config import Settings
from gateway.graphql import BrokerGraphSchema, build_schema
from gateway.graphql.cost import declared_upstream_costs
from gateway.http.app import create_app
from gateway.logging_redaction import install_redaction, register_secrets
from gateway.observability import Observability
from gateway.plugins import Plugins
from gateway.services import GatewayServices

__all__ = ["RunningGateway", "running_gateway", "tune_garbage_collector"]

WS_MAX_MESSAGE_BYTES = 1_000_000


@dataclass(frozen=True, slots=True)
class RunningGateway:
    url: str
    services: GatewayServices
    schema: BrokerGraphSchema
    server: uvicorn.Server

    @property
    def graphql_url(self) -> str:
        return f"{self.url}/graphql"

    @property
    def websocket_url(self) -> str:
        return self.graphql_url.replace("http://", "ws://", 1)


def advertised_url(served: ServedApp) -> str:
    """The bound address, or this host's name when every interface was bound."""
    if served.host in ("0.0.0.0", "::"):  # noqa: S104 (comparing, not binding)
        return f"{served.scheme}://{socket.gethostname()}:{served.port}"
    return served.url


#: Allocations between collections of the youngest generation, then young collections
#: between collections of the middle one (Python's defaults: 700 and 10).  Measured
#: against 50,000 and 20: as few full collections, and each young or middle one short
#: enough not to show in a request's p99 (14 against 31 ms in the side-by-side bench).
YOUNG_COLLECTION_ALLOCATIONS = 10_000
MIDDLE_COLLECTION_EVERY = 10


def tune_garbage_collector() -> None:
    """Fit Python's collector to a server holding many long-lived objects.

    Called by the process that serves, once it serves (``brokergraph serve`` and
    ``demo``; not by :func:`running_gateway`, which a test process enters many times).

    * The start's own objects — modules, the schema, plugins, a few hundred thousand —
      are frozen (``gc.freeze``, after a collection, so nothing unreachable is kept):
      each full collection walked them all while the event loop waited, ~100 ms
      pauses under load, the p99 of a warm read (142 → 26 ms in the side-by-side
      benchmark).
    * A collection of the youngest generation comes every 10,000 allocations instead
      of 700 (the middle one, as by default, every 10 young ones): what a request or a
      burst of events makes is gone before it could be promoted.  With the defaults, a round
      of events on 5,000 streams promoted enough of its short-lived objects to set
      off full collections of two million objects (1.4 s each) every few rounds.

    Objects made afterwards are collected as before, only less often while young.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_ALLOCATIONS, MIDDLE_COLLECTION_EVERY)


@contextlib.asynccontextmanager
async def running_gateway(
    settings: Settings, plugins: Plugins, *, host: str | None = None, port: int | None = None
) -> AsyncIterator[RunningGateway]:
    """Open everything, serve until the block exits, then close everything."""
    # Before anything logs: no record of this process may carry a secret.
    install_redaction()
    register_secrets(settings)
    services = await GatewayServices.open(settings, plugins)
    try:
        schema = build_schema(
            plugins,
            settings.limits,
            introspection=settings.server.introspection,
            upstream_costs=declared_upstream_costs(services.registry.connectors()),
        )
        # Logs, traces and the schema's extension first: the app is made instrumented.
        observability = Observability.start(settings, schema)
        app = observability.wrap(create_app(services, schema), schema)
        served = await serve_asgi(
            app,
            host=host or settings.server.host,
            port=settings.server.port if port is None else port,
            name="the gateway",
            server_header=False,
            ws_max_size=WS_MAX_MESSAGE_BYTES,
            # Frames are a few hundred bytes: compressing each in each connection's own
            # context cost ~17 µs a frame (a fifth of a fan-out delivery) and saved little.
            ws_per_message_deflate=False,
            # The keep-alive is the guard's graphql-transport-ws ping (the documented
            # one, 4408 on a missed pong): uvicorn's protocol ping beside it pinged every
            # socket twice a period, at 10,000 sockets 500 pings and pongs a second more.
            ws_ping_interval=None,
        )
        services.registry.advertise(settings.cluster.advertise_url or advertised_url(served))
        try:
            await observability.serve_metrics(services, host or settings.server.host)
            yield RunningGateway(served.url, services, schema, served.server)
        finally:
            # Hand single upstream sessions over first: the next replica takes them at
            # once, while this one finishes its requests (routing its own to the new holder).
            await services.registry.step_down()
            await served.stop()
            await observability.stop()
    finally:
        await services.close()
