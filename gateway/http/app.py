"""The Starlette application: GraphQL over HTTP and WebSocket, GraphiQL, plugin routes."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute

from gateway.graphql import BrokerGraphSchema
from gateway.http._sse import socket_policy
from gateway.http.cluster import cluster_routes
from gateway.http.graphiql import graphiql_routes
from gateway.http.graphql_http import GraphQLHTTPHandler
from gateway.http.websocket import GraphQLWebSocket
from gateway.services import GatewayServices

__all__ = ["create_app"]

ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


def create_app(services: GatewayServices, schema: BrokerGraphSchema) -> Starlette:
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
        Route("/graphql", graphql_endpoint, methods=ALL_METHODS),
        WebSocketRoute("/graphql", websocket),
        *graphiql_routes(),
        *cluster_routes(services),
        *services.plugins.collect("brokergraph_routes", services=services),
    ]
    app = Starlette(routes=routes, middleware=_cors(services))
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
