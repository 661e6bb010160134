"""The gateway's cache: in-memory by default, Redis when several replicas share it.

Every entry has a TTL.  Keys are strings the caller builds to include the viewer's
scope where the data is scoped; mutations invalidate with :meth:`Cache.delete` or
:meth:`Cache.delete_prefix`.
"""

from __future__ import annotations

from gateway.cache._base import Cache, CacheStats
from gateway.cache._factory import create_cache
from gateway.cache._keys import cache_key
from gateway.cache._memory import MemoryCache
from gateway.cache._redis import RedisCache
from gateway.cache._shared_reads import SharedReads

__all__ = [
    "Cache",
    "CacheStats",
    "MemoryCache",
    "RedisCache",
    "SharedReads",
    "cache_key",
    "create_cache",
]
