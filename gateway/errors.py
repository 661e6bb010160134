"""The one error hierarchy of brokergraph.

Every connector maps its vendor's error codes into these classes (with a table, in
the connector), and the GraphQL layer turns them into typed payload errors or into
GraphQL errors carrying the stable ``extensions.code``.  Anything that is not a
``BrokerGraphError`` is a bug: it is masked and logged with an error id.

    BrokerGraphError                      (code)
    ├── InvalidInput                      INVALID_INPUT
    ├── NotFound                          NOT_FOUND
    ├── PermissionDenied                  PERMISSION_DENIED
    │   └── Unauthenticated               UNAUTHENTICATED
    ├── Conflict                          CONFLICT
    │   └── IdempotencyConflict           IDEMPOTENCY_CONFLICT
    ├── InsufficientFunds                 INSUFFICIENT_FUNDS
    ├── CapabilityNotSupported            CAPABILITY_NOT_SUPPORTED
    ├── RateLimited                       RATE_LIMITED
    ├── ResumeTooOld                      RESUME_POINT_EXPIRED
    ├── StreamInterrupted                 STREAM_INTERRUPTED
    └── UpstreamError                     UPSTREAM_ERROR
        ├── UpstreamUnavailable           UPSTREAM_UNAVAILABLE
        │   └── UpstreamBusy              UPSTREAM_BUSY
        ├── UpstreamTimeout               UPSTREAM_TIMEOUT
        ├── UpstreamRejected              UPSTREAM_REJECTED
        ├── ProtocolError                 UPSTREAM_PROTOCOL_ERROR
        └── OutcomeUnknown                OUTCOME_UNKNOWN

Codes are part of the public contract: they never change meaning and are never
reused.  ``ERROR_CODES`` lists them; a test pins the list.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

__all__ = [
    "ERROR_CODES",
    "OUTCOME_DETAIL",
    "OUTCOME_UNKNOWN_VALUE",
    "BrokerGraphError",
    "CapabilityNotSupported",
    "Conflict",
    "IdempotencyConflict",
    "InsufficientFunds",
    "InvalidInput",
    "NotFound",
    "OutcomeUnknown",
    "PermissionDenied",
    "ProtocolError",
    "RateLimited",
    "ResumeTooOld",
    "StreamInterrupted",
    "Unauthenticated",
    "UpstreamBusy",
    "UpstreamError",
    "UpstreamRejected",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "error_class_for",
    "may_have_applied",
]

#: The ``details`` key (and its value) by which an upstream error says that the
#: request reached, or may have reached, the platform before it failed.  Details
#: travel with an error (between replicas, into a stored result), a class would not
#: say it for every error class that can mean it.
OUTCOME_DETAIL = "outcome"
OUTCOME_UNKNOWN_VALUE = "UNKNOWN"


class BrokerGraphError(Exception):
    """Base of every error a client may see.

    ``message`` is safe to show to a client: it never holds a vendor payload or a
    secret.  ``field`` names the input path at fault, ``details`` carries extra
    safe, structured facts (for example the platform and the vendor's error code).
    """

    code: ClassVar[str] = "ERROR"

    def __init__(
        self,
        message: str,
        *,
        field: Sequence[str] | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field: tuple[str, ...] = tuple(field or ())
        self.details: dict[str, Any] = dict(details or {})

    @property
    def extensions(self) -> dict[str, Any]:
        """The GraphQL ``extensions`` object (graphql-core copies it onto located errors)."""
        ext: dict[str, Any] = {"code": self.code}
        if self.field:
            ext["field"] = list(self.field)
        if self.details:
            ext["details"] = dict(self.details)
        return ext

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe form, stored so an idempotent retry returns the same error."""
        return {
            "code": self.code,
            "message": self.message,
            "field": list(self.field),
            "details": dict(self.details),
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class InvalidInput(BrokerGraphError):
    """The request is malformed or breaks a rule; nothing was sent upstream."""

    code = "INVALID_INPUT"


class NotFound(BrokerGraphError):
    """The object does not exist, or the viewer may not know that it exists."""

    code = "NOT_FOUND"


class PermissionDenied(BrokerGraphError):
    """The viewer is known but may not do this."""

    code = "PERMISSION_DENIED"


class Unauthenticated(PermissionDenied):
    """No valid credentials came with the request."""

    code = "UNAUTHENTICATED"


class Conflict(BrokerGraphError):
    """The request conflicts with the current state (duplicate, stale version)."""

    code = "CONFLICT"


class IdempotencyConflict(Conflict):
    """The idempotency key was used before with a different request, or is in flight."""

    code = "IDEMPOTENCY_CONFLICT"


class InsufficientFunds(BrokerGraphError):
    """The platform refused a debit because free funds are too low; nothing moved."""

    code = "INSUFFICIENT_FUNDS"


class CapabilityNotSupported(BrokerGraphError):
    """No installed connector declares the capability for this platform."""

    code = "CAPABILITY_NOT_SUPPORTED"


class RateLimited(BrokerGraphError):
    """Too many requests, ours or the platform's; retry after ``retry_after`` seconds."""

    code = "RATE_LIMITED"

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after
        if retry_after is not None:
            self.details.setdefault("retryAfter", retry_after)


class ResumeTooOld(BrokerGraphError):
    """A subscription's resume point is no longer in the event log: retention passed
    it, or the log lost events (a reset store).  Resubscribe without one for a fresh
    start; ``details`` carry ``afterSequence``, ``oldestSequence`` and ``lastSequence``."""

    code = "RESUME_POINT_EXPIRED"


class StreamInterrupted(BrokerGraphError):
    """An event stream broke and could not be resumed in time (the event log was
    unreachable); resubscribe with ``afterSequence = details.lastSequence``."""

    code = "STREAM_INTERRUPTED"


class UpstreamError(BrokerGraphError):
    """The platform failed in a way that is not the caller's fault."""

    code = "UPSTREAM_ERROR"


class UpstreamUnavailable(UpstreamError):
    """The platform cannot be reached, or its circuit breaker is open.

    For a write this means "not delivered": the request provably never reached the
    platform, and the caller may retry (with the same key or a new one).  A write
    that may have reached it is reported as :class:`OutcomeUnknown` instead.
    """

    code = "UPSTREAM_UNAVAILABLE"


class UpstreamBusy(UpstreamUnavailable):
    """The platform holds another application's session (QORT allows only one)."""

    code = "UPSTREAM_BUSY"


class UpstreamTimeout(UpstreamError):
    """The platform did not answer in time; a write's outcome is unknown until checked."""

    code = "UPSTREAM_TIMEOUT"


class UpstreamRejected(UpstreamError):
    """The platform refused the request for a reason no finer class describes."""

    code = "UPSTREAM_REJECTED"


class ProtocolError(UpstreamError):
    """The platform answered something we cannot decode."""

    code = "UPSTREAM_PROTOCOL_ERROR"


class OutcomeUnknown(UpstreamError):
    """A write reached (or may have reached) the platform and its answer was lost:
    a dropped connection after sending, a 5xx from anything on the path, a timeout.

    The write may have been applied.  Its idempotency key stays claimed; the caller
    retries with the SAME key and the gateway settles the outcome by reading the
    platform before it sends anything again.  A new key risks applying it twice.
    """

    code = "OUTCOME_UNKNOWN"


def may_have_applied(error: BaseException) -> bool:
    """Whether a write that failed with ``error`` may have been applied upstream.

    Only a refusal (a domain error, UpstreamRejected) or a failure that provably
    happened before the request reached the platform (UpstreamUnavailable without
    the unknown-outcome mark: connection refused, circuit open, our own limits,
    UpstreamBusy) says it was not; every other upstream failure says nothing.
    """
    if not isinstance(error, UpstreamError) or isinstance(error, UpstreamRejected):
        return False
    if isinstance(error, UpstreamUnavailable):
        return error.details.get(OUTCOME_DETAIL) == OUTCOME_UNKNOWN_VALUE
    return True


def _core_classes() -> dict[str, type[BrokerGraphError]]:
    found: dict[str, type[BrokerGraphError]] = {}
    stack: list[type[BrokerGraphError]] = [BrokerGraphError]
    while stack:
        cls = stack.pop(0)
        if cls is not BrokerGraphError and cls.__module__ == __name__:
            found[cls.code] = cls
        stack.extend(cls.__subclasses__())
    return found


_BY_CODE = _core_classes()
ERROR_CODES: tuple[str, ...] = tuple(sorted(_BY_CODE))


def error_class_for(code: str) -> type[BrokerGraphError]:
    """The core class of a stable code (used to replay a stored error)."""
    return _BY_CODE.get(code, UpstreamError)
