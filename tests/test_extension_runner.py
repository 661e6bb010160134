"""The schema's prepared extension runner calls the same hooks, in the same order, as
Strawberry's own, and works each combination of extension classes out only once."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import strawberry
from strawberry.extensions import SchemaExtension

from gateway.graphql.extension_runner import PreparedExtensionsRunner
from gateway.graphql.schema import BrokerGraphSchema

EVENTS: list[str] = []


@strawberry.type
class Query:
    @strawberry.field
    def hello(self) -> str:
        EVENTS.append("resolve")
        return "hi"


class EveryKind(SchemaExtension):
    """One hook of each kind Strawberry accepts."""

    def on_operation(self) -> Iterator[None]:
        EVENTS.append("a operation in")
        yield
        EVENTS.append("a operation out")

    async def on_validate(self) -> AsyncIterator[None]:
        EVENTS.append("a validate in")
        yield
        EVENTS.append("a validate out")

    def on_parse(self) -> None:  # type: ignore[override]
        EVENTS.append("a parse")

    async def on_execute(self) -> None:  # type: ignore[override]
        EVENTS.append("a execute")


class Generators(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        EVENTS.append("b operation in")
        yield
        EVENTS.append("b operation out")

    def on_execute(self) -> Iterator[None]:
        EVENTS.append("b execute in")
        yield
        EVENTS.append("b execute out")


class SyncOnly(SchemaExtension):
    def on_parse(self) -> Iterator[None]:
        EVENTS.append("c parse in")
        yield
        EVENTS.append("c parse out")


async def run(schema: strawberry.Schema) -> list[str]:
    EVENTS.clear()
    result = await schema.execute("{ hello }")
    assert result.errors is None and result.data == {"hello": "hi"}
    return list(EVENTS)


async def test_hooks_run_as_strawberrys_runner_runs_them() -> None:
    extensions = [EveryKind, Generators, SyncOnly]
    ours = BrokerGraphSchema(query=Query, extensions=extensions)
    theirs = strawberry.federation.Schema(query=Query, extensions=extensions)

    expected = await run(theirs)
    assert "a validate out" in expected and "c parse out" in expected  # every hook ran
    assert await run(ours) == expected
    assert await run(ours) == expected


async def test_a_combination_of_classes_is_prepared_once() -> None:
    schema = BrokerGraphSchema(query=Query, extensions=[Generators, SyncOnly])
    for _ in range(3):
        await run(schema)
    assert len(schema._hook_plans) == 1
    runner = schema.create_extensions_runner(None, schema.get_extensions())  # type: ignore[arg-type]
    assert isinstance(runner, PreparedExtensionsRunner)
    # Another set of extensions (observability adds one after start-up) gets its own plan.
    schema.extensions = (*schema.extensions, EveryKind)
    await run(schema)
    assert len(schema._hook_plans) == 2


def test_sync_execution_refuses_an_async_hook_like_strawberry() -> None:
    ours = BrokerGraphSchema(query=Query, extensions=[Generators, SyncOnly])
    theirs = strawberry.federation.Schema(query=Query, extensions=[Generators, SyncOnly])
    EVENTS.clear()
    assert theirs.execute_sync("{ hello }").data == {"hello": "hi"}
    expected = list(EVENTS)
    EVENTS.clear()
    assert ours.execute_sync("{ hello }").data == {"hello": "hi"}
    assert expected == EVENTS

    # Strawberry answers an async hook in a sync execution with an error, after the
    # hooks before it ran; so do we.
    outcomes = []
    for schema in (
        strawberry.federation.Schema(query=Query, extensions=[Generators, EveryKind]),
        BrokerGraphSchema(query=Query, extensions=[Generators, EveryKind]),
    ):
        EVENTS.clear()
        result = schema.execute_sync("{ hello }")
        assert result.data is None and result.errors is not None
        assert "EveryKind" in result.errors[0].message
        assert result.errors[0].message.endswith(".on_validate failed to complete synchronously.")
        outcomes.append(list(EVENTS))
    assert outcomes[0] == outcomes[1] == ["b operation in", "a operation in", "a parse"]
