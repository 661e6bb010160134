"""Per-account ordered event fan-out with gap-revealing sequence numbers.

One :class:`AccountFeed` per QST account holds

* ``sequence``: the number of the account's last event.  It grows by one per event
  and never resets while the connector lives (reconnects included), so a client
  sees a gap as a jump;
* the latest state of every order it has seen, with the sequence number of the
  event that set it: what a new subscriber's snapshot is made of, and what a
  resynchronisation after a reconnect is diffed against (:func:`is_newer`);
* its subscribers, each a bounded queue.  Publishing is synchronous and does not
  await, so every subscriber gets every event in the same order, and one upstream
  notification costs one model conversion whatever the number of subscribers.

A subscription starts with ``ORDER_BOOK_SNAPSHOT`` events: one per working order,
carrying the sequence number of the event that put the order in its current state,
then (unless the last one already carries it) a closing snapshot event with no order
carrying the feed's current sequence.  Live events follow from ``sequence + 1``:
within a subscription numbers strictly increase; after the snapshot they grow by one.

A subscriber that falls more than ``max_lag`` events behind is cut off: its stream
ends with an error (RATE_LIMITED, ``details.reason = "SLOW_CONSUMER"``) instead of
silently missing events, and the client subscribes again for a fresh snapshot.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, Mapping
from datetime import UTC, datetime
from typing import Any

from gateway.contract import (
    Account,
    BrokerGraphError,
    Order,
    OrderEvent,
    OrderEventKind,
    OrderStatus,
    OrderType,
    Position,
    RateLimited,
    UpstreamUnavailable,
)

__all__ = ["RESTING", "AccountFeed", "Feeds", "Subscriber", "is_newer"]

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


class Subscriber:
    """One subscription's queue; iterate it with ``async for`` (see :meth:`AccountFeed.follow`)."""

    __slots__ = ("_error", "_events", "_max_lag", "_snapshot_left", "_waiter")

    def __init__(self, max_lag: int) -> None:
        self._events: deque[OrderEvent] = deque()
        self._max_lag = max_lag
        self._waiter: asyncio.Future[None] | None = None
        self._error: BrokerGraphError | None = None
        #: Snapshot events still queued: they do not count against ``max_lag``.
        self._snapshot_left = 0

    @property
    def lagging(self) -> int:
        """Live events queued and not yet taken."""
        return len(self._events) - self._snapshot_left

    def push(self, event: OrderEvent) -> bool:
        """Queue ``event``; False once the subscriber was cut off."""
        if self._error is not None:
            return False
        if self.lagging >= self._max_lag:
            self.fail(
                RateLimited(
                    f"this subscription fell more than {self._max_lag} events behind and was "
                    "ended; subscribe again for a fresh snapshot",
                    retry_after=0,
                    details={"reason": "SLOW_CONSUMER"},
                )
            )
            return False
        self._events.append(event)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        return True

    def prime(self, events: list[OrderEvent]) -> None:
        """Queue a snapshot; it does not count against the lag allowance."""
        self._events.extend(events)
        self._snapshot_left += len(events)

    def fail(self, error: BrokerGraphError) -> None:
        """End the stream with ``error``; what is still queued is dropped (a gap anyway)."""
        if self._error is None:
            self._error = error
            self._events.clear()
            self._snapshot_left = 0
            waiter = self._waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    async def next(self) -> OrderEvent:
        while not self._events:
            if self._error is not None:
                raise self._error
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if self._snapshot_left:
            self._snapshot_left -= 1
        return self._events.popleft()


class AccountFeed:
    """The events of one account; see the module docstring."""

    def __init__(self, platform: str, account_id: str, *, max_lag: int = 1000) -> None:
        self.platform = platform
        self.account_id = account_id
        self.max_lag = max_lag
        self.sequence = 0
        #: order id -> (sequence of the event that set this state, the state)
        self.orders: dict[str, tuple[int, Order]] = {}
        #: contract -> the latest net position
        self.positions: dict[str, Position] = {}
        self.account: Account | None = None
        #: Set once a full order book of the account was applied.
        self.loaded = False
        self._subscribers: dict[Subscriber, None] = {}

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def order(self, order_id: str) -> Order | None:
        entry = self.orders.get(order_id)
        return None if entry is None else entry[1]

    def working(self) -> list[Order]:
        entries = sorted(self.orders.values(), key=lambda e: e[0])
        return [order for _, order in entries if order.status in RESTING]

    # -- publishing ---------------------------------------------------------------------

    def publish(
        self,
        kind: OrderEventKind,
        *,
        order: Order | None = None,
        position: Position | None = None,
        account: Account | None = None,
        text: str | None = None,
        raw: Mapping[str, Any] | None = None,
    ) -> OrderEvent:
        """Number an event, remember the state it carries and hand it to every subscriber."""
        self.sequence += 1
        event = OrderEvent(
            platform=self.platform,
            account_id=self.account_id,
            sequence=self.sequence,
            kind=kind,
            at=_now(),
            order=order,
            position=position,
            account=account,
            text=text,
            raw=raw,
        )
        if order is not None:
            self.orders[order.id] = (self.sequence, order)
        if position is not None:
            self.positions[position.symbol] = position
        if account is not None:
            self.account = account
        dropped = [s for s in self._subscribers if not s.push(event)]
        for subscriber in dropped:
            self._subscribers.pop(subscriber, None)
        return event

    def apply_order(self, order: Order, kind: OrderEventKind | None = None) -> OrderEvent | None:
        """Publish ``order`` if it moves the order forward; None for stale or same states."""
        if not is_newer(self.order(order.id), order):
            return None
        if kind is None:
            previous = self.order(order.id)
            filled_before = previous.filled_quantity if previous is not None else 0
            kind = (
                OrderEventKind.FILL
                if order.filled_quantity > filled_before
                else OrderEventKind.ORDER
            )
        return self.publish(kind, order=order)

    # -- subscribing ---------------------------------------------------------------------

    def snapshot(self) -> list[OrderEvent]:
        """The working orders as ORDER_BOOK_SNAPSHOT events, ending at ``sequence``."""
        at = _now()
        events = [
            OrderEvent(
                platform=self.platform,
                account_id=self.account_id,
                sequence=sequence,
                kind=OrderEventKind.ORDER_BOOK_SNAPSHOT,
                at=at,
                order=order,
            )
            for sequence, order in sorted(
                (e for e in self.orders.values() if e[1].status in RESTING), key=lambda e: e[0]
            )
        ]
        if not events or events[-1].sequence != self.sequence:
            events.append(
                OrderEvent(
                    platform=self.platform,
                    account_id=self.account_id,
                    sequence=self.sequence,
                    kind=OrderEventKind.ORDER_BOOK_SNAPSHOT,
                    at=at,
                    text=f"order book snapshot: {len(events)} working orders",
                )
            )
        return events

    def subscribe(self) -> Subscriber:
        """A new subscriber, its queue primed with the snapshot (atomically: no await)."""
        subscriber = Subscriber(self.max_lag)
        subscriber.prime(self.snapshot())
        self._subscribers[subscriber] = None
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.pop(subscriber, None)

    async def follow(self) -> AsyncGenerator[OrderEvent, None]:
        """The snapshot, then live events, until the subscriber is cut off or leaves."""
        subscriber = self.subscribe()
        try:
            while True:
                yield await subscriber.next()
        finally:
            self.unsubscribe(subscriber)

    def end_all(self, error: BrokerGraphError) -> None:
        for subscriber in list(self._subscribers):
            subscriber.fail(error)
        self._subscribers.clear()


class Feeds:
    """The feeds of one connector, by account id."""

    def __init__(self, platform: str, *, max_lag: int = 1000) -> None:
        self.platform = platform
        self.max_lag = max_lag
        self._feeds: dict[str, AccountFeed] = {}

    def __getitem__(self, account_id: str) -> AccountFeed:
        feed = self._feeds.get(account_id)
        if feed is None:
            feed = self._feeds[account_id] = AccountFeed(
                self.platform, account_id, max_lag=self.max_lag
            )
        return feed

    def get(self, account_id: str) -> AccountFeed | None:
        return self._feeds.get(account_id)

    def loaded(self) -> list[AccountFeed]:
        return [f for f in self._feeds.values() if f.loaded]

    def close(self) -> None:
        for feed in self._feeds.values():
            feed.end_all(UpstreamUnavailable("the QST connector was closed"))
