"""QST's wire format: the ONE module that knows the protobuf messages.

Everything QST-specific about bytes lives here: the envelope (``ClientMessage`` /
``ServerMessage`` with a client-chosen ``request_id``, async notifications with id
0), the request messages, and the decoding of responses and notifications into
plain Python (standard models and the small frozen dataclasses below).  The
session and the connector never touch a protobuf object, so swapping in QST's real
``.proto`` (which is not public) changes this module and ``proto/qst`` only.

Vendor quirks handled here: numbers travel as strings ("1.0", "NaN" for "none"),
times as epoch-millisecond strings, grain prices in ``whole^eighths`` notation
("588^2" = 588.25), order status as display text ("New Order", "Filled").
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from brokergraph_qst._proto import order_routing_pb2 as pb
from gateway.contract import (
    Execution,
    Order,
    OrderSide,
    OrderStatus,
    OrderType,
    ProtocolError,
    TimeInForce,
)

__all__ = [
    "ASYNC",
    "ERROR",
    "PLATFORM",
    "PROVIDERS",
    "AccountInfo",
    "AccountInfoNotice",
    "AccountStatusNotice",
    "AccountSummary",
    "ActivityItem",
    "ConnectionNotice",
    "Frame",
    "LoginResult",
    "NetPosition",
    "Notice",
    "OELoginResult",
    "OrderBook",
    "OrderNotice",
    "OrderSpec",
    "Placed",
    "PositionNotice",
    "Request",
    "ServerError",
    "Status",
    "Switched",
    "TextNotice",
    "decimal_or_none",
    "decode",
    "encode",
]

PLATFORM: Final = "qst"
#: Response kinds (the ``ServerMessage`` oneof names) that are not a reply to a request.
ASYNC: Final = "async"
ERROR: Final = "error"


# --------------------------------------------------------------------------- plain values


@dataclass(frozen=True, slots=True)
class LoginResult:
    success: bool
    message: str


@dataclass(frozen=True, slots=True)
class AccountSummary:
    account_id: str
    name: str
    is_live: bool
    currency: str


@dataclass(frozen=True, slots=True)
class OELoginResult:
    success: bool
    message: str
    accounts: tuple[AccountSummary, ...]
    current_account_id: str


@dataclass(frozen=True, slots=True)
class Status:
    ok: bool


@dataclass(frozen=True, slots=True)
class Placed:
    """PlaceOrderResponse / CancelReplaceOrderResponse."""

    ok: bool
    order_number: str


@dataclass(frozen=True, slots=True)
class Switched:
    account_id: str


@dataclass(frozen=True, slots=True)
class ServerError:
    message: str


@dataclass(frozen=True, slots=True)
class NetPosition:
    account_id: str
    contract: str
    net_quantity: Decimal
    average_price: Decimal | None
    open_pnl: Decimal | None
    realized_pnl: Decimal | None


@dataclass(frozen=True, slots=True)
class OrderBook:
    orders: tuple[Order, ...]
    positions: tuple[NetPosition, ...]
    provider: str


@dataclass(frozen=True, slots=True)
class AccountInfo:
    account_id: str
    currency: str
    balance: Decimal | None
    equity: Decimal | None
    margin: Decimal | None
    available_funds: Decimal | None
    open_pnl: Decimal | None
    realized_pnl: Decimal | None
    provider: str
    is_live: bool
    name: str


@dataclass(frozen=True, slots=True)
class ActivityItem:
    order_number: str
    at: datetime | None
    action: str
    status: str
    description: str


@dataclass(frozen=True, slots=True)
class OrderNotice:
    order: Order


@dataclass(frozen=True, slots=True)
class PositionNotice:
    position: NetPosition


@dataclass(frozen=True, slots=True)
class AccountInfoNotice:
    info: AccountInfo


@dataclass(frozen=True, slots=True)
class TextNotice:
    """An ``OETextNotification``; rejects come this way (the account is in the body)."""

    title: str
    body: str
    account_id: str | None
    is_error: bool
    #: The reason line of a reject ("Invalid price: 589.625"), when the body has one.
    reason: str | None


@dataclass(frozen=True, slots=True)
class AccountStatusNotice:
    account_id: str
    status: str


@dataclass(frozen=True, slots=True)
class ConnectionNotice:
    status: str


Notice = (
    OrderNotice
    | PositionNotice
    | AccountInfoNotice
    | TextNotice
    | AccountStatusNotice
    | ConnectionNotice
)


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded server frame: ``kind`` is the oneof name (``"place_order"``, ``"async"``…)."""

    request_id: int
    kind: str
    body: Any


# --------------------------------------------------------------------------- scalars

_NONE_TEXT = frozenset({"", "nan", "null", "none"})
_EIGHTHS = re.compile(r"^(-?\d+)\^(\d)$")


def decimal_or_none(text: str) -> Decimal | None:
    """QST numbers: decimal strings, "NaN" (or empty) for none, grain ``588^2`` = 588.25."""
    value = text.strip()
    if value.lower() in _NONE_TEXT:
        return None
    eighths = _EIGHTHS.match(value)
    if eighths:
        whole, eighth = Decimal(eighths.group(1)), Decimal(eighths.group(2)) / 8
        return whole - eighth if value.startswith("-") else whole + eighth
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise ProtocolError(f"QST sent a malformed number {value[:32]!r}") from None
    return number if number.is_finite() else None


def _decimal(text: str, what: str) -> Decimal:
    number = decimal_or_none(text)
    if number is None:
        raise ProtocolError(f"QST sent no {what}")
    return number


def _plain(value: Decimal | None) -> str:
    """A decimal for the wire, without exponent ("0.00005", never "5E-5"); "NaN" for none."""
    return "NaN" if value is None else format(value, "f")


def _time(millis: str | int) -> datetime | None:
    text = str(millis).strip()
    if not text or text == "0":
        return None
    try:
        return datetime.fromtimestamp(int(text) / 1000, tz=UTC)
    except (ValueError, OverflowError, OSError):
        raise ProtocolError(f"QST sent a malformed time {text[:32]!r}") from None


def _id(text: str, what: str) -> str:
    """An id or code QST must send (order number, account, contract): never blank."""
    if not text.strip():
        raise ProtocolError(f"QST sent no {what}")
    return text


def _currency(text: str) -> str:
    """A currency code; none means USD (QST's default), a long text is no currency."""
    code = text.strip() or "USD"
    if len(code) > 12:
        raise ProtocolError(f"QST sent a malformed currency code {code[:16]!r}")
    return code


def _millis(value: datetime | None) -> int:
    return 0 if value is None else int(value.timestamp() * 1000)


# --------------------------------------------------------------------------- enums

_SIDES_OUT: Mapping[OrderSide, pb.Side] = {OrderSide.BUY: pb.BUY, OrderSide.SELL: pb.SELL}
_SIDES_IN: Mapping[int, OrderSide] = {v: k for k, v in _SIDES_OUT.items()}
_TYPES_OUT: Mapping[OrderType, pb.OrderType] = {
    OrderType.LIMIT: pb.LMT_ORDER_TYPE,
    OrderType.MARKET: pb.MKT_ORDER_TYPE,
    OrderType.STOP: pb.STOP_ORDER_TYPE,
    OrderType.STOP_LIMIT: pb.STWL_ORDER_TYPE,
}
_TYPES_IN: Mapping[int, OrderType] = {v: k for k, v in _TYPES_OUT.items()}
_LIFETIMES_OUT: Mapping[TimeInForce, pb.OrderLifeTime] = {
    TimeInForce.DAY: pb.DAY_ORDER_LIFE_TIME,
    TimeInForce.GTC: pb.GTC_ORDER_LIFE_TIME,
    TimeInForce.GTD: pb.GTD_ORDER_LIFE_TIME,
}
_LIFETIMES_IN: Mapping[int, TimeInForce] = {v: k for k, v in _LIFETIMES_OUT.items()}
#: The order-entry providers by the name the settings use.
PROVIDERS: Mapping[str, pb.OrderEntryProvider] = {"QOR": pb.QOR, "PTS": pb.PTS}

#: QST's order status display texts (and the JSON API's codes) -> our status.  [I/D]
ORDER_STATUSES: Mapping[str, OrderStatus] = {
    "new order": OrderStatus.PENDING,  # accepted, not yet working
    "working": OrderStatus.WORKING,
    "accepted": OrderStatus.WORKING,
    "replaced": OrderStatus.CANCELLED,
    "pending new": OrderStatus.PENDING,
    "pending accept": OrderStatus.PENDING,
    "pending replace": OrderStatus.PENDING,
    "pending cancel": OrderStatus.WORKING,
    "received": OrderStatus.PENDING,
    "queued": OrderStatus.PENDING,
    "unplaced": OrderStatus.PENDING,
    "partially filled": OrderStatus.PARTIALLY_FILLED,
    "filled": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELLED,
    "cancelled": OrderStatus.CANCELLED,
    "rejected": OrderStatus.REJECTED,
    "rejected by broker": OrderStatus.REJECTED,
    "expired": OrderStatus.EXPIRED,
    "done for day": OrderStatus.EXPIRED,
    # the JSON API's codes, should a provider send those
    "n": OrderStatus.WORKING,
    "pn": OrderStatus.PENDING,
    "pf": OrderStatus.PARTIALLY_FILLED,
    "cxl": OrderStatus.CANCELLED,
    "rj": OrderStatus.REJECTED,
    "e": OrderStatus.EXPIRED,
}


def order_status(text: str) -> OrderStatus:
    status = ORDER_STATUSES.get(text.strip().lower())
    if status is None:
        raise ProtocolError(f"QST sent an unknown order status {text[:40]!r}")
    return status


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True, slots=True)
class Request:
    """A request ready to send: the ``ClientMessage`` oneof name and its message.

    ``write`` marks requests that change state upstream: when the connection drops
    before their response, the outcome is unknown (UpstreamTimeout), not "not sent".
    """

    kind: str
    message: Any = field(repr=False)
    write: bool = False

    @property
    def account_bound(self) -> bool:
        """Whether the request acts on the session's current OE account."""
        return self.kind in _ACCOUNT_BOUND


_ACCOUNT_BOUND: Final = frozenset(
    {
        "order_book",
        "place_order",
        "cancel_order",
        "cancel_orders",
        "cancel_orders_for_contract",
        "cancel_replace_order",
        "get_activity_items",
        "account_info",
    }
)


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderSpec:
    """A full order specification (QST's cancel-replace re-specifies the whole order)."""

    contract: str
    side: OrderSide
    type: OrderType
    quantity: Decimal
    time_in_force: TimeInForce
    price: Decimal | None = None
    stop_price: Decimal | None = None
    expires_at: datetime | None = None

    def prices(self) -> tuple[str, str]:
        """QST's (price, limit_price): price is the limit of LMT, the trigger of STOP/STWL."""
        if self.type is OrderType.LIMIT:
            return _plain(self.price), "NaN"
        if self.type is OrderType.STOP:
            return _plain(self.stop_price), "NaN"
        if self.type is OrderType.STOP_LIMIT:
            return _plain(self.stop_price), _plain(self.price)
        return "NaN", "NaN"


def login(
    username: str,
    password_hash: str,
    client_unique_id: str,
    *,
    firm_id: str = "CVS",
    client_version: str = "1.0.0",
) -> Request:
    return Request(
        "login",
        pb.LoginRequest(
            username=username,
            password=password_hash,
            firm_id=firm_id,
            mobile_type="NEWLITE",
            local_ip="0.0.0.0",  # noqa: S104 (a documented default value, not a bind address)
            client_version=client_version,
            client_unique_id=client_unique_id,
        ),
    )


def logout() -> Request:
    return Request("logout", pb.LogoutRequest())


def oe_login(username: str, password_hash: str, provider: str, *, is_relogin: bool) -> Request:
    if provider not in PROVIDERS:
        raise ValueError(f"unknown order entry provider {provider!r} (known: {sorted(PROVIDERS)})")
    return Request(
        "oe_login",
        pb.OELoginRequest(
            username=username,
            password_hash=password_hash,
            order_entry_provider=PROVIDERS[provider],
            is_relogin=is_relogin,
        ),
    )


def oe_logout() -> Request:
    return Request("oe_logout", pb.OELogoutRequest())


def order_book() -> Request:
    return Request("order_book", pb.OrderBookRequest())


def switch_account(account_id: str, *, is_live: bool) -> Request:
    return Request(
        "oe_switch_account",
        pb.OESwitchAccountRequest(account_id=account_id, is_live_trading=is_live),
    )


def place_order(spec: OrderSpec) -> Request:
    price, limit_price = spec.prices()
    return Request(
        "place_order",
        pb.PlaceOrderRequest(
            contract=spec.contract,
            side=_SIDES_OUT[spec.side],
            quantity=_plain(spec.quantity),
            order_type=_TYPES_OUT[spec.type],
            life_time=_LIFETIMES_OUT[spec.time_in_force],
            price=price,
            limit_price=limit_price,
            position_type=pb.OPEN_POSITION,
            good_till_date=_millis(spec.expires_at),
            fractional_quantity=pb.STANDARD,
        ),
        write=True,
    )


def cancel_order(order_id: str) -> Request:
    return Request("cancel_order", pb.CancelOrderRequest(order_id=order_id), write=True)


def cancel_orders(order_ids: Sequence[str]) -> Request:
    return Request("cancel_orders", pb.CancelOrdersRequest(order_ids=list(order_ids)), write=True)


def cancel_orders_for_contract(contract: str) -> Request:
    return Request(
        "cancel_orders_for_contract",
        pb.CancelOrdersForContractRequest(contract_to_be_canceled=contract),
        write=True,
    )


def cancel_replace_order(order_id: str, spec: OrderSpec) -> Request:
    price, limit_price = spec.prices()
    return Request(
        "cancel_replace_order",
        pb.CancelReplaceOrderRequest(
            order_id_to_be_replaced=order_id,
            contract=spec.contract,
            side=_SIDES_OUT[spec.side],
            quantity=_plain(spec.quantity),
            order_type=_TYPES_OUT[spec.type],
            life_time=_LIFETIMES_OUT[spec.time_in_force],
            price=price,
            limit_price=limit_price,
            position_type=pb.OPEN_POSITION,
            good_till_date=_millis(spec.expires_at),
            fractional_quantity=pb.STANDARD,
        ),
        write=True,
    )


def subscribe_order_activity(*, subscribed: bool = True) -> Request:
    level = pb.SUBSCRIBED if subscribed else pb.UNSUBSCRIBED
    return Request(
        "change_oal_subscription_level",
        pb.ChangeOALSubscriptionLevelRequest(subscription_level=level),
    )


def activity_items() -> Request:
    return Request("get_activity_items", pb.GetActivityItemsRequest())


def account_info(currency: str) -> Request:
    return Request("account_info", pb.AccountInfoRequest(currency_code=currency))


def encode(request_id: int, request: Request) -> bytes:
    """One binary WebSocket frame: the ``ClientMessage`` envelope around ``request``."""
    envelope = pb.ClientMessage(request_id=request_id)
    getattr(envelope, request.kind).CopyFrom(request.message)
    data: bytes = envelope.SerializeToString()
    return data


# --------------------------------------------------------------------------- decoding


#: A field's descriptor -> its name and, for an enum, its value names by number; None
#: for a nested message.  Worked out once per field: reading a descriptor's attributes
#: for every field of every notification was half of :func:`_raw`'s time.
_RAW_FIELDS: dict[Any, tuple[str, dict[int, str] | None] | None] = {}


def _raw_field(descriptor: Any) -> tuple[str, dict[int, str] | None] | None:
    if descriptor.message_type is not None:
        return None
    enum = descriptor.enum_type
    names = {v.number: v.name for v in enum.values} if enum is not None else None
    return descriptor.name, names


def _raw(message: Any) -> dict[str, Any]:
    """The vendor payload for debugging: the scalar fields that are set, enums by name —
    plain values, as the event log and the cache pickle the models that carry it.
    Nested messages are left out (an Order's fills are its ``executions``)."""
    raw: dict[str, Any] = {}
    for descriptor, value in message.ListFields():
        try:
            field = _RAW_FIELDS[descriptor]
        except KeyError:
            field = _RAW_FIELDS[descriptor] = _raw_field(descriptor)
        if field is None:
            continue
        name, enum = field
        raw[name] = value if enum is None else enum.get(value, value)  # unknown: the number
    return raw


def _provider(value: int) -> str:
    name: str = pb.OrderEntryProvider.Name(value)
    return name


def to_order(m: Any, account_id: str | None = None) -> Order:
    """A QST ``Order`` as a standard order (STOP: price is the trigger; STWL: limit is limit)."""
    order_type = _TYPES_IN.get(m.order_type)
    side = _SIDES_IN.get(m.side)
    if order_type is None or side is None:
        raise ProtocolError(f"QST sent order {m.order_number!r} without a side or type")
    number = _id(m.order_number, "order number")
    price = decimal_or_none(m.price)
    limit = decimal_or_none(m.limit)
    if order_type is OrderType.LIMIT:
        limit_price, stop_price = price, None
    elif order_type is OrderType.STOP:
        limit_price, stop_price = None, price
    elif order_type is OrderType.STOP_LIMIT:
        limit_price, stop_price = limit, price
    else:
        limit_price, stop_price = None, None
    filled = decimal_or_none(m.filled_quantity) or Decimal(0)
    return Order(
        platform=PLATFORM,
        id=number,
        account_id=_id(m.account_number or account_id or "", f"account of order {number}"),
        symbol=_id(m.contract, f"contract of order {number}"),
        side=side,
        type=order_type,
        quantity=_decimal(m.quantity, "order quantity"),
        status=order_status(m.status),
        time_in_force=_LIFETIMES_IN.get(m.life_time, TimeInForce.DAY),
        filled_quantity=filled,
        price=limit_price,
        stop_price=stop_price,
        average_fill_price=decimal_or_none(m.average_fill_price),
        expires_at=_time(m.good_till_date),
        created_at=_time(m.order_date),
        executions=_executions(m, number, filled),
        raw=_raw(m),
    )


def _executions(m: Any, number: str, filled: Decimal) -> tuple[Execution, ...] | None:
    """The order's fills as listed on it [I: see ``Fill`` in the .proto]; none listed
    for a filled order means QST did not say them (None, never made up from the total)."""
    if not m.fills:
        return () if filled == 0 else None
    executions = []
    for fill in m.fills:
        at = _time(fill.fill_time)
        if at is None:
            raise ProtocolError(f"QST sent a fill of order {number} without a time")
        executions.append(
            Execution(
                id=_id(fill.fill_id, f"fill id of order {number}"),
                quantity=_decimal(fill.quantity, "fill quantity"),
                price=_decimal(fill.price, "fill price"),
                executed_at=at,
            )
        )
    return tuple(executions)


def _net_position(m: Any) -> NetPosition:
    return NetPosition(
        account_id=_id(m.account_number, "account of a net position"),
        contract=_id(m.contract, "contract of a net position"),
        net_quantity=decimal_or_none(m.net_quantity) or Decimal(0),
        average_price=decimal_or_none(m.average_price),
        open_pnl=decimal_or_none(m.open_pnl),
        realized_pnl=decimal_or_none(m.realized_pnl),
    )


def _account_info(m: Any) -> AccountInfo:
    return AccountInfo(
        account_id=_id(m.account_id, "account id"),
        currency=_currency(m.currency_code),
        balance=decimal_or_none(m.balance),
        equity=decimal_or_none(m.equity),
        margin=decimal_or_none(m.margin),
        available_funds=decimal_or_none(m.available_funds),
        open_pnl=decimal_or_none(m.open_pnl),
        realized_pnl=decimal_or_none(m.realized_pnl),
        provider=_provider(m.oe_provider),
        is_live=bool(m.is_live_trading),
        name=m.name,
    )


_ACCOUNT_IN_TEXT = re.compile(r"Account\s*#\s*(\w+)")


def _text(m: Any) -> TextNotice:
    title, body = str(m.title), str(m.body)
    found = _ACCOUNT_IN_TEXT.search(body)
    lines = [line.strip() for line in body.splitlines() if line.strip()]
    is_error = "error" in title.lower() or "rejected" in body.lower()
    reason = None
    if is_error and len(lines) >= 2 and not _ACCOUNT_IN_TEXT.match(lines[1]):
        reason = lines[1]
    return TextNotice(
        title=title,
        body=body,
        account_id=found.group(1) if found else None,
        is_error=is_error,
        reason=reason,
    )


def _notice(n: Any) -> Notice:
    which = n.WhichOneof("notification")
    if which == "order":
        return OrderNotice(to_order(n.order))
    if which == "net_position":
        return PositionNotice(_net_position(n.net_position))
    if which == "account_information":
        return AccountInfoNotice(_account_info(n.account_information))
    if which == "text_notification":
        return _text(n.text_notification)
    if which == "account_status_update":
        u = n.account_status_update
        return AccountStatusNotice(account_id=u.account_id, status=u.status)
    if which == "connection_status_update_notification":
        return ConnectionNotice(status=n.connection_status_update_notification.status)
    raise ProtocolError(f"QST sent an empty or unknown notification ({which!r})")


def _body(kind: str, m: Any) -> Any:
    if kind == ASYNC:
        return _notice(m.order_entry_notification)
    if kind == ERROR:
        return ServerError(m.message)
    if kind == "login":
        return LoginResult(bool(m.success), m.server_message)
    if kind == "oe_login":
        accounts = tuple(
            AccountSummary(
                account_id=_id(a.account_id, "account id"),
                name=a.name,
                is_live=bool(a.is_live_trading),
                currency=_currency(a.currency_code),
            )
            for a in m.accounts
        )
        return OELoginResult(bool(m.success), m.server_message, accounts, m.current_account_id)
    if kind == "order_book":
        return OrderBook(
            orders=tuple(to_order(o) for o in m.orders),
            positions=tuple(_net_position(p) for p in m.net_positions),
            provider=_provider(m.oe_provider),
        )
    if kind == "oe_switch_account":
        return Switched(m.account_id)
    if kind in ("place_order", "cancel_replace_order"):
        return Placed(m.status == pb.OK, m.order_number)
    if kind == "get_activity_items":
        return tuple(
            ActivityItem(
                order_number=i.order_number,
                at=_time(i.time),
                action=i.action,
                status=i.status,
                description=i.description,
            )
            for i in m.items
        )
    if kind == "account_info":
        return _account_info(m.account_information)
    # oe_logout, cancel_*, change_oal_subscription_level: a status code
    return Status(m.status == pb.OK)


def decode(data: bytes | bytearray | memoryview) -> Frame:
    """One server frame; anything we cannot read is a ProtocolError."""
    envelope = pb.ServerMessage()
    try:
        envelope.ParseFromString(bytes(data))
    except Exception:  # protobuf's DecodeError (its module is untyped)
        raise ProtocolError("QST sent a frame that is not a ServerMessage") from None
    kind = envelope.WhichOneof("message")
    if kind is None:
        raise ProtocolError("QST sent an empty ServerMessage")
    request_id: int = envelope.request_id
    try:
        body = _body(kind, getattr(envelope, kind))
    except (TypeError, ValueError) as error:  # a model refused what QST sent (empty id…)
        raise ProtocolError(f"QST sent an unusable {kind} message: {error}") from None
    return Frame(request_id, kind, body)
