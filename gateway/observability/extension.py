"""The GraphQL side of metrics, traces and the access line: a Strawberry extension.

:class:`ObservedOperation` runs around every operation (HTTP or WebSocket): it
counts the operation by name, type and outcome with its latency, counts its errors
by ``extensions.code``, tells the access line the operation and the viewer, and
while tracing is on (:class:`TracedOperation`, installed instead) opens the
operation's span with its parse and validate steps: without tracing, the hooks
for those steps would cost every request for nothing.  :class:`ResolverSpans`
(only added while tracing is on, since any ``resolve`` hook makes Strawberry wrap
every field) gives each resolver that awaits a span.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Iterator
from typing import Any

from graphql import GraphQLError, GraphQLResolveInfo
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span
from strawberry.extensions import SchemaExtension

from gateway.errors import BrokerGraphError
from gateway.observability import _context, metrics, tracing

__all__ = ["ObservedOperation", "ResolverSpans", "TracedOperation"]


class ObservedOperation(SchemaExtension):
    _span: Span | None = None

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        current = tracing.tracer()
        if current is not None:
            self._span = current.start_span("graphql.operation")
        try:
            yield
        except GraphQLError as error:  # a syntax error comes through the operation
            self._settle(time.perf_counter() - started, raised=error)
            raise
        self._settle(time.perf_counter() - started)

    def _settle(self, seconds: float, raised: GraphQLError | None = None) -> None:
        context = self.execution_context
        try:
            kind = context.operation_type.value
        except Exception:  # unparsable, or no operation of that name: refused before running
            kind = "unknown"
        name = metrics.operation_label(context.operation_name)
        result = context.result
        # The result's errors as the inner extensions left them (coded); the
        # pre-execution list keeps the uncoded originals.
        errors: list[GraphQLError] = (
            [raised]
            if raised is not None
            else list((result.errors if result is not None else None) or [])
            or list(context.pre_execution_errors or [])
        )
        refused = raised is not None or bool(context.pre_execution_errors)
        outcome = "refused" if refused else "error" if errors else "ok"
        metrics.graphql_operation(name, kind, outcome, seconds)
        for error in errors:
            metrics.error_code(_code(error))
        record = _context.current.get()
        if record is not None:
            record.operation, record.operation_type = name, kind
            viewer = getattr(context.context, "viewer", None)
            record.viewer = getattr(viewer, "subject", None)
        if self._span is not None:
            self._span.update_name(f"graphql.{kind} {name}")
            self._span.set_attributes(
                {"graphql.operation.name": name, "graphql.operation.type": kind}
            )
            if errors:
                self._span.set_status(trace.StatusCode.ERROR, str(_code(errors[0])))
            self._span.end()


class TracedOperation(ObservedOperation):
    """:class:`ObservedOperation` with the spans of the operation's steps."""

    def on_parse(self) -> Iterator[None]:
        yield from self._step("graphql.parse")

    def on_validate(self) -> Iterator[None]:
        yield from self._step("graphql.validate")

    def _step(self, name: str) -> Iterator[None]:
        current = tracing.tracer()
        if current is None or self._span is None:
            yield
            return
        step = current.start_span(name, context=trace.set_span_in_context(self._span))
        try:
            yield
        finally:
            step.end()

    def on_execute(self) -> Iterator[None]:
        # Resolvers' spans (and the upstream calls below them) nest under the
        # operation's.  Not for a subscription: its execution outlives this step.
        if self._span is None or self.execution_context.operation_type.value == "subscription":
            yield
            return
        token = otel_context.attach(trace.set_span_in_context(self._span))
        try:
            yield
        finally:
            otel_context.detach(token)


class ResolverSpans(SchemaExtension):
    """A span for each resolver that awaits (the ones that can dispatch upstream)."""

    def resolve(
        self,
        _next: Callable[..., Any],
        root: Any,
        info: GraphQLResolveInfo[Any],
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        result = _next(root, info, *args, **kwargs)
        if not inspect.isawaitable(result) or info.field_name.startswith("__"):
            return result
        return self._traced(result, f"{info.parent_type.name}.{info.field_name}")

    async def _traced(self, result: Any, field: str) -> Any:
        with tracing.span(f"resolve {field}", {"graphql.field": field}):
            return await result


def _code(error: GraphQLError) -> object:
    code = (error.extensions or {}).get("code")
    if code is None and isinstance(error.original_error, BrokerGraphError):
        code = error.original_error.code
    return code
