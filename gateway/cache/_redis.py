"""The shared cache for several gateway replicas, on Redis.

Uses ``redis.asyncio`` directly rather than aiocache's ``RedisCache``: aiocache 0.12.3
emits DeprecationWarnings with redis-py 8 (``setex``, ``close()``) and its unreleased
1.0 drops redis-py altogether.

A key of more than three parts (``kind:platform:id:…``, an account's read of a period)
is also filed in its group's index, a Redis set of key names kept beside the namespace
(``<namespace>-groups:kind:platform:id:``), written with the entry by one script.
Deleting that prefix (what a write to the account does) removes the index's keys in one
script, instead of a SCAN of the whole namespace: with 10,000 entries a write's three
prefix deletions took 29 ms (30 round trips, Redis walking every key each time).  The
scripts use keys they are not given, which a Redis Cluster refuses: the cache runs on
one Redis (or its replicas).  Any other prefix is still a SCAN.

The cache fails soft: it is an optimisation, so when Redis cannot be reached a read
is a miss (the caller goes to the upstream), a write of an entry is skipped, and an
invalidation is kept and retried (see :class:`_PendingInvalidations`).  One warning
per outage is logged, not one per call.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from gateway.cache._base import Cache, check_ttl
from gateway.cache._keys import key_group
from gateway.cache._signing import BadSignature, Signer, UnreadableValue
from gateway.outage import Outage

__all__ = ["RedisCache", "redis_client"]

logger = logging.getLogger("gateway.cache")

# Keys are removed in batches so one invalidation of a large prefix neither builds a
# huge command nor holds Redis for long; UNLINK frees memory off the main thread.
_DELETE_BATCH = 500
_SCAN_COUNT = 1000
# What "Redis is unreachable" looks like: redis-py wraps socket errors in its own
# ConnectionError/TimeoutError, but a few paths (DNS, TLS) raise OSError itself.
_UNREACHABLE = (RedisError, OSError)
# A cache call is a single short command: waiting longer than this for Redis is
# worse than going to the upstream.
_SOCKET_TIMEOUT_SECONDS = 1.0
# Invalidations that could not be applied are retried this many times with a
# doubling delay (0.25 s … 8 s, about a minute in all); after that the entries they
# meant to remove expire by their TTL.
_INVALIDATION_ATTEMPTS = 10
_INVALIDATION_FIRST_DELAY = 0.25
_INVALIDATION_MAX_DELAY = 8.0
# Beyond this many pending keys and prefixes the whole namespace is invalidated
# instead: still correct, and memory stays bounded however long the outage.
_MAX_PENDING = 10_000


# An entry of a group and its place in the group's index, in one step; the index lives
# as long as its longest-lived entry.  At every _GROUP_PRUNE_EVERY-th name, the names
# whose entries expired are dropped, so the index of an account read often but never
# written to stays near the size of what is cached, at a constant cost per name.
_SET_IN_GROUP = """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local added = redis.call('SADD', KEYS[2], KEYS[1])
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[2]) then
    redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
if added == 1 and redis.call('SCARD', KEYS[2]) % tonumber(ARGV[3]) == 0 then
    for _, name in ipairs(redis.call('SMEMBERS', KEYS[2])) do
        if redis.call('EXISTS', name) == 0 then
            redis.call('SREM', KEYS[2], name)
        end
    end
end
"""
_GROUP_PRUNE_EVERY = 256
# Every entry of a group, and the index; the number of entries removed.
_DELETE_GROUP = """
local names = redis.call('SMEMBERS', KEYS[1])
local batch = tonumber(ARGV[1])
local removed = 0
for first = 1, #names, batch do
    local last = math.min(first + batch - 1, #names)
    removed = removed + redis.call('UNLINK', unpack(names, first, last))
end
redis.call('UNLINK', KEYS[1])
return removed
"""


def redis_client(url: str) -> aioredis.Redis:
    """A client that fails fast: short socket timeouts and one immediate retry (which
    replaces a pooled connection Redis dropped when it restarted)."""
    client: aioredis.Redis = aioredis.Redis.from_url(
        url,
        socket_timeout=_SOCKET_TIMEOUT_SECONDS,
        socket_connect_timeout=_SOCKET_TIMEOUT_SECONDS,
        retry=Retry(NoBackoff(), 1),
    )
    return client


def _glob_escape(text: str) -> str:
    # Keys are caller-built and may contain glob syntax, which SCAN MATCH would
    # otherwise interpret (a '*' in a prefix would widen the invalidation).
    return "".join("\\" + char if char in "\\*?[]" else char for char in text)


class _PendingInvalidations:
    """Keys and prefixes whose deletion Redis refused, in the order they failed."""

    def __init__(self) -> None:
        self.keys: dict[str, None] = {}
        self.prefixes: dict[str, None] = {}

    def __bool__(self) -> bool:
        return bool(self.keys or self.prefixes)

    def add(self, keys: tuple[str, ...] = (), prefix: str | None = None) -> None:
        self.keys.update(dict.fromkeys(keys))
        if prefix is not None:
            self.prefixes[prefix] = None
        if len(self.keys) + len(self.prefixes) > _MAX_PENDING:
            self.keys.clear()
            self.prefixes = {"": None}  # every entry of the namespace

    def clear(self) -> None:
        self.keys.clear()
        self.prefixes.clear()


class RedisCache(Cache):
    """Values are pickled and signed with HMAC-SHA256 under ``secret``; a value that
    does not verify is treated as a miss and deleted, so a poisoned Redis cannot make
    the gateway unpickle attacker-written bytes.

    While invalidations are pending (Redis refused them), this replica applies them
    before it serves any entry again, or answers a miss; other replicas may read an
    entry a failed invalidation meant to remove until the retry lands or its TTL ends.
    """

    def __init__(self, url: str, *, secret: bytes, namespace: str = "bg:cache:") -> None:
        super().__init__()
        self._signer = Signer(secret)
        self._namespace = namespace
        self._groups_namespace = namespace.rstrip(":") + "-groups:"
        # Connects lazily, on the first command.
        self._client = redis_client(url)
        self._outage = Outage("the Redis cache", logger)
        self._pending = _PendingInvalidations()
        self._flushing = asyncio.Lock()
        self._retrier: asyncio.Task[None] | None = None
        self._set_in_group = self._client.register_script(_SET_IN_GROUP)
        self._delete_group = self._client.register_script(_DELETE_GROUP)

    @property
    def outage(self) -> Outage:
        return self._outage

    @property
    def pending_invalidations(self) -> int:
        """Keys and prefixes still to delete once Redis answers (tests, metrics)."""
        return len(self._pending.keys) + len(self._pending.prefixes)

    def _key(self, key: str) -> bytes:
        return (self._namespace + key).encode()

    async def get(self, key: str) -> Any | None:
        if self._outage.skip() or not await self._flush_pending():
            self.stats.errors += 1
            self.stats.misses += 1
            return None
        redis_key = self._key(key)
        try:
            sealed = await self._client.get(redis_key)
        except _UNREACHABLE as error:
            self._outage.failed(error)
            self.stats.errors += 1
            self.stats.misses += 1
            return None
        self._outage.reached()
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
            await self._delete_keys((key,))
            self.stats.misses += 1
            return None
        self.stats.hits += 1
        return value

    async def set(self, key: str, value: Any, ttl: float) -> None:
        check_ttl(ttl)
        if self._outage.skip():
            self.stats.errors += 1
            return
        redis_key = self._key(key)
        # Rounded up so a sub-millisecond TTL still expires rather than failing (PX 0).
        ttl_ms = max(1, math.ceil(ttl * 1000))
        sealed = self._signer.seal(redis_key, value)
        group = key_group(key)
        try:
            if group is None:
                await self._client.set(redis_key, sealed, px=ttl_ms)
            else:
                await self._set_in_group(
                    keys=[redis_key, self._group_key(group)],
                    args=[sealed, ttl_ms, _GROUP_PRUNE_EVERY],
                )
        except _UNREACHABLE as error:
            self._outage.failed(error)
            self.stats.errors += 1
            return
        self._outage.reached()
        self.stats.sets += 1

    async def delete(self, *keys: str) -> None:
        if keys:
            await self._delete_keys(keys)

    async def delete_prefix(self, prefix: str) -> int:
        """The number removed; 0 when Redis is unreachable (the deletion is retried)."""
        if self._outage.skip():
            self._keep(prefix=prefix)
            return 0
        try:
            removed = await self._unlink_prefix(prefix)
        except _UNREACHABLE as error:
            self._outage.failed(error)
            self._keep(prefix=prefix)
            return 0
        self._outage.reached()
        return removed

    async def close(self) -> None:
        if self._retrier is not None:
            self._retrier.cancel()
            await asyncio.gather(self._retrier, return_exceptions=True)
        await self._client.aclose()

    # -- invalidation -------------------------------------------------------------------

    async def _delete_keys(self, keys: tuple[str, ...]) -> None:
        if self._outage.skip():
            self._keep(keys=keys)
            return
        try:
            await self._client.unlink(*(self._key(key) for key in keys))
        except _UNREACHABLE as error:
            self._outage.failed(error)
            self._keep(keys=keys)
            return
        self._outage.reached()

    def _group_key(self, group: str) -> bytes:
        return (self._groups_namespace + group).encode()

    async def _unlink_prefix(self, prefix: str) -> int:
        if key_group(prefix) == prefix:
            removed: int = await self._delete_group(
                keys=[self._group_key(prefix)], args=[_DELETE_BATCH]
            )
            return removed
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

    def _keep(self, *, keys: tuple[str, ...] = (), prefix: str | None = None) -> None:
        """Remember an invalidation Redis refused, and make sure it is retried."""
        self.stats.errors += 1
        self._pending.add(keys, prefix)
        if self._retrier is None or self._retrier.done():
            self._retrier = asyncio.get_running_loop().create_task(self._retry_pending())

    async def _flush_pending(self) -> bool:
        """Apply pending invalidations; False while Redis still refuses them."""
        if not self._pending:
            return True
        async with self._flushing:
            try:
                if self._pending.keys:
                    keys = list(self._pending.keys)
                    await self._client.unlink(*(self._key(key) for key in keys))
                    for key in keys:
                        self._pending.keys.pop(key, None)
                for prefix in list(self._pending.prefixes):
                    await self._unlink_prefix(prefix)
                    self._pending.prefixes.pop(prefix, None)
            except _UNREACHABLE as error:
                self._outage.failed(error)
                return False
        self._outage.reached()
        return True

    async def _retry_pending(self) -> None:
        delay = _INVALIDATION_FIRST_DELAY
        for _ in range(_INVALIDATION_ATTEMPTS):
            await asyncio.sleep(delay)
            if await self._flush_pending():
                return
            delay = min(_INVALIDATION_MAX_DELAY, delay * 2)
        logger.warning(
            "giving up %d cache invalidations after %d attempts; those entries expire by TTL",
            self.pending_invalidations,
            _INVALIDATION_ATTEMPTS,
        )
        self._pending.clear()
