"""The shared cache for several gateway replicas, on Redis.

Uses ``redis.asyncio`` directly rather than aiocache's ``RedisCache``: aiocache 0.12.3
emits DeprecationWarnings with redis-py 8 (``setex``, ``close()``) and its unreleased
1.0 drops redis-py altogether.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import redis.asyncio as aioredis

from gateway.cache._base import Cache, check_ttl
from gateway.cache._signing import BadSignature, Signer, UnreadableValue

__all__ = ["RedisCache"]

logger = logging.getLogger("gateway.cache")

# Keys are removed in batches so one invalidation of a large prefix neither builds a
# huge command nor holds Redis for long; UNLINK frees memory off the main thread.
_DELETE_BATCH = 500
_SCAN_COUNT = 1000


def _glob_escape(text: str) -> str:
    # Keys are caller-built and may contain glob syntax, which SCAN MATCH would
    # otherwise interpret (a '*' in a prefix would widen the invalidation).
    return "".join("\\" + char if char in "\\*?[]" else char for char in text)


class RedisCache(Cache):
    """Values are pickled and signed with HMAC-SHA256 under ``secret``; a value that
    does not verify is treated as a miss and deleted, so a poisoned Redis cannot make
    the gateway unpickle attacker-written bytes."""

    def __init__(self, url: str, *, secret: bytes, namespace: str = "bg:cache:") -> None:
        super().__init__()
        self._signer = Signer(secret)
        self._namespace = namespace
        # Connects lazily, on the first command.
        self._client: aioredis.Redis = aioredis.Redis.from_url(url)

    def _key(self, key: str) -> bytes:
        return (self._namespace + key).encode()

    async def get(self, key: str) -> Any | None:
        redis_key = self._key(key)
        sealed = await self._client.get(redis_key)
        if isinstance(sealed, str):
            raise TypeError("RedisCache needs bytes replies: drop decode_responses from the URL")
        if sealed is None:
            self.stats.misses += 1
            return None
        try:
            value = self._signer.open(redis_key, sealed)
        except (BadSignature, UnreadableValue) as error:
            # The key only, never the bytes: they may be an attacker's payload.
            logger.warning("deleting unreadable cache entry %r: %s", key, error)
            await self._client.unlink(redis_key)
            self.stats.misses += 1
            return None
        self.stats.hits += 1
        return value

    async def set(self, key: str, value: Any, ttl: float) -> None:
        check_ttl(ttl)
        redis_key = self._key(key)
        # Rounded up so a sub-millisecond TTL still expires rather than failing (PX 0).
        ttl_ms = max(1, math.ceil(ttl * 1000))
        await self._client.set(redis_key, self._signer.seal(redis_key, value), px=ttl_ms)
        self.stats.sets += 1

    async def delete(self, *keys: str) -> None:
        if keys:
            await self._client.unlink(*(self._key(key) for key in keys))

    async def delete_prefix(self, prefix: str) -> int:
        # SCAN, never KEYS: KEYS blocks Redis for the whole keyspace walk.
        pattern = (_glob_escape(self._namespace + prefix) + "*").encode()
        removed = 0
        batch: list[bytes] = []
        async for redis_key in self._client.scan_iter(match=pattern, count=_SCAN_COUNT):
            batch.append(redis_key)
            if len(batch) >= _DELETE_BATCH:
                removed += await self._client.unlink(*batch)
                batch.clear()
        if batch:
            removed += await self._client.unlink(*batch)
        # UNLINK's own count: SCAN may yield a key twice, or one that expired meanwhile.
        return removed

    async def close(self) -> None:
        await self._client.aclose()
