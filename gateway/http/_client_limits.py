"""Per-client limits: a viewer's budgets of requests and of upstream calls, and a
client's API-key failures.

One client's flood is refused before it costs anyone else.

Each viewer (token subject or API key) draws from its own token bucket, the same
buckets that pace upstream calls: one in Redis for the whole cluster when the cache
is on Redis (:class:`~gateway.resilience.SharedTokenBucket`, which falls back to a
local bucket while Redis is down), else this process's; an empty bucket
answers RATE_LIMITED at once (no queueing: a waiting request still holds a socket).
The map of buckets is bounded: the least recently seen viewer
is forgotten first, which can only hand it a full bucket again.

The budget of upstream calls is the same machinery with its own buckets: a request's
loaders name their viewer's :meth:`ViewerBudgets.payer` in
:data:`~gateway.resilience.upstream_payer`, and every read that is about to reach a
platform pays one call first (:mod:`gateway.cache._shared_reads`).  So one client's
flood of costly reads empties its own budget and is refused before the vendor sees
it; it cannot load the platform until the breaker opens for every tenant.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

from gateway.errors import RateLimited
from gateway.resilience import RateLimiter, SharedTokenBucket, TokenBucket, UpstreamPayer

if TYPE_CHECKING:
    from redis import asyncio as aioredis

__all__ = ["FailureWindows", "ViewerBudgets"]

_MAX_VIEWERS = 10_000
_WINDOW_SECONDS = 60.0


class ViewerBudgets:
    """Token buckets of ``rate`` requests (or calls) per second and ``burst``, one per
    viewer key; ``refusal`` is the message of RATE_LIMITED."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        shared: aioredis.Redis | None = None,
        prefix: str = "",
        max_viewers: int = _MAX_VIEWERS,
        refusal: str = "too many requests from this client",
    ) -> None:
        self._rate = rate
        self._burst = burst
        self._shared = shared
        self._prefix = prefix
        self._max_viewers = max_viewers
        self._refusal = refusal
        self._buckets: OrderedDict[str, RateLimiter] = OrderedDict()

    def _bucket(self, viewer_key: str) -> RateLimiter:
        if self._shared is None:
            return TokenBucket(self._rate, self._burst)
        return SharedTokenBucket(self._shared, self._prefix + viewer_key, self._rate, self._burst)

    @property
    def enabled(self) -> bool:
        return self._rate > 0

    async def admit(self, viewer_key: str) -> None:
        """Take one request from ``viewer_key``'s budget, else raise RateLimited."""
        if not self.enabled:
            return
        bucket = self._buckets.get(viewer_key)
        if bucket is None:
            bucket = self._buckets[viewer_key] = self._bucket(viewer_key)
            while len(self._buckets) > self._max_viewers:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(viewer_key)
        try:
            await bucket.acquire(0.0)
        except RateLimited as refused:
            raise RateLimited(self._refusal, retry_after=refused.retry_after) from None

    def payer(self, viewer_key: str) -> UpstreamPayer:
        """``viewer_key``'s budget as the payer of upstream reads."""
        return _ViewerPayer(self, viewer_key)


class _ViewerPayer:
    def __init__(self, budgets: ViewerBudgets, key: str) -> None:
        self._budgets = budgets
        self._key = key

    @property
    def key(self) -> str:
        return self._key

    async def pay(self) -> None:
        await self._budgets.admit(self._key)


class FailureWindows:
    """Failed API-key authentications per client address, in fixed one-minute windows.

    Counted per client address only, not per key id: a key's secret is 256 random
    bits and cannot be guessed, so what this protects is the CPU (each wrong secret
    costs an scrypt) — and counting per key id would let anyone who knows an id lock
    its owner out.  The map is bounded like :class:`ViewerBudgets`'.
    """

    def __init__(
        self,
        per_minute: int,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = _MAX_VIEWERS,
    ) -> None:
        self._limit = per_minute
        self._clock = clock
        self._max_clients = max_clients
        #: client -> (window start, failures in it)
        self._windows: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def _current(self, client: str) -> tuple[float, int] | None:
        window = self._windows.get(client)
        if window is not None and self._clock() - window[0] >= _WINDOW_SECONDS:
            del self._windows[client]
            return None
        return window

    def check(self, client: str) -> None:
        """Raise RateLimited while ``client`` has used up its failures for this window."""
        if self._limit <= 0:
            return
        window = self._current(client)
        if window is not None and window[1] >= self._limit:
            wait = max(0.001, _WINDOW_SECONDS - (self._clock() - window[0]))
            raise RateLimited(
                "too many failed API-key attempts from this client", retry_after=round(wait, 3)
            )

    def failed(self, client: str) -> None:
        """Count one failed API-key authentication by ``client``."""
        if self._limit <= 0:
            return
        window = self._current(client)
        if window is None:
            self._windows[client] = (self._clock(), 1)
            while len(self._windows) > self._max_clients:
                self._windows.popitem(last=False)
        else:
            self._windows[client] = (window[0], window[1] + 1)
            self._windows.move_to_end(client)
