"""``/graphql`` over HTTP, following the GraphQL-over-HTTP specification.

Strawberry's HTTP view answers 400 where the spec wants 415 and never speaks
``application/graphql-response+json``, so the HTTP side is ours and small: it
negotiates the media type, bounds the body, authenticates, executes on the
Strawberry schema and picks the status code the spec asks for:

=====================================  ==================  ==================
situation                              graphql-response     application/json
=====================================  ==================  ==================
executed (with or without errors)      200                  200
parse / validation error               400                  200
body not JSON, no query, bad params    400                  400
mutation over GET                      405 (Allow: POST)    405
POST content type not JSON             415                  415
Accept names nothing we speak          406                  406
body over the limit                    413                  413
no or bad credentials                  401                  401
=====================================  ==================  ==================
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from strawberry.exceptions import MissingQueryError
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError
from strawberry.types.graphql import OperationType

from gateway.errors import BrokerGraphError, Unauthenticated
from gateway.graphql import BrokerGraphSchema, RequestContext
from gateway.http.graphiql import offline_graphiql_html
from gateway.services import GatewayServices

__all__ = ["GRAPHQL_RESPONSE_JSON", "GraphQLHTTPHandler"]

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
APPLICATION_JSON = "application/json"
_QUERY_ONLY = (OperationType.QUERY,)


class RequestRejected(Exception):
    """The HTTP request is not a well-formed GraphQL request; nothing was executed."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str = "BAD_REQUEST",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = dict(headers or {})


def negotiate(accept: str | None) -> str | None:
    """The response media type for an Accept header, or None when nothing fits."""
    if not accept:
        return APPLICATION_JSON  # the spec's advice for legacy clients that send none
    best: tuple[float, int, str] | None = None
    for position, part in enumerate(accept.split(",")):
        media, _, params = part.strip().partition(";")
        media = media.strip().lower()
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality <= 0:
            continue
        if media in (GRAPHQL_RESPONSE_JSON, APPLICATION_JSON):
            chosen = media
        elif media in ("*/*", "application/*"):
            chosen = GRAPHQL_RESPONSE_JSON
        else:
            continue
        candidate = (quality, -position, chosen)
        if best is None or candidate > best:
            best = candidate
    return None if best is None else best[2]


def wants_html(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return request.method == "GET" and "text/html" in accept and "query" not in request.query_params


class GraphQLHTTPHandler:
    """The ASGI endpoint for GET and POST ``/graphql``."""

    def __init__(self, services: GatewayServices, schema: BrokerGraphSchema) -> None:
        self.services = services
        self.schema = schema
        limits = services.settings.limits
        self.max_body_bytes = limits.max_body_bytes
        self.graphiql = services.settings.server.graphiql

    async def __call__(self, request: Request) -> Response:
        if request.method not in ("GET", "POST"):
            return _plain_error(405, "use GET or POST", headers={"Allow": "GET, POST"})
        if wants_html(request):
            if not self.graphiql:
                return _plain_error(404, "GraphiQL is disabled")
            return HTMLResponse(offline_graphiql_html())
        media = negotiate(request.headers.get("accept"))
        if media is None:
            return _plain_error(406, f"accept {GRAPHQL_RESPONSE_JSON} or {APPLICATION_JSON}")
        try:
            params = await self._params(request)
            viewer = await self.services.authenticator.viewer_from_authorization_header(
                request.headers.get("authorization")
            )
        except RequestRejected as rejected:
            return _error_response(
                rejected.status, media, rejected.message, rejected.code, rejected.headers
            )
        except Unauthenticated as error:
            return _error_response(
                401,
                media,
                error.message,
                error.code,
                {"WWW-Authenticate": 'Bearer realm="brokergraph"'},
            )
        context = RequestContext(
            services=self.services,
            account_types=self.schema.account_types,
            viewer=viewer,
            request=request,
        )
        try:
            result = await self.schema.execute(
                params["query"],
                variable_values=params["variables"],
                context_value=context,
                operation_name=params["operationName"],
                allowed_operation_types=_QUERY_ONLY if request.method == "GET" else None,
            )
        except MissingQueryError:
            return _error_response(
                400, media, "no GraphQL query found in the request", "BAD_REQUEST"
            )
        except CannotGetOperationTypeError as error:
            return _error_response(400, media, error.as_http_error_reason(), "BAD_REQUEST")
        except InvalidOperationTypeError:
            return _error_response(
                405,
                media,
                "only queries may be sent with GET; use POST",
                "BAD_REQUEST",
                {"Allow": "POST"},
            )
        return self._result_response(result, media)

    def _result_response(self, result: ExecutionResult, media: str) -> Response:
        request_error = isinstance(result, PreExecutionError)
        body: dict[str, Any] = {}
        if result.errors:
            body["errors"] = [_format_error(e) for e in result.errors]
        if not request_error:
            body["data"] = result.data
        if result.extensions:
            body["extensions"] = result.extensions
        status = 400 if request_error and media == GRAPHQL_RESPONSE_JSON else 200
        return Response(orjson.dumps(body), status_code=status, media_type=media)

    async def _params(self, request: Request) -> dict[str, Any]:
        if request.method == "GET":
            raw: Mapping[str, Any] = request.query_params
            variables = _json_param(raw.get("variables"), "variables")
            extensions = _json_param(raw.get("extensions"), "extensions")
        else:
            content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if content_type != APPLICATION_JSON:
                raise RequestRejected(
                    415, f"POST bodies must be {APPLICATION_JSON}", code="UNSUPPORTED_MEDIA_TYPE"
                )
            body = await self._read_body(request)
            try:
                parsed = orjson.loads(body)
            except orjson.JSONDecodeError:
                raise RequestRejected(400, "the body is not valid JSON") from None
            if isinstance(parsed, list):
                raise RequestRejected(400, "batched requests are not supported; send one operation")
            if not isinstance(parsed, dict):
                raise RequestRejected(400, "the body must be a JSON object")
            raw = parsed
            variables = raw.get("variables")
            extensions = raw.get("extensions")
        query = raw.get("query")
        operation_name = raw.get("operationName")
        if not isinstance(query, str) or not query.strip():
            raise RequestRejected(400, "the request has no `query` string")
        if operation_name is not None and not isinstance(operation_name, str):
            raise RequestRejected(400, "`operationName` must be a string")
        if variables is not None and not isinstance(variables, dict):
            raise RequestRejected(400, "`variables` must be an object")
        if extensions is not None and not isinstance(extensions, dict):
            raise RequestRejected(400, "`extensions` must be an object")
        return {"query": query, "variables": variables, "operationName": operation_name}

    async def _read_body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise RequestRejected(
                413, f"the body exceeds {self.max_body_bytes} bytes", code="PAYLOAD_TOO_LARGE"
            )
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body_bytes:
                raise RequestRejected(
                    413, f"the body exceeds {self.max_body_bytes} bytes", code="PAYLOAD_TOO_LARGE"
                )
            chunks.append(chunk)
        return b"".join(chunks)


def _json_param(value: str | None, name: str) -> Any:
    if value is None:
        return None
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        raise RequestRejected(400, f"`{name}` is not valid JSON") from None


def _format_error(error: GraphQLError) -> dict[str, Any]:
    formatted: dict[str, Any] = dict(error.formatted)
    original = error.original_error
    if isinstance(original, BrokerGraphError) and "extensions" not in formatted:
        formatted["extensions"] = original.extensions
    return formatted


def _error_response(
    status: int, media: str, message: str, code: str, headers: Mapping[str, str] | None = None
) -> Response:
    body = {"errors": [{"message": message, "extensions": {"code": code}}]}
    return Response(
        orjson.dumps(body), status_code=status, media_type=media, headers=dict(headers or {})
    )


def _plain_error(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return _error_response(status, APPLICATION_JSON, message, "BAD_REQUEST", headers)
