"""With introspection off the schema stays hidden from everyone but admins.

``_service { sdl }`` (the federation field that prints the whole SDL) is refused
for clients and managers, however it is reached; no error message suggests a name
("Did you mean …?"), neither from validation nor from variables.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.gateway_fixtures import GatewayUnderTest, open_gateway
from tests.toy.sandbox import ToySandbox

SERVICE_QUERIES = (
    "{ _service { sdl } }",
    "{ s: _service { sdl } }",
    "{ ... on Query { _service { sdl } } }",
    "{ ...S } fragment S on Query { _service { sdl } }",
)
MISSPELT = (
    "{ viewer { rol } }",
    "{ viewr { role } }",
    '{ businessPartner(cod: "DEMO-001") { code } }',
    '{ businessPartner(code: "DEMO-001") { ... on BusinesPartner { code } } }',
)
DEPOSIT = "mutation($input: MoneyMovementInput!) { deposit(input: $input) { errors { code } } }"
MISSPELT_INPUT = {"input": {"acountId": "x", "amount": "1", "idempotencyKey": "k" * 16}}


@pytest.fixture(scope="module")
async def hidden(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[GatewayUnderTest]:
    async with (
        ToySandbox() as sandbox,
        open_gateway(
            sandbox, tmp_path_factory.mktemp("hidden"), server={"introspection": False}
        ) as running,
    ):
        yield running


def messages(body: Any) -> list[str]:
    return [error["message"] for error in body.get("errors", [])]


@pytest.mark.parametrize("token", ["client", "manager"])
async def test_service_sdl_is_refused_to_non_admins(hidden: GatewayUnderTest, token: str) -> None:
    for query in SERVICE_QUERIES:
        status, body = await hidden.query(query, token=token)
        assert status == 400, (query, body)
        assert "data" not in body
        codes = {error["extensions"]["code"] for error in body["errors"]}
        assert codes == {"INTROSPECTION_DISABLED"}, (query, body)
        assert "type Query" not in str(body)


async def test_an_admin_still_gets_the_sdl_for_the_router(hidden: GatewayUnderTest) -> None:
    status, body = await hidden.query("{ _service { sdl } }", token="admin")
    assert status == 200, body
    assert "type Query" in body["data"]["_service"]["sdl"]
    status, body = await hidden.query("{ __schema { types { name } } }", token="admin")
    assert status == 400
    assert body["errors"][0]["extensions"]["code"] == "INTROSPECTION_DISABLED"


async def test_no_suggestions_when_introspection_is_off(hidden: GatewayUnderTest) -> None:
    for query in MISSPELT:
        status, body = await hidden.query(query, token="client")
        assert status == 400, body
        assert body["errors"], body
        for error in body["errors"]:
            assert "did you mean" not in error["message"].lower(), error
            assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    status, body = await hidden.query(DEPOSIT, MISSPELT_INPUT, token="client")
    assert status < 500 and body["errors"], body
    for error in body["errors"]:
        assert "did you mean" not in error["message"].lower(), error
        assert error["extensions"]["code"] == "INVALID_INPUT"


async def test_suggestions_stay_when_introspection_is_on(gateway: GatewayUnderTest) -> None:
    """The contrast: the same misspellings are helped where the schema is public."""
    for query in MISSPELT[:3]:
        _status, body = await gateway.query(query, token="client")
        assert any("Did you mean" in message for message in messages(body)), body
    _status, body = await gateway.query(DEPOSIT, MISSPELT_INPUT, token="client")
    assert any("Did you mean" in message for message in messages(body)), body
    status, body = await gateway.query("{ _service { sdl } }", token="client")
    assert status == 200 and "type Query" in body["data"]["_service"]["sdl"]
