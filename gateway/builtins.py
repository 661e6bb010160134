"""Built-in features, registered as a plugin through the same hooks as any other:
the core's root query, mutation and subscription fields, health, readiness and
upstream-health routes, report downloads, ``/metrics``, and the core CLI commands."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
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
from gateway.http.client_area import client_area_routes
from gateway.models import HealthStatus
from gateway.observability import metrics_routes
from gateway.services import GatewayServices

#: Upstream statuses /upstreamz answers 200 for (an unconfigured connector is not down).
UPSTREAM_OK = (HealthStatus.UP, HealthStatus.DEGRADED, HealthStatus.UNCONFIGURED)
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
        """Can this replica serve?  Its own dependencies only: never a vendor."""
        report = await services.readiness.run()
        body = {"status": "ready" if report.ready else "not ready", "checks": report.checks}
        return JSONResponse(body, status_code=200 if report.ready else 503)

    async def upstreamz(request: Request) -> Response:
        """The upstreams' last known health (background checks and live calls; calls none).

        503 when a configured upstream is down, for monitoring; never a readiness probe.
        """
        report = services.upstream_health.report()
        now = datetime.now(UTC)
        up = all(entry.health.status in UPSTREAM_OK for entry in report.values())
        body = {
            "status": "up" if up else "down",
            "connectors": {
                name: {
                    "status": entry.health.status.value,
                    "detail": entry.health.detail,
                    "latencyMs": entry.health.latency_ms,
                    "checkedAt": entry.checked_at.isoformat() if entry.checked_at else None,
                    "ageSeconds": entry.age_seconds(now),
                    "source": entry.source,
                }
                for name, entry in sorted(report.items())
            },
        }
        return JSONResponse(body, status_code=200 if up else 503)

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
        Route("/upstreamz", upstreamz, methods=["GET"]),
        Route("/reports/{report_id}", report_download, methods=["GET"]),
        *metrics_routes(services),
        *client_area_routes(),
    ]


@hookimpl
def brokergraph_cli_commands() -> Sequence[CliCommand]:
    from gateway import cli

    return cli.CORE_COMMANDS
