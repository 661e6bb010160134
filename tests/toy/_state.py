"""The toy platform's state and rules, free of HTTP so they read as a spec.

Everything is seeded deterministically (fixed ids, amounts and dates); objects
created later get ids from counters and the current time.  Rule violations raise
:class:`ToyError`, which the server turns into its JSON error answer.  Money is
``Decimal`` here and a string on the wire.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

D = Decimal
ZERO, HUNDRED = D(0), D(100)  # Decimal is immutable: safe as shared defaults
#: The toy market: limit orders never fill, market orders fill at these prices.
QUOTES = {"EURUSD": D("1.0900"), "GBPUSD": D("1.2700"), "XAUUSD": D("2290.00")}
ORDER_TYPES = ("limit", "market", "stop", "stopLimit")

# Seed tables: short rows rather than constructor calls, so the state reads at a glance.
TRADERS = [
    ("T1", "t1@toy.example", "Tina One", "DEMO-001", "2024-01-02T09:00:00Z"),
    ("T2", "t2@toy.example", "Tom Two", "DEMO-002", "2024-01-03T09:00:00Z"),
    ("T3", "t3@toy.example", "Tia Three", "OTHER-001", "2024-01-04T09:00:00Z"),
]
# id, trader, currency, balance, group, credit, created
ACCOUNTS = [
    ("1001", "T1", "USD", "10000.00", "gold", "0", "2024-01-02T09:05:00Z"),
    ("1002", "T1", "EUR", "5000.00", "standard", "0", "2024-01-02T09:06:00Z"),
    ("2001", "T2", "USD", "2500.50", "standard", "100.00", "2024-01-03T09:05:00Z"),
    ("3001", "T3", "USD", "100.00", "standard", "0", "2024-01-04T09:05:00Z"),
]
# id, account, symbol, side, volume, open price, margin, unrealised P&L, opened
POSITIONS = [
    ("P1", "1001", "EURUSD", "buy", "10000", "1.0850", "108.50", "50.00", "2024-03-01T10:00:00Z"),
    ("P2", "2001", "XAUUSD", "sell", "1", "2300.00", "230.00", "10.00", "2024-03-02T10:00:00Z"),
]
DEAL_KEYS = ("id", "accountId", "positionId", "symbol", "side", "volume", "price", "pnl")
# ... and the executed time last
DEALS = [
    ("D1", "1001", "P0", "EURUSD", "sell", "10000", "1.0900", "45.00", "2024-02-01T10:00:00Z"),
    ("D2", "1001", "P9", "GBPUSD", "buy", "5000", "1.2700", "-12.50", "2024-02-15T14:30:00Z"),
    ("D3", "1001", "P8", "EURUSD", "buy", "2000", "1.0800", "8.00", "2024-02-20T08:00:00Z"),
    ("D4", "2001", "P7", "XAUUSD", "sell", "1", "2310.00", "30.00", "2024-02-10T12:00:00Z"),
]
OPERATION_KEYS = ("id", "accountId", "kind", "amount", "balanceAfter", "at")
OPERATIONS = [
    ("B1", "1001", "deposit", "10000.00", "10000.00", "2024-01-02T09:10:00Z"),
    ("B2", "1002", "deposit", "5000.00", "5000.00", "2024-01-02T09:11:00Z"),
    ("B3", "2001", "deposit", "2500.50", "2500.50", "2024-01-03T09:10:00Z"),
    ("B4", "2001", "credit", "100.00", "2500.50", "2024-01-03T09:11:00Z"),
    ("B5", "3001", "deposit", "100.00", "100.00", "2024-01-04T09:10:00Z"),
]


class ToyError(Exception):
    def __init__(self, status: int, code: str, message: str = "") -> None:
        super().__init__(message or code)
        self.status, self.code, self.message = status, code, message or code


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def now() -> datetime:
    return datetime.now(UTC)


def money(value: Decimal) -> str:
    return format(value, "f")


class Feed:
    """One event channel (an account's orders, say) with its own sequence."""

    def __init__(self) -> None:
        self.sequence = 0
        self.queues: set[asyncio.Queue[dict[str, Any]]] = set()

    def publish(self, event: dict[str, Any]) -> None:
        self.sequence += 1
        message = {"sequence": self.sequence, "at": iso(now()), **event}
        for queue in self.queues:
            queue.put_nowait(message)


@dataclass
class Trader:
    id: str
    email: str
    name: str
    partner_code: str | None = None
    enabled: bool = True
    created_at: datetime = field(default_factory=now)

    def wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "email": self.email,
            "name": self.name,
            "partnerCode": self.partner_code,
            "state": "enabled" if self.enabled else "disabled",
            "createdAt": iso(self.created_at),
        }


@dataclass
class Account:
    id: str
    trader_id: str
    currency: str
    balance: Decimal
    group: str = "standard"
    leverage: Decimal = HUNDRED
    credit: Decimal = ZERO
    bonus: Decimal = ZERO
    access: str = "FULL"
    live: bool = True
    created_at: datetime = field(default_factory=now)


@dataclass
class Position:
    id: str
    account_id: str
    symbol: str
    side: str
    volume: Decimal
    open_price: Decimal
    margin: Decimal
    pnl: Decimal
    opened_at: datetime


@dataclass
class Order:
    id: str
    account_id: str
    client_order_id: str | None
    symbol: str
    side: str
    type: str
    quantity: Decimal
    price: Decimal | None
    stop_price: Decimal | None
    tif: str
    state: str = "WORKING"
    filled: Decimal = ZERO
    avg_fill_price: Decimal | None = None
    created_at: datetime = field(default_factory=now)
    updated_at: datetime = field(default_factory=now)

    def wire(self) -> dict[str, Any]:
        optional = (self.price, self.stop_price, self.avg_fill_price)
        price, stop, avg = (None if v is None else money(v) for v in optional)
        return {
            "id": self.id,
            "accountId": self.account_id,
            "clientOrderId": self.client_order_id,
            "symbol": self.symbol,
            "side": self.side,
            "type": self.type,
            "quantity": money(self.quantity),
            "filledQuantity": money(self.filled),
            "price": price,
            "stopPrice": stop,
            "avgFillPrice": avg,
            "tif": self.tif,
            "state": self.state,
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
        }


class ToyState:
    """Seeded traders, accounts, positions, deals, operations, orders, subscriptions."""

    def __init__(self) -> None:
        self.traders = {row[0]: Trader(*row[:4], created_at=at(row[4])) for row in TRADERS}
        self.accounts = {
            row[0]: Account(*row[:3], D(row[3]), row[4], credit=D(row[5]), created_at=at(row[6]))
            for row in ACCOUNTS
        }
        self.positions = [
            Position(*r[:4], D(r[4]), D(r[5]), D(r[6]), D(r[7]), at(r[8])) for r in POSITIONS
        ]
        self.deals: list[dict[str, Any]] = [
            dict(zip(DEAL_KEYS, row, strict=False))
            | {"executedAt": row[-1], "commission": "-2.00", "currency": self._currency(row[1])}
            for row in DEALS
        ]
        self.operations: list[dict[str, Any]] = [
            dict(zip(OPERATION_KEYS, row, strict=True))
            | {"currency": self._currency(row[1]), "clientId": None, "comment": "seed"}
            for row in OPERATIONS
        ]
        self.operation_by_client: dict[tuple[str, str], dict[str, Any]] = {}
        seeded = at("2024-03-05T09:00:00Z")
        self.orders = {
            "O1": Order(
                "O1",
                "1001",
                None,
                "EURUSD",
                "buy",
                "limit",
                D(1000),
                D("1.0500"),
                None,
                "gtc",
                created_at=seeded,
                updated_at=seeded,
            )
        }
        self.order_by_client: dict[tuple[str, str], Order] = {}
        self.subscriptions: list[dict[str, Any]] = [
            {
                "id": "S1",
                "traderId": "T1",
                "name": "dxFeed Level 1",
                "active": True,
                "endsAt": None,
            },
            {
                "id": "S2",
                "traderId": "T2",
                "name": "Nasdaq TotalView",
                "active": True,
                "endsAt": "2030-12-31T23:59:59Z",
            },
        ]
        self.order_feeds = {a: Feed() for a in self.accounts}
        self.account_feeds = {a: Feed() for a in self.accounts}
        self.md_feeds = {t: Feed() for t in self.traders}
        for order in self.orders.values():  # seeded orders were events too
            self.order_feeds[order.account_id].sequence += 1
        self._ids = itertools.count(10)

    def _currency(self, account_id: str) -> str:
        return self.accounts[account_id].currency

    def next_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids)}"

    # -- reads --------------------------------------------------------------------

    def account(self, account_id: str) -> Account:
        if account_id not in self.accounts:
            raise ToyError(404, "ACCOUNT_NOT_FOUND", f"no account {account_id}")
        return self.accounts[account_id]

    def trader(self, trader_id: str) -> Trader:
        if trader_id not in self.traders:
            raise ToyError(404, "TRADER_NOT_FOUND", f"no trader {trader_id}")
        return self.traders[trader_id]

    def margin(self, account_id: str) -> Decimal:
        return sum((p.margin for p in self.positions if p.account_id == account_id), D(0))

    def account_wire(self, a: Account) -> dict[str, Any]:
        pnl = sum((p.pnl for p in self.positions if p.account_id == a.id), D(0))
        equity = a.balance + a.credit + a.bonus + pnl
        margin = self.margin(a.id)
        return {
            "id": a.id,
            "traderId": a.trader_id,
            "currency": a.currency,
            "balance": money(a.balance),
            "credit": money(a.credit),
            "bonus": money(a.bonus),
            "equity": money(equity),
            "margin": money(margin),
            "freeMargin": money(equity - margin),
            "leverage": money(a.leverage),
            "group": a.group,
            "access": a.access,
            "live": a.live,
            "tier": "gold" if a.group == "gold" else "standard",
            "createdAt": iso(a.created_at),
        }

    def position_wire(self, p: Position) -> dict[str, Any]:
        return {
            "id": p.id,
            "accountId": p.account_id,
            "symbol": p.symbol,
            "side": p.side,
            "volume": money(p.volume),
            "openPrice": money(p.open_price),
            "currentPrice": money(QUOTES[p.symbol]),
            "pnl": money(p.pnl),
            "swap": "-1.20",
            "commission": "-3.00",
            "margin": money(p.margin),
            "currency": self.accounts[p.account_id].currency,
            "openedAt": iso(p.opened_at),
        }

    def in_period(
        self, items: list[dict[str, Any]], key: str, account_id: str, start: str, end: str
    ) -> list[dict[str, Any]]:
        self.account(account_id)
        lo, hi = at(start), at(end)
        return [i for i in items if i["accountId"] == account_id and lo <= at(i[key]) < hi]

    # -- money --------------------------------------------------------------------

    def move_money(
        self, account_id: str, kind: str, amount: Decimal, client_id: str
    ) -> dict[str, Any]:
        account = self.account(account_id)
        if not client_id:
            raise ToyError(422, "CLIENT_ID_REQUIRED")
        first = self.operation_by_client.get((account_id, client_id))
        if first is not None:  # the platform's idempotency: answer the first operation again
            return first
        if kind in ("deposit", "withdraw") and amount <= 0:
            raise ToyError(422, "INVALID_AMOUNT", "amount must be positive")
        if kind in ("credit", "bonus") and amount == 0:
            raise ToyError(422, "INVALID_AMOUNT", "amount must not be zero")
        if kind == "deposit":
            account.balance += amount
        elif kind == "withdraw":
            if amount > account.balance - self.margin(account_id):
                raise ToyError(422, "NOT_ENOUGH_MONEY", "withdrawal exceeds free funds")
            account.balance -= amount
        elif kind == "credit":
            if account.credit + amount < 0:
                raise ToyError(422, "NOT_ENOUGH_MONEY", "credit would become negative")
            account.credit += amount
        elif kind == "bonus":
            if account.bonus + amount < 0:
                raise ToyError(422, "NOT_ENOUGH_MONEY", "bonus would become negative")
            account.bonus += amount
        else:
            raise ToyError(422, "INVALID_KIND", f"unknown kind {kind!r}")
        operation = {
            "id": self.next_id("B"),
            "accountId": account_id,
            "kind": "withdrawal" if kind == "withdraw" else kind,
            "amount": money(amount),
            "currency": account.currency,
            "balanceAfter": money(account.balance),
            "clientId": client_id,
            "comment": None,
            "at": iso(now()),
        }
        self.operations.append(operation)
        self.operation_by_client[(account_id, client_id)] = operation
        self.account_feeds[account_id].publish(
            {"account": self.account_wire(account), "operation": operation}
        )
        return operation

    # -- orders -------------------------------------------------------------------

    def place_order(self, account_id: str, body: dict[str, Any]) -> Order:
        self.account(account_id)
        client_id = body.get("clientOrderId")
        if client_id and (account_id, client_id) in self.order_by_client:
            return self.order_by_client[(account_id, client_id)]
        symbol, kind = body.get("symbol"), body.get("type")
        if symbol not in QUOTES:
            raise ToyError(422, "UNKNOWN_SYMBOL", f"unknown symbol {symbol!r}")
        if kind not in ORDER_TYPES or body.get("side") not in ("buy", "sell"):
            raise ToyError(422, "INVALID_ORDER", "bad type or side")
        quantity = D(body["quantity"])
        price = D(body["price"]) if body.get("price") is not None else None
        stop = D(body["stopPrice"]) if body.get("stopPrice") is not None else None
        if quantity <= 0 or (kind in ("limit", "stopLimit") and price is None):
            raise ToyError(422, "INVALID_ORDER", "quantity must be positive, limits need a price")
        order = Order(
            self.next_id("O"),
            account_id,
            client_id,
            symbol,
            body["side"],
            kind,
            quantity,
            price,
            stop,
            body.get("tif", "day"),
        )
        if kind == "market":
            order.state, order.filled, order.avg_fill_price = "FILLED", quantity, QUOTES[symbol]
        self.orders[order.id] = order
        if client_id:
            self.order_by_client[(account_id, client_id)] = order
        self._order_event(order)
        return order

    def order(self, account_id: str, order_id: str) -> Order:
        order = self.orders.get(order_id)
        if order is None or order.account_id != account_id:
            raise ToyError(404, "ORDER_NOT_FOUND", f"no order {order_id}")
        return order

    def cancel_order(self, account_id: str, order_id: str) -> Order:
        order = self.order(account_id, order_id)
        if order.state != "WORKING":
            raise ToyError(409, "ORDER_NOT_WORKING", f"order is {order.state}")
        order.state, order.updated_at = "CANCELED", now()
        self._order_event(order)
        return order

    def replace_order(self, account_id: str, order_id: str, body: dict[str, Any]) -> Order:
        order = self.order(account_id, order_id)
        if order.state != "WORKING":
            raise ToyError(409, "ORDER_NOT_WORKING", f"order is {order.state}")
        if body.get("quantity") is not None:
            order.quantity = D(body["quantity"])
        if body.get("price") is not None:
            order.price = D(body["price"])
        if body.get("stopPrice") is not None:
            order.stop_price = D(body["stopPrice"])
        order.updated_at = now()
        self._order_event(order)
        return order

    def _order_event(self, order: Order) -> None:
        self.order_feeds[order.account_id].publish({"kind": "order", "order": order.wire()})

    def order_snapshot(self, account_id: str) -> list[dict[str, Any]]:
        """Working orders, numbered so the last one carries the feed's current sequence."""
        feed = self.order_feeds[account_id]
        working = [
            o for o in self.orders.values() if o.account_id == account_id and o.state == "WORKING"
        ]
        first = feed.sequence - len(working) + 1
        return [
            {"sequence": first + i, "at": iso(now()), "kind": "snapshot", "order": o.wire()}
            for i, o in enumerate(working)
        ]

    # -- provisioning -------------------------------------------------------------

    def create_trader(self, body: dict[str, Any]) -> Trader:
        email = str(body.get("email") or "")
        if "@" not in email:
            raise ToyError(422, "INVALID_EMAIL", "email is required")
        if any(t.email == email for t in self.traders.values()):
            raise ToyError(409, "EMAIL_TAKEN", "a trader with this email exists")
        trader = Trader(
            self.next_id("T"), email, str(body.get("name") or email), body.get("partnerCode")
        )
        self.traders[trader.id] = trader
        self.md_feeds[trader.id] = Feed()
        return trader

    def open_account(self, body: dict[str, Any]) -> Account:
        trader = self.trader(str(body.get("traderId")))
        currency = str(body.get("currency") or "")
        if not currency:
            raise ToyError(422, "INVALID_CURRENCY", "currency is required")
        account = Account(
            str(5000 + next(self._ids)),
            trader.id,
            currency,
            D(0),
            str(body.get("group") or "standard"),
            D(body.get("leverage") or 100),
            live=bool(body.get("live", True)),
        )
        self.accounts[account.id] = account
        self.order_feeds[account.id], self.account_feeds[account.id] = Feed(), Feed()
        return account

    def update_account(self, account_id: str, body: dict[str, Any]) -> Account:
        account = self.account(account_id)
        if body.get("leverage") is not None:
            account.leverage = D(body["leverage"])
        if body.get("access") is not None:
            account.access = str(body["access"])
        if body.get("group") is not None:
            account.group = str(body["group"])
        self.account_feeds[account_id].publish(
            {"account": self.account_wire(account), "operation": None}
        )
        return account

    def set_trader_enabled(self, trader_id: str, enabled: bool) -> Trader:
        trader = self.trader(trader_id)
        trader.enabled = enabled
        return trader

    def cancel_subscriptions(self, trader_id: str) -> list[dict[str, Any]]:
        self.trader(trader_id)
        cancelled = [s for s in self.subscriptions if s["traderId"] == trader_id and s["active"]]
        for subscription in cancelled:
            subscription["active"] = False
            self.md_feeds[trader_id].publish({"kind": "cancelled", "subscription": subscription})
        return cancelled
