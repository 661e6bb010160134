"""QST's session changing hands between two gateways sharing PostgreSQL and a Redis
event log, over real sockets: the new holder goes on from the saved records of the
previous one, so the log gets only what changed while no replica held the session —
once, as the order's own FILL — and no second snapshot of the orders that did not.
An account only the previous holder followed is reloaded at once after the takeover.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from brokergraph_qst.records import FLOW_KIND, record_id, restore
from brokergraph_qst.streams import AccountFeed

from gateway.contract import Money, OrderEventKind, OrderSide, OrderStatus, Position
from gateway.events import InProcessEventLog
from gateway.store import Store
from gateway.testing import TestGateway
from plugins.qst.tests.qst_testkit import (
    Subscription,
    connector,
    started_sandbox,
    subscribe,
    wait_until,
)
from plugins.qst.tests.test_graphql_qst import CANCEL, place
from plugins.qst.tests.test_resume import (
    ACCOUNT,
    cluster_settings,
    recorded,
    replica,
    resuming,
)
from plugins.qst.tests.test_session import logged, order
from tests.services import postgres_url, redis_url  # noqa: F401 (fixtures)

#: DEMO-001's other account: followed only by the first holder (not the new one's home).
OTHER = "297998"


async def test_a_record_and_the_log_after_it_are_the_state_a_new_holder_diffs_against() -> None:
    log, holder = InProcessEventLog(), AccountFeed("qst", ACCOUNT)
    position = Position(
        platform="qst",
        id=f"{ACCOUNT}:ESZ26",
        account_id=ACCOUNT,
        symbol="ESZ26",
        side=OrderSide.BUY,
        volume=Decimal(2),
        open_price=Decimal("4999.75"),
        opened_at=datetime(2026, 1, 1, tzinfo=UTC),
        unrealized_pnl=Money(Decimal("-12.50"), "USD"),
    )
    await logged(log, holder, holder.apply_order(order("1", OrderStatus.WORKING)))
    await logged(log, holder, holder.apply_order(order("2", OrderStatus.WORKING)))
    await logged(log, holder, holder.event(OrderEventKind.POSITION, position=position))
    record = json.loads(json.dumps(holder.record()))  # as the store keeps it
    # Logged after the last saved record (a holder killed before saving again).
    await logged(log, holder, holder.apply_order(order("2", OrderStatus.CANCELLED)))
    await logged(log, holder, holder.apply_order(order("3", OrderStatus.FILLED, "1")))

    feed = AccountFeed("qst", ACCOUNT)
    assert await restore(feed, record, log)
    assert [(e.sequence, e.order) for e in feed.snapshot()] == [
        (e.sequence, e.order) for e in holder.snapshot()
    ]
    assert feed.record() == holder.record()
    assert feed.positions["ESZ26"] == position
    # Known: moved by nothing, or logged final (in the tail or the record).
    assert feed.apply_order(order("1", OrderStatus.WORKING)) is None
    assert feed.apply_order(order("2", OrderStatus.CANCELLED)) is None
    assert feed.apply_order(order("3", OrderStatus.FILLED, "1")) is None
    # Changed meanwhile: the order's own event.
    fill = feed.apply_order(order("1", OrderStatus.FILLED, "1"))
    assert fill is not None and fill.kind is OrderEventKind.FILL
    # A log that does not continue the record (reset): not taken over.
    fresh, reset = AccountFeed("qst", ACCOUNT), InProcessEventLog()
    assert not await restore(fresh, record, reset)
    assert not fresh.seeded and fresh.sequence is None and not fresh.orders
    await log.close()
    await reset.close()


def orders(subscription: Subscription) -> list[tuple[str, str, str]]:
    """(kind, order, status) of each event carrying an order."""
    return [
        (e["kind"], e["order"]["externalId"], e["order"]["status"])
        for e in subscription.events
        if e["order"] is not None
    ]


async def logged_until_closed(gateway: TestGateway, account_id: str) -> int:
    """The last sequence the closed ``gateway`` logged for ``account_id``."""
    sequence = connector(gateway).feeds[account_id].sequence
    assert sequence is not None
    return sequence


@pytest.mark.redis
async def test_a_new_holder_logs_only_what_changed_while_no_replica_held_the_session(
    tmp_path: Path,
    postgres_url: str,  # noqa: F811 (the fixture)
    redis_url: str,  # noqa: F811 (the fixture)
) -> None:
    shared = cluster_settings(postgres_url, redis_url)
    async with started_sandbox(tick_seconds=0) as sandbox:
        async with replica(sandbox, tmp_path / "a", shared) as a:
            await wait_until(lambda: connector(a)._session is not None, "A holding the session")
            async with subscribe(a, ACCOUNT) as on_a, subscribe(a, OTHER) as other_on_a:
                filled = (await place(a, "5000"))["order"]["externalId"]
                resting = (await place(a, "1000"))["order"]["externalId"]
                other = (await place(a, "5000", account=OTHER))["order"]["externalId"]
                await on_a.wait_order(filled, "WORKING")
                await on_a.wait_order(resting, "WORKING")
                await other_on_a.wait_order(other, "WORKING")
                await recorded(a, filled)
                await recorded(a, resting)
                # The record as a holder killed right after the next events were
                # appended would have left it: behind the log.
                stale = await a.services.store.get_flow(record_id("qst", ACCOUNT))
                assert stale is not None
                gone = await place(a, "1000")
                await a.data(CANCEL, {"id": gone["order"]["id"]}, token="client")
                gone_id = gone["order"]["externalId"]
                await on_a.wait_order(gone_id, "CANCELLED")
        # A stopped (its queue drained, its records saved). Its last record of ACCOUNT
        # is put back to the stale one; while no replica holds the session, the market
        # fills an order in each account.
        last, other_last = [await logged_until_closed(a, i) for i in (ACCOUNT, OTHER)]
        store = await Store.open(postgres_url)
        try:
            await store.save_flow(record_id("qst", ACCOUNT), FLOW_KIND, stale)
        finally:
            await store.close()
        sandbox.set_price("ESZ26", "4999.75")

        async with (
            replica(sandbox, tmp_path / "b", shared) as b,
            subscribe(b, ACCOUNT, query=resuming(last)) as resumed,
            subscribe(b, OTHER, query=resuming(other_last)) as other_resumed,
        ):
            await wait_until(lambda: connector(b)._session is not None, "B holding the session")
            await resumed.wait_order(filled, "FILLED")
            # Not asked for on B: reloaded because A's record lists it.
            await other_resumed.wait_order(other, "FILLED")
            # The fill is logged mid-resynchronisation; once that is done (ready), the
            # session is back on its home account.
            await wait_until(lambda: connector(b).session.ready, "B ready")
            assert connector(b).session.home_account != OTHER
            # A fresh subscription: the new holder's snapshot, then live events.
            async with subscribe(b, ACCOUNT) as fresh:
                await fresh.wait_for(lambda e: e["order"] is None, "the snapshot end")
        assert not resumed.errors and not other_resumed.errors
        # Each account: exactly its fill, once, as a FILL; nothing of the unchanged or
        # already logged orders; no snapshot; numbered on from A's last event.
        assert orders(resumed) == [("FILL", filled, "FILLED")]
        assert orders(other_resumed) == [("FILL", other, "FILLED")]
        for subscription, after in ((resumed, last), (other_resumed, other_last)):
            kinds = {e["kind"] for e in subscription.events}
            assert "ORDER_BOOK_SNAPSHOT" not in kinds, subscription.events
            sequences = subscription.sequences()
            assert sequences == list(range(after + 1, after + 1 + len(sequences)))
        assert "POSITION" in {e["kind"] for e in resumed.events}, "the fill moved the position"
        snapshot = [(o, s) for kind, o, s in orders(fresh) if kind == "ORDER_BOOK_SNAPSHOT"]
        assert snapshot == [(resting, "WORKING")]
        assert sandbox.requests["LoginRequest"] == 2, "one login per holder"
