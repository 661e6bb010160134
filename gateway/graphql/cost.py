"""A cost model for operations, checked at validation (before anything runs).

Every field costs 1; a field returning a list multiplies the cost of what is
selected under it by its ``first`` argument when that is a literal, else by
``default_list_size``.  A connection field's ``first`` sizes the lists right
under it (``edges``), so a page of 10 costs 10 items, not 10 times the default.
Aliases count as separate fields, fragments are expanded (once per spread), and
introspection is free.  An operation over ``max_cost`` is
refused with a validation error naming its cost, so a flood of costly queries is
turned away without a single resolver or upstream call — and, thanks to the
validation cache, repeated identical floods cost almost nothing to refuse.
"""

from __future__ import annotations

from typing import Any

from graphql import (
    FieldNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    ValidationRule,
    get_named_type,
)

__all__ = ["cost_limit_rule"]


def _is_list(type_: Any) -> bool:
    if isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    return isinstance(type_, GraphQLList)


def cost_limit_rule(max_cost: int, default_list_size: int) -> type[ValidationRule]:
    """A validation rule class refusing operations that cost more than ``max_cost``."""

    class CostLimit(ValidationRule):
        def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
            schema = self.context.schema
            root = {
                OperationType.QUERY: schema.query_type,
                OperationType.MUTATION: schema.mutation_type,
                OperationType.SUBSCRIPTION: schema.subscription_type,
            }[node.operation]
            if root is None:
                return
            cost = self._cost(node.selection_set, root, frozenset(), None)
            if cost > max_cost:
                self.report_error(
                    GraphQLError(
                        f"The operation costs {cost}, above the limit of {max_cost}. Ask for "
                        "fewer items (`first`), fewer fields or fewer aliases.",
                        node,
                        extensions={"code": "QUERY_TOO_COSTLY", "cost": cost, "limit": max_cost},
                    )
                )

        def _cost(
            self, selections: SelectionSetNode, parent: Any, seen: frozenset[str], hint: int | None
        ) -> int:
            total = 0
            for selection in selections.selections:
                if isinstance(selection, FieldNode):
                    total += self._field_cost(selection, parent, seen, hint)
                elif isinstance(selection, InlineFragmentNode):
                    target = parent
                    if selection.type_condition is not None:
                        target = self.context.schema.get_type(selection.type_condition.name.value)
                    total += self._cost(selection.selection_set, target, seen, hint)
                elif isinstance(selection, FragmentSpreadNode):
                    name = selection.name.value
                    fragment = self.context.get_fragment(name)
                    if fragment is None or name in seen:
                        continue  # unknown or cyclic fragments are reported by other rules
                    target = self.context.schema.get_type(fragment.type_condition.name.value)
                    total += self._cost(fragment.selection_set, target, seen | {name}, hint)
            return total

        def _field_cost(
            self, node: FieldNode, parent: Any, seen: frozenset[str], hint: int | None
        ) -> int:
            name = node.name.value
            if name.startswith("__") or not isinstance(
                parent, GraphQLObjectType | GraphQLInterfaceType
            ):
                return 0
            field = parent.fields.get(name)
            if field is None:
                return 0
            first = None
            for argument in node.arguments or ():
                if argument.name.value == "first" and isinstance(argument.value, IntValueNode):
                    first = int(argument.value.value)
            is_list = _is_list(field.type)
            children = 0
            if node.selection_set is not None:
                child_hint = None if is_list else first
                target = get_named_type(field.type)
                children = self._cost(node.selection_set, target, seen, child_hint)
            if not is_list:
                return 1 + children
            size = first or hint or default_list_size
            return 1 + size * children

    return CostLimit
