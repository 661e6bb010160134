"""What the schema shows of itself when introspection is off.

``server.introspection = false`` refuses ``__schema``/``__type`` for everyone and
the federation field ``_service { sdl }`` (the whole SDL) for everyone but admins
— a router composing the supergraph authenticates as one.  Error messages stop
suggesting names (:class:`gateway.graphql.errors.CodeRefusals` strips them).
The rules are added per request, since ``_service`` depends on the viewer; the
validation cache keys on the rules, so each set still hits it.
"""

from __future__ import annotations

from typing import Any, Final

from graphql import FieldNode, GraphQLError, NoSchemaIntrospectionCustomRule, ValidationRule

from gateway.auth import Role

__all__ = ["hiding_rules"]

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


def hiding_rules(viewer: Any) -> tuple[type[ValidationRule], ...]:
    """The rules hiding the schema from ``viewer`` (added per request only when off)."""
    admin = viewer is not None and viewer.role is Role.ADMIN
    return _FOR_ADMINS if admin else _FOR_OTHERS
