"""Users, accounts, orders and net positions, free of the wire so they read as a spec.

Every change returns the events it caused (an order update with the text describing it,
a text-only reject, a net-position or an account update); the server routes them to the
owner's connection.  Rules:

* Order numbers are digit strings counting up from "115300" across all accounts; a
  rejected order consumes one too and stays in the book with status "Rejected".
* Status texts: "New Order" (accepted), "Working", "Filled", "Canceled", "Rejected",
  "Expired" (a GTD order past its date; DAY orders never expire here: no session end).
* MKT fills at once at the current price; LMT fills when the price is at or better than
  the limit (BUY price <= limit, SELL price >= limit); STOP fills at the market once the
  price reaches the stop (BUY >= stop, SELL <= stop); STWL, once its stop is reached,
  becomes a LMT at ``limit_price``.  Fills are whole, at the current price, unless
  ``max_fill_quantity`` is set [D]: then each matching round (a placement, a tick,
  ``set_price``) fills at most that much of an order, which is "Partially Filled" (the
  JSON API's PF [V]) and keeps working until the rest fills.  A partially filled order
  can be canceled (what filled stays filled), not replaced.
* Each fill is recorded on its order (id, quantity, price, time; ids are digit strings
  counting up from "800001"): QST notifies every fill [V], the detail is our reading [I]
  (see ``Fill`` in the .proto; the server's ``report_fills`` knob leaves it off the wire).
* A net position per account and contract keeps a signed quantity, the average price and
  the realized P&L; a fill's realized P&L moves the account balance.  Equity is balance
  plus open P&L at current prices; margin is a fixed amount per contract held.
* Pre-trade checks, after the field checks, on a placement and on the new side of a
  cancel-replace (QST documents neither the checks nor their texts [I]; rejects come as
  the documented "Order rejected" / "Cancel/replace order rejected" text [V]):
  - size: a quantity above the contract's ``max_order_size`` is rejected
    "Order quantity <q> exceeds the maximum order size <max> for <contract>";
  - buying power: the account's initial margin if every working order filled (per
    contract, the larger of long and short: ``margin x max(|net + buys|, |net - sells|)``)
    may not exceed equity; an order that raises it past equity is rejected
    "Insufficient buying power: ...".  An order that does not raise it (one that
    reduces a position) always passes, so an under-margined account can still close.
  Neither check moves money; a rejected order keeps its number and status "Rejected".
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from brokergraph_qst.sandbox.market import (
    CONTRACTS,
    Market,
    format_price,
    on_tick_grid,
    parse_decimal,
)

D = Decimal
ZERO = D(0)

NEW, WORKING, FILLED, CANCELED, REJECTED, EXPIRED = (
    "New Order",
    "Working",
    "Filled",
    "Canceled",
    "Rejected",
    "Expired",
)
PARTIALLY_FILLED = "Partially Filled"
FIRST_ORDER_NUMBER = 115300
FIRST_FILL_NUMBER = 800001
TRIGGERED = "Stop triggered"

Side = Literal["BUY", "SELL"]
OrderKind = Literal["LMT", "MKT", "STOP", "STWL"]
LifeTime = Literal["DAY", "GTC", "GTD"]
#: The text notification's kind: its title ends with "<kind> Message".
TextKind = Literal["Order", "Fill", "Error"]

# username, password, accounts (the first is the current account after a fresh OE login)
USERS = [
    ("demo-trader", "demo-pass", ["297999", "297998"]),
    ("other-trader", "other-pass", ["400001"]),
]
# number, owner, name, currency, balance
ACCOUNTS = [
    ("297999", "demo-trader", "Demo Futures 1", "USD", "100000.00"),
    ("297998", "demo-trader", "Demo Futures 2", "USD", "50000.00"),
    ("400001", "other-trader", "Other Futures 1", "USD", "25000.00"),
]


#: How the sandbox expects a password hashed: sha256 hex is ours [D]; QST's example shows
#: only "hash_password" [V], so the sandbox can be told another (``hash_scheme``).
HASH_SCHEMES = ("sha256", "md5")


def password_hash(password: str, scheme: str = "sha256") -> str:
    """What a client sends as LoginRequest.password and OELoginRequest.password_hash [D]."""
    if scheme == "md5":
        return hashlib.md5(password.encode(), usedforsecurity=False).hexdigest()
    return hashlib.sha256(password.encode()).hexdigest()


def quantity_text(value: Decimal) -> str:
    """Quantities as QST shows them: "1.0", "-2.0", "0.5"."""
    if value == value.to_integral_value():
        return f"{value:.1f}"
    return format(value.normalize(), "f")


@dataclass(slots=True)
class Account:
    number: str
    owner: str
    name: str
    currency: str
    balance: Decimal
    realized: Decimal = ZERO
    is_live: bool = False


@dataclass(slots=True)
class Position:
    account: str
    contract: str
    net: Decimal = ZERO
    average: Decimal = ZERO
    realized: Decimal = ZERO

    def apply(self, quantity: Decimal, price: Decimal) -> Decimal:
        """Add a signed fill; return the P&L it realizes (USD)."""
        multiplier = CONTRACTS[self.contract].multiplier
        realized = ZERO
        if self.net == 0 or (self.net > 0) == (quantity > 0):
            total = self.net + quantity
            self.average = (self.average * abs(self.net) + price * abs(quantity)) / abs(total)
            self.net = total
        else:
            closing = min(abs(quantity), abs(self.net))
            direction = 1 if self.net > 0 else -1
            realized = closing * (price - self.average) * direction * multiplier
            flipped = abs(quantity) > abs(self.net)
            self.net += quantity
            if self.net == 0:
                self.average = ZERO
            elif flipped:
                self.average = price
        self.realized += realized
        return realized

    def open_pnl(self, price: Decimal) -> Decimal:
        return self.net * (price - self.average) * CONTRACTS[self.contract].multiplier


@dataclass(frozen=True, slots=True)
class Fill:
    """One fill of an order [I]: this fill's quantity, its price and when it happened."""

    fill_id: str
    quantity: Decimal
    price: Decimal
    time_ms: int


@dataclass(slots=True)
class Order:
    number: str
    account: str
    entered_by: str
    contract: str
    side: Side | None
    quantity: Decimal
    order_type: OrderKind | None
    life_time: LifeTime | None
    #: Limit price (LMT), stop price (STOP, STWL); None for MKT.
    price: Decimal | None
    #: The limit of a STWL until it triggers.
    limit: Decimal | None
    good_till_date: int
    order_date_ms: int
    status: str
    filled: Decimal = ZERO
    average_fill: Decimal | None = None
    fills: list[Fill] = field(default_factory=list)

    def describe(self) -> str:
        parts = [f"#{self.number}", self.side or "?", quantity_text(self.quantity), self.contract]
        parts.append(self.order_type or "?")
        if self.price is not None:
            parts.append(format_price(self.contract, self.price))
        if self.limit is not None:
            parts += ["LMT", format_price(self.contract, self.limit)]
        parts.append(self.life_time or "?")
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class PositionView:
    account: str
    contract: str
    net: Decimal
    average: Decimal
    open_pnl: Decimal
    realized: Decimal


@dataclass(frozen=True, slots=True)
class AccountView:
    number: str
    name: str
    currency: str
    balance: Decimal
    equity: Decimal
    margin: Decimal
    available: Decimal
    open_pnl: Decimal
    realized: Decimal
    is_live: bool


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """An order update; the server sends it as an Order followed by its text notification."""

    order: Order  # a copy taken when it happened
    #: The activity-log action ("Place", "Cancel", "Replace", "Fill", "Reject", "Expire"),
    #: or "" for updates that are not activity (Working, stop triggered).
    action: str
    headline: str
    detail: str
    kind: TextKind = "Order"

    @property
    def account(self) -> str:
        return self.order.account

    @property
    def body(self) -> str:
        return f"{self.headline}\n{self.detail}\nAccount #{self.account}"


@dataclass(frozen=True, slots=True)
class TextEvent:
    """A text notification with no order update: the reject of a cancel or a replace."""

    account: str
    headline: str
    detail: str
    kind: TextKind = "Error"

    @property
    def body(self) -> str:
        return f"{self.headline}\n{self.detail}\nAccount #{self.account}"


@dataclass(frozen=True, slots=True)
class PositionEvent:
    position: PositionView

    @property
    def account(self) -> str:
        return self.position.account


@dataclass(frozen=True, slots=True)
class AccountEvent:
    view: AccountView

    @property
    def account(self) -> str:
        return self.view.number


Event = OrderEvent | TextEvent | PositionEvent | AccountEvent


@dataclass(frozen=True, slots=True)
class OrderSpec:
    """An order as a request specifies it (place or the new side of a cancel-replace)."""

    contract: str
    side: Side | None
    quantity: str
    order_type: OrderKind | None
    life_time: LifeTime | None
    price: str = ""
    limit_price: str = ""
    good_till_date: int = 0


@dataclass(slots=True)
class Outcome:
    ok: bool
    order_number: str = ""
    events: list[Event] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Parsed:
    quantity: Decimal
    price: Decimal | None
    limit: Decimal | None


class Book:
    """The sandbox's accounts and orders; every change returns its events."""

    def __init__(self, market: Market) -> None:
        self.market = market
        self.passwords = {user: password for user, password, _ in USERS}
        self.user_accounts = {user: list(accounts) for user, _, accounts in USERS}
        self.accounts = {
            number: Account(number, owner, name, currency, D(balance))
            for number, owner, name, currency, balance in ACCOUNTS
        }
        self.hash_scheme = "sha256"
        self.orders: dict[str, Order] = {}
        self.positions: dict[tuple[str, str], Position] = {}
        self._working: dict[str, Order] = {}
        self._numbers = itertools.count(FIRST_ORDER_NUMBER)
        self._fill_numbers = itertools.count(FIRST_FILL_NUMBER)
        #: The most one matching round fills of an order (None: the whole order).
        self.max_fill_quantity: Decimal | None = None

    # -- reads ------------------------------------------------------------------------

    def check_password(self, user: str, hashed: str) -> bool:
        password = self.passwords.get(user)
        if password is None:
            return False
        return password_hash(password, self.hash_scheme) == hashed.strip().lower()

    def owns(self, user: str, account: str) -> bool:
        return account in self.user_accounts.get(user, ())

    def orders_of(self, account: str) -> list[Order]:
        return [o for o in self.orders.values() if o.account == account]

    def positions_of(self, account: str) -> list[PositionView]:
        return [self._position_view(p) for p in self.positions.values() if p.account == account]

    def account_view(self, number: str) -> AccountView:
        account = self.accounts[number]
        held = [p for p in self.positions.values() if p.account == number]
        open_pnl = sum((p.open_pnl(self.market.price(p.contract)) for p in held), ZERO)
        margin = sum((abs(p.net) * CONTRACTS[p.contract].margin for p in held), ZERO)
        equity = account.balance + open_pnl
        return AccountView(
            number=number,
            name=account.name,
            currency=account.currency,
            balance=account.balance,
            equity=equity,
            margin=margin,
            available=equity - margin,
            open_pnl=open_pnl,
            realized=account.realized,
            is_live=account.is_live,
        )

    # -- order entry ------------------------------------------------------------------

    def place(self, user: str, account: str, spec: OrderSpec, now_ms: int) -> Outcome:
        """Place on ``account`` (the caller checked it belongs to ``user``)."""
        number = self._next_number()
        parsed, reason = self._validate(spec, now_ms)
        if parsed is not None:
            reason = self._pre_trade(account, spec, parsed.quantity)
        order = self._new_order(number, user, account, spec, parsed, now_ms)
        if parsed is None or reason:
            order.status = REJECTED
            self.orders[number] = order
            event = OrderEvent(_copy(order), "Reject", "Order rejected", reason, "Error")
            return Outcome(False, number, [event])
        events = self._enter(order, "Place", "Order placed", order.describe(), now_ms)
        return Outcome(True, number, events)

    def reject_place(self, user: str, account: str, spec: OrderSpec, reason: str) -> Outcome:
        """Reject a placement for a reason found outside the book (a foreign account)."""
        number = self._next_number()
        order = self._new_order(number, user, account, spec, None, 0)
        order.status = REJECTED
        self.orders[number] = order
        event = OrderEvent(_copy(order), "Reject", "Order rejected", reason, "Error")
        return Outcome(False, number, [event])

    def cancel(
        self, user: str, account: str, order_id: str, headline: str = "Cancel order rejected"
    ) -> Outcome:
        """Cancel one working order of ``user``; ``account`` names the reject's account."""
        order, reason = self._working_order(user, order_id, PARTIALLY_FILLED)
        if order is None:
            return Outcome(False, order_id, [TextEvent(account, headline, reason)])
        return Outcome(True, order_id, self._cancel(order, order.describe()))

    def cancel_many(self, user: str, account: str, order_ids: Iterable[str]) -> Outcome:
        """Cancel each listed order; FAILED (with a reject text each) if any could not be."""
        ids = list(dict.fromkeys(order_ids))
        if not ids:
            return Outcome(
                False, "", [TextEvent(account, "Cancel orders rejected", "No order ids")]
            )
        outcome = Outcome(True)
        for order_id in ids:
            one = self.cancel(user, account, order_id, "Cancel orders rejected")
            outcome.ok = outcome.ok and one.ok
            outcome.events += one.events
        return outcome

    def cancel_for_contract(self, account: str, contract: str) -> Outcome:
        """Cancel every working order of ``account`` in ``contract`` (none is fine)."""
        if contract not in CONTRACTS:
            headline = "Cancel orders for contract rejected"
            return Outcome(
                False, "", [TextEvent(account, headline, f"Invalid contract: {contract}")]
            )
        outcome = Outcome(True)
        for order in list(self._working.values()):
            if order.account == account and order.contract == contract:
                outcome.events += self._cancel(order, order.describe())
        return outcome

    def replace(
        self,
        user: str,
        account: str,
        order_id: str,
        spec: OrderSpec,
        now_ms: int,
        *,
        keep_number: bool = False,
    ) -> Outcome:
        """Cancel a working order and enter ``spec`` in its place, on the same account
        (``keep_number``: change the order itself, which keeps its number)."""
        headline = "Cancel/replace order rejected"
        old, reason = self._working_order(user, order_id)
        parsed: _Parsed | None = None
        if old is not None:
            parsed, reason = self._validate(spec, now_ms)
        if old is not None and parsed is not None:
            reason = self._pre_trade(old.account, spec, parsed.quantity, replacing=old.number)
        if old is None or parsed is None or reason:
            where = old.account if old is not None else account
            return Outcome(False, "", [TextEvent(where, headline, reason)])
        if keep_number:
            new = self._new_order(old.number, user, old.account, spec, parsed, old.order_date_ms)
            new.status = WORKING
            self.orders[new.number] = self._working[new.number] = new
            detail = f"#{new.number} replaced: {new.describe()}"
            events: list[Event] = [OrderEvent(_copy(new), "Replace", "Order replaced", detail)]
            return Outcome(True, new.number, events + self._execute(new, now_ms))
        number = self._next_number()
        events = self._cancel(old, f"#{old.number} replaced by #{number}")
        new = self._new_order(number, user, old.account, spec, parsed, now_ms)
        detail = f"#{number} replaces #{old.number}: {new.describe()}"
        events += self._enter(new, "Replace", "Order replaced", detail, now_ms)
        return Outcome(True, number, events)

    # -- the market moved -------------------------------------------------------------

    def match(self, now_ms: int) -> list[Event]:
        """Expire GTD orders past their date, then fill or trigger what the prices allow."""
        events: list[Event] = []
        for order in list(self._working.values()):
            if order.life_time == "GTD" and now_ms >= order.good_till_date:
                order.status = EXPIRED
                del self._working[order.number]
                events.append(OrderEvent(_copy(order), "Expire", "Order expired", order.describe()))
            else:
                events += self._execute(order, now_ms)
        return events

    # -- internals ----------------------------------------------------------------------

    def _next_number(self) -> str:
        return str(next(self._numbers))

    def _new_order(
        self,
        number: str,
        user: str,
        account: str,
        spec: OrderSpec,
        parsed: _Parsed | None,
        now_ms: int,
    ) -> Order:
        return Order(
            number=number,
            account=account,
            entered_by=user,
            contract=spec.contract,
            side=spec.side,
            quantity=parsed.quantity if parsed else parse_decimal(spec.quantity) or ZERO,
            order_type=spec.order_type,
            life_time=spec.life_time,
            price=parsed.price if parsed else None,
            limit=parsed.limit if parsed else None,
            good_till_date=spec.good_till_date,
            order_date_ms=now_ms,
            status=NEW,
        )

    def _validate(self, spec: OrderSpec, now_ms: int) -> tuple[_Parsed | None, str]:
        """The parsed order, or None and the reason QST's reject text gives."""
        if spec.contract not in CONTRACTS:
            return None, f"Invalid contract: {spec.contract}"
        if spec.side is None:
            return None, "Invalid side"
        quantity = parse_decimal(spec.quantity)
        if quantity is None or quantity <= 0:
            return None, f"Invalid quantity: {spec.quantity}"
        if spec.order_type is None:
            return None, "Invalid order type"
        if spec.life_time is None:
            return None, "Invalid order life time"
        price = limit = None
        if spec.order_type != "MKT":
            if not spec.price.strip():
                return None, f"Price is required for {spec.order_type} orders"
            price = parse_decimal(spec.price)
            if price is None or price <= 0 or not on_tick_grid(spec.contract, price):
                return None, f"Invalid price: {spec.price}"
        if spec.order_type == "STWL":
            if not spec.limit_price.strip():
                return None, "Limit price is required for STWL orders"
            limit = parse_decimal(spec.limit_price)
            if limit is None or limit <= 0 or not on_tick_grid(spec.contract, limit):
                return None, f"Invalid limit price: {spec.limit_price}"
        if spec.life_time == "GTD":
            if spec.good_till_date <= 0:
                return None, "Good till date is required for GTD orders"
            if spec.good_till_date <= now_ms:
                return None, "Good till date is in the past"
        return _Parsed(quantity, price, limit), ""

    def _pre_trade(
        self, account: str, spec: OrderSpec, quantity: Decimal, *, replacing: str = ""
    ) -> str:
        """The reason the size or buying-power check refuses the order, or ""."""
        contract = CONTRACTS[spec.contract]
        if quantity > contract.max_order_size:
            return (
                f"Order quantity {quantity_text(quantity)} exceeds the maximum order size"
                f" {contract.max_order_size} for {spec.contract}"
            )
        assert spec.side is not None  # validated
        working = [o for o in self._working.values() if o.account == account]
        kept = [o for o in working if o.number != replacing]
        before = self._initial_margin(account, working)
        after = self._initial_margin(account, kept, (spec.contract, spec.side, quantity))
        equity = self.account_view(account).equity
        if after > before and after > equity:
            return (
                f"Insufficient buying power: initial margin {after:.2f} USD"
                f" would exceed equity {equity:.2f} USD"
            )
        return ""

    def _initial_margin(
        self,
        account: str,
        working: list[Order],
        extra: tuple[str, Side, Decimal] | None = None,
    ) -> Decimal:
        """The account's initial margin should every working order (and ``extra``) fill."""
        pending = [(o.contract, o.side, o.quantity - o.filled) for o in working if o.side]
        if extra is not None:
            pending.append(extra)
        contracts = {c for c, _, _ in pending} | {
            c for (a, c), p in self.positions.items() if a == account and p.net
        }
        total = ZERO
        for symbol in contracts:
            position = self.positions.get((account, symbol))
            net = position.net if position is not None else ZERO
            buys = sum((q for c, side, q in pending if c == symbol and side == "BUY"), ZERO)
            sells = sum((q for c, side, q in pending if c == symbol and side == "SELL"), ZERO)
            total += CONTRACTS[symbol].margin * max(abs(net + buys), abs(net - sells))
        return total

    def _working_order(self, user: str, order_id: str, *also: str) -> tuple[Order | None, str]:
        order = self.orders.get(order_id)
        if order is None or not self.owns(user, order.account):
            return None, f"Order #{order_id} not found"
        if order.status != WORKING and order.status not in also:
            return None, f"Order #{order_id} is not working ({order.status})"
        return order, ""

    def _enter(
        self, order: Order, action: str, headline: str, detail: str, now_ms: int
    ) -> list[Event]:
        """Accept a new order: "New Order", then "Working" unless it fills at once."""
        self.orders[order.number] = order
        events: list[Event] = [OrderEvent(_copy(order), action, headline, detail)]
        order.status = WORKING
        working = OrderEvent(_copy(order), "", "Order working", order.describe())
        self._working[order.number] = order
        executed = self._execute(order, now_ms)
        triggered = any(isinstance(e, OrderEvent) and e.headline == TRIGGERED for e in executed)
        if order.status == WORKING or triggered:
            events.append(working)
        return events + executed

    def _cancel(self, order: Order, detail: str) -> list[Event]:
        order.status = CANCELED
        self._working.pop(order.number, None)
        return [OrderEvent(_copy(order), "Cancel", "Order canceled", detail)]

    def _execute(self, order: Order, now_ms: int) -> list[Event]:
        """Fill or trigger a working order if the current price allows it."""
        price = self.market.price(order.contract)
        buy = order.side == "BUY"
        events: list[Event] = []
        if order.order_type == "STWL":
            assert order.price is not None
            assert order.limit is not None
            if (price >= order.price) if buy else (price <= order.price):
                order.order_type, order.price, order.limit = "LMT", order.limit, None
                detail = f"#{order.number} is now LMT {format_price(order.contract, order.price)}"
                events.append(OrderEvent(_copy(order), "", TRIGGERED, detail))
        if order.order_type == "MKT":
            return events + self._fill(order, price, now_ms)
        assert order.price is not None
        if order.order_type == "LMT" and (
            (price <= order.price) if buy else (price >= order.price)
        ):
            return events + self._fill(order, price, now_ms)
        if order.order_type == "STOP" and (
            (price >= order.price) if buy else (price <= order.price)
        ):
            return events + self._fill(order, price, now_ms)
        return events

    def _fill(self, order: Order, price: Decimal, now_ms: int) -> list[Event]:
        quantity = order.quantity - order.filled
        if self.max_fill_quantity is not None:
            quantity = min(quantity, self.max_fill_quantity)
        fill = Fill(str(next(self._fill_numbers)), quantity, price, now_ms)
        order.fills.append(fill)
        before = order.filled
        order.filled = before + quantity
        order.average_fill = (
            price
            if order.average_fill is None
            else (order.average_fill * before + price * quantity) / order.filled
        )
        whole = order.filled == order.quantity
        order.status = FILLED if whole else PARTIALLY_FILLED
        if whole:
            self._working.pop(order.number, None)
        detail = (
            f"#{order.number} {order.side} {quantity_text(quantity)} {order.contract}"
            f" filled at {format_price(order.contract, price)}"
        )
        if not whole:
            detail += f" ({quantity_text(order.filled)} of {quantity_text(order.quantity)})"
        key = (order.account, order.contract)
        position = self.positions.setdefault(key, Position(order.account, order.contract))
        signed = quantity if order.side == "BUY" else -quantity
        realized = position.apply(signed, price)
        account = self.accounts[order.account]
        account.balance += realized
        account.realized += realized
        return [
            OrderEvent(
                _copy(order),
                "Fill",
                "Order filled" if whole else "Order partially filled",
                detail,
                "Fill",
            ),
            PositionEvent(self._position_view(position)),
            AccountEvent(self.account_view(order.account)),
        ]

    def _position_view(self, position: Position) -> PositionView:
        price = self.market.price(position.contract)
        return PositionView(
            account=position.account,
            contract=position.contract,
            net=position.net,
            average=position.average,
            open_pnl=position.open_pnl(price),
            realized=position.realized,
        )


def _copy(order: Order) -> Order:
    return dataclasses.replace(order, fills=list(order.fills))
