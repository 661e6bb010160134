"""Between the book's objects and our .proto: enums, number strings, currency conversion."""

from __future__ import annotations

from decimal import Decimal
from typing import TypeVar

from brokergraph_qst._proto import order_routing_pb2 as pb
from brokergraph_qst.sandbox.book import (
    Account,
    AccountView,
    Fill,
    LifeTime,
    Order,
    OrderKind,
    OrderSpec,
    PositionView,
    Side,
    quantity_text,
)
from brokergraph_qst.sandbox.market import format_average, format_price, last_tick
from brokergraph_qst.sandbox.session import ActivityItem

D = Decimal
K = TypeVar("K")
V = TypeVar("V")

SIDES: dict[Side, pb.Side] = {"BUY": pb.BUY, "SELL": pb.SELL}
ORDER_TYPES: dict[OrderKind, pb.OrderType] = {
    "LMT": pb.LMT_ORDER_TYPE,
    "MKT": pb.MKT_ORDER_TYPE,
    "STOP": pb.STOP_ORDER_TYPE,
    "STWL": pb.STWL_ORDER_TYPE,
}
LIFE_TIMES: dict[LifeTime, pb.OrderLifeTime] = {
    "DAY": pb.DAY_ORDER_LIFE_TIME,
    "GTC": pb.GTC_ORDER_LIFE_TIME,
    "GTD": pb.GTD_ORDER_LIFE_TIME,
}
#: AccountInfoRequest.currency_code -> units per USD (fixed) [D]; anything else means USD.
CURRENCY_RATES = {"USD": D(1), "EUR": D("0.92"), "GBP": D("0.79")}
PROVIDER = pb.QOR
NAN = "NaN"


def _inverse(mapping: dict[K, V]) -> dict[V, K]:
    return {v: k for k, v in mapping.items()}


_SIDE_NAMES = _inverse(SIDES)
_ORDER_TYPE_NAMES = _inverse(ORDER_TYPES)
_LIFE_TIME_NAMES = _inverse(LIFE_TIMES)


def money(value: Decimal) -> str:
    return format(value.quantize(D("0.01")), "f")


def order_spec(request: pb.PlaceOrderRequest | pb.CancelReplaceOrderRequest) -> OrderSpec:
    return OrderSpec(
        contract=request.contract.strip(),
        side=_SIDE_NAMES.get(request.side),
        quantity=request.quantity,
        order_type=_ORDER_TYPE_NAMES.get(request.order_type),
        life_time=_LIFE_TIME_NAMES.get(request.life_time),
        price=request.price,
        limit_price=request.limit_price,
        good_till_date=request.good_till_date,
    )


def order_message(
    order: Order, market_price: Decimal | None, *, report_fills: bool = True
) -> pb.Order:
    """An Order as QST's notification shows it; prices a contract lacks are "NaN".

    ``report_fills``: with its fills (our reading [I]); off, as QST's example shows it.
    """
    known = market_price is not None

    def price(value: Decimal | None) -> str:
        return format_price(order.contract, value) if value is not None and known else NAN

    def average(value: Decimal | None) -> str:
        """At the tick's decimals when that is exact (a whole fill), else two more."""
        if value is None or not known:
            return NAN
        text = format_price(order.contract, value)
        return text if D(text) == value else format_average(order.contract, value)

    return pb.Order(
        order_update_type="ORDER_UPDATE",
        oe_provider=PROVIDER,
        order_number=order.number,
        account_number=order.account,
        sales_code="TSTSC",
        entered_by=order.entered_by,
        status=order.status,
        order_date=str(order.order_date_ms),
        side=SIDES[order.side] if order.side else pb.SIDE_UNSPECIFIED,
        quantity=quantity_text(order.quantity),
        contract=order.contract,
        price=price(order.price),
        last_tick=last_tick(order.contract, market_price) if market_price is not None else NAN,
        session="ELECTRONIC",
        order_type=ORDER_TYPES[order.order_type] if order.order_type else pb.ORDER_TYPE_UNSPECIFIED,
        limit=price(order.limit),
        life_time=LIFE_TIMES[order.life_time]
        if order.life_time
        else pb.ORDER_LIFE_TIME_UNSPECIFIED,
        filled_quantity=quantity_text(order.filled),
        average_fill_price=average(order.average_fill),
        good_till_date=order.good_till_date,
        fills=[fill_message(order.contract, f) for f in order.fills] if report_fills else [],
    )


def fill_message(contract: str, fill: Fill) -> pb.Fill:
    return pb.Fill(
        fill_id=fill.fill_id,
        quantity=quantity_text(fill.quantity),
        price=format_price(contract, fill.price),
        fill_time=str(fill.time_ms),
    )


def position_message(view: PositionView) -> pb.NetPosition:
    return pb.NetPosition(
        account_number=view.account,
        contract=view.contract,
        net_quantity=quantity_text(view.net),
        average_price=format_average(view.contract, view.average),
        open_pnl=money(view.open_pnl),
        realized_pnl=money(view.realized),
    )


def account_message(view: AccountView, currency_code: str = "USD") -> pb.AccountInformation:
    """Money fields converted from the account's USD at a fixed rate; unknown codes give USD."""
    currency = currency_code.strip().upper()
    if currency not in CURRENCY_RATES:
        currency = "USD"
    rate = CURRENCY_RATES[currency] / CURRENCY_RATES[view.currency]
    return pb.AccountInformation(
        account_id=view.number,
        currency_code=currency,
        balance=money(view.balance * rate),
        equity=money(view.equity * rate),
        margin=money(view.margin * rate),
        available_funds=money(view.available * rate),
        open_pnl=money(view.open_pnl * rate),
        realized_pnl=money(view.realized * rate),
        oe_provider=PROVIDER,
        is_live_trading=view.is_live,
        name=view.name,
    )


def account_summary(account: Account) -> pb.AccountSummary:
    return pb.AccountSummary(
        account_id=account.number,
        name=account.name,
        is_live_trading=account.is_live,
        currency_code=account.currency,
    )


def activity_message(item: ActivityItem) -> pb.ActivityLogItem:
    return pb.ActivityLogItem(
        order_number=item.order_number,
        time=str(item.time_ms),
        action=item.action,
        status=item.status,
        description=item.description,
    )


def notification(inner: pb.OrderEntryNotification) -> pb.ServerMessage:
    """An async message (request_id 0) carrying one OrderEntryNotification."""
    message = pb.ServerMessage(request_id=0)
    envelope: pb.AsyncServerMessage = getattr(message, "async")  # a Python keyword
    envelope.order_entry_notification.CopyFrom(inner)
    return message
