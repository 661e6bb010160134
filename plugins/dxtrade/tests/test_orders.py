"""Account.orders on DXtrade: the day's blotter from dxsca-web (working orders and the
ones finished in the last 24 hours) with each order's fills as Order.executions."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from brokergraph_dxtrade.connector._orders import UnsupportedOrder, order_model
from brokergraph_dxtrade.sandbox import DxTradeSandbox
from brokergraph_dxtrade.sandbox.model import Order as SandboxOrder
from brokergraph_dxtrade.sandbox.reads import order as order_json

from gateway.contract import OrderStatus
from gateway.testing import TestGateway
from plugins.dxtrade.tests.conftest import account_gid

ORDERS = """query($id: ID!) { account(id: $id) { orders {
  externalId status symbol side type quantity filledQuantity averageFillPrice price stopPrice
  executions { externalId quantity price executedAt } } } }"""
WORKING = "GET /dxsca-web/accounts/orders"
HISTORY = "GET /dxsca-web/accounts/orders/history"
ALICE = "default:alice-usd"
_numbers = itertools.count(7001)


def filled_order(completed: datetime, **changes: Any) -> SandboxOrder:
    number = next(_numbers)
    fields: dict[str, Any] = {
        "account": ALICE,
        "order_id": number,
        "code": f"alice-t-{number}",
        "symbol": "GBP/USD",
        "side": "SELL",
        "type": "LIMIT",
        "quantity": Decimal(20000),
        "price": Decimal("1.26600"),
        "tif": "GTC",
        "issued": completed - timedelta(minutes=5),
        "status": "COMPLETED",
        "completed": completed,
        "position_code": f"alice-tp-{number}",
    }
    fields.update(changes)
    return SandboxOrder(**fields)


async def test_the_days_orders_carry_their_fills(
    dx_gateway: TestGateway, dx_sandbox: DxTradeSandbox
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    fresh = filled_order(now - timedelta(hours=1))
    stale = filled_order(now - timedelta(hours=30))  # finished before the day's window
    cancelled = filled_order(now - timedelta(minutes=2), status="CANCELED")
    cancelled.completed = None  # a cancel fills nothing
    injected = [fresh, stale, cancelled]
    dx_sandbox.state.orders.extend(injected)
    try:
        await check_blotter(dx_gateway, dx_sandbox, fresh, stale, cancelled)
    finally:  # the session's sandbox is shared: its other tests never see these
        for order in injected:
            dx_sandbox.state.orders.remove(order)


async def check_blotter(
    gateway: TestGateway,
    sandbox: DxTradeSandbox,
    fresh: SandboxOrder,
    stale: SandboxOrder,
    cancelled: SandboxOrder,
) -> None:
    calls = (sandbox.calls[WORKING], sandbox.calls[HISTORY])

    data = await gateway.data(ORDERS, {"id": account_gid(ALICE)}, token="client")
    orders = {o["externalId"]: o for o in data["account"]["orders"]}
    assert (sandbox.calls[WORKING], sandbox.calls[HISTORY]) == (calls[0] + 1, calls[1] + 1)

    filled = orders[str(fresh.order_id)]
    assert (filled["status"], filled["side"], filled["type"]) == ("FILLED", "SELL", "LIMIT")
    assert Decimal(filled["filledQuantity"]) == 20000
    assert Decimal(filled["averageFillPrice"]) == Decimal("1.26600")
    (execution,) = filled["executions"]
    assert execution["externalId"] == f"{fresh.code}-x1"
    assert (Decimal(execution["quantity"]), Decimal(execution["price"])) == (
        Decimal(20000),
        Decimal("1.26600"),
    )
    assert datetime.fromisoformat(execution["executedAt"]) == fresh.completed

    assert str(stale.order_id) not in orders, "finished before the last 24 hours"
    assert "901" not in orders, "the seeded 2024 history is not today's"
    gone = orders[str(cancelled.order_id)]
    assert (gone["status"], gone["executions"]) == ("CANCELLED", [])
    # The seeded working orders: nothing filled yet.
    working = orders["1001"]
    assert (working["status"], working["executions"]) == ("WORKING", [])
    assert working["price"] is not None and working["stopPrice"] is None
    stop = orders["1002"]
    assert (stop["type"], stop["price"]) == ("STOP", None)
    assert stop["stopPrice"] is not None

    # Bob's orders are not Alice's client's to see.
    other = await gateway.query(ORDERS, {"id": account_gid("default:bob-usd")}, "client")
    assert other["errors"][0]["extensions"]["code"] == "NOT_FOUND", other


def test_fills_that_do_not_add_up_are_unknown_not_partial() -> None:
    body = order_json(filled_order(datetime(2026, 12, 2, 9, 0, tzinfo=UTC)))
    body["legs"][0]["filledQuantity"] = Decimal(30000)  # DXtrade listed one fill of two
    order = order_model(body)
    assert order.filled_quantity == 30000 and order.executions is None
    body["executions"] = []
    assert order_model(body).executions is None
    body["legs"][0]["filledQuantity"] = 0
    body["status"] = "WORKING"
    assert order_model(body).executions == ()
    assert order_model(body).status is OrderStatus.WORKING


def test_an_order_type_the_model_lacks_is_left_out_not_renamed() -> None:
    body = order_json(filled_order(datetime(2026, 12, 2, 9, 0, tzinfo=UTC)))
    body["type"] = "TRAILING_STOP"
    with pytest.raises(UnsupportedOrder):
        order_model(body)
