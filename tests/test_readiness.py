"""/readyz means "this replica can serve"; upstream health comes from a background checker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.gateway_fixtures import GatewayUnderTest, open_gateway
from tests.services import POSTGRES_ADMIN_DSN
from tests.toy.sandbox import ToySandbox

HEALTH = "{ connectors { name health { status detail checkedAt ageSeconds } } }"


@pytest.fixture
async def checked(tmp_path: Path) -> AsyncIterator[GatewayUnderTest]:
    """A gateway whose checker runs every 0.2 s, on its own sandbox."""
    async with (
        ToySandbox() as sandbox,
        open_gateway(
            sandbox,
            tmp_path,
            cluster={"upstream_health_seconds": 0.2},
            resilience={"read_retries": 0, "timeout_seconds": 1},
        ) as running,
    ):
        yield running


async def get(gateway: GatewayUnderTest, path: str) -> tuple[int, Any]:
    response = await gateway.http.get(f"{gateway.url}{path}")
    return response.status_code, response.json()


async def test_readiness_never_calls_a_vendor_and_holds_while_it_is_down(
    checked: GatewayUnderTest,
) -> None:
    sandbox = checked.sandbox
    checker = checked.services.upstream_health
    assert checker.running and checker.rounds >= 1  # the first round ran at start-up
    # Between two checker rounds, probes make no upstream call at all.
    await checker.stop()
    calls = sum(sandbox.calls.values())
    for _ in range(10):
        assert await get(checked, "/readyz") == (
            200,
            {"status": "ready", "checks": {"leases": "ok", "plugins": "ok", "store": "ok"}},
        )
        assert (await get(checked, "/upstreamz"))[0] == 200
        _, body = await checked.query(HEALTH)
        (toy,) = body["data"]["connectors"]
        assert toy["health"]["status"] == "UP" and toy["health"]["ageSeconds"] >= 0
    assert sum(sandbox.calls.values()) == calls
    await checker.start()

    port = int(sandbox.url.rsplit(":", 1)[1].split("/")[0])
    await sandbox.stop()
    try:
        rounds = checker.rounds
        for _ in range(500):  # the checker notices with no request made (bounded wait)
            status, upstreams = await get(checked, "/upstreamz")
            if status == 503 and checker.rounds > rounds:
                break
            await asyncio.sleep(0.01)
        assert status == 503
        toy_health = upstreams["connectors"]["toy"]
        assert toy_health["status"] == "DOWN" and toy_health["source"] == "check"
        assert toy_health["checkedAt"] is not None
        assert (await get(checked, "/readyz"))[0] == 200  # the replica can still serve
        _, body = await checked.query(HEALTH)
        assert body["data"]["connectors"][0]["health"]["status"] == "DOWN"
    finally:
        await sandbox.start(port=port)


async def test_a_failed_call_shows_at_once_and_a_good_one_clears_it(
    checked: GatewayUnderTest,
) -> None:
    await checked.services.upstream_health.stop()  # only live traffic from here on
    checked.sandbox.fail_next_n = 1
    await checked.clear_cache()
    query = "query($id: ID!) { account(id: $id) { id } }"
    _, body = await checked.query(query, {"id": checked.account_id("1001")})
    assert body["errors"][0]["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
    status, upstreams = await get(checked, "/upstreamz")
    assert status == 503
    assert upstreams["connectors"]["toy"]["source"] == "traffic"
    await checked.clear_cache()
    _, body = await checked.query(query, {"id": checked.account_id("1001")})
    assert "errors" not in body
    status, upstreams = await get(checked, "/upstreamz")
    assert status == 200 and upstreams["connectors"]["toy"]["status"] == "UP"


async def test_a_registered_check_can_hold_readiness(checked: GatewayUnderTest) -> None:
    # The hook the session lease manager uses: its own check, by name.
    running = False

    async def lease_manager_running() -> bool:
        return running

    checked.services.readiness.add("lease", lease_manager_running)
    status, body = await get(checked, "/readyz")
    assert (status, body["checks"]["lease"]) == (503, "not ready")
    running = True
    assert (await get(checked, "/readyz"))[0] == 200


@pytest.mark.postgres
async def test_an_unreachable_store_is_not_ready(postgres_url: str, tmp_path: Path) -> None:
    async with (
        ToySandbox() as sandbox,
        open_gateway(sandbox, tmp_path, store={"url": postgres_url}) as gateway,
    ):
        assert (await get(gateway, "/readyz"))[0] == 200
        admin = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=5)
        try:  # the database goes away under the replica
            await admin.execute(f'DROP DATABASE "{postgres_url.rsplit("/", 1)[1]}" WITH (FORCE)')
        finally:
            await admin.close()
        status, body = await get(gateway, "/readyz")
        assert status == 503
        assert body["checks"]["store"].startswith("failed")
        assert body["checks"]["plugins"] == "ok"
