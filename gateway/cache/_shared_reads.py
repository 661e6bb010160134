"""A connector's own sub-reads on the gateway's road: cached, shared, keyed by the core.

Some reads a connector makes are not a family method the loaders can cache —
cTrader's 2-day ``closedPositions`` windows behind one ``deals`` query, reference
data behind a write.  Rather than keep a cache of its own, a connector asks
:class:`SharedReads` (``context.reads``): the entry lives in the gateway's cache
(memory or Redis, shared by replicas) under a key the core builds, and concurrent
identical reads in this process make one upstream call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from gateway.cache._base import Cache
from gateway.cache._keys import cache_key

__all__ = ["SharedReads"]

T = TypeVar("T")


class SharedReads:
    """``context.reads`` of one connector (its platform names the keys)."""

    def __init__(self, cache: Cache, platform: str) -> None:
        self._cache = cache
        self._platform = platform
        self._in_flight: dict[str, asyncio.Future[Any]] = {}
        #: Upstream fetches made (misses that were not joined), for tests and metrics.
        self.fetches = 0

    async def read(
        self,
        kind: str,
        key: str,
        fetch: Callable[[], Awaitable[T]],
        *,
        ttl: float | Callable[[T], float],
    ) -> T:
        """The cached value, or ``fetch()`` once however many ask at the same moment.

        ``ttl``: seconds of caching (0: share concurrent calls only), or a function of
        the fetched value when only the value tells how long it stays true.  ``None``
        and errors are never cached.
        """
        full = cache_key(kind, self._platform, key)
        if callable(ttl) or ttl > 0:
            hit = await self._cache.get(full)
            if hit is not None:
                return hit  # type: ignore[no-any-return]
        running = self._in_flight.get(full)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._in_flight[full] = future
        try:
            self.fetches += 1
            value = await fetch()
            seconds = ttl(value) if callable(ttl) else ttl
            if seconds > 0 and value is not None:
                await self._cache.set(full, value, seconds)
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved: nobody else may be waiting
            raise
        finally:
            del self._in_flight[full]
        future.set_result(value)
        return value

    async def forget(self, kind: str, key: str) -> None:
        """Drop one entry (a write made it stale)."""
        await self._cache.delete(cache_key(kind, self._platform, key))
