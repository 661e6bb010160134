"""Unexpected exceptions are masked with an error id; domain errors keep their codes."""

from __future__ import annotations

import logging

import pytest
import strawberry

from gateway.errors import InsufficientFunds
from gateway.graphql import build_schema
from gateway.hookspecs import hookimpl
from gateway.plugins import load_plugins


@strawberry.type
class CrashingQuery:
    @strawberry.field
    def crash(self) -> int:
        raise RuntimeError("password=hunter2 leaked from the driver")

    @strawberry.field
    def broke(self) -> int:
        raise InsufficientFunds("free funds are too low", details={"platform": "toy"})


class CrashPlugin:
    @hookimpl
    def brokergraph_query_fields(self) -> list[type]:
        return [CrashingQuery]


@pytest.fixture(scope="module")
def schema() -> object:
    return build_schema(load_plugins(entry_points=False, extra=[CrashPlugin()]))


async def test_unexpected_errors_are_masked_and_logged_with_an_id(
    schema: object, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="gateway.errors"):
        result = await schema.execute("{ crash }")  # type: ignore[attr-defined]
    (error,) = result.errors
    assert error.message == "Internal error"
    assert error.extensions["code"] == "INTERNAL"
    error_id = error.extensions["errorId"]
    assert "hunter2" not in str(error.formatted)
    (record,) = [r for r in caplog.records if error_id in r.getMessage()]
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError


async def test_domain_errors_keep_their_code_and_details(schema: object) -> None:
    result = await schema.execute("{ broke }")  # type: ignore[attr-defined]
    (error,) = result.errors
    assert error.message == "free funds are too low"
    assert error.extensions == {"code": "INSUFFICIENT_FUNDS", "details": {"platform": "toy"}}


async def test_validation_errors_are_not_masked(schema: object) -> None:
    result = await schema.execute("{ nothingHere }")  # type: ignore[attr-defined]
    assert "nothingHere" in result.errors[0].message


def test_duplicate_root_fields_are_a_contract_error() -> None:
    from gateway.plugins import PluginContractError

    @strawberry.type
    class Clash:
        @strawberry.field
        def viewer(self) -> int:
            return 1

    class ClashPlugin:
        @hookimpl
        def brokergraph_query_fields(self) -> list[type]:
            return [Clash]

    with pytest.raises(PluginContractError, match=r"Query\.viewer is defined by both"):
        build_schema(load_plugins(entry_points=False, extra=[ClashPlugin()]))
