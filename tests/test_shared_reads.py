"""A connector's own sub-reads on the gateway's road: shared while in flight, cached by TTL."""

from __future__ import annotations

import asyncio

import pytest

from gateway.cache import MemoryCache, SharedReads, cache_key


async def test_concurrent_identical_reads_make_one_upstream_call() -> None:
    reads = SharedReads(MemoryCache(), "acme")
    calls = 0

    async def fetch() -> list[int]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return [calls]

    results = await asyncio.gather(*(reads.read("w", "k", fetch, ttl=0) for _ in range(20)))
    assert results == [[1]] * 20 and calls == 1 and reads.fetches == 1
    # ttl=0 shares only while in flight: the next read fetches again.
    assert await reads.read("w", "k", fetch, ttl=0) == [2]


async def test_the_ttl_may_depend_on_the_value_and_none_is_never_cached() -> None:
    cache = MemoryCache()
    reads = SharedReads(cache, "acme")

    async def final() -> tuple[bool, int]:
        return True, 1

    async def moving() -> tuple[bool, int]:
        return False, 2

    def ttl(value: tuple[bool, int]) -> float:
        return 3600.0 if value[0] else 0.0

    assert await reads.read("w", "a", final, ttl=ttl) == (True, 1)
    assert await reads.read("w", "b", moving, ttl=ttl) == (False, 2)
    assert await cache.get(cache_key("w", "acme", "a")) == (True, 1)
    assert await cache.get(cache_key("w", "acme", "b")) is None

    async def nothing() -> int | None:
        return None

    assert await reads.read("w", "c", nothing, ttl=60) is None
    assert await cache.get(cache_key("w", "acme", "c")) is None
    await reads.forget("w", "a")
    assert await cache.get(cache_key("w", "acme", "a")) is None


async def test_a_failure_reaches_every_waiter_and_is_not_cached() -> None:
    reads = SharedReads(MemoryCache(), "acme")
    attempts = 0

    async def failing() -> int:
        nonlocal attempts
        attempts += 1
        await asyncio.sleep(0.01)
        raise ConnectionError("upstream down")

    results = await asyncio.gather(
        *(reads.read("w", "k", failing, ttl=60) for _ in range(5)), return_exceptions=True
    )
    assert attempts == 1
    assert all(isinstance(r, ConnectionError) for r in results)

    async def working() -> int:
        return 7

    assert await reads.read("w", "k", working, ttl=60) == 7
    with pytest.raises(ConnectionError):
        await reads.read("w", "other", failing, ttl=60)
