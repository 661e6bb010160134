"""The bus for several gateway replicas, over Redis pub/sub.

One pub/sub connection per bus serves all its subscriptions: a reader task fans each
message out to the local queues.  Thousands of GraphQL subscribers therefore cost one
Redis connection and one SUBSCRIBE per topic, not one connection each.

Redis pub/sub does not replay what a disconnected client missed.  So this bus never
reconnects behind its subscribers' backs (redis-py would, and resubscribe silently):
when the connection drops, every subscription is cut off with
:class:`SubscriptionLost`, and the next subscription opens a new connection.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import defaultdict, deque
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from gateway.cache._signing import BadSignature, Signer, UnreadableValue
from gateway.events._base import EventBus
from gateway.events._subscription import Subscription, SubscriptionLost

__all__ = ["RedisEventBus"]

logger = logging.getLogger("gateway.events")

# A confirmation future resolves to None, or to the error that prevented the reply.
# Results rather than exceptions: nobody may be awaiting it any more, and an
# exception nobody retrieved would be reported as an asyncio error.
_Reply = asyncio.Future[BaseException | None]


class _Link:
    """One pub/sub connection, the task reading it, and the replies awaited on it."""

    def __init__(self, pubsub: PubSub) -> None:
        self.pubsub = pubsub
        self.reader: asyncio.Task[None] | None = None
        self.lost = False
        # Redis confirms (un)subscriptions in the order they were sent, per channel.
        self._replies: defaultdict[tuple[str, bytes], deque[_Reply]] = defaultdict(deque)

    def expect(self, kind: str, channel: bytes) -> _Reply:
        reply: _Reply = asyncio.get_running_loop().create_future()
        self._replies[(kind, channel)].append(reply)
        return reply

    def settle(self, kind: str, channel: bytes) -> None:
        waiting = self._replies.get((kind, channel))
        if waiting:
            waiting.popleft().set_result(None)
            if not waiting:
                del self._replies[(kind, channel)]

    def fail(self, error: BaseException) -> None:
        for waiting in self._replies.values():
            for reply in waiting:
                if not reply.done():
                    reply.set_result(error)
        self._replies.clear()


class RedisEventBus(EventBus):
    """Events are pickled and signed with HMAC-SHA256 under ``secret`` (shared by all
    replicas); a message that does not verify is dropped and logged without its
    payload.  ``publish`` returns Redis's count of subscribed connections, i.e. of
    replicas, not of local subscribers."""

    def __init__(self, url: str, *, secret: bytes, channel_prefix: str = "bg:events:") -> None:
        super().__init__()
        self._signer = Signer(secret)
        self._prefix = channel_prefix.encode()
        self._client: aioredis.Redis = aioredis.Redis.from_url(url)
        # A client of its own: no retries, so a dropped connection surfaces as an error
        # instead of being retried past a silent gap (and _on_reconnect catches any
        # re-establishment redis-py still does), and a name that shows up in
        # CLIENT LIST (names may not contain spaces).
        self._pubsub_client: aioredis.Redis = aioredis.Redis.from_url(
            url,
            retry=Retry(NoBackoff(), 0),
            client_name=re.sub(r"[^!-~]", "_", channel_prefix + "pubsub"),
        )
        self._link: _Link | None = None
        self._link_lock = asyncio.Lock()
        # The latest SUBSCRIBE confirmation per topic, for later local subscribers
        # of a topic whose SUBSCRIBE is still in flight.
        self._subscribed: dict[str, _Reply] = {}
        self._retiring: set[asyncio.Task[None]] = set()

    async def publish(self, topic: str, event: Any) -> int:
        self._check_open()
        channel = self._channel(topic)
        return await self._client.publish(channel, self._signer.seal(channel, event))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._link is not None:
            self._retire(self._link, RuntimeError("the event bus is closed"))
        for subscription in self._fanout.drain():
            subscription._end()
        self._subscribed.clear()
        await asyncio.gather(*self._retiring)
        await self._pubsub_client.aclose()
        await self._client.aclose()

    async def _attach(self, subscription: Subscription) -> None:
        link = await self._current_link()
        # No await from here to the SUBSCRIBE: the link cannot be lost in between.
        first = self._fanout.add(subscription)
        if first:
            channel = self._channel(subscription.topic)
            reply = link.expect("subscribe", channel)
            self._subscribed[subscription.topic] = reply
            try:
                await link.pubsub.subscribe(channel)
            except Exception as error:
                self._lose(link, error)
                raise
        else:
            reply = self._subscribed[subscription.topic]
        # Shielded: the reply is shared with other subscribers of the topic.
        failure = await asyncio.shield(reply)
        if failure is not None:
            raise SubscriptionLost(f"could not subscribe: {failure}")

    async def _detach(self, subscription: Subscription) -> None:
        if not self._fanout.discard(subscription):
            return
        self._subscribed.pop(subscription.topic, None)
        link = self._link
        if link is None:
            return
        channel = self._channel(subscription.topic)
        reply = link.expect("unsubscribe", channel)
        try:
            await link.pubsub.unsubscribe(channel)
        except Exception as error:
            self._lose(link, error)
            return
        # Waiting for the confirmation makes "unsubscribed" true once we return; a
        # lost connection unsubscribed us as well, so its error is not ours.
        await asyncio.shield(reply)

    async def _current_link(self) -> _Link:
        async with self._link_lock:
            self._check_open()
            if self._link is None:
                pubsub = self._pubsub_client.pubsub()
                # redis-py leaves PubSub.connect() and aclose() unannotated.
                try:
                    await pubsub.connect()  # type: ignore[no-untyped-call]
                except BaseException:
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                    raise
                link = _Link(pubsub)
                assert pubsub.connection is not None
                pubsub.connection.register_connect_callback(self._on_reconnect)
                link.reader = asyncio.create_task(self._read(link), name="gateway.events reader")
                self._link = link
            return self._link

    async def _read(self, link: _Link) -> None:
        try:
            while True:
                message = await link.pubsub.get_message(timeout=None)
                if message is not None:
                    self._dispatch(link, message)
        except Exception as error:
            self._lose(link, error)

    def _dispatch(self, link: _Link, message: dict[str, Any]) -> None:
        kind = message["type"]
        channel: bytes = message["channel"]
        if kind in ("subscribe", "unsubscribe"):
            link.settle(kind, channel)
        elif kind == "message":
            try:
                event = self._signer.open(channel, message["data"])
            except BadSignature as error:
                # Never the payload: it is untrusted and may be crafted for the logs.
                logger.warning("dropped a forged or corrupt message on %r: %s", channel, error)
                return
            except UnreadableValue as error:
                logger.error("dropped an unreadable signed message on %r: %s", channel, error)
                return
            self._fanout.deliver(channel[len(self._prefix) :].decode(), event)

    def _on_reconnect(self, connection: AbstractConnection) -> None:
        # Called by redis-py whenever the pub/sub connection is re-established,
        # which means events may have been missed meanwhile.
        link = self._link
        if link is not None and link.pubsub.connection is connection:
            self._lose(link, ConnectionError("the pub/sub connection was re-established"))

    def _lose(self, link: _Link, error: BaseException) -> None:
        if link.lost:
            return
        cut_off = self._fanout.drain()
        logger.warning(
            "lost the Redis pub/sub connection (%s); cutting off %d subscriptions",
            error,
            len(cut_off),
        )
        self._subscribed.clear()
        self._retire(link, error)
        for subscription in cut_off:
            subscription._fail(
                SubscriptionLost("the Redis pub/sub connection was lost; events may be missing")
            )

    def _retire(self, link: _Link, error: BaseException) -> None:
        link.lost = True
        if self._link is link:
            self._link = None
        link.fail(error)
        task = asyncio.create_task(self._close_link(link))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    @staticmethod
    async def _close_link(link: _Link) -> None:
        reader = link.reader
        if reader is not None and reader is not asyncio.current_task():
            reader.cancel()
            # wait() rather than await: it does not re-raise the reader's cancellation.
            await asyncio.wait([reader])
        await link.pubsub.aclose()  # type: ignore[no-untyped-call]

    def _channel(self, topic: str) -> bytes:
        return self._prefix + topic.encode()
