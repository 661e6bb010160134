"""dxsca-web JSON shapes of the state (B5.1): metrics, positions, orders, transfers, users."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from brokergraph_dxtrade.sandbox.model import Account, Client, Order, Position, Transfer
from brokergraph_dxtrade.sandbox.seed import QUOTES
from brokergraph_dxtrade.sandbox.state import DxState
from brokergraph_dxtrade.sandbox.wire import iso


def metrics(state: DxState, account: Account, *, include_positions: bool) -> dict[str, Any]:
    open_pl, margin = state.open_pl(account), state.margin(account)
    equity = account.balance + open_pl + account.credit
    body: dict[str, Any] = {
        "account": account.id,
        "version": account.version,
        "currency": account.currency,
        "balance": account.balance,
        "credit": account.credit,
        "openPL": open_pl,
        "totalPL": open_pl,
        "equity": equity,
        "margin": margin,
        "initialMargin": margin,
        "maintenanceMargin": margin / 2,
        "marginFree": equity - margin,
        "availableFunds": equity - margin,
        "availableBalance": state.withdrawable(account),
        "allocatedFunds": margin,
        "openPositionsCount": len(state.positions_of(account)),
        "openOrdersCount": len(state.orders_of(account)),
    }
    if include_positions:
        body["positions"] = [position_metrics(state, p) for p in state.positions_of(account)]
    return body


def position_metrics(state: DxState, position: Position) -> dict[str, Any]:
    mark = QUOTES[position.symbol]
    return {
        "positionCode": position.code,
        "symbol": position.symbol,
        "fpl": state.fpl(position),
        "convRate": 1,
        "openPrice": position.open_price,
        "currentPrice": mark,
        "marginRate": position.margin_rate,
        "margin": state.position_margin(position),
        "quantity": position.quantity,
        "quantityNotional": position.quantity * mark,
        "side": position.side,
    }


def position(p: Position) -> dict[str, Any]:
    return {
        "account": p.account,
        "version": 1,
        "positionCode": p.code,
        "symbol": p.symbol,
        "quantity": p.quantity,
        "side": p.side,
        "quantityNotional": p.quantity * p.open_price,
        "openTime": iso(p.opened),
        "openPrice": p.open_price,
        "lastUpdateTime": iso(p.opened),
        "marginRate": p.margin_rate,
        "takeProfitPrice": None,
        "stopLossPrice": None,
    }


def order(o: Order) -> dict[str, Any]:
    filled = o.quantity if o.completed is not None else 0
    leg = {
        "instrument": o.symbol,
        "positionEffect": "OPEN",
        "positionCode": o.position_code,
        "side": o.side,
        "price": o.price,
        "legRatio": 1,
        "quantity": o.quantity,
        "filledQuantity": filled,
        "remainingQuantity": o.quantity - filled,
        "averagePrice": o.price if o.completed is not None else 0,
    }
    return {
        "account": o.account,
        "version": 1,
        "orderId": o.order_id,
        "orderCode": o.code,
        "clientOrderId": o.code,
        "actionCode": None,
        "legCount": 1,
        "type": o.type,
        "instrument": o.symbol,
        "status": o.status,
        "finalStatus": o.status in ("CANCELED", "COMPLETED", "EXPIRED", "REJECTED"),
        "legs": [leg],
        "side": o.side,
        "tif": o.tif,
        # Extras beside legs[].price: the price by the role the order type gives it.
        "limitPrice": o.price if o.type == "LIMIT" else None,
        "stopPrice": o.price if o.type == "STOP" else None,
        "transactionTime": iso(o.completed or o.issued),
        "issueTime": iso(o.issued),
        "expireDate": None,
        "marginRate": None,
        "links": [],
        "executions": [] if o.completed is None else [execution(o, o.completed)],
        "cashTransactions": [],
    }


def execution(o: Order, at: datetime) -> dict[str, Any]:
    """The one execution that filled ``o`` whole at its price (B5.1 Execution)."""
    return {
        "account": o.account,
        "executionCode": f"{o.code}-x1",
        "orderCode": o.code,
        "updateOrderId": o.order_id,
        "version": 1,
        "clientOrderId": o.code,
        "actionCode": None,
        "instrument": o.symbol,
        "status": "COMPLETED",
        "finalStatus": True,
        "filledQuantity": o.quantity,
        "lastQuantity": o.quantity,
        "filledQuantityNotional": o.quantity * o.price,
        "lastQuantityNotional": o.quantity * o.price,
        "remainingQuantity": 0,
        "lastPrice": o.price,
        "averagePrice": o.price,
        "transactionTime": iso(at),
        "marginRate": None,
        "rejectReason": None,
        "rejectCode": None,
        "executionContext": None,
    }


def transfer(t: Transfer) -> dict[str, Any]:
    return {
        "account": t.account,
        "version": 1,
        "transferCode": t.code,
        "comment": t.comment,
        "transactionTime": iso(t.at),
        "createdTime": iso(t.at),
        "cashTransactions": [
            {
                "account": t.account,
                "transactionCode": t.transaction_code,
                "orderCode": None,
                "tradeCode": None,
                "positionCode": None,
                "version": 1,
                "clientOrderId": None,
                "type": t.kind,
                "value": t.value,
                "currency": t.currency,
                "transactionTime": iso(t.at),
                "createdTime": iso(t.at),
            }
        ],
    }


def account_details(a: Account) -> dict[str, Any]:
    return {
        "owner": f"{a.owner[1]}@{a.owner[0]}" if a.owner else None,
        "account": a.id,
        "version": a.version,
        "baseCurrency": a.currency,
        "registrationTime": iso(a.registered),
        "accountStatus": a.status,
        "pricingStream": None,
        "positionBased": True,
    }


def user(state: DxState, client: Client) -> dict[str, Any]:
    return {
        "login": client.login,
        "domain": client.domain,
        "version": client.version,
        "fullName": client.full_name,
        "username": client.username,
        "status": client.status,
        "dxFeedAccountId": client.dx_feed_account_id,
        "accounts": [account_details(a) for a in state.accounts_of(client)],
    }
