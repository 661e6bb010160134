"""The wire codec: the envelope both ways, QST's string numbers and times, status texts,
reject texts, and garbage refused as a protocol error (never a crash)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from brokergraph_qst import wire
from brokergraph_qst._proto import order_routing_pb2 as pb

from gateway.contract import OrderSide, OrderStatus, OrderType, ProtocolError, TimeInForce


def server_frame(request_id: int = 0, **message: Any) -> bytes:
    data: bytes = pb.ServerMessage(request_id=request_id, **message).SerializeToString()
    return data


def async_frame(**notification: object) -> bytes:
    """A notification frame (``async`` is a Python keyword, hence the dict)."""
    inner = pb.AsyncServerMessage(order_entry_notification=notification)
    data: bytes = pb.ServerMessage(request_id=0, **{"async": inner}).SerializeToString()
    return data


def sent(request: wire.Request, request_id: int = 7) -> pb.ClientMessage:
    """What the server reads from our frame."""
    message: pb.ClientMessage = pb.ClientMessage.FromString(wire.encode(request_id, request))
    return message


def test_every_request_kind_is_a_client_message_oneof() -> None:
    names = {f.name for f in pb.ClientMessage.DESCRIPTOR.oneofs_by_name["request"].fields}
    spec = wire.OrderSpec(
        contract="ESZ26",
        side=OrderSide.BUY,
        type=OrderType.LIMIT,
        quantity=Decimal(1),
        time_in_force=TimeInForce.DAY,
        price=Decimal("6000.25"),
    )
    requests = [
        wire.login("u", "h", "id"),
        wire.logout(),
        wire.oe_login("u", "h", "QOR", is_relogin=True),
        wire.oe_logout(),
        wire.order_book(),
        wire.switch_account("297998", is_live=False),
        wire.place_order(spec),
        wire.cancel_order("115300"),
        wire.cancel_orders(["1", "2"]),
        wire.cancel_orders_for_contract("ESZ26"),
        wire.cancel_replace_order("115300", spec),
        wire.subscribe_order_activity(),
        wire.activity_items(),
        wire.account_info("USD"),
    ]
    assert {r.kind for r in requests} == names
    for request in requests:
        message = sent(request, 42)
        assert message.request_id == 42
        assert message.WhichOneof("request") == request.kind


def test_login_and_relogin_fields() -> None:
    login = sent(wire.login("demo-trader", "ab" * 32, "6a1f")).login
    assert (login.username, login.password, login.client_unique_id) == (
        "demo-trader",
        "ab" * 32,
        "6a1f",
    )
    assert login.firm_id == "CVS"
    oe = sent(wire.oe_login("demo-trader", "cd" * 32, "QOR", is_relogin=True)).oe_login
    assert oe.is_relogin is True
    assert oe.order_entry_provider == pb.QOR
    with pytest.raises(ValueError, match="provider"):
        wire.oe_login("u", "h", "NOPE", is_relogin=False)


@pytest.mark.parametrize(
    ("order_type", "price", "stop", "wire_price", "wire_limit"),
    [
        (OrderType.LIMIT, Decimal("1.08505"), None, "1.08505", "NaN"),
        (OrderType.MARKET, None, None, "NaN", "NaN"),
        (OrderType.STOP, None, Decimal("6010"), "6010", "NaN"),
        (OrderType.STOP_LIMIT, Decimal("6012.5"), Decimal("6010"), "6010", "6012.5"),
    ],
)
def test_order_prices_follow_qst_conventions(
    order_type: OrderType,
    price: Decimal | None,
    stop: Decimal | None,
    wire_price: str,
    wire_limit: str,
) -> None:
    spec = wire.OrderSpec(
        contract="6EZ26",
        side=OrderSide.SELL,
        type=order_type,
        quantity=Decimal("2"),
        time_in_force=TimeInForce.GTD,
        price=price,
        stop_price=stop,
        expires_at=datetime(2030, 1, 2, tzinfo=UTC),
    )
    placed = sent(wire.place_order(spec)).place_order
    assert (placed.price, placed.limit_price) == (wire_price, wire_limit)
    assert placed.side == pb.SELL
    assert placed.quantity == "2"
    assert placed.life_time == pb.GTD_ORDER_LIFE_TIME
    assert placed.good_till_date == 1893542400000
    assert wire.place_order(spec).write is True


def test_small_decimals_never_travel_in_exponent_form() -> None:
    spec = wire.OrderSpec(
        contract="6EZ26",
        side=OrderSide.BUY,
        type=OrderType.LIMIT,
        quantity=Decimal("1E+1"),
        time_in_force=TimeInForce.DAY,
        price=Decimal("5E-5"),
    )
    placed = sent(wire.place_order(spec)).place_order
    assert (placed.quantity, placed.price) == ("10", "0.00005")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1.0", Decimal("1.0")),
        ("-2.5", Decimal("-2.5")),
        ("NaN", None),
        ("", None),
        ("588^2", Decimal("588.25")),
        ("450^0", Decimal(450)),
        ("-3^4", Decimal("-3.5")),
        ("Infinity", None),
    ],
)
def test_qst_numbers(text: str, value: Decimal | None) -> None:
    assert wire.decimal_or_none(text) == value


def test_a_malformed_number_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        wire.decimal_or_none("12,5")


def order_message(**changes: Any) -> pb.Order:
    fields: dict[str, Any] = {
        "order_update_type": "ORDER_UPDATE",
        "oe_provider": pb.QOR,
        "order_number": "115332",
        "account_number": "297999",
        "status": "New Order",
        "order_date": "1639052460612",
        "side": pb.SELL,
        "quantity": "1.0",
        "contract": "ZCZ26",
        "price": "588.75",
        "last_tick": "588^2",
        "order_type": pb.LMT_ORDER_TYPE,
        "limit": "NaN",
        "life_time": pb.DAY_ORDER_LIFE_TIME,
    }
    fields.update(changes)
    return pb.Order(**fields)


def test_an_order_notification_becomes_a_standard_order() -> None:
    frame = wire.decode(async_frame(order=order_message()))
    assert (frame.request_id, frame.kind) == (0, wire.ASYNC)
    assert isinstance(frame.body, wire.OrderNotice)
    order = frame.body.order
    assert (order.platform, order.id, order.account_id, order.symbol) == (
        "qst",
        "115332",
        "297999",
        "ZCZ26",
    )
    assert (order.side, order.type, order.status) == (
        OrderSide.SELL,
        OrderType.LIMIT,
        OrderStatus.PENDING,
    )
    assert order.quantity == Decimal("1.0")
    assert order.price == Decimal("588.75")
    assert order.stop_price is None
    assert order.created_at == datetime(2021, 12, 9, 12, 21, 0, 612000, tzinfo=UTC)
    assert order.raw is not None
    assert order.raw["last_tick"] == "588^2"


def test_stop_orders_map_their_trigger_to_stop_price() -> None:
    stop = wire.to_order(order_message(order_type=pb.STOP_ORDER_TYPE, price="6010.00"))
    assert (stop.type, stop.price, stop.stop_price) == (OrderType.STOP, None, Decimal("6010.00"))
    stwl = wire.to_order(
        order_message(order_type=pb.STWL_ORDER_TYPE, price="6010.00", limit="6012.50")
    )
    assert (stwl.type, stwl.price, stwl.stop_price) == (
        OrderType.STOP_LIMIT,
        Decimal("6012.50"),
        Decimal("6010.00"),
    )


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("New Order", OrderStatus.PENDING),
        ("Working", OrderStatus.WORKING),
        ("Filled", OrderStatus.FILLED),
        ("Canceled", OrderStatus.CANCELLED),
        ("Rejected", OrderStatus.REJECTED),
        ("Expired", OrderStatus.EXPIRED),
        ("PF", OrderStatus.PARTIALLY_FILLED),
    ],
)
def test_order_status_texts(text: str, status: OrderStatus) -> None:
    assert wire.order_status(text) is status


def test_an_unknown_status_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="unknown order status"):
        wire.to_order(order_message(status="Teleported"))


def test_a_reject_text_names_its_account_and_reason() -> None:
    text = pb.OETextNotification(
        title="demo-trader@SIM1(127.0.0.1:7008) Error Message",
        body="Cancel/replace order rejected\nInvalid price: 589.625\nAccount #297999",
    )
    notice = wire.decode(async_frame(text_notification=text)).body
    assert isinstance(notice, wire.TextNotice)
    assert (notice.account_id, notice.is_error, notice.reason) == (
        "297999",
        True,
        "Invalid price: 589.625",
    )


def test_responses_decode_to_plain_values() -> None:
    accounts = [
        pb.AccountSummary(account_id="297999", name="Demo Futures 1", currency_code="USD"),
        pb.AccountSummary(account_id="297998", name="Demo Futures 2", is_live_trading=True),
    ]
    oe = wire.decode(
        server_frame(
            3,
            oe_login=pb.OELoginResponse(
                success=True, accounts=accounts, current_account_id="297999"
            ),
        )
    )
    assert oe.request_id == 3
    assert oe.body.current_account_id == "297999"
    assert [(a.account_id, a.is_live, a.currency) for a in oe.body.accounts] == [
        ("297999", False, "USD"),
        ("297998", True, "USD"),
    ]
    placed = wire.decode(
        server_frame(4, place_order=pb.PlaceOrderResponse(status=pb.OK, order_number="115300"))
    )
    assert placed.body == wire.Placed(True, "115300")
    failed = wire.decode(server_frame(5, cancel_order=pb.CancelOrderResponse(status=pb.FAILED)))
    assert failed.body == wire.Status(False)
    error = wire.decode(server_frame(6, error=pb.ServerErrorMessage(message="Invalid account id")))
    assert (error.kind, error.body) == (wire.ERROR, wire.ServerError("Invalid account id"))
    book = wire.decode(
        server_frame(
            7,
            order_book=pb.OrderBookResponse(
                oe_provider=pb.QOR,
                orders=[order_message()],
                net_positions=[
                    pb.NetPosition(
                        account_number="297999",
                        contract="ESZ26",
                        net_quantity="-2.0",
                        average_price="6000.25",
                        open_pnl="NaN",
                    )
                ],
            ),
        )
    ).body
    assert isinstance(book, wire.OrderBook)
    assert [o.id for o in book.orders] == ["115332"]
    assert book.positions[0].net_quantity == Decimal("-2.0")
    assert book.positions[0].open_pnl is None
    assert book.provider == "QOR"


@pytest.mark.parametrize("data", [b"\xff\xff\xff", b"", pb.ServerMessage().SerializeToString()])
def test_garbage_is_a_protocol_error(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        wire.decode(data)


def test_an_order_without_account_or_number_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        wire.decode(async_frame(order=order_message(account_number="")))
    with pytest.raises(ProtocolError):
        wire.decode(async_frame(order=order_message(order_number="")))
