"""What the schema shows of itself when introspection is off.

``server.introspection = false`` refuses ``__schema``/``__type`` for everyone and
the federation field ``_service { sdl }`` (the whole SDL) for everyone but admins
— a router composing the supergraph authenticates as one.  Error messages stop
suggesting names (:class:`gateway.graphql.errors.CodeRefusals` strips them).
The rules are added per request, since ``_service`` depends on the viewer; the
validation cache keys on the rules, so each set still hits it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

from graphql import FieldNode, GraphQLError, NoSchemaIntrospectionCustomRule, ValidationRule
from strawberry.extensions import SchemaExtension

from gateway.auth import Role

__all__ = ["HideSchema"]

INTROSPECTION_DISABLED: Final = "INTROSPECTION_DISABLED"


class _IntrospectionDisabled(NoSchemaIntrospectionCustomRule):
    """graphql-core's rule, its refusals coded."""

    def report_error(self, error: GraphQLError) -> None:
        super().report_error(
            GraphQLError(error.message, error.nodes, extensions={"code": INTROSPECTION_DISABLED})
        )


class _ServiceForAdminsOnly(ValidationRule):
    """Refuse ``Query._service`` (the SDL of the whole subgraph)."""

    def enter_field(self, node: FieldNode, *_: Any) -> None:
        parent = self.context.get_parent_type()
        if node.name.value == "_service" and parent is self.context.schema.query_type:
            self.report_error(
                GraphQLError(
                    "GraphQL introspection has been disabled: `_service` is for admins only.",
                    node,
                    extensions={"code": INTROSPECTION_DISABLED},
                )
            )


_FOR_ADMINS = (_IntrospectionDisabled,)
_FOR_OTHERS = (_IntrospectionDisabled, _ServiceForAdminsOnly)


class HideSchema(SchemaExtension):
    """Add the rules hiding the schema, by the viewer's role (installed only when off)."""

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        viewer = getattr(context.context, "viewer", None)
        admin = viewer is not None and viewer.role is Role.ADMIN
        added = _FOR_ADMINS if admin else _FOR_OTHERS
        context.validation_rules = context.validation_rules + added
        yield
