"""Input objects built from their GraphQL values by a plan made once per type.

Strawberry turns a mutation's input value into its input class through
``convert_argument``, which for every field of every request works out the field's
GraphQL name, resolves its type and walks a chain of type checks: 75 µs for
``PlaceOrderInput`` (11 fields) on each ``placeOrder``, about a twentieth of the
gateway's CPU for a placement.  Most input fields are scalars or enums, whose values
graphql-core has already coerced; for those Strawberry's conversion returns the value
as it is.

Strawberry's ``from_input`` hook (on ``StrawberryObjectDefinition``: a type builds
itself from its input value) lets :func:`plan_input_types` give each input type of a
schema an :class:`InputPlan` computed once: a scalar or enum field's value is passed
as it is, any other field (a list, a nested input) goes through Strawberry's own
conversion, and the fields without a default are None unless given, as Strawberry
does.  A type with a ``Maybe`` field, or whose ``from_input`` is somebody else's
(strawberry.pydantic's), keeps Strawberry's road: with ``from_input`` set Strawberry
leaves a ``Maybe`` field's null to the type.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING
from typing import Any

import strawberry
from strawberry.relay import GlobalID
from strawberry.scalars import is_scalar
from strawberry.types.arguments import InputContext
from strawberry.types.base import (
    StrawberryList,
    StrawberryMaybe,
    StrawberryObjectDefinition,
    StrawberryOptional,
    StrawberryType,
)
from strawberry.types.enum import StrawberryEnumDefinition, has_enum_definition
from strawberry.types.lazy_type import LazyType

__all__ = ["InputPlan", "plan_input_types"]


class InputPlan:
    """Builds one input type from its GraphQL value (its definition's ``from_input``)."""

    __slots__ = ("_absent", "_fields")

    def __init__(
        self,
        fields: tuple[tuple[str, str, StrawberryType | type | None], ...],
        absent: Mapping[str, None],
    ) -> None:
        #: (GraphQL name, Python name, the type to convert to, None for a leaf)
        self._fields = fields
        #: The fields without a default: None unless the value gives them.
        self._absent = dict(absent)

    def __call__(self, cls: type, value: Mapping[str, Any], context: InputContext) -> Any:
        kwargs: dict[str, Any] = dict(self._absent)
        for name, python_name, type_ in self._fields:
            if name in value:
                given = value[name]
                if type_ is not None:
                    given = context.convert(given, type_, name)
                kwargs[python_name] = given
        return cls(**kwargs)


def plan_input_types(schema: strawberry.Schema) -> int:
    """Give every input type of ``schema`` a plan; returns how many got one."""
    converter = schema.schema_converter
    registry = converter.scalar_registry
    planned = 0
    for concrete in list(converter.type_map.values()):
        definition = concrete.definition
        if not isinstance(definition, StrawberryObjectDefinition) or not definition.is_input:
            continue
        if definition.from_input is not None and not isinstance(definition.from_input, InputPlan):
            continue  # built by its own integration
        fields: list[tuple[str, str, StrawberryType | type | None]] = []
        absent: dict[str, None] = {}
        for field in definition.fields:
            type_ = field.resolve_type(type_definition=definition)
            if _has_maybe(type_):
                break
            assert field.python_name
            name = schema.config.name_converter.from_field(field)
            fields.append((name, field.python_name, None if _is_leaf(type_, registry) else type_))
            if field.default_value is MISSING and field.default_factory is MISSING:
                absent[field.python_name] = None
        else:
            definition.from_input = InputPlan(tuple(fields), absent)
            planned += 1
    return planned


def _has_maybe(type_: object) -> bool:
    while isinstance(type_, StrawberryOptional | StrawberryList):
        if isinstance(type_, StrawberryMaybe):
            return True
        type_ = type_.of_type
    return False


def _is_leaf(type_: object, registry: Mapping[object, Any]) -> bool:
    """Whether Strawberry's conversion returns a value of ``type_`` as it is."""
    while isinstance(type_, StrawberryOptional):
        type_ = type_.of_type
    if isinstance(type_, LazyType):
        type_ = type_.resolve_type()
    if type_ is GlobalID:
        return False  # decoded from its string
    return (
        is_scalar(type_, registry)
        or isinstance(type_, StrawberryEnumDefinition)
        or has_enum_definition(type_)
    )
