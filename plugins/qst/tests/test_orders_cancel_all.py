"""cancelAllOrders through GraphQL on the QST sandbox: every working order of an
account cancelled in one mutation, under an idempotency key."""

from __future__ import annotations

from typing import Any

from brokergraph_qst.sandbox import QstSandbox

from gateway.testing import TestGateway
from plugins.qst.tests.qst_testkit import account_gid, new_key

PLACE = """mutation($input: PlaceOrderInput!) {
  placeOrder(input: $input) { order { externalId status } errors { code message } } }"""
CANCEL_ALL = """mutation($input: CancelAllOrdersInput!) {
  cancelAllOrders(input: $input) {
    orders { externalId status symbol } replayed errors { code message } } }"""
BOOK = """query($id: ID!) { account(id: $id) { orders { externalId status } } }"""
ACCOUNT = "297999"


async def place(gateway: TestGateway, price: str, symbol: str) -> str:
    order_input = {
        "accountId": account_gid(ACCOUNT),
        "symbol": symbol,
        "side": "BUY",
        "type": "LIMIT",
        "quantity": "1",
        "price": price,
        "timeInForce": "GTC",
        "idempotencyKey": new_key(),
    }
    payload = (await gateway.data(PLACE, {"input": order_input}, token="client"))["placeOrder"]
    assert payload["errors"] == [], payload
    assert payload["order"]["status"] == "WORKING"
    external_id: str = payload["order"]["externalId"]
    return external_id


async def cancel_all(gateway: TestGateway, key: str) -> dict[str, Any]:
    arguments = {"input": {"accountId": account_gid(ACCOUNT), "idempotencyKey": key}}
    payload: dict[str, Any] = (await gateway.data(CANCEL_ALL, arguments, token="client"))[
        "cancelAllOrders"
    ]
    return payload


async def working(gateway: TestGateway) -> set[str]:
    data = await gateway.data(BOOK, {"id": account_gid(ACCOUNT)}, token="client")
    return {o["externalId"] for o in data["account"]["orders"] if o["status"] == "WORKING"}


async def test_cancel_all_orders_cancels_three_working_orders(
    qst_gateway: TestGateway, qst_sandbox: QstSandbox
) -> None:
    placed = {
        await place(qst_gateway, "1000", "ESZ26"),
        await place(qst_gateway, "1000.25", "ESZ26"),
        await place(qst_gateway, "1000.50", "ESZ26"),
    }
    assert placed <= await working(qst_gateway)
    before = qst_sandbox.requests["CancelOrdersRequest"]

    key = new_key()
    first = await cancel_all(qst_gateway, key)

    assert first["errors"] == [] and first["replayed"] is False
    cancelled = {o["externalId"] for o in first["orders"]}
    assert placed <= cancelled
    assert {o["status"] for o in first["orders"]} == {"CANCELLED"}
    assert await working(qst_gateway) == set()
    assert qst_sandbox.requests["CancelOrdersRequest"] == before + 1

    # A retry after a new placement replays the first answer and leaves the new order be.
    later = await place(qst_gateway, "1000.75", "ESZ26")
    again = await cancel_all(qst_gateway, key)
    assert again["replayed"] is True and again["orders"] == first["orders"]
    assert qst_sandbox.requests["CancelOrdersRequest"] == before + 1
    assert await working(qst_gateway) == {later}
    assert (await cancel_all(qst_gateway, new_key()))["errors"] == []


async def test_cancel_all_orders_on_an_empty_book_sends_no_cancel(
    qst_gateway: TestGateway, qst_sandbox: QstSandbox
) -> None:
    assert (await cancel_all(qst_gateway, new_key()))["errors"] == []
    before = qst_sandbox.requests["CancelOrdersRequest"]
    result = await cancel_all(qst_gateway, new_key())
    assert result == {"orders": [], "replayed": False, "errors": []}
    assert qst_sandbox.requests["CancelOrdersRequest"] == before


async def test_cancel_all_orders_refuses_a_bad_key_before_any_upstream_call(
    qst_gateway: TestGateway, qst_sandbox: QstSandbox
) -> None:
    await place(qst_gateway, "1000", "ESZ26")
    before = qst_sandbox.requests["CancelOrdersRequest"]
    result = await cancel_all(qst_gateway, "")
    assert [e["code"] for e in result["errors"]] == ["INVALID_INPUT"]
    assert qst_sandbox.requests["CancelOrdersRequest"] == before
    assert (await cancel_all(qst_gateway, new_key()))["errors"] == []
