"""The event buses: the same behaviour in process and over a real Redis.

Waits are bounded by ``asyncio.timeout`` only so a broken bus fails instead of
hanging; no assertion depends on timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis.asyncio as aioredis

from gateway.events import (
    EventBus,
    InProcessEventBus,
    RedisEventBus,
    SlowConsumer,
    Subscription,
    SubscriptionLost,
    create_event_bus,
)

SECRET = b"test-secret-0123456789abcdef"
WAIT = 10.0

BusFactory = Callable[[], EventBus]


async def receive(subscription: Subscription, count: int = 1) -> list[Any]:
    async with asyncio.timeout(WAIT):
        return [await anext(subscription) for _ in range(count)]


async def next_event(subscription: Subscription) -> Any:
    """For iterations expected to raise: bounded, so a regression fails, not hangs."""
    async with asyncio.timeout(WAIT):
        return await anext(subscription)


@pytest.fixture
def redis_prefix() -> str:
    # Pub/sub channels are server-wide (not per database): a fresh prefix isolates
    # this test from any other test run on the same Redis.
    return f"bg:test:{secrets.token_hex(6)}:"


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def bus_url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory://"
    url: str = request.getfixturevalue("redis_url")
    return url


@pytest.fixture
async def make_bus(bus_url: str, redis_prefix: str) -> AsyncIterator[BusFactory]:
    """Buses that share one transport: "replicas" of one gateway.  In process there
    is a single bus, so every call returns the same one."""
    buses: list[EventBus] = []
    if bus_url == "memory://":
        shared = InProcessEventBus()
        buses.append(shared)

        def make() -> EventBus:
            return shared

    else:

        def make() -> EventBus:
            bus = RedisEventBus(bus_url, secret=SECRET, channel_prefix=redis_prefix)
            buses.append(bus)
            return bus

    yield make
    for bus in buses:
        await bus.close()


@pytest.fixture
def bus(make_bus: BusFactory) -> EventBus:
    return make_bus()


@pytest.fixture
def peer(make_bus: BusFactory) -> EventBus:
    """Another replica for Redis (the same bus in process): publishes from elsewhere."""
    return make_bus()


async def test_events_arrive_in_publish_order(bus: EventBus, peer: EventBus) -> None:
    async with bus.subscribe("orders") as subscription:
        for number in range(100):
            await peer.publish("orders", {"seq": number})
        received = await receive(subscription, 100)
    assert received == [{"seq": number} for number in range(100)]


async def test_every_subscriber_receives(bus: EventBus, peer: EventBus) -> None:
    async with bus.subscribe("t") as first, bus.subscribe("t") as second:
        await peer.publish("t", "one")
        await peer.publish("t", "two")
        assert await receive(first, 2) == ["one", "two"]
        assert await receive(second, 2) == ["one", "two"]


async def test_topics_are_isolated(bus: EventBus, peer: EventBus) -> None:
    async with bus.subscribe("a") as on_a, bus.subscribe("b") as on_b:
        await peer.publish("b", "for b")
        await peer.publish("a", "for a")
        await peer.publish("b", "for b again")
        assert await receive(on_a) == ["for a"]
        assert await receive(on_b, 2) == ["for b", "for b again"]
        await peer.publish("a", "last")
        assert await receive(on_a) == ["last"]


async def test_subscription_is_effective_when_entered(bus: EventBus, peer: EventBus) -> None:
    # A publish right after entering, from another connection, must never be missed:
    # entering waits until the subscription is in place, not merely requested.
    for number in range(50):
        topic = f"fresh-{number}"
        async with bus.subscribe(topic) as subscription:
            await peer.publish(topic, number)
            assert await receive(subscription) == [number]


async def test_later_subscriber_of_a_topic_is_effective_when_entered(
    bus: EventBus, peer: EventBus
) -> None:
    for number in range(20):
        topic = f"shared-{number}"
        async with bus.subscribe(topic) as first:
            async with bus.subscribe(topic) as second:
                await peer.publish(topic, number)
                assert await receive(second) == [number]
            assert await receive(first) == [number]


async def test_exit_unsubscribes(bus: EventBus, peer: EventBus) -> None:
    async with bus.subscribe("t") as first:
        async with bus.subscribe("t") as second:
            pass
        with pytest.raises(StopAsyncIteration):
            await next_event(second)
        # The topic is still subscribed for the remaining subscriber.
        assert await peer.publish("t", "still here") == 1
        assert await receive(first) == ["still here"]
    assert await peer.publish("t", "nobody") == 0


async def test_slow_consumer_is_cut_off(bus: EventBus, peer: EventBus) -> None:
    async with bus.subscribe("t", max_queue=5) as slow, bus.subscribe("t") as witness:
        for number in range(5):
            await peer.publish("t", number)
        # The witness got them all, so all were delivered to the slow queue too.
        assert await receive(witness, 5) == [0, 1, 2, 3, 4]
        assert await receive(slow, 5) == [0, 1, 2, 3, 4]  # a full queue is fine

        for number in range(5, 11):
            await peer.publish("t", number)
        assert await receive(witness, 6) == [5, 6, 7, 8, 9, 10]
        # Six behind with room for five: cut off, not silently skipped past.
        with pytest.raises(SlowConsumer):
            await next_event(slow)
        with pytest.raises(SubscriptionLost):
            await next_event(slow)

        await peer.publish("t", 11)
        assert await receive(witness) == [11]


async def test_publish_without_subscribers(bus: EventBus) -> None:
    assert await bus.publish("nobody-listens", "x") == 0


async def test_subscription_must_be_entered(bus: EventBus) -> None:
    subscription = bus.subscribe("t")
    with pytest.raises(RuntimeError, match="async with"):
        await anext(subscription)
    async with subscription:
        pass
    with pytest.raises(RuntimeError, match="only once"):
        await subscription.__aenter__()


def test_max_queue_must_be_positive(bus: EventBus) -> None:
    with pytest.raises(ValueError, match="max_queue"):
        bus.subscribe("t", max_queue=0)


async def test_close_ends_subscriptions_after_queued_events(make_bus: BusFactory) -> None:
    bus = make_bus()
    async with bus.subscribe("t") as subscription, bus.subscribe("t") as witness:
        await bus.publish("t", "queued")
        assert await receive(witness) == ["queued"]
        await bus.close()
        assert await receive(subscription) == ["queued"]
        with pytest.raises(StopAsyncIteration):
            await next_event(subscription)
    with pytest.raises(RuntimeError, match="closed"):
        await bus.publish("t", "late")
    with pytest.raises(RuntimeError, match="closed"):
        async with bus.subscribe("t"):
            pass


class SlowLink:
    """A TCP proxy to Redis that holds every client-to-server chunk back for ``delay``
    seconds, in order.  A bus behind it sends its (UN)SUBSCRIBE late, so a bus that
    returned before Redis confirmed them would visibly miss or over-count messages
    that a direct client publishes meanwhile."""

    def __init__(self, target_url: str, delay: float) -> None:
        parts = urlsplit(target_url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 6379
        self._path = parts.path
        self._delay = delay
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{port}{self._path}"

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Tracked too: stop() must not return while a connection is still being set up
        # (Server.wait_closed() does not wait for handlers on Python 3.11).
        accepting = asyncio.current_task()
        assert accepting is not None
        self._tasks.add(accepting)
        accepting.add_done_callback(self._tasks.discard)
        try:
            up_reader, up_writer = await asyncio.open_connection(self._host, self._port)
        except BaseException:
            writer.close()
            raise
        for pump in (
            self._pump(reader, up_writer, self._delay),
            self._pump(up_reader, writer, 0),
        ):
            task = asyncio.create_task(pump)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _pump(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float
    ) -> None:
        try:
            while chunk := await reader.read(65536):
                if delay:
                    await asyncio.sleep(delay)
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def slow_url(redis_url: str) -> AsyncIterator[str]:
    proxy = SlowLink(redis_url, delay=0.3)
    yield await proxy.start()
    await proxy.stop()


@pytest.mark.redis
async def test_entering_waits_for_redis_to_confirm(
    slow_url: str, redis_url: str, redis_prefix: str
) -> None:
    bus = RedisEventBus(slow_url, secret=SECRET, channel_prefix=redis_prefix)
    direct = RedisEventBus(redis_url, secret=SECRET, channel_prefix=redis_prefix)
    try:
        async with bus.subscribe("t") as first:
            assert await direct.publish("t", "right after entering") == 1
            assert await receive(first) == ["right after entering"]
            # The second subscriber of "u" enters while the first's SUBSCRIBE is in
            # flight: it must wait for that confirmation too.
            async with contextlib.AsyncExitStack() as stack:
                entering = asyncio.create_task(stack.enter_async_context(bus.subscribe("u")))
                await asyncio.sleep(0)  # lets it send its SUBSCRIBE and wait for the reply
                later = await stack.enter_async_context(bus.subscribe("u"))
                assert await direct.publish("u", "both") == 1
                assert await receive(later) == ["both"]
                assert await receive(await entering) == ["both"]
            # Exiting waits for the UNSUBSCRIBE to be confirmed as well.
            assert await direct.publish("u", "nobody") == 0
    finally:
        await bus.close()
        await direct.close()


@pytest.mark.redis
async def test_replicas_deliver_to_each_other(redis_url: str, redis_prefix: str) -> None:
    one = RedisEventBus(redis_url, secret=SECRET, channel_prefix=redis_prefix)
    two = RedisEventBus(redis_url, secret=SECRET, channel_prefix=redis_prefix)
    try:
        async with one.subscribe("t") as on_one, two.subscribe("t") as on_two:
            assert await one.publish("t", "from one") == 2  # one connection per replica
            assert await two.publish("t", "from two") == 2
            assert await receive(on_one, 2) == ["from one", "from two"]
            assert await receive(on_two, 2) == ["from one", "from two"]
    finally:
        await one.close()
        await two.close()


@pytest.mark.redis
async def test_subscribers_share_one_connection(
    redis_url: str, redis_prefix: str, raw_redis: aioredis.Redis
) -> None:
    bus = RedisEventBus(redis_url, secret=SECRET, channel_prefix=redis_prefix)
    try:
        async with bus.subscribe("a") as first, bus.subscribe("a"), bus.subscribe("b"):
            clients = await raw_redis.client_list()
            named = [c for c in clients if c["name"] == redis_prefix + "pubsub"]
            assert len(named) == 1
            assert int(named[0]["sub"]) == 2  # one SUBSCRIBE per topic
            assert await raw_redis.publish(redis_prefix + "a", b"x") == 1
            await bus.publish("a", "ok")
            assert await receive(first) == ["ok"]
    finally:
        await bus.close()


@pytest.fixture
async def raw_redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.mark.redis
async def test_forged_messages_are_dropped_and_logged(
    redis_url: str,
    redis_prefix: str,
    raw_redis: aioredis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = RedisEventBus(redis_url, secret=SECRET, channel_prefix=redis_prefix)
    impostor = RedisEventBus(
        redis_url, secret=b"not-the-shared-secret-0123", channel_prefix=redis_prefix
    )
    try:
        async with bus.subscribe("t") as subscription:
            with caplog.at_level(logging.WARNING, logger="gateway.events"):
                await raw_redis.publish(redis_prefix + "t", b"PAYLOAD-unsigned-pickle")
                await impostor.publish("t", "PAYLOAD-wrong-secret")
                await bus.publish("t", "genuine")
                assert await receive(subscription) == ["genuine"]
        dropped = [r for r in caplog.records if r.name == "gateway.events"]
        assert len(dropped) == 2
        assert all("dropped" in record.getMessage() for record in dropped)
        assert "PAYLOAD" not in caplog.text
    finally:
        await bus.close()
        await impostor.close()


@pytest.mark.redis
async def test_message_signed_for_another_topic_is_dropped(
    redis_url: str, redis_prefix: str, raw_redis: aioredis.Redis
) -> None:
    bus = RedisEventBus(redis_url, secret=SECRET, channel_prefix=redis_prefix)
    try:
        async with bus.subscribe("a") as on_a, bus.subscribe("b") as on_b:
            # Capture a genuine message of topic "b" and replay it on topic "a".
            await bus.publish("b", "meant for b")
            assert await receive(on_b) == ["meant for b"]
            capture = raw_redis.pubsub()
            await capture.subscribe(redis_prefix + "b")
            await bus.publish("b", "captured")
            message = None
            async with asyncio.timeout(WAIT):
                while message is None or message["type"] != "message":
                    message = await capture.get_message(timeout=None)
            await capture.aclose()  # type: ignore[no-untyped-call]
            await raw_redis.publish(redis_prefix + "a", message["data"])
            await bus.publish("a", "genuine")
            assert await receive(on_a) == ["genuine"]
    finally:
        await bus.close()


@pytest.mark.redis
async def test_lost_connection_cuts_subscribers_off(
    redis_url: str, redis_prefix: str, raw_redis: aioredis.Redis
) -> None:
    bus = RedisEventBus(redis_url, secret=SECRET, channel_prefix=redis_prefix)
    try:
        async with bus.subscribe("t") as subscription:
            await bus.publish("t", "before")
            assert await receive(subscription) == ["before"]
            clients = await raw_redis.client_list()
            (pubsub_client,) = [c for c in clients if c["name"] == redis_prefix + "pubsub"]
            await raw_redis.client_kill_filter(_id=pubsub_client["id"])
            # Events published meanwhile are gone: iteration must say so.
            with pytest.raises(SubscriptionLost):
                await next_event(subscription)
        # The bus recovers for new subscriptions, on a new connection.
        async with bus.subscribe("t") as again:
            await bus.publish("t", "after")
            assert await receive(again) == ["after"]
    finally:
        await bus.close()


async def test_create_event_bus_dispatches_on_scheme() -> None:
    memory = create_event_bus("memory://", secret=SECRET)
    assert isinstance(memory, InProcessEventBus)
    await memory.close()
    for url in ("redis://127.0.0.1:6379/15", "rediss://events.example:6380/0"):
        remote = create_event_bus(url, secret=SECRET)
        assert isinstance(remote, RedisEventBus)
        await remote.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("kafka://broker:9092", "unsupported event bus URL scheme 'kafka'"),
        ("", "no scheme"),
        ("memory://elsewhere", "takes no host"),
        ("https://user:hunter2@events.example/", "unsupported event bus URL scheme 'https'"),
    ],
)
def test_create_event_bus_rejects_bad_url(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        create_event_bus(url, secret=SECRET)
    assert "hunter2" not in str(caught.value)


def test_redis_bus_rejects_short_secret() -> None:
    with pytest.raises(ValueError, match="secret"):
        RedisEventBus("redis://127.0.0.1:6379/15", secret=b"")
