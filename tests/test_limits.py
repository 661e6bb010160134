"""Request limits: costly, deep and aliased operations are refused before anything runs."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.config import LimitSettings
from gateway.graphql import build_schema
from gateway.plugins import load_plugins


@pytest.fixture(scope="module")
def schema() -> Any:
    limits = LimitSettings(max_cost=1000, default_list_size=20)
    return build_schema(load_plugins(entry_points=False), limits)


async def cost_error(schema: Any, query: str) -> dict[str, Any] | None:
    result = await schema.execute(query)
    for error in result.errors or ():
        if (error.extensions or {}).get("code") == "QUERY_TOO_COSTLY":
            return dict(error.extensions)
    return None


async def test_a_cheap_query_passes_the_cost_check(schema: Any) -> None:
    assert await cost_error(schema, '{ businessPartner(code: "X") { code name } }') is None


async def test_nested_lists_multiply(schema: Any) -> None:
    query = """{ businessPartners(first: 100) { edges { node {
        accounts { positions { symbol volume } orders { symbol } } } } } }"""
    error = await cost_error(schema, query)
    assert error is not None and error["cost"] > 1000


async def test_first_sizes_the_page(schema: Any) -> None:
    small = "{ businessPartners(first: 2) { edges { node { accounts { externalId } } } } }"
    large = "{ businessPartners(first: 100) { edges { node { accounts { externalId } } } } }"
    assert await cost_error(schema, small) is None
    assert (await cost_error(schema, large)) is not None


async def test_fragments_and_aliases_are_counted(schema: Any) -> None:
    fragment = "fragment F on BusinessPartner { accounts { positions { symbol } } }"
    aliases = " ".join(f'p{i}: businessPartner(code: "{i}") {{ ...F }}' for i in range(5))
    error = await cost_error(schema, f"{{ {aliases} }} {fragment}")
    assert error is not None and error["cost"] == 5 * (1 + 1 + 20 * (1 + 20 * 1))


async def test_introspection_is_free(schema: Any) -> None:
    query = "{ __schema { types { name fields { name type { name ofType { name } } } } } }"
    assert await cost_error(schema, query) is None


async def test_a_flood_of_costly_queries_never_reaches_a_resolver(gateway: Any) -> None:
    limits = gateway.services.settings.limits
    first = limits.max_page_size
    costly = (
        f"{{ businessPartners(first: {first}) {{ edges {{ node {{ accounts {{ "
        "positions { symbol } orders { symbol } "
        'deals(from: "2026-01-01T00:00:00Z", to: "2026-02-01T00:00:00Z") { symbol } '
        "} } } } }"
    )
    calls = sum(gateway.sandbox.calls.values())
    for _ in range(50):
        status, body = await gateway.query(costly)
        assert status == 400, body
        assert body["errors"][0]["extensions"]["code"] == "QUERY_TOO_COSTLY"
    assert sum(gateway.sandbox.calls.values()) == calls
