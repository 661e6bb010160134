"""The committed SDL files: schema/schema.graphql (public) builds in graphql-core and in
graphql-js, as codegen and linters read it; schema/subgraph.graphql is what
``_service { sdl }`` answers, printed as federation libraries print it."""

from __future__ import annotations

from pathlib import Path

import graphql
import pytest

from gateway.graphql import build_schema
from gateway.plugins import load_plugins
from tests.gateway_fixtures import GatewayUnderTest
from tests.test_http_audit import run_node

ROOT = Path(__file__).resolve().parent.parent
PUBLIC = ROOT / "schema" / "schema.graphql"
SUBGRAPH = ROOT / "schema" / "subgraph.graphql"
FEDERATION_INTERNALS = ("_Any", "_Entity", "_Service", "_entities", "_service")
# The definitions a router takes from the federation spec the @link names.
FEDERATION_2_DEFINITIONS = """
scalar link__Import
scalar FieldSet
directive @link(url: String!, import: [link__Import]) repeatable on SCHEMA
directive @key(fields: FieldSet!, resolvable: Boolean = true) repeatable on OBJECT | INTERFACE
"""


def test_the_committed_subgraph_sdl_is_current() -> None:
    schema = build_schema(load_plugins())
    assert SUBGRAPH.read_text(encoding="utf-8") == schema.subgraph_sdl() + "\n", (
        "schema/subgraph.graphql is stale: run "
        "`brokergraph schema --subgraph --output schema/subgraph.graphql`"
    )


def test_graphql_core_builds_the_public_sdl() -> None:
    built = graphql.build_schema(PUBLIC.read_text(encoding="utf-8"))
    assert built.query_type is not None and built.query_type.name == "Query"
    assert built.mutation_type is not None and built.subscription_type is not None
    assert "Account" in built.type_map
    for name in FEDERATION_INTERNALS:
        assert name not in built.type_map and name not in built.query_type.fields


def test_the_subgraph_sdl_needs_only_the_federation_definitions() -> None:
    sdl = SUBGRAPH.read_text(encoding="utf-8")
    with pytest.raises(TypeError, match="Unknown directive"):
        graphql.build_schema(sdl)
    built = graphql.build_schema(sdl + FEDERATION_2_DEFINITIONS)
    account = built.type_map["Account"]
    assert account.ast_node is not None
    assert [d.name.value for d in account.ast_node.directives or ()] == ["key"]
    for name in FEDERATION_INTERNALS:
        assert name not in sdl


async def test_graphql_js_builds_the_public_sdl() -> None:
    code, out, err = await run_node("build_schema.mjs", str(PUBLIC))
    assert code == 0, err
    assert out.startswith(f"{PUBLIC}: ")


async def test_graphql_js_refuses_what_the_public_sdl_fixes() -> None:
    # The same script fails on the subgraph SDL, so its success above means something.
    code, _, err = await run_node("build_schema.mjs", str(SUBGRAPH))
    assert code == 1
    assert 'Unknown directive "@link"' in err


async def test_service_sdl_is_the_subgraph_sdl(gateway: GatewayUnderTest) -> None:
    status, body = await gateway.query("{ _service { sdl } }")
    assert status == 200, body
    sdl = body["data"]["_service"]["sdl"]
    assert sdl == gateway.schema.subgraph_sdl()
    assert sdl.startswith('schema @link(url: "https://specs.apollo.dev/federation/v2.11"')
    assert '@key(fields: "id")' in sdl
    for name in FEDERATION_INTERNALS:
        assert name not in sdl
    # The router still gets the internals it adds itself: they stay executable.
    status, body = await gateway.query('{ __type(name: "_Entity") { kind } }')
    assert body == {"data": {"__type": {"kind": "UNION"}}}
