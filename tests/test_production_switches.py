"""Production switches: introspection and GraphiQL off, persisted operations only."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.gateway_fixtures import GatewayUnderTest, open_gateway
from tests.toy.sandbox import ToySandbox

ALLOWED = "{ viewer { role } }"


@pytest.fixture
async def locked_down(tmp_path: Path) -> AsyncIterator[GatewayUnderTest]:
    operations = tmp_path / "operations.json"
    operations.write_text(json.dumps({hashlib.sha256(ALLOWED.encode()).hexdigest(): ALLOWED}))
    async with (
        ToySandbox() as sandbox,
        open_gateway(
            sandbox,
            tmp_path,
            server={"introspection": False, "graphiql": False},
            limits={"persisted_operations_file": str(operations), "persisted_only": True},
        ) as running,
    ):
        yield running


async def test_only_persisted_operations_run(locked_down: GatewayUnderTest) -> None:
    digest = hashlib.sha256(ALLOWED.encode()).hexdigest()
    response = await locked_down.http.post(
        locked_down.graphql_url,
        json={"extensions": {"persistedQuery": {"version": 1, "sha256Hash": digest}}},
        headers={"Authorization": f"Bearer {locked_down.tokens['admin']}"},
    )
    assert response.json() == {"data": {"viewer": {"role": "admin"}}}
    status, body = await locked_down.query(ALLOWED)  # the text alone is not enough
    assert status == 400
    assert body["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_REQUIRED"
    response = await locked_down.http.post(
        locked_down.graphql_url,
        json={"documentId": "0" * 64},
        headers={"Authorization": f"Bearer {locked_down.tokens['admin']}"},
    )
    assert response.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    response = await locked_down.http.post(
        locked_down.graphql_url,
        json={"query": "{ me { code } }", "documentId": digest},
        headers={"Authorization": f"Bearer {locked_down.tokens['admin']}"},
    )
    assert response.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_MISMATCH"


async def test_introspection_and_graphiql_can_be_switched_off(tmp_path: Path) -> None:
    async with (
        ToySandbox() as sandbox,
        open_gateway(
            sandbox, tmp_path, server={"introspection": False, "graphiql": False}
        ) as running,
    ):
        status, body = await running.query("{ __schema { types { name } } }")
        assert status == 400
        assert "introspection" in body["errors"][0]["message"].lower()
        page = await running.http.get(running.graphql_url, headers={"Accept": "text/html"})
        assert page.status_code == 404
        status, body = await running.query(ALLOWED)
        assert body == {"data": {"viewer": {"role": "admin"}}}
