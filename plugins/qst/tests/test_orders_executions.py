"""Order.executions on QST: each fill QST notifies, with its id, quantity, price and time,
through the orders reads and the orderEvents stream (real sandbox, real sockets)."""

from __future__ import annotations

import json
import pickle
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from brokergraph_qst.sandbox import QstSandbox
from brokergraph_qst.streams import AccountFeed, snapshot_of

from gateway.contract import (
    Execution,
    Order,
    OrderEventKind,
    OrderSide,
    OrderStatus,
    OrderType,
)
from gateway.testing import TestGateway
from plugins.qst.tests.qst_testkit import (
    account_gid,
    connector,
    new_key,
    qst_gateway_on,
    started_sandbox,
    subscribe,
)

EXECUTIONS = "executions { externalId quantity price executedAt }"
PLACE = f"""mutation($input: PlaceOrderInput!) {{
  placeOrder(input: $input) {{
    order {{ id externalId status {EXECUTIONS} }} errors {{ code message }} }} }}"""
ORDERS = f"""query($id: ID!) {{ account(id: $id) {{
  orders {{ externalId status filledQuantity averageFillPrice {EXECUTIONS} }} }} }}"""
PAGED = f"""query($id: ID!) {{ orders(accountId: $id, first: 50) {{
  edges {{ node {{ externalId {EXECUTIONS} }} }} }} }}"""
EVENTS = f"""subscription($id: ID!) {{ orderEvents(accountId: $id) {{
  sequence kind order {{ externalId status filledQuantity {EXECUTIONS} }} }} }}"""
ACCOUNT = account_gid("297999")


def order_input(**fields: Any) -> dict[str, Any]:
    return {
        "accountId": ACCOUNT,
        "symbol": "ESZ26",
        "side": "BUY",
        "timeInForce": "GTC",
        "idempotencyKey": new_key(),
        **fields,
    }


async def place(gateway: TestGateway, **fields: Any) -> dict[str, Any]:
    payload = (await gateway.data(PLACE, {"input": order_input(**fields)}, token="client"))[
        "placeOrder"
    ]
    assert payload["errors"] == [], payload
    order: dict[str, Any] = payload["order"]
    return order


async def listed(gateway: TestGateway, order_id: str) -> dict[str, Any]:
    orders = (await gateway.data(ORDERS, {"id": ACCOUNT}, token="client"))["account"]["orders"]
    found: list[dict[str, Any]] = [o for o in orders if o["externalId"] == order_id]
    assert len(found) == 1, orders
    return found[0]


async def test_a_fill_appears_as_an_execution_in_reads_and_events(tmp_path: Path) -> None:
    async with (
        started_sandbox(tick_seconds=0) as sandbox,
        qst_gateway_on(sandbox, tmp_path) as gateway,
        subscribe(gateway, "297999", query=EVENTS) as events,
    ):
        await events.wait_for(lambda e: True, "the snapshot")
        before = datetime.now(UTC) - timedelta(seconds=1)
        order = await place(gateway, type="LIMIT", quantity="2", price="5990")
        assert order["executions"] == [], "no fill yet: an empty list, not null"
        assert (await listed(gateway, order["externalId"]))["executions"] == []

        sandbox.set_price("ESZ26", Decimal("5989.75"))  # crosses the limit: fills at the market
        filled = await events.wait_order(order["externalId"], "FILLED")
        assert filled["kind"] == OrderEventKind.FILL.value
        (execution,) = filled["order"]["executions"]
        assert Decimal(execution["quantity"]) == 2
        assert Decimal(execution["price"]) == Decimal("5989.75")
        at = datetime.fromisoformat(execution["executedAt"])
        assert before <= at <= datetime.now(UTC) + timedelta(seconds=1)
        assert execution["externalId"].isdigit()
        # The Redis event log and cache pickle what the connector decoded, raw included.
        live = connector(gateway).feeds["297999"].order(order["externalId"])
        assert live is not None and live.executions is not None
        assert pickle.loads(pickle.dumps(live)) == live
        assert pickle.loads(pickle.dumps(live)).raw == live.raw

        # The reads answer the same fill, with the same id.
        read = await listed(gateway, order["externalId"])
        assert read["executions"] == [execution]
        assert Decimal(read["filledQuantity"]) == sum(
            Decimal(e["quantity"]) for e in read["executions"]
        )
        assert Decimal(read["averageFillPrice"]) == Decimal("5989.75")
        paged = (await gateway.data(PAGED, {"id": ACCOUNT}, token="client"))["orders"]
        nodes = [
            e["node"] for e in paged["edges"] if e["node"]["externalId"] == order["externalId"]
        ]
        assert nodes == [{"externalId": order["externalId"], "executions": [execution]}]

        # A market order fills at once: its own fill, with its own id.
        market = await place(gateway, type="MARKET", side="SELL", quantity="2")
        sold = await events.wait_order(market["externalId"], "FILLED")
        (sale,) = sold["order"]["executions"]
        assert (Decimal(sale["quantity"]), Decimal(sale["price"])) == (
            Decimal(2),
            Decimal("5989.75"),
        )
        assert sale["externalId"] != execution["externalId"]


async def test_without_fill_detail_executions_are_null_not_made_up(tmp_path: Path) -> None:
    """QST's published Order example carries no fill detail: with the sandbox sending
    none, a filled order says its executions are unknown (null) — its total stays."""
    async with (
        started_sandbox(tick_seconds=0, report_fills=False) as sandbox,
        qst_gateway_on(sandbox, tmp_path) as gateway,
        subscribe(gateway, "297999", query=EVENTS) as events,
    ):
        await events.wait_for(lambda e: True, "the snapshot")
        order = await place(gateway, type="MARKET", quantity="1")
        filled = await events.wait_order(order["externalId"], "FILLED")
        assert filled["order"]["executions"] is None
        assert Decimal(filled["order"]["filledQuantity"]) == 1
        read = await listed(gateway, order["externalId"])
        assert read["executions"] is None
        assert Decimal(read["filledQuantity"]) == 1
        await place(gateway, type="MARKET", side="SELL", quantity="1")


def test_a_saved_record_keeps_the_executions_of_its_orders() -> None:
    """What a replica without the session (or the next holder) reads back from the record."""
    fill = Execution(
        id="800001",
        quantity=Decimal("1.0"),
        price=Decimal("1.08505"),
        executed_at=datetime(2026, 12, 2, 9, 30, 0, 123000, tzinfo=UTC),
    )
    order = Order(
        platform="qst",
        id="115301",
        account_id="297999",
        symbol="6EZ26",
        side=OrderSide.BUY,
        type=OrderType.LIMIT,
        quantity=Decimal("3.0"),
        status=OrderStatus.PARTIALLY_FILLED,
        filled_quantity=Decimal("1.0"),
        price=Decimal("1.08505"),
        executions=[fill],
    )
    feed = AccountFeed("qst", "297999")
    event = feed.apply_order(order)
    assert event is not None and event.kind is OrderEventKind.FILL
    feed.logged(7, event)
    record = json.loads(json.dumps(feed.record()))  # what the store keeps is JSON
    (snapshot, *_) = snapshot_of("qst", "297999", record)
    assert snapshot.order == order
    assert snapshot.order is not None and snapshot.order.executions == (fill,)


INSTRUMENTS = """query($id: ID!, $symbols: [String!]) {
  instruments(accountId: $id, symbols: $symbols) { symbol tickSize } }"""


async def test_qst_publishes_no_instruments_and_is_not_asked(
    qst_gateway: TestGateway, qst_sandbox: QstSandbox
) -> None:
    """QST's order routing has no contract-specification request: the query answers
    CAPABILITY_NOT_SUPPORTED at once, with no QST request (the sandbox's own contract
    table is not QST data)."""
    before = sum(qst_sandbox.requests.values())
    for symbols in (["ESZ26"], None):
        result = await qst_gateway.query(INSTRUMENTS, {"id": ACCOUNT, "symbols": symbols}, "client")
        (error,) = result["errors"]
        assert error["extensions"]["code"] == "CAPABILITY_NOT_SUPPORTED", result
        assert error["extensions"]["details"]["capability"] == "INSTRUMENTS"
    assert sum(qst_sandbox.requests.values()) == before


CANCEL = """mutation($id: ID!) { cancelOrder(input: {orderId: $id}) {
  order { status filledQuantity executions { externalId quantity price } }
  errors { code } } }"""


async def test_partial_fills_are_listed_one_by_one_and_survive_a_cancel(tmp_path: Path) -> None:
    """With the sandbox filling at most 1 a round, an order of 3 fills 1 at a time: each
    fill is its own execution and FILL event, and a cancel keeps what filled."""
    async with (
        started_sandbox(tick_seconds=0, max_fill_quantity=Decimal(1)) as sandbox,
        qst_gateway_on(sandbox, tmp_path) as gateway,
        subscribe(gateway, "297999", query=EVENTS) as events,
    ):
        await events.wait_for(lambda e: True, "the snapshot")
        order = await place(gateway, type="LIMIT", quantity="3", price="5990")
        sandbox.set_price("ESZ26", Decimal("5989.75"))
        first = await events.wait_order(order["externalId"], "PARTIALLY_FILLED")
        sandbox.set_price("ESZ26", Decimal("5989.50"))
        second = await events.wait_for(
            lambda e: (
                e["order"] is not None
                and e["order"]["externalId"] == order["externalId"]
                and len(e["order"]["executions"] or ()) == 2
            ),
            "the second fill",
        )
        assert first["kind"] == second["kind"] == OrderEventKind.FILL.value
        assert second["order"]["status"] == "PARTIALLY_FILLED"
        fills = [
            (Decimal(e["quantity"]), Decimal(e["price"])) for e in second["order"]["executions"]
        ]
        assert fills == [(Decimal(1), Decimal("5989.75")), (Decimal(1), Decimal("5989.50"))]
        assert second["order"]["executions"][0] == first["order"]["executions"][0]

        payload = (await gateway.data(CANCEL, {"id": order["id"]}, token="client"))["cancelOrder"]
        assert payload["errors"] == [], payload
        cancelled = payload["order"]
        assert (cancelled["status"], Decimal(cancelled["filledQuantity"])) == (
            "CANCELLED",
            Decimal(2),
        )
        assert cancelled["executions"] == [
            {k: e[k] for k in ("externalId", "quantity", "price")}
            for e in second["order"]["executions"]
        ]
        read = await listed(gateway, order["externalId"])
        assert Decimal(read["averageFillPrice"]) == Decimal("5989.625")
        assert len({e["externalId"] for e in read["executions"]}) == 2
