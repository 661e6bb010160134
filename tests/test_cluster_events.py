"""QST order events across three real replicas: one numbering, nothing lost in a failover.

QST's notifications reach the event log on the replica holding the session; every
replica's ``orderEvents`` subscribers read that log (graphql-transport-ws), so an
order placed through any replica reaches subscribers on all of them with every
state and TEXT, under the same sequence numbers.  When the holder is SIGKILLed,
its subscribers reconnect to a survivor with their last sequence and get every
event once, those published while they were away included.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from tests.cluster_replicas import (
    Replica,
    RunningCluster,
    Subscriber,
    resting_buy,
    running_cluster,
)

pytestmark = pytest.mark.timeout(180)

LEASE_SECONDS = 3  # as running_cluster configures
ACCOUNT = "297999"
EVENTS = """subscription($id: ID!, $after: Int) { orderEvents(accountId: $id,
  afterSequence: $after) { sequence kind text order { externalId status } } }"""
PLACE = """mutation($input: PlaceOrderInput!) { placeOrder(input: $input) {
  order { id externalId status } errors { code message } } }"""
CANCEL = """mutation($id: ID!) { cancelOrder(input: {orderId: $id}) {
  order { status } errors { code message } } }"""


@pytest.fixture(scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningCluster]:
    async with running_cluster(tmp_path_factory.mktemp("cluster")) as running:
        with running.showing_logs():
            await running.holder("qst")
        yield running


def subscriber(cluster: RunningCluster, replica: Replica, after: int | None = None) -> Subscriber:
    variables = {"id": cluster.account_id("qst", ACCOUNT), "after": after}
    return Subscriber(replica, cluster.token(), EVENTS, variables)


async def place(cluster: RunningCluster, replica: Replica, price: str) -> dict[str, Any]:
    """A resting LIMIT BUY through ``replica``; its order (id, externalId, status)."""
    variables = resting_buy(cluster.account_id("qst", ACCOUNT), price)
    body = await cluster.graphql(replica, PLACE, variables)
    assert "errors" not in body and body["data"]["placeOrder"]["errors"] == [], body
    order: dict[str, Any] = body["data"]["placeOrder"]["order"]
    return order


async def cancel(cluster: RunningCluster, replica: Replica, order: dict[str, Any]) -> None:
    body = await cluster.graphql(replica, CANCEL, {"id": order["id"]})
    assert "errors" not in body and body["data"]["cancelOrder"]["errors"] == [], body


def live(
    events: Sequence[dict[str, Any]], *, fresh: bool = True
) -> list[tuple[int, str, str | None, str | None]]:
    """The events after a ``fresh`` subscription's opening snapshot (a resumed one has
    none: all its events), as (sequence, kind, order, status)."""
    start = 0
    while fresh and start < len(events) and events[start]["kind"] == "ORDER_BOOK_SNAPSHOT":
        start += 1
    return [
        (
            e["sequence"],
            e["kind"],
            (e["order"] or {}).get("externalId"),
            (e["order"] or {}).get("status"),
        )
        for e in events[start:]
    ]


def statuses(
    events: Sequence[tuple[int, str, str | None, str | None]], external_id: str
) -> list[str]:
    """The order's states as its ORDER and FILL events told them, in order."""
    return [s for _, kind, o, s in events if kind in ("ORDER", "FILL") and o == external_id and s]


async def settled(subscribers: Sequence[Subscriber], seconds: float = 20.0) -> None:
    """Until every subscriber holds the same last sequence and nothing more arrives for
    a moment (trailing position and account events)."""
    deadline = time.monotonic() + seconds
    last: tuple[int, ...] = ()
    while time.monotonic() < deadline:
        heads = tuple(s.events[-1]["sequence"] if s.events else -1 for s in subscribers)
        if heads == last and len(set(heads)) == 1:
            return
        last = heads
        await asyncio.sleep(0.5)
    raise AssertionError(f"subscribers did not settle: {[live(s.events) for s in subscribers]}")


def consecutive(events: Sequence[tuple[int, str, str | None, str | None]]) -> bool:
    numbers = [sequence for sequence, *_ in events]
    return numbers == list(range(numbers[0], numbers[0] + len(numbers))) if numbers else True


async def test_an_order_placed_through_one_replica_reaches_every_replica_alike(
    cluster: RunningCluster,
) -> None:
    a, b, c = cluster.members
    qst = cluster.sandboxes.qst
    with cluster.showing_logs():
        watchers = [subscriber(cluster, replica) for replica in (a, c, b)]
        for watcher in watchers:
            await watcher.__aenter__()
        try:
            for watcher in watchers:
                await watcher.wait_for(1)  # the snapshot: from here on events are live
            cancelled = await place(cluster, b, "1000.25")
            await cancel(cluster, b, cancelled)
            filled = await place(cluster, b, "1000.50")
            qst.set_price("ESZ26", "1000.50")  # the market comes down to it: filled
            await settled(watchers)
        finally:
            qst.set_price("ESZ26", "6000.00")
            for watcher in watchers:
                await watcher.__aexit__(None, None, None)
    first = live(watchers[0].events)
    for watcher in watchers:
        assert watcher.errors == []
        assert live(watcher.events) == first  # the same events, numbers, order everywhere
    assert consecutive(first), first
    assert statuses(first, cancelled["externalId"]) == [
        "PENDING",
        "WORKING",
        "CANCELLED",
    ]
    assert statuses(first, filled["externalId"]) == ["PENDING", "WORKING", "FILLED"]
    kinds = [kind for _, kind, _, _ in first]
    # Each order event is followed by its TEXT; the fill moved the position and account.
    assert kinds.count("TEXT") == kinds.count("ORDER") + kinds.count("FILL") == 6
    assert {"POSITION", "ACCOUNT"} <= set(kinds)


async def test_subscribers_of_a_killed_holder_resume_on_a_survivor_missing_nothing(
    cluster: RunningCluster,
) -> None:
    holder = await cluster.holder("qst")
    first, second = [r for r in cluster.members if r is not holder and r.alive]
    with cluster.showing_logs():
        leaving = subscriber(cluster, holder)
        staying = subscriber(cluster, first)
        await leaving.__aenter__()
        await staying.__aenter__()
        try:
            await leaving.wait_for(1)
            await staying.wait_for(1)
            resting = await place(cluster, first, "1000.75")  # routed to the holder
            await settled([leaving, staying])

            killed = time.monotonic()
            holder.signal(signal.SIGKILL)
            await leaving.wait_ended()
            last = leaving.events[-1]["sequence"]  # what the client resumes after
            # While it is away: a new holder takes the session; an order is placed and
            # the resting one cancelled, through the other survivor.
            await cluster.holder("qst", seconds=LEASE_SECONDS * 5)
            placed = await _first_order(cluster, second, seconds=LEASE_SECONDS * 5)
            print(
                f"\nSIGKILL of the QST holder: first order after {time.monotonic() - killed:.2f} s"
            )
            await cancel(cluster, second, resting)
            await settled([staying])

            resumed = subscriber(cluster, first, after=last)
            async with resumed:
                await settled([resumed, staying])
                assert resumed.errors == [] and staying.errors == []
        finally:
            await leaving.__aexit__(None, None, None)
            await staying.__aexit__(None, None, None)
    missed = [e for e in live(staying.events) if e[0] > last]
    # Exactly what it missed, once each, in order; nothing before its resume point.
    assert live(resumed.events, fresh=False) == missed
    assert consecutive(live(leaving.events) + missed)
    assert statuses(missed, placed["externalId"]) == ["PENDING", "WORKING"]
    assert statuses(missed, resting["externalId"])[-1] == "CANCELLED"


async def _first_order(cluster: RunningCluster, replica: Replica, seconds: float) -> dict[str, Any]:
    """Place through ``replica`` until one succeeds (the session changing hands)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return await place(cluster, replica, "1001.00")
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)
