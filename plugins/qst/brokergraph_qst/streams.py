"""Per-account order state, and the account's events as the gateway's event log holds them.

One :class:`AccountFeed` per QST account keeps two views of the account:

* the *live* state — every order as its latest notification left it, the net
  positions, the account information — moved forward synchronously as QST's
  notifications arrive (:func:`is_newer`: a crossed, stale order book is never
  applied).  Reads, writes waiting for their acknowledgement and the diff after a
  reconnect work on it;
* the *logged* state — the resting orders as of ``sequence``, the last event of the
  account the event log numbered for this connector.  The connector's one appender
  updates it after each append, so ``(logged orders, sequence)`` is always a
  consistent pair: what a new subscription's snapshot is made of.

Events are numbered by the log (:func:`topic_for` names the account's topic), once,
where they enter the cluster: :meth:`AccountFeed.event` makes them unnumbered
(``sequence`` 0).  A subscription (:func:`follow_account`) starts with
``ORDER_BOOK_SNAPSHOT`` events — one per resting order, carrying the sequence of the
event that put it in its current state, then (unless the last one already carries
it) a closing snapshot event with no order carrying ``sequence`` — and continues
with the log's entries after that sequence: none in between is lost or repeated.
A resume point instead of a snapshot replays what was missed from the log.  A
replica without the QST session takes its snapshot from the holder's saved
:meth:`AccountFeed.record` (:mod:`brokergraph_qst.records`): the same kind of pair.

The record also carries what the next holder of the session needs to go on where
the last one stopped (:meth:`AccountFeed.seed`): the ids of the orders logged in a
final state (bounded) and the net positions as logged.  A seeded feed's first order
book is then a diff like any reconnect's — only what changed becomes an event —
instead of a second snapshot of every order.
"""

from __future__ import annotations

import dataclasses
import enum
import itertools
from collections.abc import AsyncGenerator, Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from gateway.contract import (
    Account,
    EventLog,
    Execution,
    Money,
    Order,
    OrderEvent,
    OrderEventKind,
    OrderSide,
    OrderStatus,
    OrderType,
    Position,
    TimeInForce,
)

__all__ = [
    "RESTING",
    "AccountFeed",
    "Feeds",
    "follow_account",
    "is_newer",
    "snapshot_events",
    "snapshot_of",
    "topic_for",
]

RESTING = frozenset({OrderStatus.PENDING, OrderStatus.WORKING, OrderStatus.PARTIALLY_FILLED})
_RANK: Mapping[OrderStatus, int] = {
    OrderStatus.PENDING: 0,
    OrderStatus.WORKING: 1,
    OrderStatus.PARTIALLY_FILLED: 2,
    OrderStatus.FILLED: 3,
    OrderStatus.CANCELLED: 3,
    OrderStatus.REJECTED: 3,
    OrderStatus.EXPIRED: 3,
}
TERMINAL = 3
#: Orders logged in a final state remembered (and recorded) per account, newest kept;
#: the live state forgets an order when its id leaves this memory (a busy account's
#: feed would otherwise keep every order it ever had, for the life of the process).
MAX_FINISHED = 10_000


def topic_for(account_id: str) -> str:
    """The event-log topic of one QST account's order events."""
    return f"qst:orders:{account_id}"


def _fingerprint(order: Order) -> tuple[Any, ...]:
    return (
        order.status,
        order.filled_quantity,
        order.quantity,
        order.type,
        order.price,
        order.stop_price,
        order.average_fill_price,
    )


def is_newer(old: Order | None, new: Order) -> bool:
    """Whether ``new`` moves an order forward from ``old``.

    An order only moves forward: pending, working, partly filled, then one terminal
    state that never changes; its filled quantity never shrinks and a triggered
    stop-limit never turns back into one.  A stale view (an order book answered
    before a notification it crossed on the wire) is therefore never applied, and
    an identical one is not an event.
    """
    if old is None:
        return True
    if _fingerprint(old) == _fingerprint(new):
        return False
    old_rank, new_rank = _RANK[old.status], _RANK[new.status]
    if old_rank == TERMINAL or new_rank < old_rank:
        return False
    if new.filled_quantity < old.filled_quantity:
        return False
    return not (old.type is OrderType.LIMIT and new.type is OrderType.STOP_LIMIT)


def _now() -> datetime:
    return datetime.now(UTC)


class AccountFeed:
    """The state and events of one account; see the module docstring."""

    def __init__(self, platform: str, account_id: str) -> None:
        self.platform = platform
        self.account_id = account_id
        self.topic = topic_for(account_id)
        #: order id -> its live state, in the order first seen: the resting orders and
        #: at most MAX_FINISHED final ones (with those not logged yet)
        self.orders: dict[str, Order] = {}
        #: order id -> how many orders were seen here before it (a mark, see
        #: :meth:`orders_since`); ``_seen``: how many were, in all.
        self._numbers: dict[str, int] = {}
        self._seen = 0
        #: contract -> the latest net position
        self.positions: dict[str, Position] = {}
        self.account: Account | None = None
        #: Set once a full order book of the account was applied.
        self.loaded = False
        #: The last sequence the log gave this account's events here (None: none yet).
        self.sequence: int | None = None
        #: order id -> (sequence of the logged event that set it, the state): resting only.
        self._logged: dict[str, tuple[int, Order]] = {}
        #: Ids of orders logged in a final state, oldest first (at most MAX_FINISHED).
        self._finished: dict[str, None] = {}
        #: contract -> the net position as logged.
        self._logged_positions: dict[str, Position] = {}
        #: Set when the state was taken over from a saved record (:meth:`seed`).
        self.seeded = False
        #: Subscriptions following the account now.
        self.subscriber_count = 0

    def order(self, order_id: str) -> Order | None:
        return self.orders.get(order_id)

    def order_count(self) -> int:
        """How many orders the account has had here: a mark for :meth:`orders_since`."""
        return self._seen

    def orders_since(self, count: int) -> set[str]:
        """The ids of the orders first seen after ``order_count()`` was ``count``: the
        newest of :attr:`orders` (kept in the order first seen), read from the end (a
        copy of every id per placement cost a busy account time in proportion to its
        history)."""
        return set(
            itertools.takewhile(
                lambda order_id: self._numbers[order_id] >= count, reversed(self.orders)
            )
        )

    def _remember(self, order: Order) -> None:
        if order.id not in self.orders:
            self._numbers[order.id] = self._seen
            self._seen += 1
        self.orders[order.id] = order

    def working(self) -> list[Order]:
        return [order for order in self.orders.values() if order.status in RESTING]

    # -- events (unnumbered until the log numbers them) ----------------------------------

    def event(
        self,
        kind: OrderEventKind,
        *,
        order: Order | None = None,
        position: Position | None = None,
        account: Account | None = None,
        text: str | None = None,
        raw: Mapping[str, Any] | None = None,
    ) -> OrderEvent:
        """An event of the account, its state remembered as live; the log numbers it."""
        if order is not None:
            self._remember(order)
        if position is not None:
            self.positions[position.symbol] = position
        if account is not None:
            self.account = account
        return OrderEvent(
            platform=self.platform,
            account_id=self.account_id,
            sequence=0,
            kind=kind,
            at=_now(),
            order=order,
            position=position,
            account=account,
            text=text,
            raw=raw,
        )

    def apply_order(self, order: Order, kind: OrderEventKind | None = None) -> OrderEvent | None:
        """The event of ``order`` if it moves the order forward; None for stale or same states."""
        previous = self.order(order.id)
        if previous is None and order.id in self._finished:
            # Logged final by the previous holder of the session (a seeded feed has
            # no live state of it): known, and a final state never changes.
            self._remember(order)
            return None
        if not is_newer(previous, order):
            return None
        if kind is None:
            filled_before = previous.filled_quantity if previous is not None else 0
            kind = (
                OrderEventKind.FILL
                if order.filled_quantity > filled_before
                else OrderEventKind.ORDER
            )
        return self.event(kind, order=order)

    def logged(self, sequence: int, event: OrderEvent, positions: Iterable[Position] = ()) -> None:
        """The log numbered ``event`` ``sequence``: the logged state moves with it.

        ``positions`` are net positions the event stands for without carrying them
        (those an order book loaded first set without an event each).
        """
        self.sequence = sequence
        for position in (*positions, *((event.position,) if event.position else ())):
            self._logged_positions[position.symbol] = position
        order = event.order
        if order is None:
            return
        if order.status in RESTING:
            self._logged[order.id] = (sequence, order)
            return
        self._logged.pop(order.id, None)
        self._finished[order.id] = None
        if len(self._finished) > MAX_FINISHED:  # oldest first (dict order)
            forgotten = next(iter(self._finished))
            del self._finished[forgotten]
            if self.orders.pop(forgotten, None) is not None:
                del self._numbers[forgotten]

    def seed(self, record: Mapping[str, Any], tail: Iterable[tuple[int, OrderEvent]]) -> None:
        """Take over the logged state of a previous holder of the session.

        ``record`` is its last saved :meth:`record`, ``tail`` the events it logged
        after that record's sequence (the record is saved a moment after the log):
        the live state starts as the logged one, so the first order book is diffed
        against it and only what changed meanwhile becomes an event.
        """
        self.sequence = int(record["sequence"])
        for sequence, data in record["orders"]:
            order = _order_of(data)
            self._logged[order.id] = (int(sequence), order)
            self._remember(order)
        self._finished = dict.fromkeys(record.get("finished", ()))
        for data in record.get("positions", ()):
            position = _position_of(data)
            self._logged_positions[position.symbol] = self.positions[position.symbol] = position
        for sequence, event in tail:
            if event.order is not None:
                self._remember(event.order)
            if event.position is not None:
                self.positions[event.position.symbol] = event.position
            self.logged(sequence, event)
        self.seeded = True

    # -- subscribing ---------------------------------------------------------------------

    def snapshot(self) -> list[OrderEvent]:
        """The logged resting orders as ORDER_BOOK_SNAPSHOT events, ending at ``sequence``."""
        if self.sequence is None:
            raise RuntimeError("no event of this account was logged yet")
        return snapshot_events(self.platform, self.account_id, self._logged.values(), self.sequence)

    def record(self) -> dict[str, Any]:
        """The logged state as JSON: for replicas without the session (:func:`snapshot_of`)
        and for the next holder of it (:meth:`seed`)."""
        return {
            "sequence": self.sequence or 0,
            "orders": [[sequence, _json(order)] for sequence, order in self._logged.values()],
            "finished": list(self._finished),
            "positions": [_json(p) for p in self._logged_positions.values()],
        }


def snapshot_events(
    platform: str, account_id: str, orders: Iterable[tuple[int, Order]], sequence: int
) -> list[OrderEvent]:
    """``orders`` (with the sequence that set each) as a snapshot ending at ``sequence``."""
    at = _now()
    events = [
        OrderEvent(
            platform=platform,
            account_id=account_id,
            sequence=set_by,
            kind=OrderEventKind.ORDER_BOOK_SNAPSHOT,
            at=at,
            order=order,
        )
        for set_by, order in sorted(orders, key=lambda e: e[0])
    ]
    if not events or events[-1].sequence != sequence:
        events.append(
            OrderEvent(
                platform=platform,
                account_id=account_id,
                sequence=sequence,
                kind=OrderEventKind.ORDER_BOOK_SNAPSHOT,
                at=at,
                text=f"order book snapshot: {len(events)} working orders",
            )
        )
    return events


def snapshot_of(
    platform: str, account_id: str, record: Mapping[str, Any] | None
) -> list[OrderEvent]:
    """The snapshot a :meth:`AccountFeed.record` stands for (none: nothing logged yet)."""
    if record is None:
        return snapshot_events(platform, account_id, (), 0)
    orders = [(int(sequence), _order_of(data)) for sequence, data in record["orders"]]
    return snapshot_events(platform, account_id, orders, int(record["sequence"]))


_DECIMALS = ("quantity", "filled_quantity", "price", "stop_price", "average_fill_price")
_MOMENTS = ("expires_at", "created_at", "updated_at")
_ENUMS: Mapping[str, type[enum.Enum]] = {
    "side": OrderSide,
    "type": OrderType,
    "status": OrderStatus,
    "time_in_force": TimeInForce,
}
_POSITION_DECIMALS = ("volume", "open_price", "current_price")
_POSITION_MONEY = ("unrealized_pnl", "swap", "commission")


def _json(model: Order | Position) -> dict[str, Any]:
    """A model as JSON values (amounts as exact strings); ``raw`` is the vendor's, left out."""
    data: dict[str, Any] = {}
    for name in (f.name for f in dataclasses.fields(model) if f.name != "raw"):
        value = getattr(model, name)
        if isinstance(value, enum.Enum):
            value = value.value
        elif isinstance(value, Decimal):
            value = format(value, "f")
        elif isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, Money):
            value = {"amount": format(value.amount, "f"), "currency": value.currency}
        elif name == "executions" and value is not None:
            value = [
                [e.id, format(e.quantity, "f"), format(e.price, "f"), e.executed_at.isoformat()]
                for e in value
            ]
        data[name] = value
    return data


def _order_of(data: Mapping[str, Any]) -> Order:
    fields: dict[str, Any] = dict(data)
    for name in _DECIMALS:
        if fields.get(name) is not None:
            fields[name] = Decimal(fields[name])
    for name in _MOMENTS:
        if fields.get(name) is not None:
            fields[name] = datetime.fromisoformat(fields[name])
    for name, kind in _ENUMS.items():
        fields[name] = kind(fields[name])
    if fields.get("executions") is not None:
        fields["executions"] = tuple(
            Execution(
                id=fill_id,
                quantity=Decimal(quantity),
                price=Decimal(price),
                executed_at=datetime.fromisoformat(at),
            )
            for fill_id, quantity, price, at in fields["executions"]
        )
    return Order(**fields)


def _position_of(data: Mapping[str, Any]) -> Position:
    fields: dict[str, Any] = dict(data)
    for name in _POSITION_DECIMALS:
        if fields.get(name) is not None:
            fields[name] = Decimal(fields[name])
    for name in _POSITION_MONEY:
        if fields.get(name) is not None:
            fields[name] = Money(Decimal(fields[name]["amount"]), fields[name]["currency"])
    fields["opened_at"] = datetime.fromisoformat(fields["opened_at"])
    fields["side"] = OrderSide(fields["side"])
    return Position(**fields)


async def follow_account(
    log: EventLog,
    account_id: str,
    *,
    snapshot: Iterable[OrderEvent] = (),
    after: int,
    max_queue: int = 1000,
) -> AsyncGenerator[OrderEvent, None]:
    """``snapshot``, then the account's logged events after ``after``, each numbered
    by the log (the same on every replica), until the subscriber leaves."""
    for event in snapshot:
        yield event
    async with log.follow(topic_for(account_id), after=after, max_queue=max_queue) as entries:
        async for entry in entries:
            event = entry.event
            if isinstance(event, OrderEvent):
                yield dataclasses.replace(event, sequence=entry.sequence)


class Feeds:
    """The feeds of one connector, by account id."""

    def __init__(self, platform: str) -> None:
        self.platform = platform
        self._feeds: dict[str, AccountFeed] = {}

    def __getitem__(self, account_id: str) -> AccountFeed:
        feed = self._feeds.get(account_id)
        if feed is None:
            feed = self._feeds[account_id] = AccountFeed(self.platform, account_id)
        return feed

    def get(self, account_id: str) -> AccountFeed | None:
        return self._feeds.get(account_id)

    def followed(self) -> list[AccountFeed]:
        """Feeds whose account is followed: loaded here, or taken over (seeded)."""
        return [f for f in self._feeds.values() if f.loaded or f.seeded]
