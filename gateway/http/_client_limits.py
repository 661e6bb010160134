"""Per-viewer request budgets: one client's flood is refused before it costs anyone.

Each viewer (token subject or API key) draws from its own token bucket, the same
:class:`~gateway.resilience.TokenBucket` that paces upstream calls; an empty bucket
answers RATE_LIMITED at once (no queueing: a waiting request still holds a socket).
Buckets live in this process and the map is bounded: the least recently seen viewer
is forgotten first, which can only hand it a full bucket again.
"""

from __future__ import annotations

from collections import OrderedDict

from gateway.errors import RateLimited
from gateway.resilience import TokenBucket

__all__ = ["ViewerBudgets"]

_MAX_VIEWERS = 10_000


class ViewerBudgets:
    """Token buckets of ``rate`` requests per second and ``burst``, one per viewer key."""

    def __init__(self, rate: float, burst: int, max_viewers: int = _MAX_VIEWERS) -> None:
        self._rate = rate
        self._burst = burst
        self._max_viewers = max_viewers
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self._rate > 0

    async def admit(self, viewer_key: str) -> None:
        """Take one request from ``viewer_key``'s budget, else raise RateLimited."""
        if not self.enabled:
            return
        bucket = self._buckets.get(viewer_key)
        if bucket is None:
            bucket = self._buckets[viewer_key] = TokenBucket(self._rate, self._burst)
            while len(self._buckets) > self._max_viewers:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(viewer_key)
        try:
            await bucket.acquire(0.0)
        except RateLimited as refused:
            raise RateLimited(
                "too many requests from this client", retry_after=refused.retry_after
            ) from None
