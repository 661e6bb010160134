"""Upstream guards: breaker, rate limit, read retries, timeouts — and fault recovery
against a real sandbox (5xx bursts, latency spikes, a sandbox killed and restarted)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

import tests.toy.plugin
from gateway.auth import Role
from gateway.config import load_settings
from gateway.errors import RateLimited
from gateway.hookspecs import hookimpl
from gateway.plugins import load_plugins
from gateway.resilience import BreakerState, CircuitBreaker, ResiliencePolicy, TokenBucket
from gateway.runner import running_gateway
from tests.gateway_fixtures import TEST_JWT_SECRET, GatewayUnderTest, open_gateway
from tests.toy.connector import ToyConnector
from tests.toy.sandbox import ToySandbox


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_half_opens_and_closes() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failures=3, reset_seconds=10, clock=clock)
    for _ in range(3):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state is BreakerState.OPEN and not breaker.allow()
    clock.now += 10
    assert breaker.allow()  # the one trial call
    assert not breaker.allow()  # no second trial while the first runs
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    clock.now += 10
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED and breaker.allow()


def test_success_resets_the_failure_count() -> None:
    breaker = CircuitBreaker(failures=2, reset_seconds=10, clock=FakeClock())
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED


async def test_token_bucket_refuses_beyond_the_wait_budget() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1, burst=2, clock=clock)
    await bucket.acquire(max_wait=0)
    await bucket.acquire(max_wait=0)
    with pytest.raises(RateLimited) as refused:
        await bucket.acquire(max_wait=0.5)
    assert refused.value.retry_after == 1.0
    clock.now += 1
    await bucket.acquire(max_wait=0)


def test_policy_validation() -> None:
    assert ResiliencePolicy.from_mapping({"read_retries": 3}).read_retries == 3
    with pytest.raises(ValueError, match="unknown"):
        ResiliencePolicy.from_mapping({"retries": 3})
    with pytest.raises(ValueError, match="non-negative"):
        ResiliencePolicy.from_mapping({"timeout_seconds": -1})


# -- against a real sandbox ------------------------------------------------------------

ACCOUNT_QUERY = "query($id: ID!) { account(id: $id) { balance { amount } } }"
DEPOSIT = """mutation($input: MoneyMovementInput!) { deposit(input: $input) {
  operation { externalId } errors { code } } }"""


@pytest.fixture
async def guarded(tmp_path: Path) -> AsyncIterator[GatewayUnderTest]:
    """A gateway with tight guards on its own sandbox, so faults don't leak into others."""
    sandbox = ToySandbox()
    await sandbox.start()
    try:
        async with open_gateway(
            sandbox,
            tmp_path,
            resilience={
                "timeout_seconds": 0.5,
                "read_retries": 2,
                "backoff_base_seconds": 0.01,
                "breaker_failures": 3,
                "breaker_reset_seconds": 0.5,
            },
        ) as running:
            yield running
    finally:
        await sandbox.stop()


async def read_balance(gateway: GatewayUnderTest) -> tuple[Any, Any]:
    await gateway.clear_cache()
    _, body = await gateway.query(ACCOUNT_QUERY, {"id": gateway.account_id("1001")})
    return body.get("data"), body.get("errors")


async def test_a_5xx_burst_on_reads_is_absorbed_by_retries(guarded: GatewayUnderTest) -> None:
    guarded.sandbox.fail_next_n = 2
    data, errors = await read_balance(guarded)
    assert errors is None and data["account"]["balance"]["amount"]
    assert guarded.sandbox.calls["GET /accounts"] == 3  # two failures, one success


async def test_writes_are_not_retried_and_a_failed_one_can_be_retried_with_its_key(
    guarded: GatewayUnderTest,
) -> None:
    data, _ = await read_balance(guarded)
    before = Decimal(data["account"]["balance"]["amount"])
    key = f"resilience-{uuid.uuid4()}"
    variables = {
        "input": {"accountId": guarded.account_id("1001"), "amount": "5", "idempotencyKey": key}
    }
    guarded.sandbox.fail_next_n = 1
    _, body = await guarded.query(DEPOSIT, variables)
    assert body["data"]["deposit"]["errors"] == [{"code": "UPSTREAM_UNAVAILABLE"}]
    posts = sum(v for k, v in guarded.sandbox.calls.items() if k.startswith("POST"))
    assert posts == 1  # not retried by the gateway
    _, body = await guarded.query(DEPOSIT, variables)  # the key was released
    assert body["data"]["deposit"]["errors"] == []
    data, _ = await read_balance(guarded)
    assert Decimal(data["account"]["balance"]["amount"]) == before + 5


async def test_the_breaker_opens_fails_fast_shows_in_readyz_and_recovers(
    guarded: GatewayUnderTest,
) -> None:
    sandbox = guarded.sandbox
    sandbox.fail_next_n = 1000
    for _ in range(2):  # 3 attempts each: the breaker opens after 3 failures
        _, errors = await read_balance(guarded)
        assert errors[0]["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
    calls = sum(sandbox.calls.values())
    _, errors = await read_balance(guarded)
    assert errors[0]["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
    assert "circuit open" in errors[0]["message"]
    assert sum(sandbox.calls.values()) == calls  # failed fast: nothing sent
    ready = await guarded.http.get(f"{guarded.url}/readyz")
    assert ready.status_code == 503
    assert ready.json()["connectors"]["toy"]["status"] == "DOWN"
    sandbox.fail_next_n = 0
    await asyncio.sleep(0.6)  # breaker_reset_seconds
    data, errors = await read_balance(guarded)
    assert errors is None and data["account"]
    assert (await guarded.http.get(f"{guarded.url}/readyz")).status_code == 200


async def test_a_latency_spike_times_out_then_recovers(guarded: GatewayUnderTest) -> None:
    guarded.sandbox.latency_seconds = 2.0
    _, errors = await read_balance(guarded)
    assert errors[0]["extensions"]["code"] == "UPSTREAM_TIMEOUT"
    guarded.sandbox.latency_seconds = 0
    await asyncio.sleep(0.6)
    data, errors = await read_balance(guarded)
    assert errors is None and data["account"]


async def test_a_sandbox_killed_and_restarted_is_recovered_by_itself(
    guarded: GatewayUnderTest,
) -> None:
    sandbox = guarded.sandbox
    port = int(sandbox.url.rsplit(":", 1)[1].split("/")[0])
    await sandbox.stop()
    _, errors = await read_balance(guarded)
    assert errors[0]["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
    status, body = await guarded.query("{ viewer { role } }")
    assert body == {"data": {"viewer": {"role": "admin"}}}  # the gateway keeps serving
    await sandbox.start(port=port)
    await asyncio.sleep(0.6)
    data, errors = await read_balance(guarded)
    assert errors is None and data["account"]


class Toy2Connector(ToyConnector):
    name = "toy2"
    platform = "toy2"


class Toy2Sandbox(ToySandbox):
    name = "toy2"


class Toy2Plugin:
    @hookimpl
    def brokergraph_connectors(self) -> list[type[ToyConnector]]:
        return [Toy2Connector]


async def test_one_platform_down_still_answers_the_others(tmp_path: Path) -> None:
    """Partial results: the failed platform's items are null and carry UPSTREAM_UNAVAILABLE."""
    toy, toy2 = ToySandbox(), Toy2Sandbox()
    await toy.start()
    await toy2.start()
    plugins = load_plugins(entry_points=False, extra=[tests.toy.plugin, Toy2Plugin()], strict=True)
    settings = load_settings(
        environ={},
        overrides={
            "auth": {"jwt_secret": TEST_JWT_SECRET},
            "store": {"url": f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"},
            "connectors": {
                "toy": dict(toy.connector_settings()),
                "toy2": dict(toy2.connector_settings()),
            },
            "resilience": {"read_retries": 0, "timeout_seconds": 2},
        },
    )
    try:
        async with running_gateway(settings, plugins, host="127.0.0.1", port=0) as running:
            store = running.services.store
            await store.upsert_partner("P-1", broker="b")
            await store.link("P-1", "toy", "account", "1001")
            await store.link("P-1", "toy2", "account", "2001")
            token = running.services.authenticator.issue(subject="t", role=Role.ADMIN)
            await toy2.stop()
            async with httpx.AsyncClient(timeout=10) as http:
                response = await http.post(
                    running.graphql_url,
                    json={
                        "query": '{ businessPartner(code: "P-1") { code '
                        "accounts { platform externalId balance { amount } } } }"
                    },
                    headers={"Authorization": f"Bearer {token}"},
                )
            body = response.json()
            accounts = body["data"]["businessPartner"]["accounts"]
            assert {"platform": "toy", "externalId": "1001"}.items() <= next(
                a for a in accounts if a
            ).items()
            assert None in accounts
            (error,) = body["errors"]
            assert error["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
            assert error["path"][:2] == ["businessPartner", "accounts"]
            assert accounts[error["path"][2]] is None
    finally:
        await toy.stop()
