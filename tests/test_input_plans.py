"""Input plans build every input type of the schema as Strawberry's conversion does.

For each input object of the schema with every installed plugin, values as a client
would send them (every field given; only the required ones; every nullable one null)
are coerced by graphql-core, as it does for a request, then built twice: through the
type's plan and through Strawberry's own conversion (the plan taken off).  A field the
plan passed through that needed converting, a default it lost or a None it forgot
shows as a difference.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
import strawberry
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLScalarType,
    Undefined,
    coerce_input_value,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.types.arguments import convert_argument
from strawberry.types.base import StrawberryObjectDefinition

from gateway.graphql import build_schema
from gateway.graphql.input_plans import InputPlan, plan_input_types
from gateway.graphql.scalars import SCALAR_MAP
from gateway.graphql.schema import BrokerGraphSchema
from gateway.models import OrderSide
from gateway.plugins import load_plugins

#: A value of each scalar as a client sends it in variables.
SCALAR_SAMPLES: dict[str, object] = {
    "String": "text",
    "ID": "Q:297999",
    "Int": 7,
    "Float": 1.5,
    "Boolean": True,
    "Decimal": "1234.50",
    "DateTime": "2026-12-03T10:00:00+00:00",
    "Date": "2026-12-03",
    "JSON": {"key": ["value", 1]},
}

Shape = Callable[[GraphQLInputObjectType], dict[str, object]]


@pytest.fixture(scope="module")
def schema() -> BrokerGraphSchema:
    return build_schema(load_plugins())


def input_definitions(schema: BrokerGraphSchema) -> Iterator[StrawberryObjectDefinition]:
    for concrete in schema.schema_converter.type_map.values():
        definition = concrete.definition
        if isinstance(definition, StrawberryObjectDefinition) and definition.is_input:
            yield definition


def graphql_input(
    schema: BrokerGraphSchema, definition: StrawberryObjectDefinition
) -> GraphQLInputObjectType:
    implementation = schema.schema_converter.type_map[definition.name].implementation
    assert isinstance(implementation, GraphQLInputObjectType)
    return implementation


def sample(type_: GraphQLInputType, shape: Shape) -> object:
    """A value of ``type_`` as JSON variables carry it (nested inputs in ``shape``)."""
    if isinstance(type_, GraphQLNonNull):
        return sample(type_.of_type, shape)
    if isinstance(type_, GraphQLList):
        return [sample(type_.of_type, shape), sample(type_.of_type, shape)]
    if isinstance(type_, GraphQLEnumType):
        return next(iter(type_.values))
    if isinstance(type_, GraphQLScalarType):
        if type_.name not in SCALAR_SAMPLES:
            pytest.fail(f"no sample value for scalar {type_.name}: add one to SCALAR_SAMPLES")
        return SCALAR_SAMPLES[type_.name]
    assert isinstance(type_, GraphQLInputObjectType)
    return shape(type_)


def every_field(type_: GraphQLInputObjectType) -> dict[str, object]:
    return {name: sample(field.type, every_field) for name, field in type_.fields.items()}


def required_only(type_: GraphQLInputObjectType) -> dict[str, object]:
    return {
        name: sample(field.type, required_only)
        for name, field in type_.fields.items()
        if isinstance(field.type, GraphQLNonNull) and field.default_value is Undefined
    }


def nullable_null(type_: GraphQLInputObjectType) -> dict[str, object]:
    return {
        name: sample(field.type, nullable_null) if isinstance(field.type, GraphQLNonNull) else None
        for name, field in type_.fields.items()
    }


def built_both_ways(
    schema: BrokerGraphSchema, definition: StrawberryObjectDefinition, value: object
) -> tuple[Any, Any]:
    implementation = graphql_input(schema, definition)
    coerced = coerce_input_value(value, implementation)
    assert coerced is not Undefined, f"an invalid sample of {definition.name}: {value}"
    registry, config = schema.schema_converter.scalar_registry, schema.config
    planned = convert_argument(coerced, definition.origin, registry, config)
    plan, definition.from_input = definition.from_input, None
    try:
        generic = convert_argument(coerced, definition.origin, registry, config)
    finally:
        definition.from_input = plan
    return planned, generic


def test_every_input_type_has_a_plan(schema: BrokerGraphSchema) -> None:
    definitions = list(input_definitions(schema))
    names = {d.name for d in definitions}
    assert {"PlaceOrderInput", "MoneyMovementInput", "CancelOrderInput"} <= names
    unplanned = [d.name for d in definitions if not isinstance(d.from_input, InputPlan)]
    assert unplanned == []


@pytest.mark.parametrize("shape", [every_field, required_only, nullable_null])
def test_plans_build_what_strawberry_builds(schema: BrokerGraphSchema, shape: Shape) -> None:
    compared = 0
    for definition in input_definitions(schema):
        implementation = graphql_input(schema, definition)
        planned, generic = built_both_ways(schema, definition, shape(implementation))
        assert type(planned) is type(generic)
        assert planned == generic, definition.name
        compared += 1
    assert compared >= 35


def test_a_nested_input_is_converted_not_passed_through(schema: BrokerGraphSchema) -> None:
    nested = [
        (definition, name)
        for definition in input_definitions(schema)
        for name, field in graphql_input(schema, definition).fields.items()
        if isinstance(_named(field.type), GraphQLInputObjectType)
    ]
    assert nested, "no input object holds another: this test checks nothing"
    for definition, name in nested:
        implementation = graphql_input(schema, definition)
        planned, _ = built_both_ways(schema, definition, every_field(implementation))
        graphql_name = schema.config.name_converter.from_field
        python_name = next(f.python_name for f in definition.fields if graphql_name(f) == name)
        held = getattr(planned, python_name)
        inner = held[0] if isinstance(held, list) else held
        assert not isinstance(inner, dict), f"{definition.name}.{name} stayed a dict"


def _named(type_: GraphQLInputType) -> GraphQLInputType:
    while isinstance(type_, GraphQLNonNull | GraphQLList):
        type_ = type_.of_type
    return type_


@strawberry.input
class Leg:
    symbol: str
    ratio: Decimal = Decimal(1)


@strawberry.input
class Toy:
    note: str | None  # nullable without a default: None when omitted, as Strawberry does
    legs: list[Leg]
    side: OrderSide = OrderSide.BUY


@strawberry.type
class ToyQuery:
    @strawberry.field
    def echo(self, input: Toy) -> str:
        return repr(input)


def test_a_planned_type_through_execution() -> None:
    toy = strawberry.Schema(query=ToyQuery, config=StrawberryConfig(scalar_map=SCALAR_MAP))
    query = '{ echo(input: {legs: [{symbol: "ES", ratio: "2.5"}, {symbol: "NQ"}]}) }'
    generic = toy.execute_sync(query)
    assert plan_input_types(toy) == 2
    planned = toy.execute_sync(query)
    assert generic.errors is None and planned.errors is None
    assert planned.data == generic.data
    assert planned.data == {
        "echo": "Toy(note=None, legs=[Leg(symbol='ES', ratio=Decimal('2.5')), "
        "Leg(symbol='NQ', ratio=Decimal('1'))], side=<OrderSide.BUY: 'BUY'>)"
    }
