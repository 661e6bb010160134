"""The clustered event log, on Redis Streams (the Redis the cluster already runs).

Per topic, under the namespace ``ns``:

* ``{ns}log:{topic}`` — a stream whose entry ids are ``<sequence>-0``;
* ``{ns}logmeta:{topic}`` — a hash: ``seq``, the last sequence given out, and
  ``epoch``, a random name for this incarnation of the topic's log;
* ``{ns}logkey:{topic}:{key}`` — for :data:`KEY_SECONDS`, the sequence an append
  with that key received (``{ns}logappend:{random}`` for an hour without a key).

One Lua script numbers, stores and trims (``MAXLEN`` for the count, ``MINID`` past
entries older than the age limit, by Redis's own clock): atomic, so two replicas
appending at once get consecutive numbers and the stream never holds a gap.  The
append id makes a retried append (a reply lost on a dropped connection) return the
first number instead of storing the event twice.  Live entries reach followers over
:class:`~gateway.events.RedisEventBus` (channel ``{ns}log:{topic}``); a follower
whose notifications dropped reads the stream (``XRANGE``) from its last sequence.

Entries are pickled and signed like the bus's messages: a forged entry reads as an
error, never as an event.  The sequence survives a Redis restart only as far as
Redis's persistence does (AOF with ``appendfsync always`` loses nothing); a reset
shows as a new epoch or a head behind a follower, i.e. as
:class:`~gateway.errors.ResumeTooOld`, never as silently re-used numbers.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from gateway.cache._signing import Signer
from gateway.events._log import EventLog, LogEntry, LogPage, Retention
from gateway.events._redis import RedisEventBus

__all__ = ["KEY_SECONDS", "RedisEventLog"]

#: How long an append key is remembered (a webhook's redeliveries come within days).
KEY_SECONDS = 7 * 86_400

_APPEND = """
local seen = redis.call('GET', KEYS[3])
local epoch = redis.call('HGET', KEYS[2], 'epoch')
if seen then
  local sep = string.find(seen, ':', 1, true)
  return {tonumber(string.sub(seen, 1, sep - 1)), epoch, tonumber(string.sub(seen, sep + 1)), 1}
end
if not epoch then
  epoch = ARGV[4]
  redis.call('HSET', KEYS[2], 'epoch', epoch)
end
local seq = redis.call('HINCRBY', KEYS[2], 'seq', 1)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[2], seq .. '-0', 'e', ARGV[1], 't', now)
local age = tonumber(ARGV[3])
if age > 0 then
  local oldest = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 100)
  local keep = nil
  for _, entry in ipairs(oldest) do
    if tonumber(entry[2][4]) >= now - age then
      keep = entry[1]
      break
    end
  end
  if keep then
    redis.call('XTRIM', KEYS[1], 'MINID', keep)
  end
end
redis.call('SET', KEYS[3], seq .. ':' .. now, 'EX', ARGV[5])
return {seq, epoch, now, 0}
"""


class RedisEventLog(EventLog):
    """See the module docstring; ``namespace`` prefixes every key and channel, so two
    environments can share one Redis."""

    transient_errors = (
        redis.exceptions.ConnectionError,
        redis.exceptions.TimeoutError,
        ConnectionError,
        OSError,
    )
    poll_seconds = 15.0

    def __init__(
        self,
        url: str,
        *,
        secret: bytes,
        namespace: str = "bg:events:",
        retention: Retention | None = None,
        reconnect_seconds: float = 30.0,
    ) -> None:
        super().__init__(
            RedisEventBus(url, secret=secret, channel_prefix=f"{namespace}log:"),
            reconnect_seconds=reconnect_seconds,
        )
        self.retention = retention or Retention()
        self.namespace = namespace
        self._signer = Signer(secret)
        # Retries are safe here: reads are reads, and an append carries its id.
        self._client: aioredis.Redis = aioredis.Redis.from_url(
            url, retry=Retry(ExponentialBackoff(cap=0.5, base=0.02), 3)
        )
        self._append = self._client.register_script(_APPEND)

    async def _store(self, topic: str, event: Any, key: str | None) -> LogEntry:
        stream = self._stream(topic)
        # Without a caller's key, a random one still makes redis-py's resend of the
        # script on a dropped connection return the first number, not a second entry.
        marker = f"{self.namespace}logkey:{topic}:{key}" if key else self._random_marker()
        args: list[bytes | int | str] = [
            self._signer.seal(stream.encode(), event),
            self.retention.max_entries,
            int(self.retention.max_age_seconds * 1000),
            secrets.token_hex(8),
            KEY_SECONDS if key else 3600,
        ]
        sequence, epoch, millis, repeated = await self._append(
            keys=[stream, self._meta(topic), marker], args=args
        )
        return LogEntry(
            topic, int(sequence), event, _moment(millis), _text(epoch), repeated=bool(repeated)
        )

    def _random_marker(self) -> str:
        return f"{self.namespace}logappend:{secrets.token_hex(12)}"

    async def _read(self, topic: str, after: int, limit: int) -> LogPage:
        stream = self._stream(topic)
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hmget(self._meta(topic), ["seq", "epoch"])
            if limit:
                pipe.xrange(stream, min=f"{after + 1}-0", count=limit)
            replies = await pipe.execute()
        head, epoch = replies[0]
        entries = []
        for entry_id, fields in replies[1] if limit else ():
            sequence = int(_text(entry_id).split("-", 1)[0])
            event = self._signer.open(stream.encode(), fields[b"e"])
            entries.append(
                LogEntry(topic, sequence, event, _moment(fields[b"t"]), _text(epoch or b""))
            )
        return LogPage(entries, int(head or 0), _text(epoch or b""))

    async def _close_storage(self) -> None:
        await self._client.aclose()

    def _stream(self, topic: str) -> str:
        return f"{self.namespace}log:{topic}"

    def _meta(self, topic: str) -> str:
        return f"{self.namespace}logmeta:{topic}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _moment(millis: bytes | int) -> datetime:
    return datetime.fromtimestamp(int(millis) / 1000, UTC)
