"""The in-process cache: a bounded LRU with per-entry expiry."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any, NamedTuple

from gateway.cache._base import Cache, check_ttl

__all__ = ["MemoryCache"]


class _Entry(NamedTuple):
    value: Any
    expires_at: float


class MemoryCache(Cache):
    """An LRU of at most ``max_entries`` entries, each with its own TTL.

    Built on an ``OrderedDict`` rather than aiocache's ``SimpleMemoryCache``: 0.12.3
    has no size bound, so LRU order would need a second structure beside it, it arms
    one event-loop timer per entry to expire it, and ``delete_prefix`` would have to
    reach into its private dict.  Here expiry is a monotonic deadline checked on read
    (immune to wall-clock jumps) and the dict's order is the LRU order.

    Values are stored as-is, not copied: callers must not mutate what they cache.
    """

    def __init__(self, max_entries: int = 10_000) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries!r}")
        super().__init__()
        self.max_entries = max_entries
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    async def get(self, key: str) -> Any | None:
        entry = self._entries.get(key)
        if entry is None or entry.expires_at <= time.monotonic():
            if entry is not None:
                del self._entries[key]
            self.stats.misses += 1
            return None
        self._entries.move_to_end(key)
        self.stats.hits += 1
        return entry.value

    async def set(self, key: str, value: Any, ttl: float) -> None:
        check_ttl(ttl)
        self._entries[key] = _Entry(value, time.monotonic() + ttl)
        self._entries.move_to_end(key)
        # Expired entries are not swept: they drift to the LRU end unread and are the
        # first evicted, which keeps set() O(1).
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        self.stats.sets += 1

    async def delete(self, *keys: str) -> None:
        for key in keys:
            self._entries.pop(key, None)

    async def delete_prefix(self, prefix: str) -> int:
        # A linear scan: invalidation is rare next to reads, and the bound keeps it short.
        now = time.monotonic()
        removed = 0
        for key in [key for key in self._entries if key.startswith(prefix)]:
            if self._entries.pop(key).expires_at > now:
                removed += 1
        return removed

    async def close(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        """Entries held, expired ones not yet evicted included."""
        return len(self._entries)
