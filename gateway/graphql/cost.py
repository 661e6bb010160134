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

Upstream calls
--------------
A field reading a period (``deals``, ``balanceOperations``, ``analytics`` of an
account) may cost the platform far more than one call: cTrader answers deals two
days at a time.  Each connector declares what its reads cost
(:meth:`Connector.upstream_costs`, an :class:`~gateway.contract.UpstreamCost` per
method), and such a field costs 1 plus the calls its connector declares — the
connector of its type (``CTraderAccount``), or the costliest of all on the
``Account`` interface.  Literal ``from``/``to`` give the exact period; a variable
(values are not known at validation) is assumed to span :data:`ASSUMED_PERIOD`,
the longest period the fields accept.  The cost is an upper bound.

Beside it the rule counts the calls an operation *certainly* makes on an empty
cache: the same declarations, but only literal periods count windows, lists count
only their literal ``first`` (or a literal ``representations`` list), and the
interface takes the cheapest platform.  An operation certain to make more than
``max_upstream_calls`` (one viewer's whole budget of upstream calls) is refused as
QUERY_TOO_COSTLY before anything runs.  What the estimates cannot see (variables,
cache hits, lists longer than assumed) the per-viewer budget of upstream calls
settles at run time, call by call (:mod:`gateway.graphql.loaders`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from graphql import (
    ArgumentNode,
    FieldNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    StringValueNode,
    ValidationContext,
    ValidationRule,
    get_named_type,
)

from gateway.connectors import Connector
from gateway.contract import UpstreamCost
from gateway.graphql.scalars import parse_datetime

__all__ = [
    "ASSUMED_PERIOD",
    "COST_CEILING",
    "PARTNER_PERIOD_FIELDS",
    "PERIOD_FIELDS",
    "DeclaredCosts",
    "cost_limit_rule",
    "declared_upstream_costs",
    "saturate",
]

#: The largest integer a JSON client decodes exactly (2**53 - 1); costs stop there.
COST_CEILING: Final = 2**53 - 1

#: The period a ``from``/``to`` given by variables is assumed to span: the longest
#: the period fields accept (``gateway.graphql.types.MAX_PERIOD``).
ASSUMED_PERIOD: Final = timedelta(days=366)
#: Period fields of ``Account`` and the connector method each one reads through.
PERIOD_FIELDS: Final = {
    "deals": "get_deals",
    "balanceOperations": "get_balance_operations",
    "analytics": "get_analytics",
}
#: Period fields of ``BusinessPartner`` that read a period field of each of the
#: partner's accounts (``BusinessPartner.analytics``): the accounts are not known at
#: validation, so such a field costs what ``default_list_size`` accounts' reads cost,
#: and is certain of no call.
PARTNER_PERIOD_FIELDS: Final = {"analytics": "get_analytics"}
_ONE_CALL: Final = UpstreamCost()


def saturate(value: int) -> int:
    """``value`` capped at :data:`COST_CEILING` (costs are never negative)."""
    return min(value, COST_CEILING)


@dataclass(frozen=True, slots=True)
class _Linear:
    """A selection's cost and certain upstream calls, each ``fixed + per_item * size``.

    ``size`` is the list size handed down (its parent's ``first``); when none is
    literal, the cost assumes the default list size and the calls assume one item.
    """

    fixed: int = 0
    per_item: int = 0
    calls: int = 0
    calls_per_item: int = 0

    def __add__(self, other: _Linear) -> _Linear:
        return _Linear(
            saturate(self.fixed + other.fixed),
            saturate(self.per_item + other.per_item),
            saturate(self.calls + other.calls),
            saturate(self.calls_per_item + other.calls_per_item),
        )


_ZERO: Final = _Linear()


@dataclass(frozen=True, slots=True)
class DeclaredCosts:
    """What each platform's connector declares its reads cost, by method name, and
    which GraphQL object type holds which platform's accounts."""

    by_platform: Mapping[str, Mapping[str, UpstreamCost]] = field(default_factory=dict)
    type_platforms: Mapping[str, str] = field(default_factory=dict)

    def candidates(self, type_name: str, method: str) -> list[UpstreamCost]:
        """The declarations that may serve ``method`` under ``type_name``: its
        platform's, or every platform's when the type names none (the interface)."""
        platform = self.type_platforms.get(type_name)
        platforms = [platform] if platform is not None else list(self.by_platform)
        found = [self.by_platform.get(p, {}).get(method, _ONE_CALL) for p in platforms]
        return found or [_ONE_CALL]


def declared_upstream_costs(
    connectors: Iterable[Connector],
) -> dict[str, Mapping[str, UpstreamCost]]:
    """Platform -> method -> declared cost, asked of started connectors."""
    declared: dict[str, Mapping[str, UpstreamCost]] = {}
    for connector in connectors:
        try:
            declared[connector.platform] = dict(connector.upstream_costs())
        except RuntimeError:
            # It failed to start (logged by the registry; it answers UPSTREAM_UNAVAILABLE
            # without calling): its reads cost nothing upstream.
            declared[connector.platform] = {}
    return declared


def _when(argument: ArgumentNode | None) -> datetime | None:
    """A literal DateTime argument, as the scalar reads it (in its range: no overflow)."""
    if argument is None or not isinstance(argument.value, StringValueNode):
        return None
    try:
        return parse_datetime(argument.value.value)
    except ValueError:
        return None  # the scalar refuses it; nothing will run


def _period_calls(node: FieldNode, costs: list[UpstreamCost]) -> tuple[int, int]:
    """``(upper bound, certain)`` upstream calls of a period field read once."""
    arguments = {a.name.value: a for a in node.arguments or ()}
    start, end = _when(arguments.get("from")), _when(arguments.get("to"))
    if start is not None and end is not None:
        end = min(end, start + ASSUMED_PERIOD)  # longer is refused before any call
        exact = [cost.of_period(start, end) for cost in costs]
        return max(exact), min(exact)
    return max(cost.of_span(ASSUMED_PERIOD) for cost in costs), min(c.calls for c in costs)


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


def _literal_items(node: FieldNode) -> int | None:
    """How many items a literal ``representations`` list asks for (``_entities``)."""
    for argument in node.arguments or ():
        if argument.name.value == "representations" and isinstance(argument.value, ListValueNode):
            return len(argument.value.values) or None
    return None


def _implements_account(parent: Any) -> bool:
    if isinstance(parent, GraphQLInterfaceType):
        return bool(parent.name == "Account")
    return any(interface.name == "Account" for interface in parent.interfaces)


def cost_limit_rule(
    max_cost: int,
    default_list_size: int,
    *,
    declared: DeclaredCosts | None = None,
    max_upstream_calls: int = 0,
) -> type[ValidationRule]:
    """A validation rule class refusing operations that cost more than ``max_cost``,
    or that certainly make more than ``max_upstream_calls`` upstream calls (0: no cap).
    """
    costs = declared or DeclaredCosts()

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
            total = self._sized(self._cost(node.selection_set, root), None)
            cost, calls = total.fixed, total.calls
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
            elif 0 < max_upstream_calls < calls:
                self.report_error(
                    GraphQLError(
                        f"The operation makes at least {calls} upstream calls, above one "
                        f"client's budget of {max_upstream_calls}. Ask for shorter periods "
                        "or fewer aliases.",
                        node,
                        extensions={
                            "code": "QUERY_TOO_COSTLY",
                            "upstreamCalls": calls,
                            "limit": max_upstream_calls,
                        },
                    )
                )

        @staticmethod
        def _sized(linear: _Linear, size: int | None) -> _Linear:
            """The linear value for a list of ``size`` (``None``: not literal): fixed only."""
            return _Linear(
                fixed=saturate(linear.fixed + linear.per_item * (size or default_list_size)),
                calls=saturate(linear.calls + linear.calls_per_item * (size or 1)),
            )

        def _cost(self, selections: SelectionSetNode, parent: Any) -> _Linear:
            total = _ZERO
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
                total = total + part
            return total

        def _fragment_cost(self, name: str) -> _Linear:
            known = self._fragments.get(name)
            if known is not None:
                return known
            fragment = self.context.get_fragment(name)
            if fragment is None or name in self._in_progress:
                return _ZERO  # unknown or cyclic fragments are reported by other rules
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
                return _ZERO
            definition = parent.fields.get(name)
            if definition is None:
                return _ZERO
            first = _first(node) or _literal_items(node)
            is_list = _is_list(definition.type)
            own = _Linear(fixed=1)
            method = PERIOD_FIELDS.get(name)
            if method is not None and _implements_account(parent):
                upper, certain = _period_calls(node, costs.candidates(parent.name, method))
                own = _Linear(fixed=max(1, upper), calls=certain)
            elif name in PARTNER_PERIOD_FIELDS and parent.name == "BusinessPartner":
                each = costs.candidates("Account", PARTNER_PERIOD_FIELDS[name])
                upper, _ = _period_calls(node, each)
                own = _Linear(fixed=saturate(max(1, upper) * default_list_size))
            children = _ZERO
            if node.selection_set is not None:
                target = get_named_type(definition.type)
                # A connection's `first` sizes the lists right under it (edges).
                children = self._sized(
                    self._cost(node.selection_set, target), None if is_list else first
                )
            if not is_list:
                return own + children
            if first is not None:
                return own + _Linear(
                    fixed=saturate(first * children.fixed), calls=saturate(first * children.calls)
                )
            # Sized by the `first` handed down (else the default, or one for calls).
            return own + _Linear(per_item=children.fixed, calls_per_item=children.calls)

    return CostLimit
