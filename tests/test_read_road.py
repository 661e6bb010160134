"""One road for every upstream read: loader → cache (the connector's TTL) → guarded call.

A toy connector that declares TTLs for its history and analytics shows that period
reads are cached under their period; its extra methods show that the guard retries
by a method's read/write/stream mark, never by its name.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar

import pytest
import pytest_asyncio

from gateway import models
from gateway.connectors import (
    Capability,
    Connector,
    Funding,
    MethodKind,
    MoneyMovement,
    family_of,
    method_kind,
    read,
    stream,
    write,
)
from gateway.errors import UpstreamUnavailable
from gateway.graphql.loaders import account_period_prefixes
from gateway.hookspecs import hookimpl
from tests.gateway_fixtures import GatewayUnderTest, account_gid, open_gateway
from tests.toy.connector import ToyConnector
from tests.toy.sandbox import ToySandbox

TTL_SECONDS = 30.0
DEALS = "GET /accounts/{id}/deals"
OPERATIONS = "GET /accounts/{id}/balance-operations"
ACCOUNTS = "GET /accounts"


class CachingToyConnector(ToyConnector):
    """The toy platform, declaring that its history and analytics may be cached."""

    cache_ttl_seconds: ClassVar[Mapping[Capability, float]] = {
        **ToyConnector.cache_ttl_seconds,
        Capability.ACCOUNT_HISTORY: TTL_SECONDS,
        Capability.ACCOUNT_ANALYTICS: TTL_SECONDS,
    }

    @read
    async def fetch_account(self, account_id: str) -> models.Account:
        """A connector-specific read, named unlike ``get_*``: its mark makes it a read."""
        return await self._account(account_id)

    async def get_account_unmarked(self, account_id: str) -> models.Account:
        """Named like a read but unmarked: the guard calls it once, as a write."""
        return await self._account(account_id)


class CachingToyPlugin:
    @hookimpl
    def brokergraph_connectors(self) -> Sequence[type[Connector]]:
        return [CachingToyConnector]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def road(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[GatewayUnderTest]:
    """A gateway over its own toy sandbox, so these call counts are this module's alone."""
    sandbox = ToySandbox()
    await sandbox.start()
    resilience = {"read_retries": 2, "backoff_base_seconds": 0.01, "breaker_failures": 50}
    try:
        async with open_gateway(
            sandbox,
            tmp_path_factory.mktemp("read-road"),
            plugin=CachingToyPlugin(),
            resilience=resilience,
        ) as running:
            yield running
    finally:
        await sandbox.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def gateway(road: GatewayUnderTest) -> GatewayUnderTest:
    """The module's gateway with a fresh sandbox, empty counters and an empty cache."""
    road.sandbox.reset()
    await road.clear_cache()
    return road


def period(days: int = 1) -> dict[str, str]:
    now = datetime.now(UTC).replace(microsecond=0)
    return {
        "from": (now - timedelta(days=days)).isoformat(),
        "to": (now + timedelta(days=1)).isoformat(),
    }


async def data_of(gateway: GatewayUnderTest, query: str, variables: Mapping[str, Any]) -> Any:
    status, body = await gateway.query(query, variables)
    assert status == 200 and "errors" not in body, body
    return body["data"]


HISTORY = """
query($id: ID!, $from: DateTime!, $to: DateTime!) {
  account(id: $id) {
    deals(from: $from, to: $to) { externalId }
    again: deals(from: $from, to: $to) { externalId }
    balanceOperations(from: $from, to: $to) { externalId amount { amount } }
    analytics(from: $from, to: $to) { wins losses realizedPnl { amount } }
  }
}"""


async def test_history_and_analytics_are_read_once_within_the_ttl(
    gateway: GatewayUnderTest,
) -> None:
    calls = gateway.sandbox.calls
    variables = {"id": account_gid("1001"), **period(days=30)}
    first = await data_of(gateway, HISTORY, variables)
    assert first["account"]["deals"] == first["account"]["again"]
    # One deals read for both aliases, one inside the toy's analytics (it computes
    # them from its deals): the operation asked the platform once per question.
    assert calls[DEALS] == 2 and calls[OPERATIONS] == 1
    counted = dict(calls)

    second = await data_of(gateway, HISTORY, variables)
    assert second == first
    assert dict(calls) == counted, "within the TTL the second request costs no call"

    await data_of(gateway, HISTORY, {**variables, **period(days=60)})
    assert calls[DEALS] == 4, "another period is another read"


DEPOSIT = """
mutation($input: MoneyMovementInput!) {
  deposit(input: $input) { operation { externalId } errors { code } }
}"""
OPERATIONS_QUERY = """
query($id: ID!, $from: DateTime!, $to: DateTime!) {
  account(id: $id) { balanceOperations(from: $from, to: $to) { externalId } }
}"""


async def test_a_deposit_shows_in_the_balance_operations_at_once(
    gateway: GatewayUnderTest,
) -> None:
    variables = {"id": account_gid("1001"), **period()}
    before = await data_of(gateway, OPERATIONS_QUERY, variables)
    movement = {
        "accountId": account_gid("1001"),
        "amount": "7",
        "idempotencyKey": str(uuid.uuid4()),
    }
    deposited = await data_of(gateway, DEPOSIT, {"input": movement})
    operation = deposited["deposit"]["operation"]
    after = await data_of(gateway, OPERATIONS_QUERY, variables)
    assert after["account"]["balanceOperations"] == [
        *before["account"]["balanceOperations"],
        operation,
    ]


async def test_the_period_prefixes_cover_every_cached_period_read(
    gateway: GatewayUnderTest,
) -> None:
    variables = {"id": account_gid("1001"), **period()}
    await data_of(gateway, HISTORY, variables)
    cache = gateway.services.cache
    removed = [await cache.delete_prefix(p) for p in account_period_prefixes("toy", "1001")]
    assert removed == [1, 1, 1]  # deals, balance operations, analytics of the one period
    calls = gateway.sandbox.calls
    before = calls[OPERATIONS]
    await data_of(gateway, HISTORY, variables)
    assert calls[OPERATIONS] == before + 1, "read again once the prefix was deleted"


# --------------------------------------------------------------------------- marks


def family_methods() -> list[tuple[type, str]]:
    return [
        (family_of(capability), name)
        for capability in Capability
        for name, value in vars(family_of(capability)).items()
        if inspect.isfunction(value)
    ]


@pytest.mark.parametrize(
    ("family", "name"), family_methods(), ids=lambda v: getattr(v, "__name__", v)
)
def test_every_family_method_has_exactly_one_mark(family: type, name: str) -> None:
    kind = method_kind(family, name)
    function = vars(family)[name]
    # A stream returns an async iterator without awaiting; reads and writes are awaited.
    assert (kind is MethodKind.STREAM) == (not inspect.iscoroutinefunction(function))
    # A connector's override inherits the family's mark.
    implementations = [c for c in (ToyConnector, CachingToyConnector) if issubclass(c, family)]
    for connector in implementations:
        assert method_kind(connector, name) is kind


def test_a_method_cannot_carry_two_marks() -> None:
    async def deposit() -> None: ...

    async def events() -> None: ...

    with pytest.raises(TypeError, match="marked both"):
        read(write(deposit))
    assert stream(stream(events)) is events  # the same mark twice is one mark


def test_an_override_cannot_change_the_family_mark() -> None:
    class Rewriting(ToyConnector):
        @read
        async def deposit(self, movement: Any) -> Any:
            raise AssertionError("never called")

    with pytest.raises(TypeError, match="marks it WRITE"):
        method_kind(Rewriting, "deposit")


async def test_the_mark_decides_retries_not_the_name(gateway: GatewayUnderTest) -> None:
    registry = gateway.services.registry
    toy = registry.require("toy", Capability.ACCOUNT_READS, CachingToyConnector)
    sandbox = gateway.sandbox

    sandbox.fail_next_n = 2
    account = await toy.fetch_account("1001")  # marked read: two failures retried
    assert account.id == "1001" and sandbox.calls[ACCOUNTS] == 3

    sandbox.fail_next_n = 1
    with pytest.raises(UpstreamUnavailable):
        await toy.get_account_unmarked("1001")  # unmarked: once, whatever its name
    assert sandbox.calls[ACCOUNTS] == 4


async def test_a_write_is_never_retried(gateway: GatewayUnderTest) -> None:
    assert method_kind(CachingToyConnector, "deposit") is MethodKind.WRITE
    funding = gateway.services.registry.require("toy", Capability.FUNDING, Funding)
    movement = MoneyMovement(
        account_id="1001", amount=Decimal(3), idempotency_key=str(uuid.uuid4())
    )
    gateway.sandbox.fail_next_n = 1
    with pytest.raises(UpstreamUnavailable):
        await funding.deposit(movement)
    posts = {k: v for k, v in gateway.sandbox.calls.items() if k.startswith("POST")}
    assert posts == {"POST /accounts/{id}/balance": 1}
