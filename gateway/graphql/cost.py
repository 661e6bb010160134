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

Computing the cost takes time linear in the document: each fragment is costed
once and remembered.  That works because a selection's cost depends on the
``first`` handed down to it only linearly — ``fixed + per_item * size`` — so a
fragment's pair ``(fixed, per_item)`` serves every spread of it.  The arithmetic
saturates at :data:`COST_CEILING` (a JSON-safe integer), so 60 nested doubling
fragments are refused with a number every client can decode.
"""

from __future__ import annotations

from typing import Any, Final

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
    ValidationContext,
    ValidationRule,
    get_named_type,
)

__all__ = ["COST_CEILING", "cost_limit_rule", "saturate"]

#: The largest integer a JSON client decodes exactly (2**53 - 1); costs stop there.
COST_CEILING: Final = 2**53 - 1

#: A selection's cost as ``fixed + per_item * size``, ``size`` being the list size
#: handed down to it (its parent's ``first``, else the default list size).
_Linear = tuple[int, int]


def saturate(value: int) -> int:
    """``value`` capped at :data:`COST_CEILING` (costs are never negative)."""
    return min(value, COST_CEILING)


def _is_list(type_: Any) -> bool:
    if isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    return isinstance(type_, GraphQLList)


def _first(node: FieldNode) -> int | None:
    """The literal ``first`` of a field; a negative one cannot make a query cheaper."""
    for argument in node.arguments or ():
        if argument.name.value == "first" and isinstance(argument.value, IntValueNode):
            return max(int(argument.value.value), 0) or None
    return None


def cost_limit_rule(max_cost: int, default_list_size: int) -> type[ValidationRule]:
    """A validation rule class refusing operations that cost more than ``max_cost``."""

    class CostLimit(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            self._fragments: dict[str, _Linear] = {}
            self._in_progress: set[str] = set()

        def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
            schema = self.context.schema
            root = {
                OperationType.QUERY: schema.query_type,
                OperationType.MUTATION: schema.mutation_type,
                OperationType.SUBSCRIPTION: schema.subscription_type,
            }[node.operation]
            if root is None:
                return
            cost = self._sized(self._cost(node.selection_set, root), None)
            if cost > max_cost:
                above = "at least " if cost >= COST_CEILING else ""
                self.report_error(
                    GraphQLError(
                        f"The operation costs {above}{cost}, above the limit of {max_cost}. "
                        "Ask for fewer items (`first`), fewer fields or fewer aliases.",
                        node,
                        extensions={"code": "QUERY_TOO_COSTLY", "cost": cost, "limit": max_cost},
                    )
                )

        @staticmethod
        def _sized(linear: _Linear, size: int | None) -> int:
            fixed, per_item = linear
            return saturate(fixed + per_item * (size or default_list_size))

        def _cost(self, selections: SelectionSetNode, parent: Any) -> _Linear:
            fixed = per_item = 0
            for selection in selections.selections:
                if isinstance(selection, FieldNode):
                    part = self._field_cost(selection, parent)
                elif isinstance(selection, InlineFragmentNode):
                    target = parent
                    if selection.type_condition is not None:
                        target = self.context.schema.get_type(selection.type_condition.name.value)
                    part = self._cost(selection.selection_set, target)
                elif isinstance(selection, FragmentSpreadNode):
                    part = self._fragment_cost(selection.name.value)
                fixed, per_item = saturate(fixed + part[0]), saturate(per_item + part[1])
            return fixed, per_item

        def _fragment_cost(self, name: str) -> _Linear:
            known = self._fragments.get(name)
            if known is not None:
                return known
            fragment = self.context.get_fragment(name)
            if fragment is None or name in self._in_progress:
                return 0, 0  # unknown or cyclic fragments are reported by other rules
            self._in_progress.add(name)
            target = self.context.schema.get_type(fragment.type_condition.name.value)
            cost = self._fragments[name] = self._cost(fragment.selection_set, target)
            self._in_progress.discard(name)
            return cost

        def _field_cost(self, node: FieldNode, parent: Any) -> _Linear:
            name = node.name.value
            if name.startswith("__") or not isinstance(
                parent, GraphQLObjectType | GraphQLInterfaceType
            ):
                return 0, 0
            field = parent.fields.get(name)
            if field is None:
                return 0, 0
            first = _first(node)
            is_list = _is_list(field.type)
            children = 0
            if node.selection_set is not None:
                target = get_named_type(field.type)
                # A connection's `first` sizes the lists right under it (edges).
                children = self._sized(
                    self._cost(node.selection_set, target), None if is_list else first
                )
            if not is_list:
                return saturate(1 + children), 0
            if first is not None:
                return saturate(1 + first * children), 0
            return 1, children  # sized by the `first` handed down, else the default

    return CostLimit
