"""QST order events on the gateway's event log, over real sockets: a graphql-transport-ws
client that went away resumes with ``afterSequence`` and gets exactly what it missed,
and two gateways sharing PostgreSQL and a Redis event log (two replicas: one holds the
QST session, the other routes to it) number every event the same."""

from __future__ import annotations

import asyncio
import itertools
import secrets
from decimal import Decimal
from pathlib import Path
from typing import Any

import brokergraph_qst.plugin
import pytest
from brokergraph_qst.records import record_id
from brokergraph_qst.sandbox import QstSandbox

from gateway.testing import TestGateway, open_test_gateway
from plugins.qst.tests.qst_testkit import (
    FAST_RECOVERY,
    ORDER_EVENTS,
    WAIT,
    Subscription,
    connector,
    qst_gateway_on,
    started_sandbox,
    subscribe,
    wait_until,
)
from plugins.qst.tests.test_graphql_qst import CANCEL, place
from tests.services import postgres_url, redis_url  # noqa: F401 (fixtures)

ACCOUNT = "297999"


def resuming(after: int) -> str:
    """The order-events subscription, resuming after sequence ``after``."""
    return ORDER_EVENTS.replace(
        "orderEvents(accountId: $id)", f"orderEvents(accountId: $id, afterSequence: {after})"
    )


def seen(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """What a subscriber saw of each event: comparable across subscriptions."""
    return [
        (
            e["sequence"],
            e["kind"],
            e["text"],
            e["order"] and (e["order"]["externalId"], e["order"]["status"]),
        )
        for e in events
    ]


async def caught_up(behind: Subscription, ahead: Subscription, after: int) -> list[dict[str, Any]]:
    """Once ``behind`` has every event ``ahead`` has after ``after``: those events."""

    def missed() -> list[dict[str, Any]]:
        return [e for e in ahead.events if e["sequence"] > after]

    await wait_until(
        lambda: behind.events and behind.events[-1]["sequence"] == ahead.events[-1]["sequence"],
        "caught up",
    )
    return missed()


async def test_a_client_resumes_with_its_last_sequence_and_misses_nothing(
    tmp_path: Path,
) -> None:
    async with (
        started_sandbox(tick_seconds=0) as sandbox,
        qst_gateway_on(sandbox, tmp_path) as gateway,
        subscribe(gateway, ACCOUNT) as witness,  # stays connected throughout
    ):
        await witness.wait_for(lambda e: True, "the snapshot")
        async with subscribe(gateway, ACCOUNT) as first:
            resting = (await place(gateway, "5000"))["order"]
            other = (await place(gateway, "1000"))["order"]
            await first.wait_order(resting["externalId"], "WORKING")
            await first.wait_order(other["externalId"], "WORKING")
        last = first.sequences()[-1]
        # While the client is away: one order fills, the other is cancelled.
        sandbox.set_price("ESZ26", Decimal("4999.75"))
        await gateway.data(CANCEL, {"id": other["id"]}, token="client")
        await witness.wait_order(resting["externalId"], "FILLED")
        await witness.wait_order(other["externalId"], "CANCELLED")
        async with subscribe(gateway, ACCOUNT, query=resuming(last)) as resumed:
            await resumed.wait_order(resting["externalId"], "FILLED")
            await resumed.wait_order(other["externalId"], "CANCELLED")
            # ...then live events, as the witness gets them.
            live = (await place(gateway, "1000"))["order"]
            await gateway.data(CANCEL, {"id": live["id"]}, token="client")
            await resumed.wait_order(live["externalId"], "CANCELLED")
            await witness.wait_order(live["externalId"], "CANCELLED")
            missed = await caught_up(resumed, witness, last)
        assert not resumed.errors
        assert seen(resumed.events) == seen(missed), "exactly the missed events, once, in order"
        sequences = resumed.sequences()
        assert sequences == list(range(last + 1, last + 1 + len(sequences)))
        assert "ORDER_BOOK_SNAPSHOT" not in {e["kind"] for e in resumed.events}
        statuses = {(e["order"]["externalId"], e["order"]["status"]) for e in missed if e["order"]}
        assert (resting["externalId"], "FILLED") in statuses
        assert (other["externalId"], "CANCELLED") in statuses
        feed = connector(gateway).feeds[ACCOUNT]
        await wait_until(lambda: feed.subscriber_count == 1, "only the witness left")


def cluster_settings(store_url: str, events_url: str) -> dict[str, Any]:
    """What the replicas of one test cluster share: store, event log, secrets, namespace."""
    return {
        "store": {"url": store_url},
        "events": {"url": events_url},
        "cache": {"secret": secrets.token_hex(16)},
        "cluster": {"namespace": f"qst-test-{secrets.token_hex(4)}", "lease_seconds": 2},
    }


def replica(sandbox: QstSandbox, directory: Path, shared: dict[str, Any]) -> Any:
    """A gateway of a two-replica cluster: the shared store, event log and secrets."""
    directory.mkdir()
    return open_test_gateway(
        brokergraph_qst.plugin,
        [sandbox],
        directory,
        connector_settings={"qst": FAST_RECOVERY},
        **shared,
    )


async def recorded(gateway: TestGateway, order_id: str) -> None:
    """Wait until the holder saved an order book record with ``order_id`` working."""
    store = gateway.services.store

    async def listed() -> bool:
        record = await store.get_flow(record_id("qst", ACCOUNT))
        orders = record["orders"] if record is not None else []
        return any((o["id"], o["status"]) == (order_id, "WORKING") for _, o in orders)

    async with asyncio.timeout(WAIT):
        while not await listed():  # noqa: ASYNC110 (the holder saves in the background)
            await asyncio.sleep(0.01)


async def health(gateway: TestGateway) -> str:
    data = await gateway.data("{ connectors { name health { status } } }", token="admin")
    (qst,) = [c for c in data["connectors"] if c["name"] == "qst"]
    status: str = qst["health"]["status"]
    return status


@pytest.mark.redis
async def test_two_replicas_number_every_event_the_same(
    tmp_path: Path,
    postgres_url: str,  # noqa: F811 (the fixture)
    redis_url: str,  # noqa: F811 (the fixture)
) -> None:
    shared = cluster_settings(postgres_url, redis_url)
    async with (
        started_sandbox(tick_seconds=0) as sandbox,
        replica(sandbox, tmp_path / "a", shared) as a,
    ):
        await wait_until(lambda: connector(a)._session is not None, "A holding the session")
        async with replica(sandbox, tmp_path / "b", shared) as b:
            assert connector(b)._session is None, "B must not log in: A holds the session"
            async with subscribe(a, ACCOUNT) as on_a:
                snapshot = await on_a.wait_for(lambda e: e["order"] is None, "the snapshot end")
                start = snapshot["sequence"]
                async with subscribe(b, ACCOUNT, query=resuming(start)) as on_b:
                    # Placed and cancelled through B: routed to A, the holder.
                    placed = (await place(b, "1000"))["order"]
                    await b.data(CANCEL, {"id": placed["id"]}, token="client")
                    await on_b.wait_order(placed["externalId"], "CANCELLED")
                    await on_a.wait_order(placed["externalId"], "CANCELLED")
                    on_both = await caught_up(on_b, on_a, start)
                assert seen(on_b.events) == seen(on_both), "the same numbers on both replicas"
                kinds = [e["kind"] for e in on_b.events]
                assert {"ORDER", "TEXT"} <= set(kinds), kinds
                statuses = [e["order"]["status"] for e in on_b.events if e["order"]]
                assert statuses[:3] == ["PENDING", "WORKING", "CANCELLED"], statuses
                assert on_b.sequences() == list(range(start + 1, start + 1 + len(on_b.events)))
                assert await health(b) == "UP"
                # A fresh subscription on B: the snapshot from A's record, then the log.
                resting = (await place(a, "1000"))["order"]
                await on_a.wait_order(resting["externalId"], "WORKING")
                await recorded(a, resting["externalId"])
                async with subscribe(b, ACCOUNT) as fresh:
                    await fresh.wait_order(resting["externalId"], "WORKING")
                    await b.data(CANCEL, {"id": resting["id"]}, token="client")
                    await fresh.wait_order(resting["externalId"], "CANCELLED")
                    await caught_up(fresh, on_a, fresh.sequences()[0])
            opening = list(
                itertools.takewhile(lambda e: e["kind"] == "ORDER_BOOK_SNAPSHOT", fresh.events)
            )
            in_snapshot = [
                (e["order"]["externalId"], e["order"]["status"]) for e in opening if e["order"]
            ]
            assert (resting["externalId"], "WORKING") in in_snapshot
            end = opening[-1]["sequence"]
            # Up to what fresh had when it closed: A stayed subscribed a moment longer,
            # so it may hold a later event (the cancel's TEXT) that fresh never waited for.
            last = fresh.events[-1]["sequence"]
            live = [e for e in on_a.events if end < e["sequence"] <= last]
            assert seen(fresh.events[len(opening) :]) == seen(live)
        assert sandbox.requests["LoginRequest"] == 1, "one session: B never logged in"
