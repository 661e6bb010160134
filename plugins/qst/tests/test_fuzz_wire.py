"""Property-based (issue 7): QST's protobuf decoders never crash on what arrives.

* The client decoder (``wire.decode``, then the connector's conversions) turns any
  bytes — random, truncated or bit-flipped frames, and well-formed messages whose
  string fields hold anything (``"NaN"``, ``"588^2"``, ``"1e999"``, ``""``, huge
  texts, non-digit order numbers, unknown enum numbers) — into standard models that
  pass the conformance kit's ``check_*`` or into a ``ProtocolError``; never another
  exception type (which would kill the session's reader task).
* The sandbox, fed arbitrary frames over a real WebSocket, answers or closes the
  connection with its documented code (1003, 1007, 4001, 1000), never crashes
  (1011), and keeps serving: a second connection still logs in afterwards.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest_asyncio
from brokergraph_qst import convert, wire
from brokergraph_qst._proto import order_routing_pb2 as pb
from brokergraph_qst.sandbox import QstSandbox, password_hash
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from gateway.contract import Money, Order, OrderStatus, ProtocolError
from gateway.testing import check_account, check_money, check_order, check_position

FUZZ = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
SOCKET_FUZZ = settings(FUZZ, max_examples=50)
WAIT = 5.0
USER, PASSWORD = "demo-trader", "demo-pass"
OTHER_USER, OTHER_PASSWORD = "other-trader", "other-pass"

# --------------------------------------------------------------------------- values

#: QST's string numbers at their worst.
ODD_NUMBERS = [
    "NaN",
    "nan",
    "null",
    "588^2",
    "-588^7",
    "1^9",
    "588^",
    "^2",
    "1e999",
    "-1E+999999999",
    "1e9999999999999999999",
    "1e-999999999",
    "",
    " ",
    "Infinity",
    "-inf",
    "sNaN",
    "0x10",
    "1_000",
    "\u0661\u0662\u0663",  # Arabic-Indic digits
    "1,5",
    "++1",
    " 12.50 ",
    "9" * 5000,
]
numbers = st.one_of(
    st.sampled_from(ODD_NUMBERS),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.integers().map(str),
    st.text(alphabet="0123456789.-+eE^ ", max_size=12),
    st.text(max_size=20),
)
texts = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", " ", "NaN", "\x00", "\u202e", "x" * 70_000]),
)
ids = st.one_of(
    st.from_regex(r"[0-9]{1,9}", fullmatch=True),
    st.integers(115300, 115310).map(str),  # the sandbox's first order numbers
    st.sampled_from(["", " ", "\t", "NaN", "abc", "ESZ26", "297999", "USD", "EUR", "X" * 13]),
    texts,
)
#: Epoch-millisecond strings (QST's times), in and far out of range.
times = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.integers(min_value=0, max_value=4_102_444_800_000).map(str),
    numbers,
)
statuses = st.one_of(
    st.sampled_from(sorted(wire.ORDER_STATUSES)).flatmap(
        lambda s: st.sampled_from([s, s.upper(), s.title(), f"  {s} "])
    ),
    texts,
)
reject_bodies = st.one_of(
    texts,
    st.builds(
        "Order #{} Rejected\n{}\nAccount #{}".format,
        ids,
        st.text(max_size=30),
        st.from_regex(r"\w{0,8}", fullmatch=True),
    ),
)
#: String fields by name; any other string field takes ``texts``.
STRING_FIELDS: dict[str, st.SearchStrategy[str]] = {
    **dict.fromkeys(
        [
            "quantity",
            "price",
            "limit",
            "last_tick",
            "filled_quantity",
            "average_fill_price",
            "net_quantity",
            "average_price",
            "open_pnl",
            "realized_pnl",
            "balance",
            "equity",
            "margin",
            "available_funds",
        ],
        numbers,
    ),
    **dict.fromkeys(
        [
            "order_number",
            "account_number",
            "account_id",
            "current_account_id",
            "contract",
            "currency_code",
            "order_id",
            "order_ids",
            "order_id_to_be_replaced",
            "override_account",
            "contract_to_be_canceled",
        ],
        ids,
    ),
    "order_date": times,
    "time": times,
    "status": statuses,
    "body": reject_bodies,
}


def enum_values(field: Any) -> st.SearchStrategy[int]:
    """Mostly the enum's own numbers; sometimes any int32 (proto3 enums are open)."""
    known = [value.number for value in field.enum_type.values]
    return st.one_of(st.sampled_from(known), st.integers(-(2**31), 2**31 - 1))


def field_values(field: Any) -> st.SearchStrategy[Any]:
    kind = field.type
    base: st.SearchStrategy[Any]
    if kind == FieldDescriptor.TYPE_MESSAGE:
        base = messages(getattr(pb, field.message_type.name))
    elif kind == FieldDescriptor.TYPE_ENUM:
        base = enum_values(field)
    elif kind == FieldDescriptor.TYPE_BOOL:
        base = st.booleans()
    elif kind == FieldDescriptor.TYPE_STRING:
        base = STRING_FIELDS.get(field.name, texts)
    elif kind == FieldDescriptor.TYPE_UINT32:
        base = st.integers(0, 2**32 - 1)
    elif kind == FieldDescriptor.TYPE_INT64:
        base = st.integers(-(2**63), 2**63 - 1)
    else:  # pragma: no cover - the .proto uses no other type
        raise AssertionError(f"no strategy for field type {kind} ({field.full_name})")
    return st.lists(base, max_size=3) if field.is_repeated else base


@functools.cache
def messages(cls: Any, without: frozenset[str] = frozenset()) -> st.SearchStrategy[Any]:
    """Any message of ``cls``: every plain field maybe set, at most one member per oneof
    (never one named in ``without``)."""
    descriptor = cls.DESCRIPTOR
    members = {f.name for oneof in descriptor.oneofs for f in oneof.fields}
    plain = {f.name: field_values(f) for f in descriptor.fields if f.name not in members}
    chosen = [
        st.one_of(
            st.just({}),
            *(
                field_values(f).map(functools.partial(lambda n, v: {n: v}, f.name))
                for f in o.fields
                if f.name not in without
            ),
        )
        for o in descriptor.oneofs
    ]

    def build(values: dict[str, Any], *oneofs: dict[str, Any]) -> Any:
        merged = dict(values)
        for extra in oneofs:
            merged.update(extra)
        return cls(**merged)

    return st.builds(build, st.fixed_dictionaries({}, optional=plain), *chosen)


def notification_frame(inner: pb.OrderEntryNotification) -> bytes:
    message = pb.ServerMessage(request_id=0)
    getattr(message, "async").order_entry_notification.CopyFrom(inner)
    data: bytes = message.SerializeToString()
    return data


#: Orders as the sandbox sends them (every field valid).
valid_orders = st.builds(
    pb.Order,
    order_update_type=st.just("ORDER_UPDATE"),
    oe_provider=st.sampled_from([pb.QOR, pb.PTS]),
    order_number=st.from_regex(r"[1-9][0-9]{0,8}", fullmatch=True),
    account_number=st.sampled_from(["297999", "297998", "400001"]),
    status=st.sampled_from(["New Order", "Working", "Filled", "Canceled", "Rejected"]),
    order_date=st.integers(1, 4_102_444_800_000).map(str),
    side=st.sampled_from([pb.BUY, pb.SELL]),
    quantity=st.decimals(min_value=1, max_value=10**6, places=2).map(str),
    contract=st.sampled_from(["ESZ26", "ZCZ26", "CLF27"]),
    price=st.one_of(st.just("NaN"), st.decimals(min_value=0, max_value=10**5, places=4).map(str)),
    order_type=st.sampled_from([pb.LMT_ORDER_TYPE, pb.MKT_ORDER_TYPE, pb.STOP_ORDER_TYPE]),
    limit=st.just("NaN"),
    life_time=st.sampled_from([pb.DAY_ORDER_LIFE_TIME, pb.GTC_ORDER_LIFE_TIME]),
    filled_quantity=st.sampled_from(["0", "0.0", "1"]),
    average_fill_price=st.sampled_from(["NaN", "588^2", "6000.25"]),
)
ORDER_STRING_FIELDS = sorted(
    f.name for f in pb.Order.DESCRIPTOR.fields if f.type == FieldDescriptor.TYPE_STRING
)
ORDER_NUMBER_FIELDS = sorted(
    f.name
    for f in pb.Order.DESCRIPTOR.fields
    if f.type in (FieldDescriptor.TYPE_ENUM, FieldDescriptor.TYPE_INT64)
)
#: The README's status table: the oracle for valid orders.
README_STATUSES = {
    "New Order": OrderStatus.PENDING,
    "Working": OrderStatus.WORKING,
    "Filled": OrderStatus.FILLED,
    "Canceled": OrderStatus.CANCELLED,
    "Rejected": OrderStatus.REJECTED,
}
#: Frames the sandbox could send: the raw material of truncation and bit flips.
valid_frames = st.one_of(
    valid_orders.map(lambda o: notification_frame(pb.OrderEntryNotification(order=o))),
    st.builds(
        lambda n, orders: pb.ServerMessage(
            request_id=n, order_book=pb.OrderBookResponse(oe_provider=pb.QOR, orders=orders)
        ).SerializeToString(),
        st.integers(1, 2**32 - 1),
        st.lists(valid_orders, min_size=1, max_size=3),
    ),
    messages(pb.ServerMessage).map(lambda m: m.SerializeToString()),
)


# --------------------------------------------------------------------------- the client decoder


def _check_info(info: wire.AccountInfo) -> None:
    # As the connector converts it before the OE login listed the account.
    account = convert.account(info, trader_id=USER, summary=None)
    check_account(account, "qst")
    assert account.id == info.account_id
    for amount in (info.balance, info.equity, info.margin, info.available_funds, info.open_pnl):
        if amount is not None:
            check_money(Money(amount, info.currency))


def _check_position(position: wire.NetPosition) -> None:
    # The first report of the position, in the fallback currency of an unlisted account.
    check_position(convert.position(position, currency="USD", previous=None), "qst")


def check_decoded(frame: wire.Frame) -> None:
    """What the connector builds from a decoded frame passes the kit's checkers."""
    assert isinstance(frame.request_id, int) and frame.request_id >= 0
    body = frame.body
    if isinstance(body, wire.OrderNotice):
        check_order(body.order, "qst")
    elif isinstance(body, wire.OrderBook):
        for order in body.orders:
            check_order(order, "qst")
        for position in body.positions:
            _check_position(position)
    elif isinstance(body, wire.PositionNotice):
        _check_position(body.position)
    elif isinstance(body, wire.AccountInfo):
        _check_info(body)
    elif isinstance(body, wire.AccountInfoNotice):
        _check_info(body.info)
    elif isinstance(body, wire.OELoginResult):
        for summary in body.accounts:
            check_account(convert.summary_account(summary, trader_id=USER), "qst")
    elif isinstance(body, tuple):  # activity items
        for item in body:
            assert isinstance(item, wire.ActivityItem)
            assert item.at is None or item.at.utcoffset() is not None
    elif isinstance(body, wire.TextNotice):
        assert body.account_id is None or body.account_id.strip()
    else:
        assert isinstance(
            body,
            wire.LoginResult
            | wire.Status
            | wire.Placed
            | wire.Switched
            | wire.ServerError
            | wire.AccountStatusNotice
            | wire.ConnectionNotice,
        ), body


def decode_or_refuse(data: bytes) -> wire.Frame | None:
    """The decoded frame (checked), or None when refused as a ProtocolError.

    Any other exception propagates and fails the property: the session's reader only
    survives ProtocolError.
    """
    try:
        frame = wire.decode(data)
    except ProtocolError:
        return None
    check_decoded(frame)
    return frame


@FUZZ
@given(data=st.binary(max_size=512))
def test_arbitrary_bytes_decode_or_are_a_protocol_error(data: bytes) -> None:
    decode_or_refuse(data)


@FUZZ
@given(
    frame=valid_frames,
    cut=st.integers(min_value=0),
    flips=st.lists(st.integers(min_value=0), max_size=4),
)
def test_truncated_and_bit_flipped_frames(frame: bytes, cut: int, flips: list[int]) -> None:
    damaged = bytearray(frame[: cut % (len(frame) + 1)])
    for bit in flips:
        if damaged:
            damaged[(bit // 8) % len(damaged)] ^= 1 << (bit % 8)
    decode_or_refuse(bytes(damaged))


@FUZZ
@given(message=messages(pb.ServerMessage))
def test_well_formed_server_messages_with_arbitrary_values(message: Any) -> None:
    note(str(message)[:2000])
    decode_or_refuse(message.SerializeToString())


spoilt_fields = st.one_of(
    st.tuples(st.sampled_from(ORDER_STRING_FIELDS), st.one_of(numbers, ids, texts)),
    st.tuples(st.sampled_from(ORDER_NUMBER_FIELDS), st.integers(-(2**31), 2**31 - 1)),
)


@FUZZ
@given(order=valid_orders, spoilt=st.one_of(st.none(), spoilt_fields))
def test_orders_with_one_arbitrary_field(order: Any, spoilt: tuple[str, Any] | None) -> None:
    """A valid order decodes to what the README's mapping says; spoil one field (any
    text, any enum or int64 number) and it still decodes to a checked model, or is
    refused as a ProtocolError."""
    if spoilt is not None:
        setattr(order, *spoilt)
    note(str(order)[:2000])
    frame = decode_or_refuse(notification_frame(pb.OrderEntryNotification(order=order)))
    if spoilt is None:
        assert frame is not None, "a valid order was refused"
        decoded: Order = frame.body.order
        assert (decoded.id, decoded.account_id, decoded.symbol) == (
            order.order_number,
            order.account_number,
            order.contract,
        )
        assert decoded.quantity == Decimal(order.quantity)
        assert decoded.status is README_STATUSES[order.status]
        price = None if order.price == "NaN" else Decimal(order.price)
        if order.order_type == pb.LMT_ORDER_TYPE:
            assert (decoded.price, decoded.stop_price) == (price, None)
        elif order.order_type == pb.STOP_ORDER_TYPE:
            assert (decoded.price, decoded.stop_price) == (None, price)
        else:
            assert (decoded.price, decoded.stop_price) == (None, None)


# --------------------------------------------------------------------------- the sandbox


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def fuzz_sandbox() -> AsyncIterator[QstSandbox]:
    """A sandbox of this module's own (logins here must not 4101 the shared one's users)."""
    sandbox = QstSandbox(tick_seconds=0, response_jitter_seconds=0)
    await sandbox.start()
    try:
        yield sandbox
    finally:
        await sandbox.stop()


_request_ids = itertools.count(1)


async def _receive(socket: ClientConnection) -> bytes | int:
    """The next frame (bytes), or the close code when the server closed instead."""
    try:
        frame = await asyncio.wait_for(socket.recv(), WAIT)
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd is not None else 1006
    assert isinstance(frame, bytes), "the sandbox sends binary frames only"
    return frame


async def _call(socket: ClientConnection, **request: Any) -> wire.Frame:
    """Send one request; its response (notifications in between are decoded and checked)."""
    request_id = next(_request_ids) % 2**32 or 1
    await socket.send(pb.ClientMessage(request_id=request_id, **request).SerializeToString())
    while True:
        received = await _receive(socket)
        assert isinstance(received, bytes), f"closed with {received} instead of answering"
        frame = wire.decode(received)
        check_decoded(frame)
        if frame.request_id == request_id:
            return frame


async def _log_in(socket: ClientConnection, user: str, password: str) -> None:
    login = pb.LoginRequest(
        username=user, password=password_hash(password), client_unique_id="fuzz"
    )
    assert (await _call(socket, login=login)).body == wire.LoginResult(True, "")
    oe_login = pb.OELoginRequest(
        username=user, password_hash=password_hash(password), order_entry_provider=pb.QOR
    )
    result = (await _call(socket, oe_login=oe_login)).body
    assert isinstance(result, wire.OELoginResult) and result.success, result


async def _still_serving(sandbox: QstSandbox) -> None:
    """A fresh connection logs in and reads its order book."""
    async with connect(
        sandbox.url, compression=None, close_timeout=2, ssl=sandbox.client_ssl_context()
    ) as socket:
        await _log_in(socket, USER, PASSWORD)
        book = (await _call(socket, order_book=pb.OrderBookRequest())).body
        assert isinstance(book, wire.OrderBook)


def _expected_pre_login(frame: bytes | str) -> int | str:
    """The documented answer to a first frame: a close code, or "login" (a refusal)."""
    if isinstance(frame, str):
        return 1003
    try:
        message = pb.ClientMessage.FromString(frame)
    except DecodeError:
        return 1007
    kind = message.WhichOneof("request")
    if kind == "logout":
        return 1000
    if kind == "login":
        return "login"
    return 4001


client_frames = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=50),
    messages(pb.ClientMessage).map(lambda m: m.SerializeToString()),
    st.builds(
        lambda m, cut: m.SerializeToString()[:cut],
        messages(pb.ClientMessage),
        st.integers(min_value=0, max_value=60),
    ),
)


@SOCKET_FUZZ
@given(frame=client_frames)
async def test_sandbox_answers_any_first_frame_with_a_documented_close(
    fuzz_sandbox: QstSandbox, frame: bytes | str
) -> None:
    expected = _expected_pre_login(frame)
    trust = fuzz_sandbox.client_ssl_context()
    async with connect(fuzz_sandbox.url, compression=None, close_timeout=2, ssl=trust) as socket:
        await socket.send(frame)
        received = await _receive(socket)
        if expected == "login":  # a login with made-up credentials: refused, still open
            assert isinstance(received, bytes), received
            answer = wire.decode(received)
            assert answer.kind == "login" and answer.body.success is False, answer
        else:
            assert received == expected, (frame, received)
    await _still_serving(fuzz_sandbox)


#: Requests after login; a LogoutRequest (which ends the connection) only last.
request_lists = st.builds(
    lambda requests, logout: [*requests, *([pb.ClientMessage(logout={})] if logout else [])],
    st.lists(messages(pb.ClientMessage, frozenset({"logout"})), min_size=1, max_size=8),
    st.booleans(),
)


@SOCKET_FUZZ
@given(requests=request_lists)
async def test_sandbox_survives_arbitrary_requests_after_login(requests: list[Any]) -> None:
    """Logged in, every request gets one response of its own kind (or a
    ServerErrorMessage) until a LogoutRequest closes with 1000; never a 1011.

    A sandbox per example: rejected orders stay in its book (a documented rule), so
    junk from earlier examples would grow the order book past a frame's size limit.
    """
    for number, request in enumerate(requests, start=1):
        request.request_id = number
    note(str(requests)[:3000])
    sandbox = QstSandbox(tick_seconds=0, response_jitter_seconds=0)
    await sandbox.start()
    try:
        async with connect(
            sandbox.url, compression=None, close_timeout=2, ssl=sandbox.client_ssl_context()
        ) as socket:
            await _log_in(socket, OTHER_USER, OTHER_PASSWORD)
            for request in requests:
                await socket.send(request.SerializeToString())
            kinds = [r.WhichOneof("request") for r in requests]
            logout = kinds.index("logout") if "logout" in kinds else len(kinds)
            waiting = dict(enumerate(kinds[:logout], start=1))
            while waiting:
                received = await _receive(socket)
                assert isinstance(received, bytes), f"closed with {received}; awaiting {waiting}"
                decode_or_refuse(received)  # what the sandbox sends never crashes us either
                message = pb.ServerMessage.FromString(received)
                if message.request_id == 0:
                    continue
                kind = waiting.pop(message.request_id)
                assert message.WhichOneof("message") in (kind, wire.ERROR), (kind, message)
            if logout < len(kinds):
                received = await _receive(socket)
                while isinstance(received, bytes):  # notifications queued before the close
                    received = await _receive(socket)
                assert received == 1000
        await _still_serving(sandbox)
    finally:
        await sandbox.stop()
