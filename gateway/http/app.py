"""The Starlette application: GraphQL over HTTP and WebSocket, GraphiQL, plugin routes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import Receive, Scope, Send

from gateway.graphql import BrokerGraphSchema
from gateway.http._sse import socket_policy
from gateway.http.cluster import cluster_routes
from gateway.http.graphiql import graphiql_routes
from gateway.http.graphql_http import GraphQLHTTPHandler
from gateway.http.websocket import GraphQLWebSocket
from gateway.services import GatewayServices

__all__ = ["create_app"]

ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
GRAPHQL_PATH = "/graphql"


class GatewayApp(Starlette):
    """Starlette, with an HTTP request to ``/graphql`` handed straight to its handler.

    Without middleware of the operator's (CORS), the layers Starlette puts around
    every request — error middleware, exception middleware, the router's match, the
    endpoint's wrapper — do nothing for ``/graphql`` that this does not: the handler
    answers every request itself (405 in GraphQL's shape included) and raises no
    HTTP exception; an error it does raise is answered 500 and re-raised, as
    Starlette's error middleware does.  Every other path, and WebSockets, take the
    usual road.
    """

    def __init__(
        self,
        *,
        graphql: Callable[[Request], Awaitable[Response]],
        routes: list[BaseRoute],
        middleware: list[Middleware],
    ) -> None:
        super().__init__(routes=routes, middleware=middleware)
        self._graphql = graphql
        self._methods = frozenset(ALL_METHODS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or self.user_middleware
            or scope["path"] != GRAPHQL_PATH
            or scope.get("root_path")
            or scope["method"] not in self._methods
        ):
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self
        try:
            response = await self._graphql(Request(scope, receive, send))
        except Exception:
            await PlainTextResponse("Internal Server Error", status_code=500)(scope, receive, send)
            raise
        await response(scope, receive, send)


def create_app(services: GatewayServices, schema: BrokerGraphSchema) -> GatewayApp:
    """The app of a running gateway; routes contributed by plugins come after the core's."""
    http = GraphQLHTTPHandler(services, schema)

    async def graphql_endpoint(request: Request) -> Response:
        return await http(request)

    # One client's failed API keys count together over HTTP and WebSocket.
    websocket = GraphQLWebSocket(services, schema, http.key_failures)
    # Subscriptions streamed over HTTP (SSE, multipart) and over sockets share the caps.
    http.stream_subscriptions(socket_policy(websocket))
    routes: list[BaseRoute] = [
        # Every method reaches the handler so that it can answer 405 in GraphQL's shape.
        Route(GRAPHQL_PATH, graphql_endpoint, methods=ALL_METHODS),
        WebSocketRoute(GRAPHQL_PATH, websocket),
        *graphiql_routes(),
        *cluster_routes(services),
        *services.plugins.collect("brokergraph_routes", services=services),
    ]
    app = GatewayApp(graphql=http, routes=routes, middleware=_cors(services))
    app.state.services = services
    app.state.schema = schema
    return app


def _cors(services: GatewayServices) -> list[Middleware]:
    """CORS for ``[server] cors_origins`` (no middleware without origins: same-origin only).

    Requests carry bearer tokens in a header, so credentials (cookies) stay off unless
    configured; a preflight answers for any header the browser asks for, and its
    answer is cached for ``cors_max_age_seconds``.
    """
    server = services.settings.server
    if not server.cors_origins:
        return []
    return [
        Middleware(
            CORSMiddleware,
            allow_origins=list(server.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["*"],
            allow_credentials=server.cors_allow_credentials,
            expose_headers=["Retry-After"],
            max_age=server.cors_max_age_seconds,
        )
    ]
