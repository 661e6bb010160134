"""The in-process cache: a bounded LRU with per-entry expiry."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any, NamedTuple

from gateway.cache._base import Cache, check_ttl
from gateway.cache._keys import key_group

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

    ``delete_prefix`` of a ``kind:platform:id:`` prefix (what a write deletes) removes
    the keys filed under it, in time proportional to them; any other prefix walks every
    key.  A walk per write cost a placement ~7 ms on a full cache of 10,000 entries —
    more than the placement itself — with the event loop held all along.

    Values are stored as-is, not copied: callers must not mutate what they cache.
    """

    def __init__(self, max_entries: int = 10_000) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries!r}")
        super().__init__()
        self.max_entries = max_entries
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        #: group prefix -> its keys held (dicts as sets)
        self._groups: dict[str, dict[str, None]] = {}

    async def get(self, key: str) -> Any | None:
        entry = self._entries.get(key)
        if entry is None or entry.expires_at <= time.monotonic():
            if entry is not None:
                self._remove(key)
            self.stats.misses += 1
            return None
        self._entries.move_to_end(key)
        self.stats.hits += 1
        return entry.value

    async def set(self, key: str, value: Any, ttl: float) -> None:
        check_ttl(ttl)
        if key not in self._entries and (group := key_group(key)) is not None:
            self._groups.setdefault(group, {})[key] = None
        self._entries[key] = _Entry(value, time.monotonic() + ttl)
        self._entries.move_to_end(key)
        # Expired entries are not swept: they drift to the LRU end unread and are the
        # first evicted, which keeps set() O(1).
        while len(self._entries) > self.max_entries:
            self._remove(next(iter(self._entries)))
        self.stats.sets += 1

    async def delete(self, *keys: str) -> None:
        for key in keys:
            if key in self._entries:
                self._remove(key)

    async def delete_prefix(self, prefix: str) -> int:
        if key_group(prefix) == prefix:
            keys = list(self._groups.get(prefix, ()))
        else:  # a prefix no key is filed under: every key is looked at
            keys = [key for key in self._entries if key.startswith(prefix)]
        now = time.monotonic()
        return sum(self._remove(key).expires_at > now for key in keys)

    async def close(self) -> None:
        self._entries.clear()
        self._groups.clear()

    def _remove(self, key: str) -> _Entry:
        entry = self._entries.pop(key)
        group = key_group(key)
        if group is not None:
            keys = self._groups[group]
            del keys[key]
            if not keys:
                del self._groups[group]
        return entry

    def __len__(self) -> int:
        """Entries held, expired ones not yet evicted included."""
        return len(self._entries)
