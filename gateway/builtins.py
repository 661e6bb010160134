"""Built-in features, registered as a plugin through the same hooks as any other:
the core's root query, mutation and subscription fields, health and readiness
routes, report downloads, and the core CLI commands."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from gateway.cli_commands import CliCommand
from gateway.connectors import Capability, ClientReports
from gateway.errors import BrokerGraphError, NotFound
from gateway.graphql.ids import decode_id
from gateway.graphql.mutations import MUTATION_TYPES
from gateway.graphql.query import CoreQuery
from gateway.graphql.subscriptions import CoreSubscription
from gateway.hookspecs import hookimpl
from gateway.models import HealthStatus
from gateway.services import GatewayServices

READY_STATUSES = (HealthStatus.UP, HealthStatus.DEGRADED, HealthStatus.UNCONFIGURED)
#: Report download errors as HTTP statuses; an unknown report and one the viewer may
#: not see are both 404, a report not READY yet is 409, platform trouble 502.
DOWNLOAD_STATUS = {
    "UNAUTHENTICATED": 401,
    "NOT_FOUND": 404,
    "INVALID_INPUT": 404,
    "CONFLICT": 409,
    "UPSTREAM_UNAVAILABLE": 503,
    "UPSTREAM_BUSY": 503,
}


#: The plugin contract version this plugin is built for (checked by the loader).
BROKERGRAPH_CONTRACT = 1


# tryfirst: pluggy calls the last registered plugin first, and the built-ins register
# first; the core's root fields must come first so the SDL does not depend on plugins.
@hookimpl(tryfirst=True)
def brokergraph_query_fields() -> Sequence[type[Any]]:
    return [CoreQuery]


@hookimpl(tryfirst=True)
def brokergraph_mutation_fields() -> Sequence[type[Any]]:
    return MUTATION_TYPES


@hookimpl(tryfirst=True)
def brokergraph_subscription_fields() -> Sequence[type[Any]]:
    return [CoreSubscription]


@hookimpl
def brokergraph_routes(services: GatewayServices) -> Sequence[BaseRoute]:
    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        health = await services.registry.health()
        ready = all(h.status in READY_STATUSES for h in health.values())
        body = {
            "status": "ready" if ready else "not ready",
            "connectors": {
                name: {"status": h.status.value, "detail": h.detail, "latencyMs": h.latency_ms}
                for name, h in sorted(health.items())
            },
        }
        return JSONResponse(body, status_code=200 if ready else 503)

    async def report_download(request: Request) -> Response:
        """A client report's file, for a viewer who may see the report's partner."""
        try:
            viewer = await services.authenticator.viewer_from_authorization_header(
                request.headers.get("authorization")
            )
            _, parts = decode_id(request.path_params["report_id"], "ClientReport")
            if len(parts) != 3:
                raise NotFound("report not found")
            platform, partner_code, report_id = parts
            record = (await services.store.get_partners([partner_code]))[0]
            if record is None or not viewer.can_see_partner(record.code, record.broker):
                raise NotFound("report not found")
            reports = services.registry.require(platform, Capability.CLIENT_REPORTS, ClientReports)
            media_type, content = await reports.download_report(partner_code, report_id)
        except BrokerGraphError as error:
            status = DOWNLOAD_STATUS.get(error.code, 502)
            return JSONResponse({"error": {"code": error.code, "message": error.message}}, status)
        return Response(content, media_type=media_type, headers={"Cache-Control": "no-store"})

    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/reports/{report_id}", report_download, methods=["GET"]),
    ]


@hookimpl
def brokergraph_cli_commands() -> Sequence[CliCommand]:
    from gateway import cli

    return cli.CORE_COMMANDS
