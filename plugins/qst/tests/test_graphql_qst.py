"""QST through the gateway: seed 001 driven over GraphQL (HTTP mutations and queries)
while a graphql-transport-ws ``orderEvents`` subscription receives every event; the
sandbox restarted, connections dropped and the user logged in elsewhere mid-stream;
entitlement; idempotency and typed rejects."""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

from brokergraph_qst import wire
from brokergraph_qst.sandbox import QstSandbox
from brokergraph_qst.session import QstSession, SessionConfig

from gateway.contract import OrderSide, OrderType, TimeInForce
from gateway.testing import TestGateway
from plugins.qst.tests.qst_testkit import (
    Subscription,
    account_gid,
    connector,
    new_key,
    order_gid,
    qst_gateway_on,
    started_sandbox,
    subscribe,
    wait_until,
)

ORDER_PAYLOAD = "order { id externalId status quantity price } replayed errors { code message }"
PLACE = (
    f"""mutation($input: PlaceOrderInput!) {{ placeOrder(input: $input) {{ {ORDER_PAYLOAD} }} }}"""
)
CANCEL = f"""mutation($id: ID!) {{ cancelOrder(input: {{orderId: $id}}) {{ {ORDER_PAYLOAD} }} }}"""
REPLACE = f"""mutation($input: ReplaceOrderInput!) {{
  replaceOrder(input: $input) {{ {ORDER_PAYLOAD} }} }}"""
CANCEL_MANY = """mutation($input: CancelOrdersInput!) {
  cancelOrders(input: $input) { orders { externalId status } errors { code message } } }"""
CANCEL_CONTRACT = """mutation($input: CancelOrdersForContractInput!) {
  cancelOrdersForContract(input: $input) { orders { externalId status symbol }
  errors { code message } } }"""
BOOK = """query($id: ID!) { account(id: $id) {
  externalId
  orders { externalId status symbol quantity price }
  positions { externalId symbol side volume openPrice }
} }"""
QST_ACCOUNT = """query($id: ID!, $currency: String!) { account(id: $id) {
  __typename externalId number balance { amount currency }
  ... on QstAccount {
    activity { orderId orderNumber action status description at }
    accountInformation(currencyCode: $currency) {
      accountId name currencyCode oeProvider isLiveTrading
      balance { amount currency } equity { amount currency } availableFunds { amount }
    }
  }
} }"""


def limit_input(price: str, account: str = "297999", symbol: str = "ESZ26", **more: Any) -> Any:
    return {
        "accountId": account_gid(account),
        "symbol": symbol,
        "side": "BUY",
        "type": "LIMIT",
        "quantity": "1",
        "price": price,
        "timeInForce": "GTC",
        "idempotencyKey": new_key(),
        **more,
    }


async def place(gateway: TestGateway, price: str, **more: Any) -> dict[str, Any]:
    data = await gateway.data(PLACE, {"input": limit_input(price, **more)}, token="client")
    payload: dict[str, Any] = data["placeOrder"]
    assert payload["errors"] == [], payload
    return payload


def check_sequences(subscription: Subscription) -> None:
    """Strictly increasing; after the snapshot, one by one (no gap, no repeat)."""
    sequences = subscription.sequences()
    assert sequences == sorted(set(sequences)), f"not strictly increasing: {sequences}"
    live = [e["sequence"] for e in subscription.events if e["kind"] != "ORDER_BOOK_SNAPSHOT"]
    start = max(
        (e["sequence"] for e in subscription.events if e["kind"] == "ORDER_BOOK_SNAPSHOT"),
        default=live[0] - 1 if live else 0,
    )
    assert live == list(range(start + 1, start + 1 + len(live))), f"a gap: {sequences}"


def order_events(subscription: Subscription) -> list[tuple[str, str]]:
    return [
        (e["order"]["externalId"], e["order"]["status"])
        for e in subscription.events
        if e["order"] is not None and e["kind"] != "ORDER_BOOK_SNAPSHOT"
    ]


def raw_session(sandbox: QstSandbox, **changes: Any) -> QstSession:
    """Another client of the same QST user, as a second application would be."""
    settings = sandbox.connector_settings()
    config = SessionConfig(
        url=settings["url"],
        username=settings["username"],
        password_hash=hashlib.sha256(settings["password"].encode()).hexdigest(),
        client_unique_id=settings["client_unique_id"],
        ssl=sandbox.client_ssl_context(),
        busy_backoff=60.0,
        **changes,
    )
    return QstSession(config, on_notice=lambda notice: None)


async def test_seed_001_workflow_through_graphql(tmp_path: Path) -> None:
    emitted: list[str] = []
    async with started_sandbox(tick_seconds=0) as sandbox:
        sandbox.on_emit = lambda number, _at: emitted.append(number)
        async with qst_gateway_on(sandbox, tmp_path) as gateway:
            # 1-2. Login and OE login: done by the connector as it started.
            data = await gateway.data(
                "{ connectors { name capabilities health { status } } }", token="admin"
            )
            (qst,) = [c for c in data["connectors"] if c["name"] == "qst"]
            assert qst["health"]["status"] == "UP"
            assert set(qst["capabilities"]) == {
                "ACCOUNT_READS",
                "ORDER_READS",
                "ORDER_ROUTING",
                "ORDER_STREAM",
            }
            assert sandbox.requests["LoginRequest"] == sandbox.requests["OELoginRequest"] == 1
            # 3. The order book of the account.
            book = (await gateway.data(BOOK, {"id": account_gid("297999")}, token="client"))[
                "account"
            ]
            assert book["orders"] == []
            assert book["positions"] == []
            # 4. Subscribe: the stream opens with a snapshot (no working order yet).
            async with subscribe(gateway, "297999") as events:
                first = await events.wait_for(lambda e: True, "the snapshot")
                assert first["kind"] == "ORDER_BOOK_SNAPSHOT"
                assert first["order"] is None
                # 5. Place, 6. find it in the order book, 7. cancel it.
                placed = (await place(gateway, "1000"))["order"]
                assert placed["status"] in ("PENDING", "WORKING")  # "New Order", or later
                await events.wait_order(placed["externalId"], "PENDING")
                await events.wait_order(placed["externalId"], "WORKING")
                book = (await gateway.data(BOOK, {"id": account_gid("297999")}, token="client"))[
                    "account"
                ]
                assert book["orders"][-1]["externalId"] == placed["externalId"]
                cancelled = (await gateway.data(CANCEL, {"id": placed["id"]}, token="client"))[
                    "cancelOrder"
                ]
                assert cancelled["order"]["status"] == "CANCELLED", cancelled
                await events.wait_order(placed["externalId"], "CANCELLED")
                # 8. Three places, then cancel them all.
                three = [(await place(gateway, p))["order"] for p in ("1000", "1000.25", "1000.5")]
                ids = [o["id"] for o in three]
                result = await gateway.data(
                    CANCEL_MANY,
                    {"input": {"accountId": account_gid("297999"), "orderIds": ids}},
                    token="client",
                )
                assert {o["status"] for o in result["cancelOrders"]["orders"]} == {"CANCELLED"}
                for o in three:
                    await events.wait_order(o["externalId"], "CANCELLED")
                # 9. Three places on one contract, then cancel for that contract.
                euro = [
                    (await place(gateway, p, symbol="6EZ26"))["order"]
                    for p in ("1.0500", "1.05005", "1.0501")
                ]
                result = await gateway.data(
                    CANCEL_CONTRACT,
                    {"input": {"accountId": account_gid("297999"), "symbol": "6EZ26"}},
                    token="client",
                )
                by_contract = result["cancelOrdersForContract"]["orders"]
                assert sorted(o["externalId"] for o in by_contract) == sorted(
                    o["externalId"] for o in euro
                )
                assert {o["status"] for o in by_contract} == {"CANCELLED"}
                # 10. Place, then cancel-replace it (QST gives the replacement a new number).
                original = (await place(gateway, "1000"))["order"]
                replaced = (
                    await gateway.data(
                        REPLACE,
                        {
                            "input": {
                                "orderId": original["id"],
                                "quantity": "2",
                                "price": "1001",
                                "idempotencyKey": new_key(),
                            }
                        },
                        token="client",
                    )
                )["replaceOrder"]
                assert replaced["errors"] == [], replaced
                new = replaced["order"]
                assert new["externalId"] != original["externalId"]
                assert Decimal(new["quantity"]) == 2
                assert Decimal(new["price"]) == 1001
                await events.wait_order(original["externalId"], "CANCELLED")
                await events.wait_order(new["externalId"], "WORKING")
                # 11. The order book again: only the replacement works.
                book = (await gateway.data(BOOK, {"id": account_gid("297999")}, token="client"))[
                    "account"
                ]
                working = [o["externalId"] for o in book["orders"] if o["status"] == "WORKING"]
                assert working == [new["externalId"]]
                # 12. Activity items and 13. account information.
                account = (
                    await gateway.data(
                        QST_ACCOUNT,
                        {"id": account_gid("297999"), "currency": "USD"},
                        token="client",
                    )
                )["account"]
                assert account["__typename"] == "QstAccount"
                actions = [(i["orderNumber"], i["action"]) for i in account["activity"]]
                assert (placed["externalId"], "Place") in actions
                assert (placed["externalId"], "Cancel") in actions
                assert (new["externalId"], "Replace") in actions
                assert account["activity"][0]["orderId"] == order_gid(
                    "297999", account["activity"][0]["orderNumber"]
                )
                info = account["accountInformation"]
                assert (info["name"], info["currencyCode"], info["oeProvider"]) == (
                    "Demo Futures 1",
                    "USD",
                    "QOR",
                )
                assert info["balance"] == {"amount": "100000.00", "currency": "USD"}
                # 14. Switch account: reading the other account switches inside the connector.
                switches = sandbox.requests["OESwitchAccountRequest"]
                other = (
                    await gateway.data(
                        QST_ACCOUNT,
                        {"id": account_gid("297998"), "currency": "EUR"},
                        token="client",
                    )
                )["account"]
                assert other["accountInformation"]["name"] == "Demo Futures 2"
                assert other["accountInformation"]["currencyCode"] == "EUR"
                assert sandbox.requests["OESwitchAccountRequest"] > switches
                assert sandbox.sessions["demo-trader"].current_account == "297998"
                # ... and the stream of 297999 goes on: a placement there switches back.
                last = (await place(gateway, "999.75"))["order"]
                await events.wait_order(last["externalId"], "WORKING")
                cancelled = (await gateway.data(CANCEL, {"id": last["id"]}, token="client"))[
                    "cancelOrder"
                ]
                await events.wait_order(last["externalId"], "CANCELLED")
                await asyncio.sleep(0.1)  # the trailing text notification
            # Every Order notification QST emitted reached the subscriber, once, in order.
            seen = [number for number, _ in order_events(events)]
            assert Counter(emitted) == Counter(seen)
            check_sequences(events)
            kinds = {e["kind"] for e in events.events}
            assert {"ORDER_BOOK_SNAPSHOT", "ORDER", "TEXT"} <= kinds, kinds
            texts = [e for e in events.events if e["kind"] == "TEXT"]
            assert len(texts) >= len(seen), "every order event comes with its text"
            assert sandbox.requests["OELogoutRequest"] == 0
        # 15-16. OE logout and logout: the connector closes the session with the gateway.
        assert sandbox.requests["OELogoutRequest"] == 1
        assert sandbox.requests["LogoutRequest"] == 1
        assert sandbox.closes[1000] == 1


async def test_a_restart_mid_stream_loses_no_order_state(tmp_path: Path) -> None:
    async with (
        started_sandbox(tick_seconds=0) as sandbox,
        # A long first reconnect delay leaves a window in which the connector is away.
        qst_gateway_on(
            sandbox, tmp_path, reconnect_initial_seconds=1.0, reconnect_max_seconds=2.0
        ) as gateway,
        subscribe(gateway, "297999") as events,
    ):
        resting = (await place(gateway, "5000"))["order"]["externalId"]
        await events.wait_order(resting, "WORKING")
        qst = connector(gateway)
        relogins = qst.session.relogins
        await sandbox.restart()
        # While the connector is away: the market fills one order, and another
        # application of the same user places one.
        sandbox.set_price("ESZ26", Decimal("4999.75"))
        other = raw_session(sandbox)
        await other.start()
        sell = wire.OrderSpec(
            contract="CLF27",
            side=OrderSide.SELL,
            type=OrderType.LIMIT,
            quantity=Decimal(1),
            time_in_force=TimeInForce.GTC,
            price=Decimal("99.00"),
        )
        placed_elsewhere = await other.call(wire.place_order(sell), account="297999")
        await other.close()
        assert qst.session.relogins == relogins, "the connector came back too early"
        # The subscription resumes and reports both, once, in order.
        await events.wait_order(resting, "FILLED")
        await events.wait_order(placed_elsewhere.order_number, "WORKING")
        await events.wait_for(
            lambda e: e["kind"] == "POSITION" and e["position"]["symbol"] == "ESZ26",
            "the ESZ26 position",
        )
        assert qst.session.relogins == relogins + 1
        assert qst.resync_changes >= 3
        # Live again: a new order arrives as usual.
        live = (await place(gateway, "1000"))["order"]["externalId"]
        await events.wait_order(live, "WORKING")
        sandbox.set_price("ESZ26", Decimal("6000.00"))
    check_sequences(events)
    pairs = order_events(events)
    assert len(pairs) == len(set(pairs)), f"an order state was reported twice: {pairs}"


async def test_dropped_connections_are_reconnected(
    qst_gateway: TestGateway, qst_sandbox: QstSandbox
) -> None:
    async with subscribe(qst_gateway, "297999") as events:
        await events.wait_for(lambda e: True, "the snapshot")
        relogins = connector(qst_gateway).session.relogins
        await qst_sandbox.drop_connections()
        # A placement during the reconnect waits for it (bounded) instead of failing.
        placed = (await place(qst_gateway, "1000"))["order"]
        await events.wait_order(placed["externalId"], "WORKING")
        assert connector(qst_gateway).session.relogins == relogins + 1
        await qst_gateway.data(CANCEL, {"id": placed["id"]}, token="client")
        await events.wait_order(placed["externalId"], "CANCELLED")
    check_sequences(events)


async def test_another_session_of_the_user_is_handled(
    qst_gateway: TestGateway, qst_sandbox: QstSandbox
) -> None:
    qst = connector(qst_gateway)
    async with subscribe(qst_gateway, "297999") as events:
        await events.wait_for(lambda e: True, "the snapshot")
        other = raw_session(qst_sandbox)
        await other.start()  # QST closes the gateway's session with 4101
        try:
            await wait_until(lambda: qst.session.busy, "busy (4101)")
            result = await qst_gateway.data(PLACE, {"input": limit_input("1000")}, token="client")
            (error,) = result["placeOrder"]["errors"]
            assert error["code"] == "UPSTREAM_BUSY", error
            health = await qst_gateway.data(
                "{ connectors { name health { status detail } } }", token="admin"
            )
            (entry,) = [c for c in health["connectors"] if c["name"] == "qst"]
            assert entry["health"] == {"status": "DOWN", "detail": "UPSTREAM_BUSY"}
        finally:
            await other.close()
        # After its back-off the gateway's session returns; the subscription never ended.
        await wait_until(lambda: qst.session.ready, "back after the back-off")
        placed = (await place(qst_gateway, "1000"))["order"]
        await events.wait_order(placed["externalId"], "WORKING")
        await qst_gateway.data(CANCEL, {"id": placed["id"]}, token="client")
        await events.wait_order(placed["externalId"], "CANCELLED")
    assert not events.errors
    check_sequences(events)


async def test_only_entitled_viewers_get_an_accounts_events(
    qst_gateway: TestGateway, qst_sandbox: QstSandbox
) -> None:
    async with subscribe(qst_gateway, "297999", token="other_client") as events:
        await wait_until(lambda: events.errors, "refused")
    assert events.errors[0]["extensions"]["code"] == "NOT_FOUND"
    assert events.events == []
    before = qst_sandbox.requests["PlaceOrderRequest"]
    result = await qst_gateway.data(PLACE, {"input": limit_input("1000")}, token="other_client")
    assert result["placeOrder"]["errors"][0]["code"] == "NOT_FOUND"
    assert qst_sandbox.requests["PlaceOrderRequest"] == before, "nothing went upstream"
    # The owner of 400001 is linked, but the gateway's QST credential is demo-trader's.
    result = await qst_gateway.query(
        QST_ACCOUNT, {"id": account_gid("400001"), "currency": "USD"}, token="other_client"
    )
    assert result["data"] is None or result["data"]["account"] is None


async def test_a_retried_placement_returns_the_first_order(
    qst_gateway: TestGateway, qst_sandbox: QstSandbox
) -> None:
    sandbox = qst_sandbox
    arguments = {"input": limit_input("1000")}
    before = sandbox.requests["PlaceOrderRequest"]
    first = (await qst_gateway.data(PLACE, arguments, token="client"))["placeOrder"]
    again = (await qst_gateway.data(PLACE, arguments, token="client"))["placeOrder"]
    assert (first["replayed"], again["replayed"]) == (False, True)
    assert first["order"]["externalId"] == again["order"]["externalId"]
    assert sandbox.requests["PlaceOrderRequest"] == before + 1
    await qst_gateway.data(CANCEL, {"id": first["order"]["id"]}, token="client")


async def test_qst_refusals_are_typed_errors(qst_gateway: TestGateway) -> None:
    result = await qst_gateway.data(PLACE, {"input": limit_input("1000.10")}, token="client")
    (error,) = result["placeOrder"]["errors"]
    assert error == {"code": "UPSTREAM_REJECTED", "message": "Invalid price: 1000.10"}
    missing = order_gid("297999", "999999999")
    result = await qst_gateway.data(CANCEL, {"id": missing}, token="client")
    assert result["cancelOrder"]["errors"][0]["code"] == "NOT_FOUND"


async def test_account_information_currency(qst_gateway: TestGateway) -> None:
    query = """query($id: ID!) { account(id: $id) { ... on QstAccount {
      usd: accountInformation { currencyCode balance { currency } }
      unknown: accountInformation(currencyCode: "XYZ") { currencyCode }
    } } }"""
    account = (await qst_gateway.data(query, {"id": account_gid("297998")}, token="client"))[
        "account"
    ]
    assert account["usd"] == {"currencyCode": "USD", "balance": {"currency": "USD"}}
    assert account["unknown"]["currencyCode"] == "USD", "QST answers an unknown currency in USD"
    result = await qst_gateway.query(
        """query($id: ID!) { account(id: $id) { ... on QstAccount {
          accountInformation(currencyCode: "not a code") { currencyCode } } } }""",
        {"id": account_gid("297998")},
        token="client",
    )
    assert result["errors"][0]["extensions"]["code"] == "INVALID_INPUT"


FUNDS = """query($id: ID!) { account(id: $id) {
  balance { amount }
  orders { externalId status rejectReason }
  positions { symbol volume }
  ... on QstAccount { accountInformation {
    balance { amount } equity { amount } margin { amount } availableFunds { amount } } }
} }"""


def market_input(quantity: str) -> Any:
    return {
        "accountId": account_gid("297999"),
        "symbol": "ESZ26",
        "side": "BUY",
        "type": "MARKET",
        "quantity": quantity,
        "idempotencyKey": new_key(),
    }


async def test_qst_size_and_buying_power_rejects_book_nothing(
    qst_gateway: TestGateway, qst_sandbox: QstSandbox
) -> None:
    """The filed finding: 100,000 ES at market on a 100,000 USD account was accepted."""

    async def funds() -> dict[str, Any]:
        data = await qst_gateway.data(FUNDS, {"id": account_gid("297999")}, token="client")
        account: dict[str, Any] = data["account"]
        return account

    before = await funds()
    known = {o["externalId"] for o in before["orders"]}
    sent = qst_sandbox.requests["PlaceOrderRequest"]
    cases = [
        (
            "100000",
            "UPSTREAM_REJECTED",
            "Order quantity 100000.0 exceeds the maximum order size 500 for ESZ26",
        ),
        # Within the size limit, far beyond the buying power (400 x 15,000 USD margin).
        ("400", "INSUFFICIENT_FUNDS", "Insufficient buying power: initial margin "),
    ]
    for quantity, code, message in cases:
        result = await qst_gateway.data(PLACE, {"input": market_input(quantity)}, token="client")
        payload = result["placeOrder"]
        assert payload["order"] is None
        (error,) = payload["errors"]
        assert error["code"] == code, error
        assert error["message"].startswith(message), error
        (rejected,) = [o for o in (await funds())["orders"] if o["externalId"] not in known]
        assert (rejected["status"], rejected["rejectReason"]) == ("REJECTED", error["message"])
        known.add(rejected["externalId"])
    assert qst_sandbox.requests["PlaceOrderRequest"] == sent + 2, "QST refused, not the gateway"
    after = await funds()
    assert after["balance"] == before["balance"]
    assert after["accountInformation"] == before["accountInformation"], "no money moved"
    assert after["positions"] == before["positions"], "nothing was filled"


async def test_without_request_id_echo_the_gateway_stays_correct(tmp_path: Path) -> None:
    """QST's order-routing docs never mention a request id [I]: answered without one,
    the connector sends one request at a time, and every operation still lands right."""
    async with (
        started_sandbox(tick_seconds=0, echo_request_id=False) as sandbox,
        qst_gateway_on(sandbox, tmp_path) as gateway,
        subscribe(gateway, "297999") as events,
    ):
        await events.wait_for(lambda e: True, "the snapshot")
        accounts = ["297999", "297998", "297999", "297998"]
        placed = await asyncio.gather(
            *(place(gateway, f"1000.{25 * i}", account=a) for i, a in enumerate(accounts))
        )
        orders = [p["order"] for p in placed]
        books = await asyncio.gather(
            *(gateway.data(BOOK, {"id": account_gid(a)}, token="client") for a in set(accounts))
        )
        listed = {
            (b["account"]["externalId"], o["externalId"])
            for b in books
            for o in b["account"]["orders"]
        }
        for account, order in zip(accounts, orders, strict=True):
            assert (account, order["externalId"]) in listed
        await asyncio.gather(
            *(gateway.data(CANCEL, {"id": o["id"]}, token="client") for o in orders)
        )
        for account, order in zip(accounts, orders, strict=True):
            if account == "297999":
                await events.wait_order(order["externalId"], "CANCELLED")
        assert connector(gateway).session.lockstep
        assert sandbox.max_in_flight == 1, "one request at a time"
    check_sequences(events)


def error_code(result: dict[str, Any], field: str) -> str | None:
    """A mutation's error code, from its payload or (raised) from the response."""
    if result.get("errors"):
        code: str = result["errors"][0]["extensions"]["code"]
        return code
    errors = result["data"][field]["errors"]
    return errors[0]["code"] if errors else None


async def test_placements_answered_without_an_order_number_are_found_in_the_book(
    tmp_path: Path,
) -> None:
    """That QST's PlaceOrderResponse carries the order number is our reading [I]; its
    workflow reads the order book for it [V].  Without it: the one new order like the
    one placed, or an unknown outcome; never another order."""
    async with (
        started_sandbox(tick_seconds=0, order_number_in_response=False) as sandbox,
        qst_gateway_on(sandbox, tmp_path) as gateway,
    ):
        qst = connector(gateway)
        # Before the connector knows: two identical orders at once may be told apart
        # (one placed before the other's book read) or not (unknown); never mixed up.
        twins = await asyncio.gather(
            *(gateway.query(PLACE, {"input": limit_input("1000")}, token="client") for _ in "ab")
        )
        found = [
            t["data"]["placeOrder"]["order"] for t in twins if error_code(t, "placeOrder") is None
        ]
        assert all(error_code(t, "placeOrder") in (None, "OUTCOME_UNKNOWN") for t in twins)
        assert len({o["externalId"] for o in found}) == len(found)
        for order in found:
            assert sandbox.book.orders[order["externalId"]].price == Decimal("1000.00")
        assert qst.numberless
        # Known now: one placement at a time per account, each between two book reads.
        prices = ["1000.25", "1000.50", "1000.75"]
        books = sandbox.requests["OrderBookRequest"]
        placed = await asyncio.gather(*(place(gateway, p) for p in prices))
        orders = [p["order"] for p in placed]
        assert [sandbox.book.orders[o["externalId"]].price for o in orders] == [
            Decimal(p) for p in prices
        ]
        assert sandbox.requests["OrderBookRequest"] >= books + 2 * len(prices)
        replaced = await gateway.data(
            REPLACE,
            {"input": {"orderId": orders[0]["id"], "quantity": "2", "idempotencyKey": new_key()}},
            token="client",
        )
        new = replaced["replaceOrder"]["order"]
        assert replaced["replaceOrder"]["errors"] == []
        assert new["externalId"] != orders[0]["externalId"]
        assert sandbox.book.orders[new["externalId"]].quantity == Decimal(2)
        # A reject still says why (its number was never needed).
        refused = await gateway.data(PLACE, {"input": limit_input("1000.10")}, token="client")
        assert refused["placeOrder"]["errors"][0]["message"] == "Invalid price: 1000.10"


async def test_a_replacement_that_keeps_its_number_returns_the_new_state(tmp_path: Path) -> None:
    """That a QST cancel-replace gives a new order number is our reading [I]: replaced
    in place instead, the mutation still returns the order as replaced, not as it was."""
    async with (
        # Answers undelayed: the response comes before the notification of the change,
        # when the order's state from before is all the connector has.
        started_sandbox(
            tick_seconds=0, replace_keeps_number=True, response_jitter_seconds=0
        ) as sandbox,
        qst_gateway_on(sandbox, tmp_path) as gateway,
        subscribe(gateway, "297999") as events,
    ):
        await events.wait_for(lambda e: True, "the snapshot")
        order = (await place(gateway, "1000"))["order"]
        arguments = {"orderId": order["id"], "quantity": "2", "price": "1000.25"}
        result = await gateway.data(
            REPLACE, {"input": {**arguments, "idempotencyKey": new_key()}}, token="client"
        )
        replaced = result["replaceOrder"]
        assert replaced["errors"] == []
        assert replaced["order"]["externalId"] == order["externalId"], "the same order"
        new = replaced["order"]
        assert (Decimal(new["quantity"]), Decimal(new["price"])) == (Decimal(2), Decimal("1000.25"))
        book = sandbox.book.orders[order["externalId"]]
        assert (book.quantity, book.price, book.status) == (
            Decimal(2),
            Decimal("1000.25"),
            "Working",
        )
        await events.wait_for(
            lambda e: e["order"] is not None and Decimal(e["order"]["quantity"]) == 2, "the change"
        )
        await gateway.data(CANCEL, {"id": order["id"]}, token="client")
        await events.wait_order(order["externalId"], "CANCELLED")
    check_sequences(events)


async def test_an_account_notified_only_while_current_catches_up_at_its_next_read(
    tmp_path: Path,
) -> None:
    """Whether QST notifies the orders of an account that is not the session's current
    one is not documented [I].  If it does not, a followed account's change made while
    another account is current reaches its stream at that account's next order-book read
    (its orders or positions queried, a reconnect): once, in order — but not live, as
    the connector does not poll unless told to (``poll_followed_seconds``, the next
    test).  This test pins that limit of the default."""
    async with (
        started_sandbox(tick_seconds=0, notify_current_account_only=True) as sandbox,
        qst_gateway_on(sandbox, tmp_path) as gateway,
        subscribe(gateway, "297998") as events,
    ):
        await events.wait_for(lambda e: True, "the snapshot")
        resting = (await place(gateway, "5000", account="297998"))["order"]
        await events.wait_order(resting["externalId"], "WORKING")  # 297998 is current
        other = (await place(gateway, "1000"))["order"]  # now 297999 is
        withheld = sandbox.withheld_notifications
        sandbox.set_price("ESZ26", Decimal("4999.75"))  # fills the 297998 order
        assert sandbox.withheld_notifications > withheld, "QST said nothing of the fill"
        assert sandbox.book.orders[resting["externalId"]].status == "Filled"
        assert not [e for e in events.events if e["order"] and e["order"]["status"] == "FILLED"]
        # The next read of the account diffs its book: the fill is reported then, once.
        await gateway.data(BOOK, {"id": account_gid("297998")}, token="client")
        await events.wait_order(resting["externalId"], "FILLED")
        sandbox.set_price("ESZ26", Decimal("6000.00"))
        await gateway.data(CANCEL, {"id": other["id"]}, token="client")
    check_sequences(events)
    fills = [e for e in events.events if e["order"] and e["order"]["status"] == "FILLED"]
    assert len(fills) == 1


async def test_a_password_hashed_otherwise_than_qst_expects_is_a_clear_refusal(
    tmp_path: Path,
) -> None:
    """QST's login example shows only "hash_password"; sha256 hex is our reading [I].
    Should QST hash otherwise, the product cannot log in, and says so: health DOWN with
    QST's reason, requests refused before anything is sent, no login loop."""
    async with (
        started_sandbox(tick_seconds=0, hash_scheme="md5") as sandbox,
        qst_gateway_on(sandbox, tmp_path, reconnect_max_seconds=30.0) as gateway,
    ):
        health = await gateway.data("{ connectors { name health { status detail } } }")
        (entry,) = [c for c in health["connectors"] if c["name"] == "qst"]
        assert entry["health"] == {"status": "DOWN", "detail": "UPSTREAM_REJECTED"}
        result = await gateway.data(PLACE, {"input": limit_input("1000")}, token="client")
        (error,) = result["placeOrder"]["errors"]
        assert error["code"] == "UPSTREAM_REJECTED"
        assert "Invalid username or password" in error["message"]
        assert sandbox.requests["PlaceOrderRequest"] == 0, "nothing was sent"
        assert sandbox.requests["LoginRequest"] == 1, "a refused login is not retried at once"


#: The order-status codes of QST's JSON API (its list has no code for "filled").
JSON_API_STATUS_CODES = {
    "New Order": "PN",
    "Working": "N",
    "Canceled": "CXL",
    "Rejected": "RJ",
    "Expired": "E",
}


async def test_order_statuses_as_the_json_api_codes_them_read_the_same(tmp_path: Path) -> None:
    """Only "New Order" is a documented status text [V]; should QST's order routing send
    the codes of its JSON API instead [I], every status still reads right."""
    async with (
        started_sandbox(tick_seconds=0, status_texts=JSON_API_STATUS_CODES) as sandbox,
        qst_gateway_on(sandbox, tmp_path) as gateway,
        subscribe(gateway, "297999") as events,
    ):
        await events.wait_for(lambda e: True, "the snapshot")
        order = (await place(gateway, "1000"))["order"]
        await events.wait_order(order["externalId"], "WORKING")
        cancelled = await gateway.data(CANCEL, {"id": order["id"]}, token="client")
        assert cancelled["cancelOrder"]["order"]["status"] == "CANCELLED"
        refused = await gateway.data(PLACE, {"input": limit_input("1000.10")}, token="client")
        assert refused["placeOrder"]["errors"][0]["message"] == "Invalid price: 1000.10"
        filled = (await place(gateway, "6000"))["order"]  # at the market: fills at once
        await events.wait_order(filled["externalId"], "FILLED")
        wire_statuses = {o.status for o in sandbox.book.orders.values()}
        assert wire_statuses == {"Canceled", "Rejected", "Filled"}, "the book's own texts"
        book = await gateway.data(BOOK, {"id": account_gid("297999")}, token="client")
        statuses = {o["externalId"]: o["status"] for o in book["account"]["orders"]}
        assert statuses[order["externalId"]] == "CANCELLED"
        assert statuses[filled["externalId"]] == "FILLED"
        assert "REJECTED" in statuses.values()
        sell = {**limit_input("6000"), "side": "SELL"}  # flat again
        await gateway.data(PLACE, {"input": sell}, token="client")
    check_sequences(events)
    seen = {e["order"]["status"] for e in events.events if e["order"]}
    assert {"PENDING", "WORKING", "CANCELLED", "FILLED"} <= seen


async def test_polling_keeps_an_account_notified_only_while_current_live(tmp_path: Path) -> None:
    """The same QST, with ``poll_followed_seconds`` set: the connector diffs the book of
    every subscribed account in turn, so the fill reaches the stream without a read."""
    async with (
        started_sandbox(tick_seconds=0, notify_current_account_only=True) as sandbox,
        qst_gateway_on(sandbox, tmp_path, poll_followed_seconds=0.05) as gateway,
        subscribe(gateway, "297998") as events,
        subscribe(gateway, "297999") as home_events,
    ):
        await events.wait_for(lambda e: True, "the snapshot")
        await home_events.wait_for(lambda e: True, "the snapshot")
        resting = (await place(gateway, "5000", account="297998"))["order"]
        home = (await place(gateway, "4000"))["order"]  # on 297999
        await events.wait_order(resting["externalId"], "WORKING")
        await home_events.wait_order(home["externalId"], "WORKING")
        books = sandbox.requests["OrderBookRequest"]
        sandbox.set_price("ESZ26", Decimal("3999.75"))  # fills both, whichever is current
        await events.wait_order(resting["externalId"], "FILLED")
        await home_events.wait_order(home["externalId"], "FILLED")
        assert sandbox.withheld_notifications > 0, "QST said nothing of one of the fills"
        assert sandbox.requests["OrderBookRequest"] > books, "found by reading the books"
        sandbox.set_price("ESZ26", Decimal("6000.00"))
    for subscription in (events, home_events):
        check_sequences(subscription)
        fills = [e for e in subscription.events if e["order"] and e["order"]["status"] == "FILLED"]
        assert len(fills) == 1
