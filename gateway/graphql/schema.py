"""Assembling the schema at start-up: the core types plus what plugins contribute.

Root fields come only through the hooks (``brokergraph_query_fields`` ...): the
core's own are contributed by :mod:`gateway.builtins` like any plugin's, first, so
they lead each root type in the SDL.  Plugins also add platform types
(``CTraderAccount`` implementing ``Account``) and any other type.  A field name
two contributions both define is a contract error, never a silent override.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Final, cast

import strawberry
from graphql import ASTValidationRule, GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.federation.schema import FederationAny
from strawberry.printer import print_schema
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext
from strawberry.types.base import has_object_definition
from strawberry.types.info import Info
from strawberry.utils.inspect import get_func_args

from gateway.config import LimitSettings
from gateway.contract import UpstreamCost
from gateway.errors import InvalidInput
from gateway.graphql.cost import DeclaredCosts, cost_limit_rule
from gateway.graphql.errors import ERROR_TYPES
from gateway.graphql.extension_runner import PreparedExtensionsRunner, StagePlans
from gateway.graphql.input_plans import plan_input_types
from gateway.graphql.limits import alias_limit_rule, depth_limit_rule, repeated_fields_rule
from gateway.graphql.operation import OperationSettings, gateway_operation
from gateway.graphql.platform_options import PlatformOptions, specialise
from gateway.graphql.scalars import SCALAR_MAP
from gateway.graphql.sdl import FederationService, public_sdl, subgraph_sdl
from gateway.graphql.types import CORE_TYPES, Account
from gateway.plugins import PluginContractError, Plugins

__all__ = ["BrokerGraphSchema", "build_schema"]

logger = logging.getLogger("gateway.graphql")
FEDERATION_VERSION: Final = "2.11"
DOCUMENT_CACHE_SIZE = 256


class BrokerGraphSchema(strawberry.federation.Schema):
    """The federation subgraph schema, remembering which type serves each platform."""

    account_types: Mapping[str, type] = {}

    @functools.cached_property
    def _hook_plans(self) -> dict[tuple[type[SchemaExtension], ...], StagePlans]:
        # Keyed on the classes: observability adds its extension after the schema is built.
        return {}

    def create_extensions_runner(
        self, execution_context: ExecutionContext, extensions: list[SchemaExtension]
    ) -> PreparedExtensionsRunner:
        classes = tuple(type(extension) for extension in extensions)
        plans = self._hook_plans.get(classes)
        if plans is None:
            plans = self._hook_plans[classes] = StagePlans(classes)
        return PreparedExtensionsRunner(execution_context, extensions, plans)

    @functools.cached_property
    def _subgraph_sdl(self) -> str:
        return subgraph_sdl(print_schema(self))

    def subgraph_sdl(self) -> str:
        """What ``_service { sdl }`` answers: no federation internals (schema/subgraph.graphql)."""
        return self._subgraph_sdl

    @functools.cached_property
    def _public_sdl(self) -> str:
        return public_sdl(self._subgraph_sdl)

    def as_str(self) -> str:
        """The SDL without federation, which any ``buildSchema`` reads (schema/schema.graphql)."""
        return self._public_sdl

    __str__ = as_str

    def entities_resolver(
        self, info: Info, representations: list[FederationAny]
    ) -> list[FederationAny]:
        """Strawberry looks a representation's ``__typename`` up and hands its other keys
        to ``resolve_reference`` as they came, so junk (no ``__typename``, a type that is
        no entity, a missing or extra key) was a KeyError or TypeError, masked INTERNAL.
        Such a representation is refused as INVALID_INPUT, before any read; the others
        still resolve."""
        refused = {
            index: error
            for index, representation in enumerate(representations)
            if (error := self._refusal(representation, index)) is not None
        }
        valid = [r for index, r in enumerate(representations) if index not in refused]
        resolved = iter(super().entities_resolver(info, valid))
        # The field's type is set by Strawberry (the _Entity union); an item may be an error.
        return [
            cast(FederationAny, refused[i]) if i in refused else next(resolved)
            for i in range(len(representations))
        ]

    def _refusal(self, representation: Any, index: int) -> InvalidInput | None:
        field = ["representations", str(index)]
        type_name = representation.get("__typename") if isinstance(representation, dict) else None
        if not isinstance(type_name, str):
            return InvalidInput("a representation is an object with a __typename", field=field)
        definition = getattr(self.schema_converter.type_map.get(type_name), "definition", None)
        resolve = getattr(getattr(definition, "origin", None), "resolve_reference", None)
        if resolve is None:
            return InvalidInput(f"{type_name[:40]!r} is not an entity type", field=field)
        keys = set(get_func_args(resolve)) - {"info"}
        if set(representation) - {"__typename"} != keys:
            return InvalidInput(
                f"a {type_name} representation has the keys {sorted(keys)}", field=field
            )
        return None

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
    # One extension for all of it: Strawberry's cost is per extension and per hook.
    return [
        gateway_operation(
            OperationSettings.make(
                max_tokens=limits.max_tokens,
                rules=rules,
                hide_schema=not introspection,
                cache_size=DOCUMENT_CACHE_SIZE,
            )
        )
    ]


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
    contributed_types = plugins.collect("brokergraph_schema_types")
    # Typed platform options become fields of the provisioning inputs (platform_options).
    platform_options = PlatformOptions.collect(contributed_types)
    query = _merge("Query", [*plugins.collect("brokergraph_query_fields"), FederationService])
    mutation = _merge(
        "Mutation", specialise(plugins.collect("brokergraph_mutation_fields"), platform_options)
    )
    subscription = _merge("Subscription", plugins.collect("brokergraph_subscription_fields"))
    types: list[Any] = [*CORE_TYPES, *ERROR_TYPES, *account_types.values(), *contributed_types]
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
    plan_input_types(schema)  # a mutation's input built in µs, not tens of them
    return schema
