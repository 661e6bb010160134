"""clientOrderId through GraphQL on the QST sandbox, whose orders carry no such field:
the gateway keeps it, and every later read of the order shows it."""

from __future__ import annotations

from typing import Any

from brokergraph_qst.sandbox import QstSandbox

from gateway.testing import TestGateway
from plugins.qst.tests.qst_testkit import account_gid, new_key

PLACE = """mutation($input: PlaceOrderInput!) {
  placeOrder(input: $input) { order { id externalId clientOrderId } replayed
  errors { code message } } }"""
CANCEL = """mutation($id: ID!) { cancelOrder(input: {orderId: $id}) {
  order { clientOrderId status } errors { code } } }"""
BOOK = """query($id: ID!) { account(id: $id) { orders { externalId clientOrderId } } }"""
ACCOUNT = account_gid("297999")


def order_input(**more: Any) -> dict[str, Any]:
    return {
        "accountId": ACCOUNT,
        "symbol": "ESZ26",
        "side": "BUY",
        "type": "LIMIT",
        "quantity": "1",
        "price": "1000",
        "timeInForce": "GTC",
        "idempotencyKey": new_key(),
        **more,
    }


async def place(gateway: TestGateway, arguments: dict[str, Any]) -> dict[str, Any]:
    payload: dict[str, Any] = (await gateway.data(PLACE, {"input": arguments}, token="client"))[
        "placeOrder"
    ]
    return payload


async def test_a_client_order_id_is_kept_and_read_back(qst_gateway: TestGateway) -> None:
    arguments = order_input(clientOrderId="crm-order-17")
    placed = await place(qst_gateway, arguments)
    assert placed["errors"] == [], placed
    assert placed["order"]["clientOrderId"] == "crm-order-17"
    untagged = await place(qst_gateway, order_input())
    assert untagged["order"]["clientOrderId"] is None

    book = await qst_gateway.data(BOOK, {"id": ACCOUNT}, token="client")
    ids = {o["externalId"]: o["clientOrderId"] for o in book["account"]["orders"]}
    assert ids[placed["order"]["externalId"]] == "crm-order-17"
    assert ids[untagged["order"]["externalId"]] is None

    replay = await place(qst_gateway, arguments)
    assert replay["replayed"] is True and replay["order"] == placed["order"]

    for order in (placed, untagged):
        cancelled = await qst_gateway.data(CANCEL, {"id": order["order"]["id"]}, token="client")
        assert cancelled["cancelOrder"]["errors"] == []
    assert cancelled["cancelOrder"]["order"]["clientOrderId"] is None


async def test_a_bad_client_order_id_is_refused_before_any_upstream_call(
    qst_gateway: TestGateway, qst_sandbox: QstSandbox
) -> None:
    before = qst_sandbox.requests["PlaceOrderRequest"]
    for bad in ("", "x" * 65):
        refused = await place(qst_gateway, order_input(clientOrderId=bad))
        assert [e["code"] for e in refused["errors"]] == ["INVALID_INPUT"], bad
    assert qst_sandbox.requests["PlaceOrderRequest"] == before
    # The same key with another clientOrderId is another request: a conflict.
    arguments = order_input(clientOrderId="a")
    placed = await place(qst_gateway, arguments)
    assert placed["errors"] == []
    conflict = await place(qst_gateway, {**arguments, "clientOrderId": "b"})
    assert [e["code"] for e in conflict["errors"]] == ["IDEMPOTENCY_CONFLICT"]
    cancelled = await qst_gateway.data(CANCEL, {"id": placed["order"]["id"]}, token="client")
    assert cancelled["cancelOrder"]["order"]["clientOrderId"] == "a"
