"""The cache interface every backend implements."""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass
from typing import Any

__all__ = ["Cache", "CacheStats", "check_ttl"]


@dataclass(slots=True)
class CacheStats:
    """Plain counters (no locking: the cache is used from one event loop)."""

    hits: int = 0
    misses: int = 0
    sets: int = 0
    #: Calls that could not reach a shared backend (answered as a miss or skipped).
    errors: int = 0


def check_ttl(ttl: float) -> None:
    # Every entry must expire: an entry without a TTL would outlive the permission
    # change or mutation that should have invalidated it.
    if not (isinstance(ttl, int | float) and math.isfinite(ttl) and ttl > 0):
        raise ValueError(f"ttl must be a finite number of seconds > 0, got {ttl!r}")


class Cache(abc.ABC):
    """A key-value cache whose entries all expire.

    Keys are plain strings that the caller builds to include the viewer's scope
    wherever the data is scoped.  ``None`` means a miss, so a cached ``None`` cannot
    be told apart from no entry: cache a sentinel for "known to be absent".
    """

    stats: CacheStats

    def __init__(self) -> None:
        self.stats = CacheStats()

    @abc.abstractmethod
    async def get(self, key: str) -> Any | None:
        """The value, or ``None`` on a miss."""

    @abc.abstractmethod
    async def set(self, key: str, value: Any, ttl: float) -> None:
        """Store ``value`` for ``ttl`` seconds (``ValueError`` unless ``ttl > 0``)."""

    @abc.abstractmethod
    async def delete(self, *keys: str) -> None:
        """Remove the keys; missing keys are ignored."""

    @abc.abstractmethod
    async def delete_prefix(self, prefix: str) -> int:
        """Remove every key starting with ``prefix``; the number removed.

        A prefix that is its own :func:`~gateway.cache._keys.key_group` (``kind:platform:
        id:``, what a write deletes) takes time in proportion to its keys; any other is a
        walk of every key."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections; the cache is unusable afterwards."""
