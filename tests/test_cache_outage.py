"""The cache fails soft: a Redis outage means upstream reads, never errors.

Each test runs its own redis-server (tests/private_redis.py) and kills it with
SIGKILL mid-test, then restarts it on the same port with the data it held.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from gateway.cache import RedisCache
from tests.gateway_fixtures import GatewayUnderTest, open_gateway
from tests.private_redis import PrivateRedis, private_redis
from tests.toy.sandbox import ToySandbox

SECRET = b"test-secret-0123456789abcdef"
BALANCE = "query($id: ID!) { account(id: $id) { balance { amount } } }"
DEPOSIT = """mutation($input: MoneyMovementInput!) { deposit(input: $input) {
  operation { externalId } errors { code } } }"""


def outage_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "gateway.cache" and r.levelno >= logging.WARNING and "unreachable" in r.message
    ]


@pytest.fixture
async def redis_server(tmp_path: Path) -> AsyncIterator[PrivateRedis]:
    async with private_redis(tmp_path) as server:
        yield server


async def test_the_cache_answers_misses_keeps_invalidations_and_warns_once(
    redis_server: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    cache = RedisCache(redis_server.url, secret=SECRET, namespace="t:")
    raw = aioredis.Redis.from_url(redis_server.url)
    try:
        await cache.set("kept", "still true", ttl=60)
        await cache.set("stale", "changed meanwhile", ttl=60)
        await cache.set("period:1", "changed too", ttl=60)
        await redis_server.kill()

        for _ in range(5):
            assert await cache.get("kept") is None  # a miss: the caller asks the upstream
        await cache.set("new", "skipped", ttl=60)
        await cache.delete("stale")  # a write changed it: must not be served again
        assert await cache.delete_prefix("period:") == 0
        assert cache.pending_invalidations == 2
        assert len(outage_warnings(caplog)) == 1  # one per outage, not one per call
        assert cache.stats.errors >= 8

        await redis_server.start()  # same port, same data (append-only file)
        # Until the cache's back-off ends it keeps missing; then the first read applies
        # the kept invalidations (unless the background retry did), so nothing stale
        # is ever served while the entry it kept returns.
        for _ in range(300):
            assert await cache.get("stale") is None
            assert await cache.get("period:1") is None
            if await cache.get("kept") is not None:
                break
            await asyncio.sleep(0.01)
        assert await cache.get("kept") == "still true"  # the data did survive the restart
        assert cache.pending_invalidations == 0
        assert await raw.exists(b"t:stale", b"t:period:1") == 0
        assert cache.outage.count == 1 and not cache.outage.down
        assert len(outage_warnings(caplog)) == 1
    finally:
        await raw.aclose()
        await cache.close()


async def read_balance(gateway: GatewayUnderTest) -> Decimal:
    _, body = await gateway.query(BALANCE, {"id": gateway.account_id("1001")})
    assert "errors" not in body, body
    return Decimal(body["data"]["account"]["balance"]["amount"])


async def test_a_gateway_reads_and_moves_money_through_a_redis_outage(
    redis_server: PrivateRedis, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with (
        ToySandbox() as sandbox,
        open_gateway(
            sandbox,
            tmp_path,
            cache={"url": redis_server.url, "secret": SECRET.decode()},
        ) as gateway,
    ):
        before = await read_balance(gateway)
        assert await read_balance(gateway) == before  # cached now (30 s TTL)
        reads = sandbox.calls["GET /accounts"]
        await redis_server.kill()

        for _ in range(3):  # no INTERNAL: the reads go to the upstream
            assert await read_balance(gateway) == before
        assert sandbox.calls["GET /accounts"] == reads + 3

        key = f"outage-{uuid.uuid4()}"
        variables = {
            "input": {
                "accountId": gateway.account_id("1001"),
                "amount": "7",
                "idempotencyKey": key,
            }
        }
        _, body = await gateway.query(DEPOSIT, variables)
        assert body["data"]["deposit"]["errors"] == [], body  # money moved: success
        (audit,) = [
            e for e in await gateway.services.store.list_audit(limit=20) if e.idempotency_key == key
        ]
        assert audit.operation == "deposit" and audit.outcome == "ok"
        assert await read_balance(gateway) == before + 7
        assert len(outage_warnings(caplog)) == 1

        # Redis returns holding the balance cached before the deposit: the kept
        # invalidation is applied before anything is served from it again.
        await redis_server.start()
        cache = gateway.services.cache
        assert isinstance(cache, RedisCache)
        for _ in range(300):  # every read is right, before and after the cache is back
            assert await read_balance(gateway) == before + 7
            if not cache.outage.down:
                break
            await asyncio.sleep(0.01)
        assert not cache.outage.down and cache.pending_invalidations == 0
        assert await read_balance(gateway) == before + 7
        assert len(outage_warnings(caplog)) == 1
