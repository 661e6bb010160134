"""Account.orders filtered by status, symbol and creation time (QST sandbox)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.testing import TestGateway
from plugins.qst.tests.qst_testkit import account_gid, new_key

PLACE = """mutation($input: PlaceOrderInput!) {
  placeOrder(input: $input) { order { id externalId createdAt } errors { code message } } }"""
CANCEL = """mutation($id: ID!) { cancelOrder(input: {orderId: $id}) { errors { code } } }"""
ORDERS = """query($id: ID!, $status: [OrderStatus!], $symbol: String,
  $createdFrom: DateTime, $createdTo: DateTime) {
  account(id: $id) {
    orders(status: $status, symbol: $symbol, createdFrom: $createdFrom, createdTo: $createdTo)
    { externalId status symbol } } }"""
ACCOUNT = account_gid("297999")


async def place(gateway: TestGateway, symbol: str, price: str) -> dict[str, Any]:
    order_input = {
        "accountId": ACCOUNT,
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
    order: dict[str, Any] = payload["order"]
    return order


async def listed(gateway: TestGateway, **filters: Any) -> set[str]:
    data = await gateway.data(ORDERS, {"id": ACCOUNT, **filters}, token="client")
    return {o["externalId"] for o in data["account"]["orders"]}


async def test_orders_are_filtered_by_status_symbol_and_time(qst_gateway: TestGateway) -> None:
    es = await place(qst_gateway, "ESZ26", "1000")
    other = await place(qst_gateway, "ESZ26", "1000.25")
    cancelled = await qst_gateway.data(CANCEL, {"id": other["id"]}, token="client")
    assert cancelled["cancelOrder"]["errors"] == []
    ids = {es["externalId"], other["externalId"]}

    assert ids <= await listed(qst_gateway)
    assert await listed(qst_gateway, status=["WORKING"]) & ids == {es["externalId"]}
    assert await listed(qst_gateway, status=["CANCELLED"]) & ids == {other["externalId"]}
    assert await listed(qst_gateway, status=["WORKING", "CANCELLED"]) & ids == ids
    assert await listed(qst_gateway, symbol="NQZ26") & ids == set()
    assert await listed(qst_gateway, symbol="ESZ26") & ids == ids

    created = datetime.fromisoformat(es["createdAt"])
    after = (created + timedelta(days=1)).isoformat()
    before = (created - timedelta(days=1)).isoformat()
    assert await listed(qst_gateway, createdFrom=before, createdTo=after) & ids == ids
    assert await listed(qst_gateway, createdFrom=after) & ids == set()
    assert await listed(qst_gateway, createdTo=before) & ids == set()
    await qst_gateway.data(CANCEL, {"id": es["id"]}, token="client")


async def test_a_bad_time_range_is_refused(qst_gateway: TestGateway) -> None:
    now = datetime.now(UTC).isoformat()
    bounds = {"createdFrom": now, "createdTo": now}
    result = await qst_gateway.query(ORDERS, {"id": ACCOUNT, **bounds}, token="client")
    assert result["data"]["account"]["orders"] is None
    assert result["errors"][0]["extensions"]["code"] == "INVALID_INPUT", result


PAGE = """query($account: ID!, $first: Int!, $after: String, $status: [OrderStatus!]) {
  orders(accountId: $account, first: $first, after: $after, status: $status) {
    edges { cursor node { externalId createdAt } }
    pageInfo { hasNextPage endCursor } totalCount } }"""


async def test_orders_are_paged_newest_first_by_cursor(qst_gateway: TestGateway) -> None:
    placed = [await place(qst_gateway, "ESZ26", price) for price in ("1000", "1000.25", "1000.5")]
    ids = {o["externalId"] for o in placed}
    seen: list[dict[str, Any]] = []
    after: str | None = None
    pages = 0
    while True:
        arguments = {"account": ACCOUNT, "first": 2, "after": after, "status": ["WORKING"]}
        page = (await qst_gateway.data(PAGE, arguments, token="client"))["orders"]
        pages += 1
        assert len(page["edges"]) <= 2
        seen.extend(e["node"] for e in page["edges"])
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
        # An order cancelled between pages does not derail the next page.
        if pages == 1:
            await qst_gateway.data(CANCEL, {"id": placed[0]["id"]}, token="client")
    listed = [o["externalId"] for o in seen]
    assert len(listed) == len(set(listed))
    assert ids - {placed[0]["externalId"]} <= set(listed)
    times = [o["createdAt"] for o in seen]
    assert times == sorted(times, reverse=True)
    assert pages >= 2
    for order in placed[1:]:
        await qst_gateway.data(CANCEL, {"id": order["id"]}, token="client")


async def test_a_bad_page_is_refused(qst_gateway: TestGateway) -> None:
    for arguments in ({"first": 0}, {"first": 1, "after": "not-a-cursor"}):
        result = await qst_gateway.query(PAGE, {"account": ACCOUNT, **arguments}, token="client")
        assert result["errors"][0]["extensions"]["code"] == "INVALID_INPUT", result
