"""Typed errors in mutation payloads, and masking of everything unexpected.

Mutations never fail with a bare GraphQL error for a domain problem: the payload's
``errors`` list carries a typed object (``InsufficientFundsError`` ...) with the
stable ``code`` of :mod:`gateway.errors`.  Queries raise the same exceptions and
graphql-core copies their ``extensions`` (with ``code``) onto the GraphQL error.
Any other exception is a bug: it is logged once with an error id and the client
sees only "Internal error" and that id.  A request refused before it runs (by the
parser, a validation rule, its variables) gets a stable code too
(:class:`CodeRefusals`).
"""

from __future__ import annotations

import enum
import logging
import re
import uuid
from collections.abc import Iterator
from typing import Any, Final

import strawberry
from graphql import GraphQLError, GraphQLSyntaxError
from strawberry.exceptions import MissingQueryError
from strawberry.extensions import SchemaExtension
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError

from gateway import errors as domain

__all__ = [
    "CapabilityNotSupportedError",
    "CodeRefusals",
    "ConflictError",
    "ErrorCode",
    "InsufficientFundsError",
    "InvalidInputError",
    "MaskUnexpectedErrors",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitedError",
    "UpstreamFailureError",
    "UserError",
    "to_user_error",
]

logger = logging.getLogger("gateway.errors")


@strawberry.enum(description="Stable machine-readable error codes; see the README's error table.")
class ErrorCode(enum.Enum):
    """gateway.errors.ERROR_CODES plus INTERNAL (masked bugs); a test keeps them equal."""

    CAPABILITY_NOT_SUPPORTED = "CAPABILITY_NOT_SUPPORTED"
    CONFLICT = "CONFLICT"
    IDEMPOTENCY_CONFLICT = "IDEMPOTENCY_CONFLICT"
    INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"
    INVALID_INPUT = "INVALID_INPUT"
    NOT_FOUND = "NOT_FOUND"
    OUTCOME_UNKNOWN = "OUTCOME_UNKNOWN"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    RATE_LIMITED = "RATE_LIMITED"
    RESUME_POINT_EXPIRED = "RESUME_POINT_EXPIRED"
    STREAM_INTERRUPTED = "STREAM_INTERRUPTED"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    UPSTREAM_BUSY = "UPSTREAM_BUSY"
    UPSTREAM_ERROR = "UPSTREAM_ERROR"
    UPSTREAM_PROTOCOL_ERROR = "UPSTREAM_PROTOCOL_ERROR"
    UPSTREAM_REJECTED = "UPSTREAM_REJECTED"
    UPSTREAM_TIMEOUT = "UPSTREAM_TIMEOUT"
    UPSTREAM_UNAVAILABLE = "UPSTREAM_UNAVAILABLE"
    INTERNAL = "INTERNAL"


@strawberry.interface(description="A typed error of a mutation; `code` is stable.")
class UserError:
    code: ErrorCode
    message: str
    field: list[str] | None = None


@strawberry.type
class InvalidInputError(UserError):
    pass


@strawberry.type
class NotFoundError(UserError):
    pass


@strawberry.type
class PermissionDeniedError(UserError):
    pass


@strawberry.type
class ConflictError(UserError):
    pass


@strawberry.type
class InsufficientFundsError(UserError):
    pass


@strawberry.type
class CapabilityNotSupportedError(UserError):
    platform: str | None = None
    capability: str | None = None


@strawberry.type
class RateLimitedError(UserError):
    retry_after: float | None = None


@strawberry.type(description="The platform failed or is unreachable; `code` tells which.")
class UpstreamFailureError(UserError):
    platform: str | None = None


ERROR_TYPES: tuple[type, ...] = (
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    ConflictError,
    InsufficientFundsError,
    CapabilityNotSupportedError,
    RateLimitedError,
    UpstreamFailureError,
)

_TYPE_OF: tuple[tuple[type[domain.BrokerGraphError], type], ...] = (
    (domain.InvalidInput, InvalidInputError),
    (domain.NotFound, NotFoundError),
    (domain.PermissionDenied, PermissionDeniedError),
    (domain.Conflict, ConflictError),
    (domain.InsufficientFunds, InsufficientFundsError),
    (domain.CapabilityNotSupported, CapabilityNotSupportedError),
    (domain.RateLimited, RateLimitedError),
    (domain.UpstreamError, UpstreamFailureError),
)


def to_user_error(error: domain.BrokerGraphError) -> UserError:
    """The typed payload error for a domain exception."""
    code = ErrorCode[error.code]
    base: dict[str, Any] = {
        "code": code,
        "message": error.message,
        "field": list(error.field) or None,
    }
    for exc_type, gql_type in _TYPE_OF:
        if isinstance(error, exc_type):
            if gql_type is CapabilityNotSupportedError:
                base["platform"] = error.details.get("platform")
                base["capability"] = error.details.get("capability")
            elif gql_type is RateLimitedError:
                base["retry_after"] = getattr(error, "retry_after", None)
            elif gql_type is UpstreamFailureError:
                base["platform"] = error.details.get("platform")
            result: UserError = gql_type(**base)
            return result
    return UpstreamFailureError(**base)


def user_error_from_dict(data: dict[str, Any]) -> UserError:
    """Rebuild a stored typed error (an idempotent replay returns the first result)."""
    error_class = domain.error_class_for(data["code"])
    rebuilt = error_class(data["message"], field=data.get("field"), details=data.get("details"))
    return to_user_error(rebuilt)


#: What Strawberry raises through the operation on purpose: no query, no such operation,
#: an operation type this transport does not allow (a mutation over GET).
_REQUEST_REFUSALS: Final = (
    MissingQueryError,
    CannotGetOperationTypeError,
    InvalidOperationTypeError,
)


class MaskUnexpectedErrors(SchemaExtension):
    """Replace errors that are not ours or graphql-core's by a generic one with an id."""

    def on_operation(self) -> Iterator[None]:
        try:
            yield
        except (GraphQLError, *_REQUEST_REFUSALS):
            raise  # coded already, or answered by the HTTP handler (405, 400)
        except Exception as error:
            # A bug before execution (a validation rule that crashed): Strawberry would
            # answer with the exception's text and no code.
            raise self._mask(GraphQLError(str(error), original_error=error)) from None
        result = self.execution_context.result
        if result is None or not result.errors:
            return
        result.errors = [self._mask(error) for error in result.errors]

    @staticmethod
    def _mask(error: GraphQLError) -> GraphQLError:
        original = error.original_error
        if original is None or isinstance(original, GraphQLError | domain.BrokerGraphError):
            return error
        if error.path is None and error.nodes:
            # Reported by validation (a scalar refusing a literal, "NaN" for a Decimal):
            # a refusal of the request, which CodeRefusals codes, not a bug.
            return error
        error_id = uuid.uuid4().hex[:16]
        logger.error(
            "unexpected error %s at %s",
            error_id,
            ".".join(str(p) for p in error.path or ()),
            exc_info=(type(original), original, original.__traceback__),
        )
        return GraphQLError(
            "Internal error",
            nodes=error.nodes,
            path=error.path,
            extensions={"code": "INTERNAL", "errorId": error_id},
        )


#: Parser refusals by the start of their description (pinned by tests/test_limits.py).
_PARSE_CODES: Final = (
    ("Document is nested too deeply", "QUERY_TOO_DEEP"),
    ("Document contains more than", "QUERY_TOO_LONG"),  # tokens or comments
    ("Source contains more than", "QUERY_TOO_LONG"),
)
#: graphql-core's word when a document nests fragments beyond the interpreter's stack.
_VALIDATION_ABORTED: Final = "Validation aborted."
_SUGGESTION: Final = re.compile(r" ?Did you mean [^?]*\?")


class CodeRefusals(SchemaExtension):
    """Give every refusal of a request a stable ``extensions.code``.

    Parse errors: QUERY_TOO_LONG, QUERY_TOO_DEEP or GRAPHQL_PARSE_FAILED; validation
    errors keep the code their rule gave (QUERY_TOO_COSTLY ...) or get
    GRAPHQL_VALIDATION_FAILED; variables that do not fit their types INVALID_INPUT.
    With ``hide_suggestions`` (introspection off) "Did you mean …?" is cut from every
    message, so names the viewer did not ask for are never revealed.
    """

    def __init__(self, *, hide_suggestions: bool = False) -> None:
        self.hide_suggestions = hide_suggestions
        self._validation_errors: set[int] = set()

    def on_validate(self) -> Iterator[None]:
        yield
        errors = self.execution_context.pre_execution_errors or ()
        self._validation_errors = {id(error) for error in errors}

    def on_operation(self) -> Iterator[None]:
        try:
            yield
        except GraphQLError as error:
            # The parser cache raises its syntax errors through the operation.
            raise self._coded(error) from None
        result = self.execution_context.result
        if result is None or not result.errors:
            return
        result.errors = [self._coded(error) for error in result.errors]

    def _code(self, error: GraphQLError) -> str | None:
        if isinstance(error, GraphQLSyntaxError):
            for start, code in _PARSE_CODES:
                if error.description.startswith(start):
                    return code
            return "GRAPHQL_PARSE_FAILED"
        if id(error) in self._validation_errors:
            return (
                "QUERY_TOO_DEEP"
                if error.message == _VALIDATION_ABORTED
                else ("GRAPHQL_VALIDATION_FAILED")
            )
        if error.path is None and (
            error.original_error is None or isinstance(error.original_error, GraphQLError)
        ):
            return "INVALID_INPUT"  # variables refused before execution
        return None

    def _coded(self, error: GraphQLError) -> GraphQLError:
        extensions = dict(error.extensions or {})
        if "code" not in extensions and (code := self._code(error)) is not None:
            extensions["code"] = code
        message = _SUGGESTION.sub("", error.message) if self.hide_suggestions else error.message
        if message == error.message and extensions == (error.extensions or {}):
            return error
        return GraphQLError(
            message,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            original_error=error.original_error,
            extensions=extensions,
        )
