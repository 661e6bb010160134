"""ORDER_READS: an account's orders as dxsca-web lists them (B5, observed), with their
fills — DXtrade's Order carries ``executions[]`` (Execution: ``executionCode``,
``lastQuantity``, ``lastPrice``, ``transactionTime``), which become ``Order.executions``.

``get_orders`` is the day's blotter, in two batched reads whatever the number of
accounts: the working orders (``GET /accounts/orders?accounts=a,b``) and the orders
finished in the last :data:`HISTORY_HOURS` hours (``GET /accounts/orders/history`` with
``completed-from``).  An order is keyed by DXtrade's ``orderId``; ``clientOrderId`` is
the client's own id.

Rules of the mapping (the notes observe the fields, not every combination):

* status ACCEPTED -> PENDING, WORKING -> WORKING (PARTIALLY_FILLED once something
  filled), COMPLETED -> FILLED, CANCELED -> CANCELLED, EXPIRED, REJECTED;
* quantities and the average price are the first leg's (single-leg orders; a
  multi-leg order is left out, it has no one symbol);
* executions with a positive ``lastQuantity`` are the fills; when they do not add up
  to the filled quantity (DXtrade listed fewer), executions are None (unknown), never
  a partial list;
* an order type the standard model lacks (``TRAILING_STOP``) is left out of the list
  and logged, not shown as another type.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from brokergraph_dxtrade.connector._base import DxTradeBase, items_of
from brokergraph_dxtrade.mapping import PLATFORM, decimal, iso, parse_account_id, parse_time
from gateway.contract import (
    Execution,
    Order,
    OrderReads,
    OrderSide,
    OrderStatus,
    OrderType,
    ProtocolError,
    TimeInForce,
    UpstreamCost,
)

__all__ = ["HISTORY_HOURS", "DxTradeOrders", "order_model"]

#: How far back ``get_orders`` lists finished orders (the day's blotter).
HISTORY_HOURS = 24

_STATUS = {
    "ACCEPTED": OrderStatus.PENDING,
    "WORKING": OrderStatus.WORKING,
    "COMPLETED": OrderStatus.FILLED,
    "CANCELED": OrderStatus.CANCELLED,
    "EXPIRED": OrderStatus.EXPIRED,
    "REJECTED": OrderStatus.REJECTED,
}
_TYPES = {
    "MARKET": OrderType.MARKET,
    "LIMIT": OrderType.LIMIT,
    "STOP": OrderType.STOP,
    "STOP_LIMIT": OrderType.STOP_LIMIT,
}
#: DAY, and IOC/FOK, which live no longer than a day.
_TIF = {"GTC": TimeInForce.GTC, "GTD": TimeInForce.GTD}


class UnsupportedOrder(Exception):
    """An order the standard model cannot show as it is (a type or shape it lacks)."""


class DxTradeOrders(DxTradeBase, OrderReads):
    """The day's orders of each account, with their fills."""

    def upstream_costs(self) -> Mapping[str, UpstreamCost]:
        return {**super().upstream_costs(), "get_orders": UpstreamCost(calls=2)}

    async def get_orders(self, account_ids: Sequence[str]) -> Sequence[Sequence[Order]]:
        valid = list(dict.fromkeys(i for i in account_ids if parse_account_id(i) is not None))
        since = datetime.now(UTC) - timedelta(hours=HISTORY_HOURS)
        working = await self._batched(valid, "/accounts/orders", "orders")
        finished = await self._batched(
            valid,
            "/accounts/orders/history",
            "order history",
            params={"completed-from": iso(since)},
        )
        grouped: dict[str, dict[str, Order]] = {}
        for body in (*working, *finished):
            for item in items_of(body, "orders"):
                try:
                    order = order_model(item)
                except UnsupportedOrder as error:
                    self.context.logger.warning("DXtrade order left out: %s", error)
                    continue
                grouped.setdefault(order.account_id, {})[order.id] = order
        return [list(grouped.get(i, {}).values()) for i in account_ids]


def _leg(body: Mapping[str, Any]) -> Mapping[str, Any]:
    legs = body.get("legs") or [{}]
    if not isinstance(legs, list) or len(legs) != 1 or not isinstance(legs[0], Mapping):
        raise UnsupportedOrder(f"order {body.get('orderId')} has {len(legs)} legs")
    leg: Mapping[str, Any] = legs[0]
    return leg


def _optional(value: Any, what: str) -> Decimal | None:
    return None if value is None else decimal(value, what)


def _executions(body: Mapping[str, Any], filled: Decimal) -> tuple[Execution, ...] | None:
    fills = []
    for item in body.get("executions") or []:
        if not isinstance(item, Mapping):
            raise ProtocolError("DXtrade sent an execution that is not an object")
        quantity = _optional(item.get("lastQuantity"), "lastQuantity")
        if quantity is None or quantity <= 0:
            continue  # an acknowledgement or a reject, not a fill
        at = parse_time(item.get("transactionTime"))
        code = item.get("executionCode")
        if at is None or not isinstance(code, str) or not code:
            raise ProtocolError("DXtrade sent a fill without executionCode or transactionTime")
        fills.append(
            Execution(
                id=code,
                quantity=quantity,
                price=decimal(item.get("lastPrice"), "lastPrice"),
                executed_at=at,
                raw=dict(item),
            )
        )
    if sum((f.quantity for f in fills), Decimal(0)) != filled:
        return None  # DXtrade did not list every fill: unknown, not a partial list
    return tuple(sorted(fills, key=lambda f: f.executed_at))


def order_model(body: Mapping[str, Any]) -> Order:
    """One dxsca-web Order (B5.1) as a standard order; UnsupportedOrder for the ones the
    model cannot show, ProtocolError for a malformed one."""
    order_id, account = body.get("orderId"), body.get("account")
    if order_id is None or not isinstance(account, str) or not account:
        raise ProtocolError("DXtrade sent an order without orderId or account")
    kind = _TYPES.get(str(body.get("type")))
    if kind is None:
        raise UnsupportedOrder(f"order {order_id} is of type {body.get('type')!r}")
    leg = _leg(body)
    side = body.get("side") or leg.get("side")
    status = _STATUS.get(str(body.get("status")))
    if side not in ("BUY", "SELL") or status is None:
        raise ProtocolError(f"DXtrade sent order {order_id} without a known side or status")
    quantity = decimal(leg.get("quantity"), "quantity")
    filled = _optional(leg.get("filledQuantity"), "filledQuantity") or Decimal(0)
    if status is OrderStatus.WORKING and filled > 0:
        status = OrderStatus.PARTIALLY_FILLED
    price = _optional(leg.get("price"), "price")
    limit = _optional(body.get("limitPrice"), "limitPrice")
    stop = _optional(body.get("stopPrice"), "stopPrice")
    if kind is OrderType.LIMIT:
        limit = limit if limit is not None else price
    elif kind is OrderType.STOP:
        stop = stop if stop is not None else price
    reason = body.get("rejectReason")
    client_id = body.get("clientOrderId")
    return Order(
        platform=PLATFORM,
        id=str(order_id),
        account_id=account,
        symbol=str(body.get("instrument") or leg.get("instrument")),
        side=OrderSide(side),
        type=kind,
        quantity=quantity,
        status=status,
        time_in_force=_TIF.get(str(body.get("tif")), TimeInForce.DAY),
        filled_quantity=filled,
        price=limit if kind in (OrderType.LIMIT, OrderType.STOP_LIMIT) else None,
        stop_price=stop if kind in (OrderType.STOP, OrderType.STOP_LIMIT) else None,
        average_fill_price=_optional(leg.get("averagePrice"), "averagePrice") if filled else None,
        expires_at=parse_time(body.get("expireDate")),
        created_at=parse_time(body.get("issueTime")),
        updated_at=parse_time(body.get("transactionTime")),
        client_order_id=client_id if isinstance(client_id, str) and client_id else None,
        reject_reason=reason if isinstance(reason, str) and reason else None,
        executions=_executions(body, filled),
        raw=dict(body),
    )
