"""The conformance kit against the QST connector and sandbox, plus QST's own promises:
rejects mapped to our errors, one upstream session whatever the number of subscribers,
order state carried across a sandbox restart, and answers matched to their requests
however QST orders them.

QST answers out of order unless the client waits for each answer [V], so every case
here runs against a sandbox whose responses wait a seeded random delay (the kit's own
``sandbox`` fixture builds ``sandbox_class()`` with its defaults, which answer in order).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from decimal import Decimal

import pytest
import pytest_asyncio
from brokergraph_qst.connector import QstConnector
from brokergraph_qst.sandbox import QstSandbox

from gateway.contract import (
    Connector,
    NotFound,
    OrderEventKind,
    OrderSide,
    OrderStatus,
    OrderType,
    PlaceOrderRequest,
    TimeInForce,
    UpstreamRejected,
)
from gateway.contract.sandbox import Sandbox
from gateway.testing import ConformanceSuite, EventWatcher, Sample, assert_increasing, new_key

QST_SAMPLE = Sample(
    account_ids=["297999", "297998"],
    trader_ids=["demo-trader"],
    unknown_id="999999999",
    order_account_id="297999",
    order_symbol="ESZ26",
    order_quantity=Decimal(1),
    far_limit_price=Decimal("1000.00"),
)


def limit(price: str, account: str = "297999", symbol: str = "ESZ26") -> PlaceOrderRequest:
    return PlaceOrderRequest(
        account_id=account,
        symbol=symbol,
        side=OrderSide.BUY,
        type=OrderType.LIMIT,
        quantity=Decimal(1),
        price=Decimal(price),
        time_in_force=TimeInForce.GTC,
        idempotency_key=new_key(),
    )


#: Each response waits uniform(0, this) seconds: enough to reorder concurrent answers.
REORDERING_JITTER_SECONDS = 0.01


class TestQstConformance(ConformanceSuite):
    connector_class = QstConnector
    sandbox_class = QstSandbox
    sample = QST_SAMPLE

    @pytest_asyncio.fixture(scope="class", loop_scope="session")
    @classmethod
    async def sandbox(cls) -> AsyncIterator[Sandbox]:
        """The kit's sandbox, reordering its answers as QST may (``reset()`` keeps it)."""
        async with QstSandbox(response_jitter_seconds=REORDERING_JITTER_SECONDS) as sandbox:
            yield sandbox

    async def test_concurrent_answers_out_of_order_reach_their_requests(
        self, connector: Connector, sandbox: Sandbox
    ) -> None:
        assert isinstance(connector, QstConnector)
        assert isinstance(sandbox, QstSandbox)
        reordered = sandbox.reordered_responses
        prices = ["1000.00", "1000.25", "1000.50", "1000.75"]
        placed, orders, accounts = await asyncio.gather(
            asyncio.gather(*(connector.place_order(limit(p)) for p in prices)),
            connector.get_orders(["297999"]),
            connector.get_accounts(["297999"]),
        )
        assert [o.price for o in placed] == [Decimal(p) for p in prices]
        assert len({o.id for o in placed}) == len(prices)
        assert all(o.account_id == "297999" for o in [*placed, *orders[0]])
        assert [a.id if a else None for a in accounts] == ["297999"]
        cancelled = await asyncio.gather(*(connector.cancel_order("297999", o.id) for o in placed))
        assert [o.id for o in cancelled] == [o.id for o in placed]
        assert {o.status for o in cancelled} == {OrderStatus.CANCELLED}
        assert sandbox.reordered_responses > reordered, "the answers came out of order"

    async def test_a_reject_is_upstream_rejected_with_qst_reason(
        self, connector: Connector
    ) -> None:
        assert isinstance(connector, QstConnector)
        with pytest.raises(UpstreamRejected) as refused:
            await connector.place_order(limit("1000.10"))  # off the 0.25 tick grid
        assert refused.value.details["vendorMessage"] == "Invalid price: 1000.10"
        rejected = [
            o for o in (await connector.get_orders(["297999"]))[0] if o.reject_reason is not None
        ]
        assert rejected[-1].status is OrderStatus.REJECTED
        assert rejected[-1].reject_reason == "Invalid price: 1000.10"

    async def test_unknown_accounts_are_not_found(self, connector: Connector) -> None:
        assert isinstance(connector, QstConnector)
        with pytest.raises(NotFound):
            await connector.place_order(limit("1000", account="400001"))  # another user's
        with pytest.raises(NotFound):
            await anext(connector.order_events("400001"))

    async def test_many_subscribers_share_one_session(
        self, connector: Connector, sandbox: Sandbox
    ) -> None:
        assert isinstance(connector, QstConnector)
        assert isinstance(sandbox, QstSandbox)
        connections = sandbox.connections
        streams = [connector.order_events("297999") for _ in range(50)]
        firsts = await asyncio.gather(*(anext(s) for s in streams))
        assert {e.kind for e in firsts} == {OrderEventKind.ORDER_BOOK_SNAPSHOT}
        placed = await connector.place_order(limit("1000"))
        await connector.cancel_order("297999", placed.id)
        for stream in streams:
            while True:
                event = await asyncio.wait_for(anext(stream), 10)
                if event.order is not None and event.order.status is OrderStatus.CANCELLED:
                    break
            assert isinstance(stream, AsyncGenerator)  # order_events is an async generator
            await stream.aclose()
        assert sandbox.connections == connections, "subscribers must not open connections"
        assert connector.feeds["297999"].subscriber_count == 0

    async def test_order_state_survives_a_sandbox_restart(
        self, connector: Connector, sandbox: Sandbox
    ) -> None:
        assert isinstance(connector, QstConnector)
        assert isinstance(sandbox, QstSandbox)
        session = connector.session
        async with EventWatcher(connector.order_events("297999"), 20) as watcher:
            placed = await connector.place_order(limit("5000"))
            relogins = session.relogins
            await sandbox.restart()
            # The price crosses the limit while the connector may still be away: the
            # fill must reach the stream, after the resynchronisation if need be.
            sandbox.set_price("ESZ26", Decimal("4999.75"))
            filled = await watcher.wait_for(
                lambda e: (
                    e.order is not None
                    and e.order.id == placed.id
                    and e.order.status is OrderStatus.FILLED
                ),
                "the fill made during the restart",
            )
            await watcher.wait_for(
                lambda e: e.kind is OrderEventKind.POSITION and e.sequence > filled.sequence,
                "the position after the fill",
            )
        assert session.relogins > relogins
        assert_increasing([e.sequence for e in watcher.events], "order event")
        fills = [e for e in watcher.events if e.order and e.order.status is OrderStatus.FILLED]
        assert len(fills) == 1, "the fill must be reported once"
        sandbox.set_price("ESZ26", Decimal("6000.00"))
