"""Cases: order reads, routing (place, replace, cancel) and the order stream.

Every order placed is a BUY limit far below the market, so it rests and is then
cancelled; the cases leave no working order of their own behind.
"""

from __future__ import annotations

import pytest

from gateway import models
from gateway.connectors import (
    CancelOrdersRequest,
    Capability,
    Connector,
    OrderReads,
    OrderRouting,
    OrderStream,
    PlaceOrderRequest,
    ReplaceOrderRequest,
)
from gateway.errors import NotFound
from gateway.testing._base import SuiteBase, new_key
from gateway.testing._checks import check_order, check_order_event
from gateway.testing._gate import requires
from gateway.testing._harness import EventWatcher, assert_increasing
from gateway.testing._sample import need

__all__ = ["OrderCases"]

Status = models.OrderStatus
RESTING = {Status.PENDING, Status.WORKING}


class OrderCases(SuiteBase):
    def _account_id(self) -> str:
        return need(self.sample.order_account_id, "order_account_id")

    def _limit(self) -> PlaceOrderRequest:
        return PlaceOrderRequest(
            account_id=self._account_id(),
            symbol=need(self.sample.order_symbol, "order_symbol"),
            side=models.OrderSide.BUY,
            type=models.OrderType.LIMIT,
            quantity=need(self.sample.order_quantity, "order_quantity"),
            price=need(self.sample.far_limit_price, "far_limit_price"),
            time_in_force=models.TimeInForce.GTC,
            idempotency_key=new_key(),
        )

    async def _place(self, connector: OrderRouting, platform: str) -> models.Order:
        request = self._limit()
        order = await connector.place_order(request)
        check_order(order, platform)
        assert order.status in RESTING, f"a far limit order must rest, got {order.status}"
        wanted = (request.account_id, request.symbol, request.side, request.type)
        got = (order.account_id, order.symbol, order.side, order.type)
        assert got == wanted, f"placed order {order.id} is {got}, asked {wanted}"
        assert order.quantity == request.quantity, (
            f"quantity {order.quantity} != {request.quantity}"
        )
        assert order.price == request.price, f"price {order.price} != {request.price}"
        return order

    def _check_cancelled(self, order: models.Order, platform: str, order_id: str) -> None:
        check_order(order, platform)
        assert order.id == order_id, f"cancelling {order_id} answered order {order.id}"
        assert order.status is Status.CANCELLED, f"order {order.id} is {order.status} after cancel"

    @requires(Capability.ORDER_READS)
    async def test_get_orders(self, connector: Connector) -> None:
        assert isinstance(connector, OrderReads)
        asked = [self._account_id(), self.sample.unknown_id]
        lists = await connector.get_orders(asked)
        assert len(lists) == len(asked), f"get_orders must return {len(asked)} lists in order"
        assert list(lists[1]) == [], "an unknown account must have no orders, not raise"
        for order in lists[0]:
            check_order(order, connector.platform)
            assert order.account_id == asked[0], f"order {order.id} is of {order.account_id}"

    @requires(Capability.ORDER_ROUTING)
    async def test_place_and_cancel_limit_order(self, connector: Connector) -> None:
        assert isinstance(connector, OrderRouting)
        placed = await self._place(connector, connector.platform)
        if isinstance(connector, OrderReads):
            (listed,) = await connector.get_orders([placed.account_id])
            assert placed.id in {o.id for o in listed}, f"placed {placed.id} is not in get_orders"
        cancelled = await connector.cancel_order(placed.account_id, placed.id)
        self._check_cancelled(cancelled, connector.platform, placed.id)
        if isinstance(connector, OrderReads):
            (listed,) = await connector.get_orders([placed.account_id])
            for order in listed:
                if order.id == placed.id:
                    assert order.status is Status.CANCELLED, f"get_orders shows {order.status}"

    @requires(Capability.ORDER_ROUTING)
    async def test_replace_order_quantity(self, connector: Connector) -> None:
        assert isinstance(connector, OrderRouting)
        placed = await self._place(connector, connector.platform)
        quantity = placed.quantity * 2
        replaced = await connector.replace_order(
            ReplaceOrderRequest(
                account_id=placed.account_id,
                order_id=placed.id,
                quantity=quantity,
                idempotency_key=new_key(),
            )
        )
        check_order(replaced, connector.platform)
        assert replaced.quantity == quantity, f"replaced quantity is {replaced.quantity}"
        assert replaced.status in RESTING, f"the replaced order is {replaced.status}"
        cancelled = await connector.cancel_order(replaced.account_id, replaced.id)
        self._check_cancelled(cancelled, connector.platform, replaced.id)

    @requires(Capability.ORDER_ROUTING)
    async def test_cancel_orders(self, connector: Connector) -> None:
        assert isinstance(connector, OrderRouting)
        placed = [await self._place(connector, connector.platform) for _ in range(2)]
        ids = [order.id for order in placed]
        request = CancelOrdersRequest(account_id=self._account_id(), order_ids=ids)
        cancelled = await connector.cancel_orders(request)
        assert {o.id for o in cancelled} == set(ids), f"cancel_orders({ids}) answered {cancelled}"
        for order in cancelled:
            self._check_cancelled(order, connector.platform, order.id)

    @requires(Capability.ORDER_ROUTING)
    async def test_cancel_orders_for_contract(self, connector: Connector) -> None:
        assert isinstance(connector, OrderRouting)
        placed = await self._place(connector, connector.platform)
        cancelled = await connector.cancel_orders_for_contract(placed.account_id, placed.symbol)
        assert placed.id in {o.id for o in cancelled}, f"{placed.id} was not cancelled"
        for order in cancelled:
            self._check_cancelled(order, connector.platform, order.id)
            assert order.symbol == placed.symbol, f"cancelled {order.id} of {order.symbol}"

    @requires(Capability.ORDER_ROUTING)
    async def test_cancel_unknown_order_is_not_found(self, connector: Connector) -> None:
        assert isinstance(connector, OrderRouting)
        with pytest.raises(NotFound):
            await connector.cancel_order(self._account_id(), self.sample.unknown_id)

    # -- ORDER_STREAM -------------------------------------------------------------------

    @requires(Capability.ORDER_STREAM, Capability.ORDER_ROUTING)
    async def test_order_stream_follows_an_order(self, connector: Connector) -> None:
        assert isinstance(connector, OrderStream)
        assert isinstance(connector, OrderRouting)
        account_id = self._account_id()
        async with EventWatcher(connector.order_events(account_id), self.wait_seconds) as watcher:
            placed = await self._place(connector, connector.platform)

            def about(event: models.OrderEvent, status: Status | None = None) -> bool:
                order = event.order
                return (
                    order is not None
                    and order.id == placed.id
                    and (status is None or order.status is status)
                )

            await watcher.wait_for(about, f"about placed order {placed.id}")
            # Received after the first: the stream is live, not only a snapshot.
            await connector.cancel_order(account_id, placed.id)
            await watcher.wait_for(
                lambda e: about(e, Status.CANCELLED), f"cancelling order {placed.id}"
            )
        for event in watcher.events:
            check_order_event(event, connector.platform, account_id)
        assert_increasing([e.sequence for e in watcher.events], "order event")
