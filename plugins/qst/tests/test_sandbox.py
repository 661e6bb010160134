"""The QST sandbox over real WebSocket connections, speaking the generated protobuf module.

No mocks: every test opens sockets to a started :class:`QstSandbox` and reads what the
server sends.  Unless a test says otherwise the price path stands still
(``tick_seconds=0``) and only ``set_price`` moves prices, so fills are deterministic.
Every wait is bounded (``asyncio.wait_for``); nothing asserts on elapsed time.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from decimal import Decimal
from typing import Any

import pytest
from brokergraph_qst._proto import order_routing_pb2 as pb
from brokergraph_qst.sandbox import QstSandbox, password_hash
from brokergraph_qst.sandbox.market import Market
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

WAIT = 5.0
USER, PASSWORD = "demo-trader", "demo-pass"
Notification = pb.OrderEntryNotification


class Client:
    """A bare QST client: request ids, responses by id, every notification kept in order."""

    def __init__(self, websocket: ClientConnection) -> None:
        self.websocket = websocket
        self.responses: dict[int, pb.ServerMessage] = {}
        #: Request ids in the order their responses arrived.
        self.arrivals: list[int] = []
        self.notifications: list[Notification] = []
        self._ids = itertools.count(1)

    async def send(self, **request: Any) -> int:
        request_id = next(self._ids)
        message = pb.ClientMessage(request_id=request_id, **request)
        await self.websocket.send(message.SerializeToString())
        return request_id

    async def read(self) -> None:
        frame = await asyncio.wait_for(self.websocket.recv(), WAIT)
        assert isinstance(frame, bytes), "the server sends binary frames only"
        message = pb.ServerMessage.FromString(frame)
        if message.request_id == 0:
            assert message.WhichOneof("message") == "async"
            self.notifications.append(getattr(message, "async").order_entry_notification)
        else:
            assert message.request_id not in self.responses, "one response per request"
            self.responses[message.request_id] = message
            self.arrivals.append(message.request_id)

    async def response(self, request_id: int) -> pb.ServerMessage:
        while request_id not in self.responses:
            await self.read()
        return self.responses[request_id]

    async def call(self, **request: Any) -> pb.ServerMessage:
        return await self.response(await self.send(**request))

    async def notification(self, predicate: Callable[[Notification], bool]) -> Notification:
        """The first notification so far (reading more as needed) that matches."""
        while True:
            for item in self.notifications:
                if predicate(item):
                    return item
            await self.read()

    async def order(self, number: str, status: str) -> pb.Order:
        item = await self.notification(
            lambda n: (
                n.HasField("order") and n.order.order_number == number and n.order.status == status
            )
        )
        return item.order

    async def text_after(self, order: pb.Order) -> pb.OETextNotification:
        """The text notification right after this exact Order notification."""
        for index, item in enumerate(self.notifications):
            if item.HasField("order") and item.order == order:
                while len(self.notifications) <= index + 1:
                    await self.read()
                following = self.notifications[index + 1]
                assert following.HasField("text_notification"), following
                return following.text_notification
        raise AssertionError(f"no such order notification: {order}")

    async def assert_paired(self) -> None:
        """Every Order notification so far is followed at once by its text notification."""
        orders = [i for i, n in enumerate(self.notifications) if n.HasField("order")]
        assert orders, "no order notification at all"
        if orders[-1] + 1 == len(self.notifications):
            await self.read()
        sequence = kinds(self.notifications)
        for index in orders:
            assert sequence[index + 1] == "text_notification", (index, sequence)

    async def closed(self) -> ConnectionClosed:
        """Read until the server closes; the close as the client received it."""
        try:
            while True:
                await self.read()
        except ConnectionClosed as closed:
            return closed

    async def login(self, user: str = USER, password: str = PASSWORD) -> pb.LoginResponse:
        login = pb.LoginRequest(
            username=user,
            password=password_hash(password),
            firm_id="CVS",
            mobile_type="NEWLITE",
            client_unique_id="6a1f0c1e-0000-4000-8000-000000000001",
        )
        return (await self.call(login=login)).login

    async def oe_login(
        self, user: str = USER, password: str = PASSWORD, *, relogin: bool = False
    ) -> pb.OELoginResponse:
        request = pb.OELoginRequest(
            username=user,
            password_hash=password_hash(password),
            order_entry_provider=pb.QOR,
            is_relogin=relogin,
        )
        return (await self.call(oe_login=request)).oe_login

    async def place(self, order: pb.PlaceOrderRequest) -> pb.PlaceOrderResponse:
        return (await self.call(place_order=order)).place_order

    async def order_book(self) -> pb.OrderBookResponse:
        return (await self.call(order_book=pb.OrderBookRequest())).order_book


Opener = Callable[..., Awaitable[Client]]


def limit(
    price: str = "5900.00",
    *,
    contract: str = "ESZ26",
    side: pb.Side = pb.BUY,
    quantity: str = "1",
    life_time: pb.OrderLifeTime = pb.DAY_ORDER_LIFE_TIME,
) -> pb.PlaceOrderRequest:
    return pb.PlaceOrderRequest(
        contract=contract,
        side=side,
        quantity=quantity,
        order_type=pb.LMT_ORDER_TYPE,
        life_time=life_time,
        price=price,
    )


def market(contract: str = "ESZ26", side: pb.Side = pb.BUY, quantity: str = "1") -> Any:
    return pb.PlaceOrderRequest(
        contract=contract,
        side=side,
        quantity=quantity,
        order_type=pb.MKT_ORDER_TYPE,
        life_time=pb.DAY_ORDER_LIFE_TIME,
    )


def kinds(notifications: Iterable[Notification]) -> list[str | None]:
    return [n.WhichOneof("notification") for n in notifications]


def statuses(book: pb.OrderBookResponse) -> dict[str, str]:
    return {o.order_number: o.status for o in book.orders}


@pytest.fixture
async def sandbox() -> AsyncIterator[QstSandbox]:
    server = QstSandbox(tick_seconds=0)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def open_client() -> AsyncIterator[Opener]:
    """Opens clients (``logged_in=True``: through LoginRequest and OELoginRequest)."""
    clients: list[Client] = []

    async def opener(
        server: QstSandbox,
        *,
        logged_in: bool = False,
        user: str = USER,
        password: str = PASSWORD,
        **connect_kwargs: Any,
    ) -> Client:
        websocket = await asyncio.wait_for(
            connect(
                server.url,
                proxy=None,
                open_timeout=WAIT,
                ssl=server.client_ssl_context(),
                **connect_kwargs,
            ),
            WAIT,
        )
        client = Client(websocket)
        clients.append(client)
        if logged_in:
            assert (await client.login(user, password)).success
            assert (await client.oe_login(user, password)).success
        return client

    yield opener
    for client in clients:
        await asyncio.wait_for(client.websocket.close(), WAIT)


# ----------------------------------------------------------------------- login gating


@pytest.mark.parametrize(
    "request_fields",
    [
        {"order_book": pb.OrderBookRequest()},
        {"oe_login": pb.OELoginRequest(username=USER, password_hash=password_hash(PASSWORD))},
        {"place_order": limit()},
    ],
    ids=["order-book", "oe-login", "place"],
)
async def test_any_request_before_login_closes_4001(
    sandbox: QstSandbox, open_client: Opener, request_fields: dict[str, Any]
) -> None:
    client = await open_client(sandbox)
    await client.send(**request_fields)
    closed = await client.closed()
    assert closed.rcvd is not None
    assert (closed.rcvd.code, closed.rcvd.reason) == (4001, "login required")
    assert sandbox.closes[4001] == 1


async def test_order_entry_request_before_oe_login_closes_4001(
    sandbox: QstSandbox, open_client: Opener
) -> None:
    client = await open_client(sandbox)
    assert (await client.login()).success
    await client.send(order_book=pb.OrderBookRequest())
    closed = await client.closed()
    assert closed.rcvd is not None
    assert closed.rcvd.code == 4001


@pytest.mark.parametrize(
    ("frame", "code"), [("a text frame", 1003), (b"\xff\xff\xff", 1007)], ids=["text", "garbage"]
)
async def test_frames_that_are_not_client_messages_close_the_connection(
    sandbox: QstSandbox, open_client: Opener, frame: str | bytes, code: int
) -> None:
    client = await open_client(sandbox)
    await client.websocket.send(frame)
    closed = await client.closed()
    assert closed.rcvd is not None
    assert closed.rcvd.code == code


async def test_bad_password_is_a_failed_login_and_the_client_may_retry(
    sandbox: QstSandbox, open_client: Opener
) -> None:
    client = await open_client(sandbox)
    failed = await client.login(password="wrong")
    assert not failed.success
    assert failed.server_message == "Invalid username or password"
    assert not (await client.login(user="nobody")).success
    assert (await client.login()).success
    oe = await client.oe_login(password="wrong")
    assert not oe.success
    assert oe.server_message
    assert (await client.oe_login()).success


# ----------------------------------------------------------------------- the seed workflow


async def test_seed_001_workflow_at_the_wire_level(
    sandbox: QstSandbox, open_client: Opener
) -> None:
    client = await open_client(sandbox)
    assert (await client.login()).success
    oe = await client.oe_login()
    assert oe.success
    assert [a.account_id for a in oe.accounts] == ["297999", "297998"]
    assert [a.name for a in oe.accounts] == ["Demo Futures 1", "Demo Futures 2"]
    assert oe.current_account_id == "297999"
    status = await client.notification(lambda n: n.HasField("account_status_update"))
    assert status.account_status_update == pb.AccountStatus(account_id="297999", status="LOGGED_IN")

    book = await client.order_book()
    assert book.oe_provider == pb.QOR
    assert list(book.orders) == []
    assert list(book.net_positions) == []

    oal = pb.ChangeOALSubscriptionLevelRequest(subscription_level=pb.SUBSCRIBED)
    response = await client.call(change_oal_subscription_level=oal)
    assert response.change_oal_subscription_level.status == pb.OK

    # place, then find it in the order book, then cancel it
    placed = await client.place(limit("5900.00"))
    assert placed.status == pb.OK
    first = placed.order_number
    assert first.isdigit()
    assert int(first) >= 115300
    new = await client.order(first, "New Order")
    assert (new.quantity, new.price, new.limit, new.contract) == ("1.0", "5900.00", "NaN", "ESZ26")
    assert (new.order_update_type, new.session, new.account_number) == (
        "ORDER_UPDATE",
        "ELECTRONIC",
        "297999",
    )
    assert new.order_date.isdigit()
    assert new.entered_by == USER
    text = await client.text_after(new)
    assert text.title == f"{USER}@SIM1(127.0.0.1:{sandbox.port}) Order Message"
    assert text.body.startswith(f"Order placed\n#{first} BUY 1.0 ESZ26 LMT 5900.00 DAY\n")
    assert text.body.endswith("\nAccount #297999")
    await client.order(first, "Working")
    assert statuses(await client.order_book()) == {first: "Working"}
    cancel = await client.call(cancel_order=pb.CancelOrderRequest(order_id=first))
    assert cancel.cancel_order.status == pb.OK
    canceled = await client.order(first, "Canceled")
    assert (await client.text_after(canceled)).body.startswith("Order canceled\n")

    # three places, then CancelOrdersRequest with their ids
    three = [(await client.place(limit(f"59{i}0.00"))).order_number for i in range(3)]
    for number in three:
        await client.order(number, "Working")
    cancel_all = await client.call(cancel_orders=pb.CancelOrdersRequest(order_ids=three))
    assert cancel_all.cancel_orders.status == pb.OK
    for number in three:
        await client.order(number, "Canceled")

    # three places on one contract (and one elsewhere), then cancel for the contract
    euro = [(await client.place(limit("1.07000", contract="6EZ26"))).order_number for _ in range(3)]
    crude = (await client.place(limit("70.00", contract="CLF27"))).order_number
    by_contract = pb.CancelOrdersForContractRequest(contract_to_be_canceled="6EZ26")
    response = await client.call(cancel_orders_for_contract=by_contract)
    assert response.cancel_orders_for_contract.status == pb.OK
    for number in euro:
        await client.order(number, "Canceled")
    book_statuses = statuses(await client.order_book())
    assert [book_statuses[n] for n in euro] == ["Canceled"] * 3
    assert book_statuses[crude] == "Working"

    # place, then cancel-replace with a full re-specification
    original = (await client.place(limit("5800.00"))).order_number
    await client.order(original, "Working")
    replace = pb.CancelReplaceOrderRequest(
        order_id_to_be_replaced=original,
        contract="ESZ26",
        side=pb.BUY,
        quantity="2",
        order_type=pb.LMT_ORDER_TYPE,
        life_time=pb.GTC_ORDER_LIFE_TIME,
        price="5805.00",
    )
    replaced = (await client.call(cancel_replace_order=replace)).cancel_replace_order
    assert replaced.status == pb.OK
    replacement = replaced.order_number
    assert replacement.isdigit()
    assert replacement != original
    old = await client.order(original, "Canceled")
    assert f"replaced by #{replacement}" in (await client.text_after(old)).body
    new_order = await client.order(replacement, "Working")
    assert (new_order.quantity, new_order.price) == ("2.0", "5805.00")
    assert new_order.life_time == pb.GTC_ORDER_LIFE_TIME
    book_statuses = statuses(await client.order_book())
    assert (book_statuses[original], book_statuses[replacement]) == ("Canceled", "Working")

    # the order activity log, recorded since the OAL subscription
    items = (await client.call(get_activity_items=pb.GetActivityItemsRequest())).get_activity_items
    actions = [(i.order_number, i.action) for i in items.items]
    assert actions[:2] == [(first, "Place"), (first, "Cancel")]
    assert (original, "Cancel") in actions
    assert (replacement, "Replace") in actions
    assert all(i.time.isdigit() for i in items.items)

    # account information converted to EUR
    info = (await client.call(account_info=pb.AccountInfoRequest(currency_code="EUR"))).account_info
    assert info.account_information.account_id == "297999"
    assert info.account_information.currency_code == "EUR"
    assert info.account_information.balance == "92000.00"

    # switch account
    switch = pb.OESwitchAccountRequest(account_id="297998", is_live_trading=False)
    response = await client.call(oe_switch_account=switch)
    assert response.oe_switch_account.account_id == "297998"
    await client.notification(
        lambda n: (
            n.account_status_update == pb.AccountStatus(account_id="297998", status="SWITCHED")
        )
    )
    assert list((await client.order_book()).orders) == []

    # OE logout, then logout
    response = await client.call(oe_logout=pb.OELogoutRequest())
    assert response.oe_logout.status == pb.OK
    await client.notification(
        lambda n: (
            n.account_status_update == pb.AccountStatus(account_id="297998", status="LOGGED_OUT")
        )
    )
    await client.send(logout=pb.LogoutRequest())
    closed = await client.closed()
    assert closed.rcvd is not None
    assert closed.rcvd.code == 1000

    await client.assert_paired()
    texts = [n.text_notification for n in client.notifications if n.HasField("text_notification")]
    assert all(t.title.endswith(" Order Message") for t in texts), "no reject in this workflow"
    assert sandbox.requests["PlaceOrderRequest"] == 9
    assert sandbox.requests["LogoutRequest"] == 1


# ----------------------------------------------------------------------- fills and positions


async def test_market_order_fills_and_the_net_position_appears(
    sandbox: QstSandbox, open_client: Opener
) -> None:
    client = await open_client(sandbox, logged_in=True)
    placed = await client.place(market("ESZ26", pb.BUY, "2"))
    assert placed.status == pb.OK
    filled = await client.order(placed.order_number, "Filled")
    assert (filled.filled_quantity, filled.average_fill_price) == ("2.0", "6000.00")
    text = await client.text_after(filled)
    assert text.title.endswith(" Fill Message")
    assert text.body.startswith(f"Order filled\n#{placed.order_number} BUY 2.0 ESZ26 filled at ")

    position = await client.notification(lambda n: n.HasField("net_position"))
    assert position.net_position.account_number == "297999"
    assert position.net_position.net_quantity == "2.0"
    account = await client.notification(lambda n: n.HasField("account_information"))
    assert account.account_information.account_id == "297999"
    assert account.account_information.margin == "30000.00"

    book = await client.order_book()
    assert [(p.contract, p.net_quantity, p.average_price) for p in book.net_positions] == [
        ("ESZ26", "2.0", "6000.0000")
    ]
    assert statuses(book) == {placed.order_number: "Filled"}
    await client.assert_paired()


async def test_set_price_fills_a_limit_order_and_pnl_moves_the_balance(
    sandbox: QstSandbox, open_client: Opener
) -> None:
    client = await open_client(sandbox, logged_in=True)
    number = (await client.place(limit("5990.00"))).order_number
    await client.order(number, "Working")
    sandbox.set_price("ESZ26", Decimal("5990.25"))
    assert statuses(await client.order_book())[number] == "Working", "not at the limit yet"

    sandbox.set_price("ESZ26", Decimal("5990.00"))
    filled = await client.order(number, "Filled")
    assert filled.average_fill_price == "5990.00"

    sandbox.set_price("ESZ26", Decimal("6000.00"))
    info = (await client.call(account_info=pb.AccountInfoRequest(currency_code="USD"))).account_info
    assert info.account_information.open_pnl == "500.00"
    assert info.account_information.equity == "100500.00"
    assert info.account_information.balance == "100000.00"

    sold = (await client.place(market("ESZ26", pb.SELL, "1"))).order_number
    await client.order(sold, "Filled")
    position = await client.notification(
        lambda n: n.HasField("net_position") and n.net_position.net_quantity == "0.0"
    )
    assert position.net_position.realized_pnl == "500.00"
    info = (await client.call(account_info=pb.AccountInfoRequest(currency_code="XYZ"))).account_info
    assert info.account_information.currency_code == "USD", "an unknown currency means USD"
    assert info.account_information.balance == "100500.00"
    assert info.account_information.realized_pnl == "500.00"


async def test_stop_and_stop_with_limit(sandbox: QstSandbox, open_client: Opener) -> None:
    client = await open_client(sandbox, logged_in=True)
    stop = pb.PlaceOrderRequest(
        contract="CLF27",
        side=pb.BUY,
        quantity="1",
        order_type=pb.STOP_ORDER_TYPE,
        life_time=pb.GTC_ORDER_LIFE_TIME,
        price="73.00",
    )
    stop_number = (await client.place(stop)).order_number
    stwl = pb.PlaceOrderRequest(
        contract="ESZ26",
        side=pb.SELL,
        quantity="1",
        order_type=pb.STWL_ORDER_TYPE,
        life_time=pb.DAY_ORDER_LIFE_TIME,
        price="5950.00",
        limit_price="5948.00",
    )
    stwl_number = (await client.place(stwl)).order_number
    working = await client.order(stwl_number, "Working")
    assert (working.price, working.limit) == ("5950.00", "5948.00")

    sandbox.set_price("CLF27", Decimal("73.05"))
    assert (await client.order(stop_number, "Filled")).average_fill_price == "73.05"

    sandbox.set_price("ESZ26", Decimal("5940.00"))  # triggers, but below the limit
    triggered = await client.notification(
        lambda n: n.order.order_number == stwl_number and n.order.order_type == pb.LMT_ORDER_TYPE
    )
    assert (triggered.order.status, triggered.order.price) == ("Working", "5948.00")
    assert (await client.text_after(triggered.order)).body.startswith("Stop triggered\n")
    sandbox.set_price("ESZ26", Decimal("5948.25"))
    assert (await client.order(stwl_number, "Filled")).average_fill_price == "5948.25"
    await client.assert_paired()


async def test_gtd_order_expires_after_its_date(sandbox: QstSandbox, open_client: Opener) -> None:
    client = await open_client(sandbox, logged_in=True)
    order = limit("5900.00", life_time=pb.GTD_ORDER_LIFE_TIME)
    order.good_till_date = time.time_ns() // 1_000_000 + 200
    number = (await client.place(order)).order_number
    await client.order(number, "Working")
    await asyncio.sleep(0.3)
    sandbox.set_price("ESZ26", Decimal("6000.00"))  # any price change checks expiries
    expired = await client.order(number, "Expired")
    assert (await client.text_after(expired)).body.startswith("Order expired\n")


async def test_the_seeded_price_path_fills_working_orders() -> None:
    first, second, other = Market(7), Market(7), Market(8)
    for _ in range(50):
        first.step()
        second.step()
        other.step()
    assert first.prices == second.prices
    assert first.prices != other.prices

    server = QstSandbox(seed=7, tick_seconds=0.01)
    await server.start()
    try:
        trust = server.client_ssl_context()
        websocket = await connect(server.url, proxy=None, open_timeout=WAIT, ssl=trust)
        client = Client(websocket)
        assert (await client.login()).success
        assert (await client.oe_login()).success
        # One tick either side of the price now: whichever way the walk goes, one fills.
        now = server.market.price("6EZ26")
        tick = Decimal("0.00005")
        buy = (await client.place(limit(str(now - tick), contract="6EZ26"))).order_number
        sell = await client.place(limit(str(now + tick), contract="6EZ26", side=pb.SELL))
        filled = await asyncio.wait_for(
            client.notification(
                lambda n: (
                    n.order.status == "Filled" and n.order.order_number in (buy, sell.order_number)
                )
            ),
            30,
        )
        assert filled.order.average_fill_price != "NaN"
        assert server.market.steps > 0
        await websocket.close()
    finally:
        await server.stop()


# ----------------------------------------------------------------------- rejects


@pytest.mark.parametrize(
    ("order", "reason"),
    [
        (limit(contract="NOPE"), "Invalid contract: NOPE"),
        (limit(quantity="0"), "Invalid quantity: 0"),
        (limit(quantity="-1"), "Invalid quantity: -1"),
        (limit(price=""), "Price is required for LMT orders"),
        (limit(price="5900.10"), "Invalid price: 5900.10"),
        (limit(life_time=pb.GTD_ORDER_LIFE_TIME), "Good till date is required for GTD orders"),
        (
            pb.PlaceOrderRequest(
                contract="ESZ26",
                side=pb.BUY,
                quantity="1",
                order_type=pb.STWL_ORDER_TYPE,
                life_time=pb.DAY_ORDER_LIFE_TIME,
                price="6010.00",
            ),
            "Limit price is required for STWL orders",
        ),
    ],
    ids=["contract", "zero", "negative", "no-price", "off-tick", "gtd-no-date", "stwl-no-limit"],
)
async def test_invalid_orders_are_rejected_as_text(
    sandbox: QstSandbox, open_client: Opener, order: pb.PlaceOrderRequest, reason: str
) -> None:
    client = await open_client(sandbox, logged_in=True)
    placed = await client.place(order)
    assert placed.status == pb.FAILED
    assert placed.order_number.isdigit()
    rejected = await client.order(placed.order_number, "Rejected")
    text = await client.text_after(rejected)
    assert text.title == f"{USER}@SIM1(127.0.0.1:{sandbox.port}) Error Message"
    assert text.body == f"Order rejected\n{reason}\nAccount #297999"
    assert statuses(await client.order_book()) == {placed.order_number: "Rejected"}


async def test_cancel_and_replace_rejects_are_text_only(
    sandbox: QstSandbox, open_client: Opener
) -> None:
    client = await open_client(sandbox, logged_in=True)
    filled = (await client.place(market())).order_number
    await client.order(filled, "Filled")
    working = (await client.place(limit())).order_number
    await client.text_after(await client.order(working, "Working"))
    before = len(client.notifications)

    unknown = await client.call(cancel_order=pb.CancelOrderRequest(order_id="999"))
    assert unknown.cancel_order.status == pb.FAILED
    final = await client.call(cancel_order=pb.CancelOrderRequest(order_id=filled))
    assert final.cancel_order.status == pb.FAILED
    some = await client.call(cancel_orders=pb.CancelOrdersRequest(order_ids=[working, "998"]))
    assert some.cancel_orders.status == pb.FAILED, "one of the two could not be canceled"
    bad_contract = pb.CancelOrdersForContractRequest(contract_to_be_canceled="NOPE")
    response = await client.call(cancel_orders_for_contract=bad_contract)
    assert response.cancel_orders_for_contract.status == pb.FAILED
    replace = pb.CancelReplaceOrderRequest(
        order_id_to_be_replaced=filled,
        contract="ESZ26",
        side=pb.BUY,
        quantity="1",
        order_type=pb.LMT_ORDER_TYPE,
        life_time=pb.DAY_ORDER_LIFE_TIME,
        price="5900.00",
    )
    response = await client.call(cancel_replace_order=replace)
    assert response.cancel_replace_order.status == pb.FAILED
    assert response.cancel_replace_order.order_number == ""

    await client.order(working, "Canceled")
    expected = [
        "Cancel order rejected\nOrder #999 not found\nAccount #297999",
        f"Cancel order rejected\nOrder #{filled} is not working (Filled)\nAccount #297999",
        "Cancel orders rejected\nOrder #998 not found\nAccount #297999",
        "Cancel orders for contract rejected\nInvalid contract: NOPE\nAccount #297999",
        f"Cancel/replace order rejected\nOrder #{filled} is not working (Filled)\nAccount #297999",
    ]
    while sum(n.HasField("text_notification") for n in client.notifications[before:]) < 6:
        await client.read()
    texts = [
        n.text_notification
        for n in client.notifications[before:]
        if n.HasField("text_notification")
    ]
    errors = [t.body for t in texts if t.title.endswith(" Error Message")]
    assert errors == expected
    await client.assert_paired()


async def test_an_invalid_replacement_keeps_the_old_order_working(
    sandbox: QstSandbox, open_client: Opener
) -> None:
    client = await open_client(sandbox, logged_in=True)
    number = (await client.place(limit())).order_number
    await client.order(number, "Working")
    replace = pb.CancelReplaceOrderRequest(
        order_id_to_be_replaced=number,
        contract="ZCZ26",
        side=pb.SELL,
        quantity="1",
        order_type=pb.LMT_ORDER_TYPE,
        life_time=pb.DAY_ORDER_LIFE_TIME,
        price="589.625",
    )
    response = await client.call(cancel_replace_order=replace)
    assert response.cancel_replace_order.status == pb.FAILED
    text = await client.notification(lambda n: n.text_notification.title.endswith(" Error Message"))
    assert text.text_notification.body == (
        "Cancel/replace order rejected\nInvalid price: 589.625\nAccount #297999"
    )
    assert statuses(await client.order_book()) == {number: "Working"}

    replace.price = "589.75"  # on the grain's quarter-cent grid
    response = await client.call(cancel_replace_order=replace)
    assert response.cancel_replace_order.status == pb.OK
    replacement = await client.order(response.cancel_replace_order.order_number, "Working")
    assert (replacement.contract, replacement.price, replacement.last_tick) == (
        "ZCZ26",
        "589.75",
        "450^0",
    )


async def test_an_order_above_the_max_order_size_is_rejected_and_moves_nothing(
    sandbox: QstSandbox, open_client: Opener
) -> None:
    client = await open_client(sandbox, logged_in=True)
    info = pb.AccountInfoRequest(currency_code="USD")
    before = (await client.call(account_info=info)).account_info.account_information
    placed = await client.place(market("ESZ26", pb.BUY, "100000"))
    assert placed.status == pb.FAILED
    rejected = await client.order(placed.order_number, "Rejected")
    assert (await client.text_after(rejected)).body == (
        "Order rejected\n"
        "Order quantity 100000.0 exceeds the maximum order size 500 for ESZ26\n"
        "Account #297999"
    )
    book = await client.order_book()
    assert list(book.net_positions) == []
    assert statuses(book) == {placed.order_number: "Rejected"}
    after = (await client.call(account_info=info)).account_info.account_information
    assert after == before
    assert after.available_funds == "100000.00"
    # The limit is the contract's, inclusive: 500 ES pass the size check (and then
    # fail the buying-power one, a different text).
    placed = await client.place(market("ESZ26", pb.BUY, "500"))
    rejected = await client.order(placed.order_number, "Rejected")
    assert "Insufficient buying power" in (await client.text_after(rejected)).body


async def test_buying_power_counts_positions_and_working_orders(
    sandbox: QstSandbox, open_client: Opener
) -> None:
    client = await open_client(sandbox, logged_in=True)

    async def reject_text(order: pb.PlaceOrderRequest) -> str:
        placed = await client.place(order)
        assert placed.status == pb.FAILED
        return (await client.text_after(await client.order(placed.order_number, "Rejected"))).body

    async def accepted(order: pb.PlaceOrderRequest, status: str) -> str:
        placed = await client.place(order)
        assert placed.status == pb.OK
        await client.order(placed.order_number, status)
        return placed.order_number

    # 100,000 USD of equity carries 6 ES (15,000 initial margin each) on either side.
    resting = await accepted(limit("5000.00", quantity="4"), "Working")
    assert await reject_text(limit("5000.00", quantity="3")) == (
        "Order rejected\n"
        "Insufficient buying power: initial margin 105000.00 USD would exceed equity 100000.00 USD"
        "\nAccount #297999"
    )
    # A sell of 3 cannot add to the worst case (4 long if the buys fill).
    await accepted(limit("7000.00", side=pb.SELL, quantity="3"), "Working")
    await accepted(market("ESZ26", pb.BUY, "2"), "Filled")  # worst case 6 long: 90,000
    sandbox.set_price("ESZ26", Decimal("5800.00"))  # open P&L -20,000: equity 80,000

    # Under-margined now, yet an order that reduces the position passes ...
    await accepted(market("ESZ26", pb.SELL, "1"), "Filled")
    info = pb.AccountInfoRequest(currency_code="USD")
    before = (await client.call(account_info=info)).account_info.account_information
    assert before.equity == "80000.00"
    # ... and one that adds to it does not, moving no money.
    assert "initial margin 90000.00 USD would exceed equity 80000.00 USD" in (
        await reject_text(market("ESZ26", pb.BUY, "1"))
    )
    assert (await client.call(account_info=info)).account_info.account_information == before

    # A replacement is checked without the order it replaces: 6 instead of 4 is 7 long.
    replace = pb.CancelReplaceOrderRequest(
        order_id_to_be_replaced=resting,
        contract="ESZ26",
        side=pb.BUY,
        quantity="6",
        order_type=pb.LMT_ORDER_TYPE,
        life_time=pb.DAY_ORDER_LIFE_TIME,
        price="5000.00",
    )
    response = await client.call(cancel_replace_order=replace)
    assert response.cancel_replace_order.status == pb.FAILED
    text = await client.notification(
        lambda n: n.text_notification.body.startswith("Cancel/replace order rejected")
    )
    assert text.text_notification.body == (
        "Cancel/replace order rejected\n"
        "Insufficient buying power: initial margin 105000.00 USD would exceed equity 80000.00 USD"
        "\nAccount #297999"
    )
    assert statuses(await client.order_book())[resting] == "Working"
    replace.quantity = "2"  # fewer: always allowed
    response = await client.call(cancel_replace_order=replace)
    assert response.cancel_replace_order.status == pb.OK


async def test_account_errors_are_server_error_messages(
    sandbox: QstSandbox, open_client: Opener
) -> None:
    client = await open_client(sandbox, logged_in=True)
    foreign = pb.OESwitchAccountRequest(account_id="400001")
    response = await client.call(oe_switch_account=foreign)
    assert response.error.message == "Invalid account id: 400001"
    placed = await client.place(
        pb.PlaceOrderRequest(
            contract="ESZ26",
            side=pb.BUY,
            quantity="1",
            order_type=pb.MKT_ORDER_TYPE,
            life_time=pb.DAY_ORDER_LIFE_TIME,
            override_account="400001",
        )
    )
    assert placed.status == pb.FAILED
    rejected = await client.order(placed.order_number, "Rejected")
    assert (await client.text_after(rejected)).body == (
        "Order rejected\nInvalid account: 400001\nAccount #297999"
    )

    assert (await client.call(oe_logout=pb.OELogoutRequest())).oe_logout.status == pb.OK
    after = await client.call(order_book=pb.OrderBookRequest())
    assert after.error.message == "Order Entry connection is not established"
    assert (await client.oe_login(relogin=True)).success
    assert statuses(await client.order_book()) == {placed.order_number: "Rejected"}


# ----------------------------------------------------------------------- connections


async def test_a_second_connection_of_the_same_user_closes_the_older_with_4101(
    sandbox: QstSandbox, open_client: Opener
) -> None:
    older = await open_client(sandbox, logged_in=True)
    other_user = await open_client(
        sandbox, logged_in=True, user="other-trader", password="other-pass"
    )
    newer = await open_client(sandbox, logged_in=True)
    closed = await older.closed()
    assert closed.rcvd is not None
    assert closed.rcvd.code == 4101
    number = (await newer.place(limit())).order_number
    await newer.order(number, "Working")
    assert list((await other_user.order_book()).orders) == [], "other users are not touched"
    assert sandbox.connections == 3


async def test_a_client_that_never_reads_is_dropped_with_4102(open_client: Opener) -> None:
    server = QstSandbox(tick_seconds=0, slow_consumer_limit=10)
    await server.start()
    try:
        # A tiny receive window and one buffered frame: the server's socket fills fast.
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", server.port))
        slow = await open_client(server, logged_in=True, sock=sock, max_queue=1)
        reader = await open_client(
            server, logged_in=True, user="other-trader", password="other-pass"
        )

        async def flood() -> int:
            sent = 0
            while server.closes[4102] == 0:
                order = limit("5000.00", life_time=pb.GTC_ORDER_LIFE_TIME)
                await slow.send(place_order=order)
                sent += 1
                await asyncio.sleep(0.002)  # a pace the server keeps up with for a reader
            return sent

        sent = await asyncio.wait_for(flood(), 30)
        closed = await slow.closed()
        assert closed.rcvd is not None
        assert (closed.rcvd.code, closed.rcvd.reason) == (4102, "slow consumer")
        assert sent > 2

        # The same limit is no problem for a client that reads.
        for _ in range(20):
            await reader.place(limit("5000.00"))
        assert server.closes[4102] == 1
    finally:
        await server.stop()


async def test_responses_come_out_of_order_with_jitter(open_client: Opener) -> None:
    server = QstSandbox(tick_seconds=0, response_jitter_seconds=0.05)
    await server.start()
    try:
        client = await open_client(server, logged_in=True)
        sent = []
        for index in range(12):
            if index % 3 == 0:
                sent.append(await client.send(order_book=pb.OrderBookRequest()))
            elif index % 3 == 1:
                sent.append(await client.send(account_info=pb.AccountInfoRequest()))
            else:
                sent.append(await client.send(place_order=limit(f"58{index:02d}.00")))
        for request_id in sent:
            await client.response(request_id)
        arrived = [i for i in client.arrivals if i in sent]
        assert sorted(arrived) == sent
        assert arrived != sent, "the seeded delays reorder the responses"
        assert server.reordered_responses > 0
        assert server.max_in_flight > 1
        for index, request_id in enumerate(sent):
            kind = client.responses[request_id].WhichOneof("message")
            assert kind == ("order_book", "account_info", "place_order")[index % 3]
    finally:
        await server.stop()


async def test_restart_keeps_orders_and_the_port(sandbox: QstSandbox, open_client: Opener) -> None:
    client = await open_client(sandbox, logged_in=True)
    number = (await client.place(limit())).order_number
    await client.order(number, "Working")
    url = sandbox.url
    await sandbox.restart()
    closed = await client.closed()
    assert closed.rcvd is not None
    assert closed.rcvd.code == 1001
    assert sandbox.url == url
    again = await open_client(sandbox)
    assert (await again.login()).success
    assert (await again.oe_login(relogin=True)).success
    assert statuses(await again.order_book()) == {number: "Working"}


async def test_drop_connections_closes_with_1011_and_keeps_serving(
    sandbox: QstSandbox, open_client: Opener
) -> None:
    first = await open_client(sandbox, logged_in=True)
    second = await open_client(sandbox, logged_in=True, user="other-trader", password="other-pass")
    number = (await first.place(limit())).order_number
    await asyncio.wait_for(sandbox.drop_connections(), WAIT)
    for client in (first, second):
        closed = await client.closed()
        assert closed.rcvd is not None
        assert closed.rcvd.code == 1011
    again = await open_client(sandbox, logged_in=True)
    assert statuses(await again.order_book())[number] == "Working"


async def test_state_survives_a_disconnect_and_relogin_resumes_the_session(
    sandbox: QstSandbox, open_client: Opener
) -> None:
    client = await open_client(sandbox, logged_in=True)
    switch = pb.OESwitchAccountRequest(account_id="297998")
    assert (await client.call(oe_switch_account=switch)).oe_switch_account.account_id == "297998"
    oal = pb.ChangeOALSubscriptionLevelRequest(subscription_level=pb.SUBSCRIBED)
    await client.call(change_oal_subscription_level=oal)
    number = (await client.place(limit("72.00", contract="CLF27"))).order_number
    await client.order(number, "Working")
    await client.websocket.close()

    sandbox.set_price("CLF27", Decimal("71.90"))  # fills while nobody is connected

    resumed = await open_client(sandbox)
    assert (await resumed.login()).success
    oe = await resumed.oe_login(relogin=True)
    assert oe.current_account_id == "297998"
    assert statuses(await resumed.order_book()) == {number: "Filled"}
    items = await resumed.call(get_activity_items=pb.GetActivityItemsRequest())
    assert [i.action for i in items.get_activity_items.items] == ["Place", "Fill"]
    await resumed.websocket.close()

    fresh = await open_client(sandbox)
    assert (await fresh.login()).success
    oe = await fresh.oe_login(relogin=False)
    assert oe.current_account_id == "297999", "a fresh OE login starts on the first account"
    items = await fresh.call(get_activity_items=pb.GetActivityItemsRequest())
    assert list(items.get_activity_items.items) == []


async def test_activity_is_recorded_only_while_oal_is_subscribed(
    sandbox: QstSandbox, open_client: Opener
) -> None:
    client = await open_client(sandbox, logged_in=True)
    unrecorded = (await client.place(limit())).order_number
    await client.order(unrecorded, "Working")  # notifications flow without OAL
    oal = pb.ChangeOALSubscriptionLevelRequest(subscription_level=pb.SUBSCRIBED)
    await client.call(change_oal_subscription_level=oal)
    recorded = (await client.place(limit())).order_number
    oal = pb.ChangeOALSubscriptionLevelRequest(subscription_level=pb.UNSUBSCRIBED)
    await client.call(change_oal_subscription_level=oal)
    await client.call(cancel_order=pb.CancelOrderRequest(order_id=recorded))
    items = await client.call(get_activity_items=pb.GetActivityItemsRequest())
    assert [(i.order_number, i.action, i.status) for i in items.get_activity_items.items] == [
        (recorded, "Place", "New Order")
    ]


async def test_on_emit_and_counters(sandbox: QstSandbox, open_client: Opener) -> None:
    emitted: list[tuple[str, float]] = []
    sandbox.on_emit = lambda number, at: emitted.append((number, at))
    client = await open_client(sandbox, logged_in=True)
    number = (await client.place(market())).order_number
    await client.order(number, "Filled")
    received = time.perf_counter()
    assert [n for n, _ in emitted] == [number, number], "New Order, then Filled"
    assert all(at <= received for _, at in emitted)
    assert sandbox.requests["LoginRequest"] == 1
    assert sandbox.requests["OELoginRequest"] == 1
    assert sandbox.requests["PlaceOrderRequest"] == 1
    assert sandbox.connections == 1
    settings = sandbox.connector_settings()
    assert settings["url"] == sandbox.url
    assert (settings["username"], settings["password"]) == (USER, PASSWORD)
    assert {link.external_id for link in sandbox.demo_links()} == {
        "demo-trader",
        "297999",
        "297998",
        "other-trader",
        "400001",
    }


# ----------------------------------------------------------------------- standard knobs


async def test_fail_next_answers_a_server_error_and_applies_nothing(
    sandbox: QstSandbox, open_client: Opener
) -> None:
    client = await open_client(sandbox, logged_in=True)  # the logins take no fault
    sandbox.fail_next(2, status=502)
    sandbox.fail_next(1)
    for status in (502, 502, 503):
        answer = await client.call(place_order=limit())
        assert answer.WhichOneof("message") == "error"
        assert answer.error.message == f"Internal server error ({status})"
    assert statuses(await client.order_book()) == {}, "nothing was placed"
    assert sandbox.requests["PlaceOrderRequest"] == 3


@pytest.mark.parametrize("after_apply", [False, True], ids=["before-apply", "after-apply"])
async def test_drop_next_loses_the_answer_with_the_connection(
    sandbox: QstSandbox, open_client: Opener, after_apply: bool
) -> None:
    client = await open_client(sandbox, logged_in=True)
    sandbox.drop_next(1, after_apply=after_apply)
    request_id = await client.send(place_order=limit())
    closed = await client.closed()
    assert closed.rcvd is not None
    assert closed.rcvd.code == 1011
    assert request_id not in client.responses, "the answer is lost"
    again = await open_client(sandbox, logged_in=True)  # the fault was spent: served again
    placed = list(statuses(await again.order_book()).values())
    assert placed == (["Working"] if after_apply else [])


async def test_latency_delays_each_answer_and_reset_restores_the_knobs(
    sandbox: QstSandbox, open_client: Opener
) -> None:
    client = await open_client(sandbox, logged_in=True)
    sandbox.latency_seconds = 0.2
    request_id = await client.send(place_order=market())
    # The market order is applied at once and notified; its answer waits out the latency
    # (queued after the notifications, whatever the machine's load).
    filled = await client.notification(lambda n: n.HasField("order") and n.order.status == "Filled")
    assert request_id not in client.responses, "the answer came before the latency"
    answer = (await client.response(request_id)).place_order
    assert answer.order_number == filled.order.order_number
    sandbox.fail_next(1)
    sandbox.drop_next(1)
    sandbox.response_jitter_seconds = 1.0
    sandbox.reset()
    assert (sandbox.latency_seconds, sandbox.response_jitter_seconds) == (0.0, 0.0)
    assert (await client.order_book()).oe_provider == pb.QOR, "no fault was left pending"
