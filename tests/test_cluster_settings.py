"""[cluster], [store] pool and the rate limit that every replica shares through Redis."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

import tests.toy.plugin
from gateway.config import ConfigError, load_settings
from gateway.connectors import AccountReads, Capability
from gateway.errors import RateLimited
from gateway.plugins import load_plugins
from gateway.resilience import SharedTokenBucket
from gateway.services import GatewayServices
from tests.gateway_fixtures import TEST_JWT_SECRET
from tests.toy.sandbox import ToySandbox

SECRET = "test-secret-0123456789abcdef"
BURST = 3
# Refills so slowly that no token comes back while a test runs.
LIMIT = {"rate_limit_per_second": 0.001, "rate_limit_burst": BURST, "rate_limit_wait_seconds": 0}


@contextlib.asynccontextmanager
async def replica(
    sandbox: ToySandbox, store_url: str, **sections: Mapping[str, Any]
) -> AsyncIterator[GatewayServices]:
    """One gateway replica's services (no HTTP: the guards are what is shared)."""
    settings = load_settings(
        environ={},
        overrides={
            "auth": {"jwt_secret": TEST_JWT_SECRET},
            "store": {"url": store_url},
            "connectors": {"toy": dict(sandbox.connector_settings())},
            "resilience": LIMIT,
            **sections,
        },
    )
    plugins = load_plugins(entry_points=False, extra=[tests.toy.plugin], strict=True)
    services = await GatewayServices.open(settings, plugins)
    try:
        yield services
    finally:
        await services.close()


async def calls_until_limited(replicas: list[GatewayServices], attempts: int) -> int:
    """Reads made through the replicas in turn before one is refused; at most ``attempts``."""
    for made in range(attempts):
        services = replicas[made % len(replicas)]
        reads = services.registry.require("toy", Capability.ACCOUNT_READS, AccountReads)
        try:
            await reads.get_accounts(["1001"])
        except RateLimited:
            return made
    return attempts


@pytest.fixture
async def sandbox() -> AsyncIterator[ToySandbox]:
    async with ToySandbox() as toy:
        yield toy


@pytest.mark.redis
async def test_two_replicas_sharing_redis_consume_one_bucket(
    sandbox: ToySandbox, redis_url: str, tmp_path: Path
) -> None:
    namespace = f"t{uuid.uuid4().hex[:8]}"
    shared = {"cache": {"url": redis_url, "secret": SECRET}, "cluster": {"namespace": namespace}}
    store = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    async with replica(sandbox, store, **shared) as a, replica(sandbox, store, **shared) as b:
        assert isinstance(a.registry.upstreams["toy"].bucket, SharedTokenBucket)
        before = sandbox.calls["GET /accounts"]
        assert await calls_until_limited([a, b], attempts=2 * BURST + 2) == BURST
        assert sandbox.calls["GET /accounts"] == before + BURST  # not 2 x BURST
        raw = aioredis.Redis.from_url(redis_url)
        try:
            # The bucket lives under the cluster's namespace, like the cache's keys.
            assert await raw.exists(f"{namespace}:ratelimit:toy") == 1
        finally:
            await raw.aclose()


async def test_without_redis_each_replica_has_its_own_bucket(
    sandbox: ToySandbox, tmp_path: Path
) -> None:
    store = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    async with replica(sandbox, store) as a, replica(sandbox, store) as b:
        assert await calls_until_limited([a, b], attempts=2 * BURST + 2) == 2 * BURST


async def test_the_shared_bucket_falls_back_to_this_replica_while_redis_is_away() -> None:
    # Nothing listens on port 1: every call to this Redis fails at once.
    client = aioredis.Redis.from_url("redis://127.0.0.1:1/0")
    bucket = SharedTokenBucket(client, "t:ratelimit:toy", rate=0.001, burst=2)
    try:
        await bucket.acquire(max_wait=0)
        await bucket.acquire(max_wait=0)
        with pytest.raises(RateLimited):
            await bucket.acquire(max_wait=0)
        assert bucket.outage.down and bucket.outage.count == 1
    finally:
        await client.aclose()


@pytest.mark.redis
async def test_the_namespace_prefixes_cache_keys(
    sandbox: ToySandbox, redis_url: str, tmp_path: Path
) -> None:
    shared = {"cache": {"url": redis_url, "secret": SECRET}, "cluster": {"namespace": "env-a"}}
    store = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    async with replica(sandbox, store, **shared) as services:
        await services.cache.set("k", 1, ttl=30)
        raw = aioredis.Redis.from_url(redis_url)
        try:
            assert await raw.keys("*") == [b"env-a:cache:k"]
        finally:
            await raw.aclose()


@pytest.mark.postgres
async def test_the_postgresql_pool_takes_its_size_from_the_settings(
    sandbox: ToySandbox, postgres_url: str
) -> None:
    pool = {"url": postgres_url, "pool_size": 2, "max_overflow": 1}
    async with replica(sandbox, postgres_url, store=pool) as services:
        engine_pool: Any = services.store._engine.sync_engine.pool
        assert engine_pool.size() == 2
        assert engine_pool._max_overflow == 1
        await services.store.ping()


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"cluster": {"namespace": ""}}, "namespace"),
        ({"cluster": {"namespace": "a b"}}, "namespace"),
        ({"cluster": {"namespace": "bg:*"}}, "namespace"),
        ({"cluster": {"upstream_health_seconds": 0}}, "upstream_health_seconds"),
        ({"cluster": {"upstream_health_seconds": "soon"}}, "non-negative number"),
        ({"store": {"pool_size": 0}}, "pool_size"),
        ({"cluster": {"replicas": 3}}, "unknown settings: replicas"),
    ],
)
def test_cluster_settings_are_validated(section: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(environ={}, overrides=section)


def test_cluster_settings_read_the_environment() -> None:
    settings = load_settings(
        environ={
            "BROKERGRAPH_CLUSTER__NAMESPACE": "staging",
            "BROKERGRAPH_CLUSTER__UPSTREAM_HEALTH_SECONDS": "2.5",
            "BROKERGRAPH_STORE__POOL_SIZE": "20",
        }
    )
    assert settings.cluster.namespace == "staging"
    assert settings.cluster.upstream_health_seconds == 2.5
    assert settings.store.pool_size == 20 and settings.store.max_overflow == 10
