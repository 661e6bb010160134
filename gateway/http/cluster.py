"""The internal endpoint where a lease holder runs calls other replicas route to it.

Not for clients: every call is signed with the cluster secret (HMAC, checked by
:func:`gateway.cluster.serve_call` with a time window and one-time call ids), and
the body is bounded like any other.  Expose it only on the cluster's own network.
"""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.cluster import CALL_PATH, SIGNATURE_HEADER
from gateway.services import GatewayServices

__all__ = ["cluster_routes"]


def cluster_routes(services: GatewayServices) -> list[Route]:
    limit = services.settings.limits.max_body_bytes

    async def call(request: Request) -> Response:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            return Response(status_code=413)
        body = await request.body()
        if len(body) > limit:
            return Response(status_code=413)
        status, payload = await services.registry.serve_routed(
            body, request.headers.get(SIGNATURE_HEADER)
        )
        return Response(orjson.dumps(payload), status, media_type="application/json")

    return [Route(CALL_PATH, call, methods=["POST"])]
