"""``/graphql`` over WebSocket: graphql-transport-ws only, authenticated at connection_init.

Strawberry's view does the protocol; we give it a context per connection and
check the bearer token from the ``connection_init`` payload, as the HTTP side
checks the header.  A socket that never authenticates is closed with 4403 (bad
credentials), 4408 (no connection_init in time) or 4429 (an API key from a client
address past its failed API-key attempts, which the app counts with the HTTP side's).
After that the socket follows its credentials, its caps and its client's keep-alive:
see :mod:`gateway.http.ws_guard`.  Subscribers of the same stream share one execution
per event: see :mod:`gateway.http._fanout`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from gateway.errors import Unauthenticated
from gateway.graphql import BrokerGraphSchema, RequestContext
from gateway.http._client_limits import FailureWindows
from gateway.http._fanout import FanoutHub, fanout_handler_class
from gateway.http.ws_guard import SocketPolicy, handler_class
from gateway.services import GatewayServices

__all__ = ["GraphQLWebSocket"]

CONNECTION_INIT_TIMEOUT = timedelta(seconds=10)


def authorization_from_params(params: dict[str, Any] | None) -> str | None:
    """``{"Authorization": "Bearer …"}`` as most clients send it, or ``{"token": "…"}``."""
    if not params:
        return None
    for key in ("Authorization", "authorization"):
        value = params.get(key)
        if isinstance(value, str):
            return value
    token = params.get("token")
    return f"Bearer {token}" if isinstance(token, str) else None


class GraphQLWebSocket(GraphQL[RequestContext, None]):
    def __init__(
        self,
        services: GatewayServices,
        schema: BrokerGraphSchema,
        key_failures: FailureWindows | None = None,
    ) -> None:
        """``key_failures``: the HTTP handler's, so both count one client's failed API
        keys together; the socket's own when not given."""
        super().__init__(
            schema,
            graphql_ide=None,
            allow_queries_via_get=False,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            connection_init_wait_timeout=CONNECTION_INIT_TIMEOUT,
            max_subscriptions_per_connection=services.settings.limits.max_subscriptions_per_connection,
            allowed_origins=services.settings.server.allowed_origins,
        )
        self.services = services
        self.account_types = schema.account_types
        guarded = handler_class(
            SocketPolicy(
                services.settings.limits,
                services.authenticator,
                lambda context: authorization_from_params(context.connection_params),
                key_failures
                or FailureWindows(services.settings.limits.api_key_failures_per_minute),
            )
        )
        #: Subscribers of one stream share its executions (see gateway.http._fanout).
        self.fanout = FanoutHub()
        self.graphql_transport_ws_handler_class = fanout_handler_class(guarded, self.fanout)

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> RequestContext:
        # Loader caches would go stale over a long-lived connection: batch, don't cache.
        return RequestContext(
            services=self.services,
            account_types=self.account_types,
            request=request,
            response=response,
            loaders_cache=False,
        )

    async def on_ws_connect(self, context: RequestContext) -> None:
        header = authorization_from_params(context.connection_params)
        try:
            context.viewer = await self.services.authenticator.viewer_from_authorization_header(
                header
            )
        except Unauthenticated as error:
            raise ConnectionRejectionError({"message": error.message, "code": error.code}) from None
