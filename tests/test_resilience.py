"""Upstream guards: breaker, rate limit, read retries, timeouts — and fault recovery
against a real sandbox (5xx bursts, latency spikes, a sandbox killed and restarted)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

import tests.toy.plugin
from gateway.auth import JwtAuthenticator, JwtSettings, Role
from gateway.config import load_settings
from gateway.errors import RateLimited
from gateway.graphql.ids import encode_id
from gateway.hookspecs import hookimpl
from gateway.plugins import load_plugins
from gateway.resilience import (
    BreakerState,
    CircuitBreaker,
    ResiliencePolicy,
    TokenBucket,
    Verdict,
)
from gateway.runner import running_gateway
from tests.gateway_fixtures import TEST_JWT_SECRET, GatewayUnderTest, open_gateway
from tests.toy.connector import ToyConnector
from tests.toy.sandbox import ToySandbox

ROOT = Path(__file__).resolve().parent.parent


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_half_opens_and_closes() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failures=3, reset_seconds=10, clock=clock)
    for _ in range(3):
        permit = breaker.allow()
        assert permit
        breaker.settle(permit, Verdict.FAILURE)
    assert breaker.state is BreakerState.OPEN and not breaker.allow()
    clock.now += 10
    trial = breaker.allow()
    assert trial  # the one trial call
    assert not breaker.allow()  # no second trial while the first runs
    breaker.settle(trial, Verdict.FAILURE)
    assert breaker.state is BreakerState.OPEN
    clock.now += 10
    trial = breaker.allow()
    assert trial
    breaker.settle(trial, Verdict.SUCCESS)
    # mypy keeps the OPEN narrowing from the assert above across settle().
    assert breaker.state is BreakerState.CLOSED and breaker.allow()  # type: ignore[comparison-overlap]


def test_success_resets_the_failure_count() -> None:
    breaker = CircuitBreaker(failures=2, reset_seconds=10, clock=FakeClock())
    for outcome in (Verdict.FAILURE, Verdict.SUCCESS, Verdict.FAILURE):
        permit = breaker.allow()
        assert permit
        breaker.settle(permit, outcome)
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
    async with (
        ToySandbox() as sandbox,
        open_gateway(
            sandbox,
            tmp_path,
            resilience={
                "timeout_seconds": 0.5,
                "read_retries": 2,
                "backoff_base_seconds": 0.01,
                "breaker_failures": 3,
                "breaker_reset_seconds": 0.5,
            },
        ) as running,
    ):
        yield running


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


async def test_the_breaker_opens_fails_fast_shows_in_upstreamz_and_recovers(
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
    upstreams = await guarded.http.get(f"{guarded.url}/upstreamz")
    assert upstreams.status_code == 503
    assert upstreams.json()["connectors"]["toy"]["status"] == "DOWN"
    # The replica itself can still serve: readiness never reflects a vendor.
    assert (await guarded.http.get(f"{guarded.url}/readyz")).status_code == 200
    sandbox.fail_next_n = 0
    await asyncio.sleep(0.6)  # breaker_reset_seconds
    data, errors = await read_balance(guarded)
    assert errors is None and data["account"]
    assert (await guarded.http.get(f"{guarded.url}/upstreamz")).status_code == 200


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
    try:
        await toy.start()
        await toy2.start()
        plugins = load_plugins(
            entry_points=False, extra=[tests.toy.plugin, Toy2Plugin()], strict=True
        )
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
        await toy2.stop()  # stopped above unless the test failed first; stop() is idempotent
        await toy.stop()


async def test_a_crash_after_the_upstream_call_never_moves_money_twice(tmp_path: Path) -> None:
    """The gateway process is killed while the platform has applied a deposit but not yet
    answered. A new gateway on the same store re-drives the stale claim with the same
    key: the platform dedupes it, the client gets the first result, money moved once."""
    sandbox = ToySandbox()
    await sandbox.start()
    key = f"crash-{uuid.uuid4()}"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.crashable_gateway",
        sandbox.url,
        str(tmp_path),
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        url = (await asyncio.wait_for(process.stdout.readline(), 60)).decode().strip()
        token = JwtAuthenticator(JwtSettings(secret=TEST_JWT_SECRET)).issue(
            subject="crash-test", role=Role.ADMIN
        )
        account = encode_id("Account", "toy", "1001")
        variables = {"input": {"accountId": account, "amount": "25", "idempotencyKey": key}}
        before = sandbox.state.accounts["1001"].balance
        sandbox.respond_delay_seconds = 30  # applied upstream, answer held back
        async with httpx.AsyncClient(timeout=60) as http:
            in_flight = asyncio.create_task(
                http.post(
                    f"{url}/graphql",
                    json={"query": DEPOSIT, "variables": variables},
                    headers={"Authorization": f"Bearer {token}"},
                )
            )
            for _ in range(6000):  # until the sandbox has applied the deposit
                # (its balance, not its call count: a call is counted on arrival,
                # before its body is read and the deposit applied)
                if sandbox.state.accounts["1001"].balance != before:
                    break
                await asyncio.sleep(0.01)
            process.kill()  # the crash: no store write after the upstream call
            await process.wait()
            with contextlib.suppress(httpx.HTTPError):
                await in_flight
        sandbox.respond_delay_seconds = 0
        assert sandbox.state.accounts["1001"].balance == before + 25
        # Within the lease (however slowly this machine restarts): the outcome is unknown.
        async with open_gateway(
            sandbox,
            tmp_path,
            resilience={"read_retries": 0},
            limits={"idempotency_lease_seconds": 600},
        ) as second:
            _, body = await second.query(DEPOSIT, variables)
            assert body["data"]["deposit"]["errors"] == [{"code": "IDEMPOTENCY_CONFLICT"}]
        await asyncio.sleep(1.2)
        # Past the lease: the stale claim is re-driven with the same key.
        async with open_gateway(
            sandbox,
            tmp_path,
            resilience={"read_retries": 0},
            limits={"idempotency_lease_seconds": 1},
        ) as third:
            _, body = await third.query(DEPOSIT, variables)
            assert body["data"]["deposit"]["errors"] == [], body
            assert sandbox.state.accounts["1001"].balance == before + 25  # once, not twice
            _, again = await third.query(DEPOSIT, variables)  # from now on it replays
            assert again["data"]["deposit"]["operation"] == body["data"]["deposit"]["operation"]
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await sandbox.stop()
