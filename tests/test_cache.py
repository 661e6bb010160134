"""The cache backends: the same behaviour over memory and a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
import redis.asyncio as aioredis

from gateway.cache import Cache, CacheStats, MemoryCache, RedisCache, create_cache

SECRET = b"test-secret-0123456789abcdef"
NAMESPACE = "bg:cache:"


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def cache_url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory://"
    url: str = request.getfixturevalue("redis_url")
    return url


@pytest.fixture
async def cache(cache_url: str) -> AsyncIterator[Cache]:
    cache = create_cache(cache_url, secret=SECRET, max_entries=100)
    yield cache
    await cache.close()


@pytest.fixture
async def raw_redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def test_miss_then_hit(cache: Cache) -> None:
    assert await cache.get("k") is None
    value = {"balance": Decimal("10.50"), "ids": [1, 2, 3]}
    await cache.set("k", value, ttl=60)
    assert await cache.get("k") == value


async def test_set_replaces(cache: Cache) -> None:
    await cache.set("k", "old", ttl=60)
    await cache.set("k", "new", ttl=60)
    assert await cache.get("k") == "new"


async def test_entry_expires_after_ttl(cache: Cache) -> None:
    await cache.set("short", 1, ttl=0.2)
    await cache.set("long", 2, ttl=60)
    assert await cache.get("short") == 1
    await asyncio.sleep(0.3)  # let the TTL run out
    assert await cache.get("short") is None
    assert await cache.get("long") == 2


async def test_delete_prefix_counts_live_entries_only(cache: Cache) -> None:
    await cache.set("p:expired", 1, ttl=0.2)
    await cache.set("p:live", 2, ttl=60)
    await asyncio.sleep(0.3)  # let the first TTL run out, unread
    assert await cache.delete_prefix("p:") == 1


async def test_delete(cache: Cache) -> None:
    for key in ("a", "b", "c"):
        await cache.set(key, key, ttl=60)
    await cache.delete("a", "b", "missing")
    await cache.delete()
    assert await cache.get("a") is None
    assert await cache.get("b") is None
    assert await cache.get("c") == "c"


async def test_delete_prefix(cache: Cache) -> None:
    for account in range(3):
        await cache.set(f"partner:1:account:{account}", account, ttl=60)
    await cache.set("partner:10:account:0", "other partner", ttl=60)
    await cache.set("partner:2:account:0", "other partner", ttl=60)

    assert await cache.delete_prefix("partner:1:") == 3
    assert await cache.get("partner:1:account:0") is None
    assert await cache.get("partner:10:account:0") == "other partner"
    assert await cache.get("partner:2:account:0") == "other partner"
    assert await cache.delete_prefix("partner:1:") == 0


async def test_a_write_deletes_one_accounts_period_reads(cache: Cache) -> None:
    """The prefixes a write deletes (``kind:platform:id:``) with periods of their own
    ``:``s, beside an account whose id starts the same and a key of fewer parts."""
    period = "2026-11-01T00:00:00+00:00:2026-12-01T00:00:00+00:00"
    await cache.set(f"deals:qst:42:{period}", "42 deals", ttl=60)
    await cache.set(f"deals:qst:42:{period}x", "42 other period", ttl=60)
    await cache.set(f"deals:qst:420:{period}", "420 deals", ttl=60)
    await cache.set("deals:qst:42", "fewer parts", ttl=60)
    await cache.set(f"analytics:qst:42:{period}", "42 analytics", ttl=60)

    assert await cache.delete_prefix("deals:qst:42:") == 2
    assert await cache.get(f"deals:qst:42:{period}") is None
    assert await cache.get(f"deals:qst:420:{period}") == "420 deals"
    assert await cache.get("deals:qst:42") == "fewer parts"
    assert await cache.get(f"analytics:qst:42:{period}") == "42 analytics"
    await cache.set(f"deals:qst:42:{period}", "read again", ttl=60)
    assert await cache.delete_prefix("deals:qst:42:") == 1
    assert await cache.delete_prefix("deals:qst:") == 2  # 420's and "deals:qst:42", walked


class CountingKey(str):
    """A key that counts how often a prefix is tested against it."""

    tested = 0

    def startswith(self, *args: Any) -> bool:
        CountingKey.tested += 1
        return super().startswith(*args)


async def test_a_writes_deletion_looks_only_at_its_accounts_keys() -> None:
    cache = MemoryCache(max_entries=1_000)
    for n in range(1_000):
        await cache.set(CountingKey(f"deals:ctrader:{n}:2026-11"), n, ttl=60)
    assert await cache.delete_prefix("deals:ctrader:7:") == 1
    assert CountingKey.tested == 0
    assert await cache.delete_prefix("deals:ctrader:") == 999  # not a group: a walk
    assert CountingKey.tested == 999


async def test_evicted_and_expired_keys_leave_their_group() -> None:
    cache = MemoryCache(max_entries=2)
    await cache.set("deals:qst:1:a", 1, ttl=60)
    await cache.set("deals:qst:1:b", 2, ttl=0.1)
    await cache.set("deals:qst:2:a", 3, ttl=60)  # evicts 1:a, the least recently used
    await asyncio.sleep(0.2)
    assert await cache.get("deals:qst:1:b") is None  # expired, removed on read
    assert await cache.delete_prefix("deals:qst:1:") == 0
    await cache.set("deals:qst:1:c", 4, ttl=60)
    assert await cache.delete_prefix("deals:qst:1:") == 1
    assert await cache.delete_prefix("deals:qst:2:") == 1
    assert len(cache) == 0


async def test_delete_prefix_treats_glob_characters_literally(cache: Cache) -> None:
    await cache.set("scope*:x", 1, ttl=60)
    await cache.set("scopeA:x", 2, ttl=60)
    await cache.set("scope?[a]:x", 3, ttl=60)

    assert await cache.delete_prefix("scope*") == 1
    assert await cache.delete_prefix("scope?[a]") == 1
    assert await cache.get("scopeA:x") == 2


async def test_stats_count_hits_misses_and_sets(cache: Cache) -> None:
    assert cache.stats == CacheStats(hits=0, misses=0, sets=0)
    await cache.get("k")
    await cache.set("k", 1, ttl=60)
    await cache.get("k")
    await cache.get("k")
    await cache.get("other")
    assert (cache.stats.hits, cache.stats.misses, cache.stats.sets) == (2, 2, 1)


@pytest.mark.parametrize("ttl", [0, -1, 0.0, float("nan"), float("inf")])
async def test_set_requires_positive_finite_ttl(cache: Cache, ttl: float) -> None:
    with pytest.raises(ValueError, match="ttl"):
        await cache.set("k", 1, ttl=ttl)
    assert await cache.get("k") is None
    assert cache.stats.sets == 0


async def test_memory_lru_evicts_least_recently_used() -> None:
    cache = MemoryCache(max_entries=3)
    for key in ("a", "b", "c"):
        await cache.set(key, key, ttl=60)
    assert await cache.get("a") == "a"  # "b" is now the least recently used

    await cache.set("d", "d", ttl=60)

    assert len(cache) == 3
    assert await cache.get("b") is None
    assert [await cache.get(key) for key in ("a", "c", "d")] == ["a", "c", "d"]


async def test_memory_stores_values_as_is() -> None:
    cache = MemoryCache()
    value = {"mutable": True}
    await cache.set("k", value, ttl=60)
    assert await cache.get("k") is value


def test_memory_rejects_empty_bound() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        MemoryCache(max_entries=0)


@pytest.mark.redis
async def test_redis_rejects_tampered_value(redis_url: str, raw_redis: aioredis.Redis) -> None:
    cache = RedisCache(redis_url, secret=SECRET, namespace=NAMESPACE)
    try:
        await raw_redis.set(NAMESPACE + "k", b"\x80\x04attacker bytes", px=60_000)
        assert await cache.get("k") is None
        assert await raw_redis.exists(NAMESPACE + "k") == 0
        assert cache.stats.misses == 1

        await cache.set("k", "genuine", ttl=60)
        sealed = await raw_redis.get(NAMESPACE + "k")
        assert isinstance(sealed, bytes)
        flipped = sealed[:-1] + bytes([sealed[-1] ^ 1])
        await raw_redis.set(NAMESPACE + "k", flipped, px=60_000)
        assert await cache.get("k") is None
    finally:
        await cache.close()


@pytest.mark.redis
async def test_redis_rejects_value_signed_with_another_secret(redis_url: str) -> None:
    ours = RedisCache(redis_url, secret=SECRET)
    theirs = RedisCache(redis_url, secret=b"another-secret-0123456789")
    try:
        await theirs.set("k", "planted", ttl=60)
        assert await ours.get("k") is None
    finally:
        await ours.close()
        await theirs.close()


@pytest.mark.redis
async def test_redis_rejects_value_moved_to_another_key(
    redis_url: str, raw_redis: aioredis.Redis
) -> None:
    # A signed entry of one viewer's scope must not verify under another's key.
    cache = RedisCache(redis_url, secret=SECRET, namespace=NAMESPACE)
    try:
        await cache.set("viewer:1:accounts", ["acc-1"], ttl=60)
        sealed = await raw_redis.get(NAMESPACE + "viewer:1:accounts")
        assert sealed is not None
        await raw_redis.set(NAMESPACE + "viewer:2:accounts", sealed, px=60_000)
        assert await cache.get("viewer:2:accounts") is None
        assert await cache.get("viewer:1:accounts") == ["acc-1"]
    finally:
        await cache.close()


@pytest.mark.redis
async def test_redis_keys_are_namespaced_and_expire_in_redis(
    redis_url: str, raw_redis: aioredis.Redis
) -> None:
    cache = RedisCache(redis_url, secret=SECRET, namespace="ns:")
    try:
        await cache.set("k", 1, ttl=30)
        assert 0 < await raw_redis.pttl("ns:k") <= 30_000
        await raw_redis.set("outside", b"x")
        assert await cache.delete_prefix("") == 1
        assert await raw_redis.exists("outside") == 1
    finally:
        await cache.close()


GROUPS_NAMESPACE = "groups-test:"
#: Where the group indexes of GROUPS_NAMESPACE live, and the index of account 42's deals.
GROUP_INDEXES = "groups-test-groups:"
DEALS_OF_42 = GROUP_INDEXES + "deals:qst:42:"


@pytest.fixture
async def grouped(redis_url: str, raw_redis: aioredis.Redis) -> AsyncIterator[RedisCache]:
    """A Redis cache of its own namespace, emptied afterwards with its group indexes."""
    cache = RedisCache(redis_url, secret=SECRET, namespace=GROUPS_NAMESPACE)
    yield cache
    await cache.delete_prefix("")
    async for index in raw_redis.scan_iter(match=GROUP_INDEXES + "*"):
        await raw_redis.unlink(index)
    await cache.close()


@pytest.mark.redis
async def test_redis_deletes_a_group_from_its_index_without_a_scan(
    grouped: RedisCache, raw_redis: aioredis.Redis
) -> None:
    for n in range(600):  # more than one UNLINK batch
        await grouped.set(f"deals:qst:42:period-{n}", n, ttl=60)
    await grouped.set("deals:qst:7:period-0", "another account", ttl=60)
    await grouped.set("deals:qst:42", "fewer parts: no group", ttl=60)
    assert await raw_redis.scard(DEALS_OF_42) == 600
    assert 59_000 < await raw_redis.pttl(DEALS_OF_42) <= 60_000  # its longest-lived entry's
    await raw_redis.config_resetstat()
    assert await grouped.delete_prefix("deals:qst:42:") == 600
    assert "cmdstat_scan" not in await raw_redis.info("commandstats")
    assert await raw_redis.exists(DEALS_OF_42) == 0
    assert await grouped.get("deals:qst:42:period-0") is None
    assert await grouped.get("deals:qst:7:period-0") == "another account"
    assert await grouped.get("deals:qst:42") == "fewer parts: no group"


@pytest.mark.redis
async def test_redis_group_index_drops_the_names_of_expired_entries(
    grouped: RedisCache, raw_redis: aioredis.Redis
) -> None:
    for n in range(255):
        await grouped.set(f"deals:qst:42:short-{n}", n, ttl=1.5)
    await asyncio.sleep(1.7)  # every one of them expired
    await grouped.set("deals:qst:42:long", "kept", ttl=60)  # the 256th name: a pruning
    assert await raw_redis.smembers(DEALS_OF_42) == {b"groups-test:deals:qst:42:long"}


def test_redis_cache_rejects_short_secret() -> None:
    with pytest.raises(ValueError, match="secret"):
        RedisCache("redis://127.0.0.1:6379/15", secret=b"short")


async def test_create_cache_dispatches_on_scheme() -> None:
    memory = create_cache("memory://", secret=SECRET, max_entries=7)
    assert isinstance(memory, MemoryCache)
    assert memory.max_entries == 7
    for url in ("redis://127.0.0.1:6379/15", "rediss://cache.example:6380/0"):
        redis_cache = create_cache(url, secret=SECRET)
        assert isinstance(redis_cache, RedisCache)
        await redis_cache.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("memcached://127.0.0.1:11211", "unsupported cache URL scheme 'memcached'"),
        ("", "no scheme"),
        ("127.0.0.1:6379", "no scheme"),
        ("memory://somewhere", "takes no host"),
        ("https://user:hunter2@cache.example/", "unsupported cache URL scheme 'https'"),
    ],
)
def test_create_cache_rejects_bad_url(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        create_cache(url, secret=SECRET)
    assert "hunter2" not in str(caught.value)
    assert "memory://" in str(caught.value)
