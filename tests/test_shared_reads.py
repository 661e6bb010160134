"""A connector's own sub-reads on the gateway's road: shared while in flight, cached by TTL."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

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


async def test_a_warm_read_runs_in_its_callers_task() -> None:
    # A cached value is one lookup in the reader's own task (a task per lookup was made
    # before); a miss still fetches in one task that others may join, which also stores
    # the value without a task more.
    reads = SharedReads(MemoryCache(), "acme")

    async def fetch() -> int:
        return 7

    assert await reads.read("w", "k", fetch, ttl=60) == 7
    loop = asyncio.get_running_loop()
    made: list[Coroutine[Any, Any, Any]] = []
    previous = loop.get_task_factory()

    def counting(loop: asyncio.AbstractEventLoop, coro: Any, /, **kwargs: Any) -> asyncio.Task[Any]:
        made.append(coro)
        return asyncio.Task(coro, loop=loop, **kwargs)

    loop.set_task_factory(counting)
    try:
        assert await reads.read("w", "k", fetch, ttl=60) == 7
        assert made == [] and reads.fetches == 1
        assert await reads.read("w", "other", fetch, ttl=60) == 7
        assert len(made) == 1 and reads.fetches == 2
    finally:
        loop.set_task_factory(previous)
