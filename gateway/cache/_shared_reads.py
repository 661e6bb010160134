"""Reads on the gateway's road: cached, shared while in flight, paid for by a viewer.

:class:`SingleFlight` is the one helper behind every upstream read of the gateway:
the loaders' reads (:mod:`gateway.graphql.loaders`) and a connector's own sub-reads.
For each key it answers from the cache when it can; joins a fetch of the same key
already in flight in this process, whichever request started it; and otherwise
makes the fetch once — after its viewer paid one upstream call (the payer in
:data:`~gateway.resilience.upstream_payer`), so a viewer whose budget is spent is
refused before the vendor is called, and cache hits and joined fetches cost nothing.

Keys are the data's cache keys (kind, platform, ids and arguments), never the
viewer's: the gateway checks a viewer's access to an object before it asks for the
object's data, so the data of one key is the same whoever asks, and viewers allowed
to see it may share one fetch of it.

A fetch runs in a task of its own: a request that gives up (its client went away, a
sibling field failed) does not cancel the fetch others joined, and the value still
lands in the cache.  A joiner whose fetch was refused because the *starting*
viewer's budget was spent makes the read again on its own budget: one client's
refusal is never handed to another.

Some reads a connector makes are not a family method the loaders can cache —
cTrader's 2-day ``closedPositions`` windows behind one ``deals`` query, reference
data behind a write.  Rather than keep a cache of its own, a connector asks
:class:`SharedReads` (``context.reads``): the entry lives in the gateway's cache
(memory or Redis, shared by replicas) under a key the core builds, on this road.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar
from weakref import WeakKeyDictionary

from gateway.cache._base import Cache
from gateway.cache._keys import cache_key
from gateway.errors import RateLimited
from gateway.observability import metrics, tracing
from gateway.resilience import UpstreamPayer, upstream_payer

__all__ = ["SharedReads", "SingleFlight"]

T = TypeVar("T")
#: Seconds of caching, or a function of the fetched value (0: share in flight only).
Ttl = float | Callable[[Any], float]


@dataclass(frozen=True, slots=True)
class _Flight:
    """One key's share of a fetch in flight: the task, the key's place in its answer,
    and the key of the viewer who paid for it (``None``: nobody did)."""

    task: asyncio.Task[list[Any]]
    position: int
    payer: str | None


class SingleFlight:
    """The reads through one cache (one per cache: :meth:`of`)."""

    _by_cache: ClassVar[WeakKeyDictionary[Cache, SingleFlight]] = WeakKeyDictionary()

    def __init__(self, cache: Cache) -> None:
        self._cache = cache
        self._in_flight: dict[str, _Flight] = {}

    async def settled(self) -> None:
        """Wait until no fetch is in flight, the ones they start included (for tests)."""
        while self._in_flight:
            tasks = {flight.task for flight in self._in_flight.values()}
            await asyncio.wait(tasks)
            await asyncio.sleep(0)  # their done callbacks run

    @classmethod
    def of(cls, cache: Cache) -> SingleFlight:
        """The flights of ``cache``: whoever reads through one cache shares its flights
        (the loaders of every request and every connector's ``context.reads``)."""
        flights = cls._by_cache.get(cache)
        if flights is None:
            flights = cls._by_cache[cache] = cls(cache)
        return flights

    async def read(
        self,
        keys: Sequence[str],
        fetch: Callable[[list[int]], Awaitable[Sequence[T]]],
        *,
        ttl: float | Callable[[T], float],
    ) -> list[T]:
        """The value of each of ``keys`` (full cache keys), in order.

        Cached values are answered from the cache (when ``ttl`` caches at all), keys
        in flight join their fetch, and the rest are fetched together: one
        ``fetch(indexes)`` (indexes into ``keys``) answering one value per index.
        ``ttl``: seconds of caching, or a function of each fetched value.  ``None``
        and errors are never cached; an error fails every key of its fetch.
        """
        return await self._read(keys, fetch, ttl, rejoin=True)

    async def _read(
        self,
        keys: Sequence[str],
        fetch: Callable[[list[int]], Awaitable[Sequence[Any]]],
        ttl: Ttl,
        *,
        rejoin: bool,
    ) -> list[Any]:
        values: list[Any] = [None] * len(keys)
        missing = list(range(len(keys)))
        if callable(ttl) or ttl > 0:
            with tracing.span("cache.get", {"brokergraph.cache.keys": len(keys)}):
                if len(keys) == 1:  # most reads: no task to run one lookup in
                    values = [await self._cache.get(keys[0])]
                else:
                    values = list(await asyncio.gather(*(self._cache.get(key) for key in keys)))
            metrics.cache_lookups(keys, values)
            missing = [i for i, value in enumerate(values) if value is None]
            if not missing:
                return values
        flights, mine = self._join(keys, missing)
        payer = upstream_payer.get()
        if mine:
            if payer is not None:
                await payer.pay()  # RateLimited here: nothing was fetched, nothing joined
            more, mine = self._join(keys, mine)  # started while this one was paying
            flights.update(more)
        if mine:
            started = self._start([keys[i] for i in mine], lambda: fetch(mine), ttl, payer)
            flights.update(zip(mine, started, strict=True))
        me = payer.key if payer is not None else None
        for i, flight in flights.items():
            try:
                values[i] = (await asyncio.shield(flight.task))[flight.position]
            except RateLimited:
                if not rejoin or flight.payer == me:
                    raise
                # Another viewer's budget was spent: make this read on this one's own.
                (values[i],) = await self._read([keys[i]], _only(fetch, i), ttl, rejoin=False)
        return values

    def _join(
        self, keys: Sequence[str], indexes: list[int]
    ) -> tuple[dict[int, _Flight], list[int]]:
        """``indexes`` split into those with a fetch in flight and the rest."""
        joined: dict[int, _Flight] = {}
        rest: list[int] = []
        for i in indexes:
            flight = self._in_flight.get(keys[i])
            if flight is None:
                rest.append(i)
            else:
                joined[i] = flight
        return joined, rest

    def _start(
        self,
        keys: list[str],
        fetch: Callable[[], Awaitable[Sequence[Any]]],
        ttl: Ttl,
        payer: UpstreamPayer | None,
    ) -> list[_Flight]:
        async def run() -> list[Any]:
            values = list(await fetch())
            if len(values) != len(keys):
                raise RuntimeError(f"a read of {len(keys)} keys answered {len(values)} values")
            sets = [
                self._cache.set(key, value, seconds)
                for key, value in zip(keys, values, strict=True)
                if value is not None and (seconds := ttl(value) if callable(ttl) else ttl) > 0
            ]
            if len(sets) == 1:  # no task for the one
                await sets[0]
            elif sets:
                await asyncio.gather(*sets)
            return values

        # The task copies this context: the payer follows the read into its sub-reads.
        task = asyncio.ensure_future(run())
        paid_by = payer.key if payer is not None else None
        flights = [_Flight(task, position, paid_by) for position in range(len(keys))]
        for key, flight in zip(keys, flights, strict=True):
            self._in_flight[key] = flight
        task.add_done_callback(functools.partial(self._landed, keys))
        return flights

    def _landed(self, keys: list[str], task: asyncio.Task[list[Any]]) -> None:
        for key in keys:
            flight = self._in_flight.get(key)
            if flight is not None and flight.task is task:
                del self._in_flight[key]
        if not task.cancelled():
            task.exception()  # retrieved: its callers got it (or none waited any more)


def _only(
    fetch: Callable[[list[int]], Awaitable[Sequence[Any]]], index: int
) -> Callable[[list[int]], Awaitable[Sequence[Any]]]:
    """``fetch`` of the one key at ``index``, as a read of that key alone asks it."""
    return lambda _: fetch([index])


class SharedReads:
    """``context.reads`` of one connector (its platform names the keys)."""

    def __init__(self, cache: Cache, platform: str) -> None:
        self._cache = cache
        self._platform = platform
        self._flights = SingleFlight.of(cache)
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

        async def one(_: list[int]) -> list[T]:
            self.fetches += 1
            return [await fetch()]

        (value,) = await self._flights.read([cache_key(kind, self._platform, key)], one, ttl=ttl)
        return value

    async def forget(self, kind: str, key: str) -> None:
        """Drop one entry (a write made it stale)."""
        await self._cache.delete(cache_key(kind, self._platform, key))
