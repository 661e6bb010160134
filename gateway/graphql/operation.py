"""The gateway's own work around an operation, as one Strawberry extension.

Strawberry makes every extension anew for each request and wraps each of its hooks
in a context manager of its own, so seven small extensions (error masking, refusal
codes, token limit, parser cache, validation rules, validation cache, schema hiding)
cost a third of a warm read.  :class:`GatewayOperation` does what they did in their
order, with three hooks: the checks themselves stay where they were (validation
rules built once, :mod:`gateway.graphql.limits`, :mod:`gateway.graphql.cost`,
:mod:`gateway.graphql.exposure`) and the caches live with the schema.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from graphql import ASTValidationRule, DocumentNode, GraphQLError, GraphQLSchema, parse
from strawberry.schema.schema import validate_document

from gateway.graphql.errors import _REQUEST_REFUSALS, CodeRefusals, MaskUnexpectedErrors
from gateway.graphql.exposure import hiding_rules

__all__ = ["GatewayOperation", "OperationSettings", "gateway_operation"]

_Rules = tuple[type[ASTValidationRule], ...]


@dataclass(frozen=True)
class OperationSettings:
    """What every request's :class:`GatewayOperation` shares, made once per schema."""

    max_tokens: int
    rules: _Rules
    #: Introspection off: the exposure rules by role, suggestions cut from messages.
    hide_schema: bool
    parse: Callable[..., DocumentNode]
    validate: Callable[[GraphQLSchema, _Document, _Rules], list[GraphQLError]]

    @classmethod
    def make(
        cls,
        *,
        max_tokens: int,
        rules: Sequence[type[ASTValidationRule]],
        hide_schema: bool,
        cache_size: int,
    ) -> OperationSettings:
        # Per schema, bounded: a flood of distinct documents evicts, never grows memory.
        # A document that fails to parse raises, so it is never cached.
        return cls(
            max_tokens=max_tokens,
            rules=tuple(rules),
            hide_schema=hide_schema,
            parse=functools.lru_cache(maxsize=cache_size)(parse),
            validate=functools.lru_cache(maxsize=cache_size)(_validate),
        )


class _Document:
    """A parsed document as a cache key, by identity: graphql-core hashes a document by
    walking all its nodes (a tenth of a warm read), while the parser cache hands the
    same object for the same text.  The entry holds the document, so its id stays its."""

    __slots__ = ("node",)

    def __init__(self, node: DocumentNode) -> None:
        self.node = node

    def __hash__(self) -> int:
        return id(self.node)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Document) and other.node is self.node


def _validate(schema: GraphQLSchema, document: _Document, rules: _Rules) -> list[GraphQLError]:
    return validate_document(schema, document.node, rules)


class GatewayOperation(CodeRefusals):
    """Codes refusals (:class:`CodeRefusals`, whose validation hook it keeps), masks
    unexpected errors (:class:`MaskUnexpectedErrors`, outermost as it was), limits the
    tokens, adds the limit, cost and exposure rules, and caches parsing and validation
    (the validation cache keys on the rules, so each role's set still hits it)."""

    def __init__(self, settings: OperationSettings) -> None:
        super().__init__(hide_suggestions=settings.hide_schema)
        self.settings = settings

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        settings = self.settings
        context.parse_options["max_tokens"] = settings.max_tokens
        rules = settings.rules
        if settings.hide_schema:
            rules = rules + hiding_rules(getattr(context.context, "viewer", None))
        context.validation_rules = context.validation_rules + rules
        mask = MaskUnexpectedErrors._mask
        try:
            yield
        except GraphQLError as error:
            # The parser cache raises its syntax errors through the operation.
            raise self._coded(error) from None
        except _REQUEST_REFUSALS:
            raise  # answered by the HTTP handler (405, 400)
        except Exception as error:
            # A bug before execution (a validation rule that crashed): Strawberry would
            # answer with the exception's text and no code.
            raise mask(GraphQLError(str(error), original_error=error)) from None
        result = context.result
        if result is None or not result.errors:
            return
        result.errors = [mask(self._coded(error)) for error in result.errors]

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.graphql_document is None and context.query:
            context.graphql_document = self.settings.parse(context.query, **context.parse_options)
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        assert context.graphql_document is not None  # parsed, or refused before this step
        context.pre_execution_errors = self.settings.validate(
            context.schema._schema, _Document(context.graphql_document), context.validation_rules
        )
        yield from super().on_validate()


def gateway_operation(settings: OperationSettings) -> Callable[[], Any]:
    """The factory Strawberry calls per request."""
    return functools.partial(GatewayOperation, settings)
