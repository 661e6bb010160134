"""An order reaches its account and the account's trader through GraphQL (QST sandbox)."""

from __future__ import annotations

from gateway.testing import TestGateway
from plugins.qst.tests.qst_testkit import account_gid, new_key

PLACE = """mutation($input: PlaceOrderInput!) {
  placeOrder(input: $input) {
    order { id externalId account { id externalId } trader { id externalId } }
    errors { code message } } }"""
CANCEL = """mutation($id: ID!) { cancelOrder(input: {orderId: $id}) { errors { code } } }"""
BOOK = """query($id: ID!) { account(id: $id) {
  trader { id }
  orders { externalId account { id } trader { id } } } }"""


async def test_an_order_resolves_its_account_and_trader(qst_gateway: TestGateway) -> None:
    account = account_gid("297999")
    order_input = {
        "accountId": account,
        "symbol": "ESZ26",
        "side": "BUY",
        "type": "LIMIT",
        "quantity": "1",
        "price": "1000",
        "timeInForce": "GTC",
        "idempotencyKey": new_key(),
    }
    placed = (await qst_gateway.data(PLACE, {"input": order_input}, token="client"))["placeOrder"]
    assert placed["errors"] == [], placed
    order = placed["order"]
    assert order["account"] == {"id": account, "externalId": "297999"}

    book = (await qst_gateway.data(BOOK, {"id": account}, token="client"))["account"]
    assert book["trader"] is not None
    assert order["trader"]["id"] == book["trader"]["id"]
    (listed,) = [o for o in book["orders"] if o["externalId"] == order["externalId"]]
    assert listed == {
        "externalId": order["externalId"],
        "account": {"id": account},
        "trader": book["trader"],
    }
    cancelled = await qst_gateway.data(CANCEL, {"id": order["id"]}, token="client")
    assert cancelled["cancelOrder"]["errors"] == []
