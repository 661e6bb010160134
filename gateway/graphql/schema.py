"""Assembling the schema at start-up: the core types plus what plugins contribute.

Root fields come only through the hooks (``brokergraph_query_fields`` ...): the
core's own are contributed by :mod:`gateway.builtins` like any plugin's, first, so
they lead each root type in the SDL.  Plugins also add platform types
(``CTraderAccount`` implementing ``Account``) and any other type.  A field name
two contributions both define is a contract error, never a silent override.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Final

import strawberry
from graphql import ASTValidationRule, GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    MaxTokensLimiter,
    ParserCache,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext
from strawberry.types.base import has_object_definition

from gateway.config import LimitSettings
from gateway.contract import UpstreamCost
from gateway.graphql.cost import DeclaredCosts, cost_limit_rule
from gateway.graphql.errors import ERROR_TYPES, CodeRefusals, MaskUnexpectedErrors
from gateway.graphql.exposure import HideSchema
from gateway.graphql.limits import alias_limit_rule, depth_limit_rule, repeated_fields_rule
from gateway.graphql.scalars import SCALAR_MAP
from gateway.graphql.types import CORE_TYPES, Account
from gateway.plugins import PluginContractError, Plugins

__all__ = ["BrokerGraphSchema", "build_schema"]

logger = logging.getLogger("gateway.graphql")
FEDERATION_VERSION: Final = "2.11"
DOCUMENT_CACHE_SIZE = 256


class BrokerGraphSchema(strawberry.federation.Schema):
    """The federation subgraph schema, remembering which type serves each platform."""

    account_types: Mapping[str, type] = {}

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # Unexpected errors were logged with an id by MaskUnexpectedErrors; the rest are
        # the client's business (bad input, not found) and would only flood the log.
        for error in errors:
            logger.debug("graphql error: %s", error.message)


def _merge(name: str, contributed: Sequence[type]) -> type:
    """One root type holding every contribution's fields, in contribution order."""
    seen: dict[str, str] = {}
    for part in contributed:
        if not has_object_definition(part):
            raise PluginContractError(f"{part!r} contributed to {name} is not a Strawberry type")
        for field in part.__strawberry_definition__.fields:
            if field.name in seen:
                raise PluginContractError(
                    f"{name}.{field.name} is defined by both {seen[field.name]} and "
                    f"{part.__qualname__}"
                )
            seen[field.name] = part.__qualname__
    # Strawberry lists the fields of the bases in base order: the first contribution first.
    merged: type = strawberry.type(type(name, tuple(contributed), {}))
    return merged


def _extensions(limits: LimitSettings, introspection: bool, declared: DeclaredCosts) -> list[Any]:
    # The rule classes are built once: the validation cache keys on (schema, document,
    # rules), so classes made per request (as the limiter extensions do) never hit it.
    # Each rule takes time linear in the document (fragments are costed once).
    rules: list[type[ASTValidationRule]] = [
        # Aborts before graphql-core's pairwise field checks can run long.
        repeated_fields_rule(limits.max_repeated_fields),
        depth_limit_rule(limits.max_depth),
        alias_limit_rule(limits.max_aliases),
        cost_limit_rule(
            limits.max_cost,
            limits.default_list_size,
            declared=declared,
            max_upstream_calls=limits.max_upstream_calls,
        ),
    ]
    extensions: list[Any] = [
        MaskUnexpectedErrors,
        lambda: CodeRefusals(hide_suggestions=not introspection),
        lambda: MaxTokensLimiter(max_token_count=limits.max_tokens),
        lambda: ParserCache(maxsize=DOCUMENT_CACHE_SIZE),
        lambda: AddValidationRules(rules),
        lambda: ValidationCache(maxsize=DOCUMENT_CACHE_SIZE),
    ]
    if not introspection:
        extensions.append(HideSchema)
    return extensions


def build_schema(
    plugins: Plugins,
    limits: LimitSettings | None = None,
    *,
    introspection: bool = True,
    upstream_costs: Mapping[str, Mapping[str, UpstreamCost]] | None = None,
) -> BrokerGraphSchema:
    """The schema of this install: core plus every loaded plugin's contributions.

    ``upstream_costs``: platform -> read method -> what the started connector declares
    (:func:`~gateway.graphql.cost.declared_upstream_costs`), for the cost model.
    """
    limits = limits or LimitSettings()
    account_types = plugins.collect_mapping("brokergraph_account_types")
    for platform, cls in account_types.items():
        if not (isinstance(cls, type) and issubclass(cls, Account)):
            raise PluginContractError(f"account type for {platform!r} must subclass Account")
    query = _merge("Query", plugins.collect("brokergraph_query_fields"))
    mutation = _merge("Mutation", plugins.collect("brokergraph_mutation_fields"))
    subscription = _merge("Subscription", plugins.collect("brokergraph_subscription_fields"))
    types: list[Any] = [
        *CORE_TYPES,
        *ERROR_TYPES,
        *account_types.values(),
        *plugins.collect("brokergraph_schema_types"),
    ]
    schema = BrokerGraphSchema(
        query=query,
        mutation=mutation,
        subscription=subscription,
        types=types,
        extensions=_extensions(
            limits,
            introspection,
            DeclaredCosts(
                upstream_costs or {},
                {cls.__strawberry_definition__.name: p for p, cls in account_types.items()},
            ),
        ),
        config=StrawberryConfig(scalar_map=SCALAR_MAP),
        federation_version=FEDERATION_VERSION,
    )
    schema.account_types = dict(account_types)
    return schema
