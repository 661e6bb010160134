"""The event log: per-topic sequences, resume without gap or duplicate, retention
reported, and followers that survive a Redis restart — in process and on real Redis.

Waits are bounded by ``asyncio.timeout`` only so a broken log fails instead of
hanging; no assertion depends on timing.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from gateway.errors import ResumeTooOld
from gateway.events import (
    EventLog,
    InProcessEventLog,
    LogEntry,
    LogFollower,
    RedisEventLog,
    Retention,
    create_event_log,
)
from tests.private_redis import PrivateRedis

SECRET = b"test-secret-0123456789abcdef"
WAIT = 10.0

LogFactory = Callable[..., EventLog]


async def take(follower: LogFollower, count: int) -> list[LogEntry]:
    async with asyncio.timeout(WAIT):
        return [await anext(follower) for _ in range(count)]


def pairs(entries: list[LogEntry]) -> list[tuple[int, object]]:
    return [(entry.sequence, entry.event) for entry in entries]


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def log_url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory://"
    url: str = request.getfixturevalue("redis_url")
    return url


@pytest.fixture
async def make_log(log_url: str) -> AsyncIterator[LogFactory]:
    """Logs sharing one store: "replicas".  In process there is one log, so every call
    returns the same one (with the retention of the first call)."""
    logs: list[EventLog] = []
    if log_url == "memory://":

        def make(retention: Retention | None = None) -> EventLog:
            if not logs:
                logs.append(InProcessEventLog(retention))
            return logs[0]

    else:
        namespace = f"bg:test:{secrets.token_hex(6)}:"

        def make(retention: Retention | None = None) -> EventLog:
            log = RedisEventLog(log_url, secret=SECRET, namespace=namespace, retention=retention)
            logs.append(log)
            return log

    yield make
    for log in logs:
        await log.close()


async def test_sequences_are_gapless_per_topic_across_replicas(make_log: LogFactory) -> None:
    one, two = make_log(), make_log()
    appended = await asyncio.gather(
        *(log.append("orders:a", n) for n in range(40) for log in (one, two)),
        *(one.append("orders:b", n) for n in range(5)),
    )
    on_a = sorted(e.sequence for e in appended if e.topic == "orders:a")
    assert on_a == list(range(1, 81))
    assert sorted(e.sequence for e in appended if e.topic == "orders:b") == [1, 2, 3, 4, 5]
    assert len({e.epoch for e in appended if e.topic == "orders:a"}) == 1


async def test_the_head_is_the_last_sequence_on_every_replica(make_log: LogFactory) -> None:
    one, two = make_log(), make_log()
    assert await one.head("orders:h") == 0
    for n in range(3):
        await one.append("orders:h", n)
    assert await one.head("orders:h") == await two.head("orders:h") == 3
    assert await two.head("orders:other") == 0


async def test_followers_on_every_replica_see_the_same_numbers(make_log: LogFactory) -> None:
    one, two = make_log(), make_log()
    async with one.follow("t") as on_one, two.follow("t") as on_two:
        for n in range(20):
            await (one if n % 2 else two).append("t", f"e{n}")
        expected = [(n + 1, f"e{n}") for n in range(20)]
        assert pairs(await take(on_one, 20)) == expected
        assert pairs(await take(on_two, 20)) == expected


async def test_resume_replays_the_missed_events_once_then_goes_live(
    make_log: LogFactory,
) -> None:
    log, peer = make_log(), make_log()
    for n in range(1, 11):
        await peer.append("t", n)
    async with log.follow("t", after=4) as follower:
        await peer.append("t", 11)  # while replaying: live, after the missed ones
        received = await take(follower, 7)
        assert pairs(received) == [(n, n) for n in range(5, 12)]
        await peer.append("t", 12)
        assert pairs(await take(follower, 1)) == [(12, 12)]
        assert follower.last_sequence == 12
    async with log.follow("t", after=12) as caught_up:
        await peer.append("t", 13)
        assert pairs(await take(caught_up, 1)) == [(13, 13)]


async def test_following_from_now_starts_at_the_head(make_log: LogFactory) -> None:
    log = make_log()
    await log.append("t", "old")
    async with log.follow("t") as follower:
        assert follower.last_sequence == 1
        await log.append("t", "new")
        assert pairs(await take(follower, 1)) == [(2, "new")]


async def test_a_resume_point_past_retention_is_reported(make_log: LogFactory) -> None:
    log = make_log(Retention(max_entries=5))
    for n in range(1, 13):
        await log.append("t", n)
    with pytest.raises(ResumeTooOld) as expired:
        async with log.follow("t", after=3):
            pass
    assert expired.value.code == "RESUME_POINT_EXPIRED"
    assert expired.value.details == {"afterSequence": 3, "oldestSequence": 8, "lastSequence": 12}
    async with log.follow("t", after=7) as follower:  # the oldest kept one is next: fine
        assert [e.sequence for e in await take(follower, 5)] == [8, 9, 10, 11, 12]


async def test_a_resume_point_ahead_of_the_log_is_reported(make_log: LogFactory) -> None:
    log = make_log()
    await log.append("t", 1)
    with pytest.raises(ResumeTooOld, match="ahead"):
        async with log.follow("t", after=5):
            pass


async def test_a_slow_follower_catches_up_from_the_log(make_log: LogFactory) -> None:
    log = make_log()
    async with log.follow("t", max_queue=3) as slow:
        for n in range(1, 21):
            await log.append("t", n)
        # Its live queue overflowed: it reads the rest from storage, missing nothing.
        assert pairs(await take(slow, 20)) == [(n, n) for n in range(1, 21)]


async def test_an_append_key_stores_the_event_once(make_log: LogFactory) -> None:
    one, two = make_log(), make_log()
    first = await one.append("t", "callback", key="delivery-1")
    again = await two.append("t", "callback", key="delivery-1")
    other = await two.append("t", "next", key="delivery-2")
    assert (first.sequence, first.repeated) == (1, False)
    assert (again.sequence, again.repeated) == (1, True)
    assert (other.sequence, other.repeated) == (2, False)
    async with one.follow("t", after=0) as follower:
        assert pairs(await take(follower, 2)) == [(1, "callback"), (2, "next")]


async def test_payload_forms_publish_and_subscribe(make_log: LogFactory) -> None:
    log = make_log()
    async with log.subscribe("t") as events:
        assert await log.publish("t", "x") == 1
        async with asyncio.timeout(WAIT):
            assert await anext(events) == "x"


async def test_age_retention_in_process() -> None:
    now = [0.0]
    log = InProcessEventLog(Retention(max_age_seconds=60), clock=lambda: now[0])
    await log.append("t", "old")
    now[0] = 61.0
    await log.append("t", "young")
    with pytest.raises(ResumeTooOld, match="retention"):
        async with log.follow("t", after=0):
            pass
    async with log.follow("t", after=1) as follower:
        assert pairs(await take(follower, 1)) == [(2, "young")]
    await log.close()


@pytest.mark.redis
async def test_age_retention_on_redis(redis_url: str) -> None:
    log = RedisEventLog(
        redis_url,
        secret=SECRET,
        namespace=f"bg:test:{secrets.token_hex(6)}:",
        retention=Retention(max_age_seconds=0.05),
    )
    try:
        await log.append("t", "old")
        await asyncio.sleep(0.2)  # lets the first entry age past the limit (not asserted)
        await log.append("t", "young")
        with pytest.raises(ResumeTooOld, match="retention"):
            async with log.follow("t", after=0):
                pass
    finally:
        await log.close()


@pytest.mark.redis
async def test_namespaces_keep_two_environments_apart(redis_url: str) -> None:
    staging = RedisEventLog(redis_url, secret=SECRET, namespace="bg:test:staging:")
    production = RedisEventLog(redis_url, secret=SECRET, namespace="bg:test:production:")
    try:
        async with production.follow("t") as follower:
            assert (await staging.append("t", "staging")).sequence == 1
            assert (await production.append("t", "production")).sequence == 1
            assert pairs(await take(follower, 1)) == [(1, "production")]
    finally:
        await staging.close()
        await production.close()


@pytest.mark.redis
async def test_a_reset_log_is_reported_not_replayed(redis_url: str) -> None:
    namespace = f"bg:test:{secrets.token_hex(6)}:"
    log = RedisEventLog(redis_url, secret=SECRET, namespace=namespace)
    raw = aioredis.Redis.from_url(redis_url)
    try:
        async with log.follow("t") as follower:
            for n in range(3):
                await log.append("t", n)
            assert len(await take(follower, 3)) == 3
            # Redis lost the topic (restarted without persistence), and new events
            # were numbered again from 1: the follower must not take them for new.
            await raw.delete(f"{namespace}log:t", f"{namespace}logmeta:t")
            for n in range(5):
                await log.append("t", f"after reset {n}")
            with pytest.raises(ResumeTooOld, match="reset"):
                await take(follower, 1)
    finally:
        await raw.aclose()
        await log.close()


def test_create_event_log_dispatches_on_scheme() -> None:
    assert isinstance(create_event_log("memory://", secret=SECRET), InProcessEventLog)
    remote = create_event_log("redis://127.0.0.1:6379/15", secret=SECRET, namespace="x:")
    assert isinstance(remote, RedisEventLog)
    assert remote.namespace == "x:"
    with pytest.raises(ValueError, match="unsupported"):
        create_event_log("kafka://broker", secret=SECRET)


# -- a private Redis that is killed and restarted ------------------------------------------


@pytest.fixture
async def private_redis(tmp_path: Path) -> AsyncIterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)  # each test starts it (and restarts it) itself
    yield server
    await server.kill()


async def test_a_follower_keeps_its_place_across_a_redis_restart(
    private_redis: PrivateRedis,
) -> None:
    await private_redis.start()
    log = RedisEventLog(private_redis.url, secret=SECRET, reconnect_seconds=WAIT)
    writer = RedisEventLog(private_redis.url, secret=SECRET)
    try:
        async with log.follow("t") as follower:
            for n in range(1, 6):
                await writer.append("t", n)
            assert pairs(await take(follower, 2)) == [(1, 1), (2, 2)]
            await private_redis.kill()
            # The follower notices on its next read, retrying until Redis is back.
            reading = asyncio.create_task(take(follower, 5))
            await private_redis.start()
            await writer.append("t", 6)
            await writer.append("t", 7)
            received = await reading
        # Exactly once each, in order: the place survived, nothing was replayed twice.
        assert pairs(received) == [(n, n) for n in range(3, 8)]
    finally:
        await log.close()
        await writer.close()
