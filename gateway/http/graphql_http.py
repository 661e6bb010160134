"""``/graphql`` over HTTP, following the GraphQL-over-HTTP specification.

Strawberry's HTTP view answers 400 where the spec wants 415 and never speaks
``application/graphql-response+json``, so the HTTP side is ours and small: it
negotiates the media type, bounds the body and the batch, authenticates, resolves
persisted operations, executes on the Strawberry schema and picks the status code
the spec asks for (a batch — a JSON array of operations — answers 200 with an array):

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
batch of more than limits.max_batch    400                  400
no or bad credentials                  401                  401
over the viewer's request budget       429                  429
subscription with a JSON-only Accept   400                  400
=====================================  ==================  ==================

``Accept: text/event-stream`` (GraphQL over SSE) and ``multipart/mixed;
subscriptionSpec=1.0`` (Apollo's multipart subscriptions) stream the operation's
results after the same checks (see :mod:`gateway.http._sse`); a subscription sent
without either is refused with STREAM_REQUIRED.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import orjson
from graphql import GraphQLError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, Response
from strawberry.exceptions import MissingQueryError
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types.execution import PreExecutionError
from strawberry.types.graphql import OperationType

from gateway.cache import MemoryCache, RedisCache
from gateway.config import ConfigError
from gateway.errors import BrokerGraphError, RateLimited, Unauthenticated
from gateway.graphql import BrokerGraphSchema, RequestContext
from gateway.http._client_limits import FailureWindows, ViewerBudgets
from gateway.http._multipart import MultipartFraming
from gateway.http._sse import Framing, HTTPSubscriptions, SSEFraming
from gateway.http.graphiql import offline_graphiql_html
from gateway.http.persisted import (
    AutomaticPersistedQueries,
    PersistedOperationRefused,
    PersistedOperations,
)
from gateway.http.ws_guard import SocketPolicy
from gateway.services import GatewayServices

__all__ = ["GRAPHQL_RESPONSE_JSON", "GraphQLHTTPHandler"]

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
APPLICATION_JSON = "application/json"
_QUERY_ONLY = (OperationType.QUERY,)
_NOT_STREAMED = (OperationType.QUERY, OperationType.MUTATION)


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
            # A wildcard is what fetch sends when the caller set no Accept: legacy
            # clients, which the spec says get application/json (audit 47DE, 80D8).
            chosen = APPLICATION_JSON
        else:
            continue
        candidate = (quality, -position, chosen)
        if best is None or candidate > best:
            best = candidate
    return None if best is None else best[2]


#: Accept headers already negotiated (a client sends the same one each time; working
#: one out parses its media types through ``email.message``: ~4 % of a placement).
_NEGOTIATED: OrderedDict[str | None, tuple[type[Framing] | None, str | None]] = OrderedDict()
_NEGOTIATED_KEPT = 256


def negotiated(accept: str | None) -> tuple[type[Framing] | None, str | None]:
    """The streaming framing an Accept header asks for (None: a single answer) and the
    media type of the answer (None: nothing fits, 406)."""
    known = _NEGOTIATED.get(accept)
    if known is not None:
        return known
    framing = SSEFraming.accepting(accept) or MultipartFraming.accepting(accept)
    known = (type(framing), APPLICATION_JSON) if framing else (None, negotiate(accept))
    _NEGOTIATED[accept] = known
    if len(_NEGOTIATED) > _NEGOTIATED_KEPT:
        _NEGOTIATED.popitem(last=False)
    return known


def wants_html(request: Request) -> bool:
    if request.method != "GET":
        return False
    return "text/html" in request.headers.get("accept", "") and "query" not in request.query_params


class GraphQLHTTPHandler:
    """The ASGI endpoint for GET and POST ``/graphql``."""

    def __init__(self, services: GatewayServices, schema: BrokerGraphSchema) -> None:
        self.services = services
        #: Streamed subscriptions; the app hands it the WebSocket's caps (see create_app).
        self.subscriptions: HTTPSubscriptions | None = None
        self.schema = schema
        limits = services.settings.limits
        self.max_body_bytes = limits.max_body_bytes
        self.max_batch = limits.max_batch
        self.graphiql = services.settings.server.graphiql
        self.budgets = ViewerBudgets(
            limits.requests_per_viewer_per_second,
            limits.requests_per_viewer_burst,
            shared=services.shared_redis,
            prefix=f"{services.settings.cluster.namespace}:viewer-budget:",
        )
        self.key_failures = FailureWindows(limits.api_key_failures_per_minute)
        try:
            self.persisted = PersistedOperations.from_file(
                limits.persisted_operations_file,
                only=limits.persisted_only,
                apq=_automatic_persisted_queries(services),
            )
        except (OSError, ValueError) as error:
            raise ConfigError(f"[limits] persisted operations: {error}") from error

    def stream_subscriptions(self, policy: SocketPolicy) -> None:
        """Answer streaming Accepts, counting subscriptions with ``policy``'s sockets."""
        self.subscriptions = HTTPSubscriptions(
            self.services, self.schema, self.persisted, policy, _format_error
        )

    async def __call__(self, request: Request) -> Response:
        if request.method not in ("GET", "POST"):
            return _plain_error(405, "use GET or POST", headers={"Allow": "GET, POST"})
        if wants_html(request):
            if not self.graphiql:
                return _plain_error(404, "GraphiQL is disabled")
            return HTMLResponse(offline_graphiql_html())
        framing_class, media = negotiated(request.headers.get("accept"))
        framing = framing_class() if framing_class is not None else None
        if media is None:
            return _plain_error(406, f"accept {GRAPHQL_RESPONSE_JSON} or {APPLICATION_JSON}")
        authorization = request.headers.get("authorization")
        by_api_key = _is_api_key(authorization)
        client = request.client.host if request.client is not None else "unknown"
        try:
            operations, batched = await self._params(request)
            if by_api_key:
                self.key_failures.check(client)  # before the key's scrypt
            viewer = await self.services.authenticator.viewer_from_authorization_header(
                authorization
            )
        except RateLimited as refused:
            return _refused_response(refused, media)
        except RequestRejected as rejected:
            return _error_response(
                rejected.status, media, rejected.message, rejected.code, rejected.headers
            )
        except Unauthenticated as error:
            if by_api_key:
                self.key_failures.failed(client)
            return _error_response(
                401,
                media,
                error.message,
                error.code,
                {"WWW-Authenticate": 'Bearer realm="brokergraph"'},
            )
        try:
            # After authentication (the budget is the viewer's), before any resolver.
            await self.budgets.admit(f"{viewer.role.value}:{viewer.subject}")
        except RateLimited as refused:
            return _refused_response(refused, media)
        context = RequestContext(
            services=self.services,
            account_types=self.schema.account_types,
            viewer=viewer,
            request=request,
        )
        if framing is not None and self.subscriptions is not None:
            if batched:
                return _error_response(400, media, "a batch cannot be streamed", "BAD_REQUEST")
            return await self.subscriptions.respond(
                framing, operations[0], viewer, authorization, request
            )
        query_only = request.method == "GET"
        if not batched:
            status, body, headers = await self._execute(operations[0], context, query_only, media)
            return Response(orjson.dumps(body), status, headers=headers, media_type=media)
        # A batch answers 200 with one result per operation, in order; each operation gets
        # its own loaders so one cannot observe another's cached reads mid-batch.
        results = []
        for operation in operations:
            context.reset_loaders()
            results.append((await self._execute(operation, context, query_only, media))[1])
        return Response(orjson.dumps(results), 200, media_type=media)

    async def _execute(
        self, params: dict[str, Any], context: RequestContext, query_only: bool, media: str
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """One operation: ``(status, body, headers)`` as the spec's status table says."""
        try:
            query, register = await self.persisted.resolve(params)
            result = await self.schema.execute(
                query,
                variable_values=params["variables"],
                context_value=context,
                operation_name=params["operationName"],
                allowed_operation_types=_QUERY_ONLY if query_only else _NOT_STREAMED,
            )
        except PersistedOperationRefused as refused:
            return 400, _error_body(refused.message, refused.code), {}
        except MissingQueryError:
            return 400, _error_body("no GraphQL query found in the request", "BAD_REQUEST"), {}
        except CannotGetOperationTypeError as error:
            return 400, _error_body(error.as_http_error_reason(), "BAD_REQUEST"), {}
        except InvalidOperationTypeError as error:
            if error.operation_type is OperationType.SUBSCRIPTION:
                return 400, _error_body(_STREAM_REQUIRED, "STREAM_REQUIRED"), {}
            refusal = _error_body("only queries may be sent with GET; use POST", "BAD_REQUEST")
            return 405, refusal, {"Allow": "POST"}
        request_error = isinstance(result, PreExecutionError)
        if register is not None and query is not None and not request_error:
            await self.persisted.register(register, query)  # it parsed and validated
        body: dict[str, Any] = {}
        if result.errors:
            body["errors"] = [_format_error(e) for e in result.errors]
        if not request_error:
            body["data"] = result.data
        if result.extensions:
            body["extensions"] = result.extensions
        status = 400 if request_error and media == GRAPHQL_RESPONSE_JSON else 200
        return status, body, {}

    async def _params(self, request: Request) -> tuple[list[dict[str, Any]], bool]:
        """The request's operations and whether they came as a batch."""
        if request.method == "GET":
            return [_operation(request.query_params, from_query_string=True)], False
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
            if not 1 <= len(parsed) <= self.max_batch:
                raise RequestRejected(
                    400, f"a batch holds 1 to {self.max_batch} operations", code="BATCH_TOO_LARGE"
                )
            if not all(isinstance(item, dict) for item in parsed):
                raise RequestRejected(400, "every operation of a batch must be a JSON object")
            return [_operation(item, from_query_string=False) for item in parsed], True
        if not isinstance(parsed, dict):
            raise RequestRejected(400, "the body must be a JSON object")
        return [_operation(parsed, from_query_string=False)], False

    async def _read_body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise RequestRejected(
                413, f"the body exceeds {self.max_body_bytes} bytes", code="PAYLOAD_TOO_LARGE"
            )
        chunks: list[bytes] = []
        size = 0
        receive = request.receive  # the messages themselves: request.stream() adds nothing
        while True:
            message = await receive()
            if message["type"] != "http.request":  # http.disconnect: the client went away
                raise ClientDisconnect()
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise RequestRejected(
                    413, f"the body exceeds {self.max_body_bytes} bytes", code="PAYLOAD_TOO_LARGE"
                )
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)


_STREAM_REQUIRED = (
    "a subscription needs a streaming response: send Accept: text/event-stream "
    "(GraphQL over SSE) or multipart/mixed;subscriptionSpec=1.0, or use the WebSocket"
)


def _operation(raw: Mapping[str, Any], *, from_query_string: bool) -> dict[str, Any]:
    """Validate one operation's parameters (GraphQL-over-HTTP request parameters)."""
    if from_query_string:
        variables = _json_param(raw.get("variables"), "variables")
        extensions = _json_param(raw.get("extensions"), "extensions")
    else:
        variables = raw.get("variables")
        extensions = raw.get("extensions")
    query = raw.get("query")
    operation_name = raw.get("operationName")
    document_id = raw.get("documentId")
    if query is not None and not isinstance(query, str):
        raise RequestRejected(400, "`query` must be a string")
    if operation_name is not None and not isinstance(operation_name, str):
        raise RequestRejected(400, "`operationName` must be a string")
    if variables is not None and not isinstance(variables, dict):
        raise RequestRejected(400, "`variables` must be an object")
    if extensions is not None and not isinstance(extensions, dict):
        raise RequestRejected(400, "`extensions` must be an object")
    persisted = isinstance(extensions, dict) and "persistedQuery" in extensions
    if not (query and query.strip()) and document_id is None and not persisted:
        raise RequestRejected(400, "the request has no `query` string")
    return {
        "query": query,
        "variables": variables,
        "operationName": operation_name,
        "extensions": extensions,
        "documentId": document_id,
    }


def _automatic_persisted_queries(services: GatewayServices) -> AutomaticPersistedQueries | None:
    """APQ texts in the shared Redis cache when there is one (every replica knows what
    one registered), else in an LRU of their own, beside the upstream reads' cache."""
    limits = services.settings.limits
    if not limits.apq:
        return None
    cache = services.cache
    if not isinstance(cache, RedisCache):
        cache = MemoryCache(limits.apq_max_entries)
    return AutomaticPersistedQueries(
        cache, ttl_seconds=limits.apq_ttl_seconds, max_query_bytes=limits.apq_max_query_bytes
    )


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


def _error_body(message: str, code: str) -> dict[str, Any]:
    return {"errors": [{"message": message, "extensions": {"code": code}}]}


def _error_response(
    status: int, media: str, message: str, code: str, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(_error_body(message, code)),
        status_code=status,
        media_type=media,
        headers=dict(headers or {}),
    )


def _is_api_key(authorization: str | None) -> bool:
    return authorization is not None and authorization.lstrip().lower().startswith("apikey ")


def _refused_response(refused: RateLimited, media: str) -> Response:
    body = {"errors": [{"message": refused.message, "extensions": refused.extensions}]}
    headers = {}
    if refused.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(refused.retry_after)))
    return Response(orjson.dumps(body), status_code=429, media_type=media, headers=headers)


def _plain_error(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return _error_response(status, APPLICATION_JSON, message, "BAD_REQUEST", headers)
