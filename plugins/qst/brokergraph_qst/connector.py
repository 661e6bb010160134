"""The QST connector: order entry, order reads and the live order stream of QST's
Binary Order Routing API, over one :class:`~brokergraph_qst.session.QstSession`.

Models: a *trader* is the QST username of the configured credential, an *account* a
QST order-entry account of that user (the OE login lists them), positions are QST's
net positions (one per contract, id ``<account>:<contract>``), orders are keyed by
QST's order number.  Switching the session's current account is done here, as each
request needs it (see :class:`~brokergraph_qst.session.AccountGate`).

Order state is kept per account in :mod:`brokergraph_qst.streams`: every Order
notification moves it forward (never back: a crossed, stale order book is ignored),
every order book read is diffed against it, and so is the snapshot taken after each
reconnect — which is how a change made while the connection was down still reaches
subscribers, once, in order.  Every event goes onto the gateway's event log (one
appender per session, in arrival order: :mod:`brokergraph_qst.appender`), which
numbers it per account once for the whole cluster; subscriptions read the log.
A replica that takes the session over (a cluster lease) starts from the accounts'
saved records (:mod:`brokergraph_qst.records`) before it logs in, and loads the
book of each of them once logged in: a hand-over adds only what changed meanwhile.

Writes return when QST has acknowledged them: the response *and* the order
notification that follows (placeOrder: the first one, with the order number of the
PlaceOrderResponse; cancels: the canceled state).  That the response carries the
new order's number is our reading [I]; QST's workflow reads the order book "to get
the id of last placed request" [V].  A placement or replacement accepted without a
number is found that way: the one order in the book, new since just before it was
sent, with its exact specification; from then on this account's placements are sent
one at a time, each between two book reads.  No such order, or several, is an
unknown outcome (the gateway settles it by reading), never a guess.  Rejects arrive
as a FAILED status and an error text notification;
:data:`brokergraph_qst.session.SERVER_ERRORS` maps their text to our errors.
Settings: :class:`brokergraph_qst.settings.QstSettings`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from typing import ClassVar

from brokergraph_qst import convert, wire
from brokergraph_qst.appender import EventAppender
from brokergraph_qst.records import RecordSaver, record_id, restore, saved_records
from brokergraph_qst.session import QstSession, refusal
from brokergraph_qst.settings import QstSettings
from brokergraph_qst.streams import RESTING, AccountFeed, Feeds, follow_account, snapshot_of
from gateway.contract import (
    Account,
    AccountReads,
    BrokerGraphError,
    CancelOrdersRequest,
    Capability,
    Connector,
    ConnectorContext,
    ConnectorHealth,
    HealthStatus,
    NotFound,
    Order,
    OrderEvent,
    OrderEventKind,
    OrderReads,
    OrderRouting,
    OrderStatus,
    OrderStream,
    OrderType,
    PlaceOrderRequest,
    Position,
    ReplaceOrderRequest,
    Trader,
    UpstreamRejected,
    UpstreamTimeout,
    read,
)

__all__ = ["QstConnector"]

PLATFORM = wire.PLATFORM
TERMINAL = frozenset(OrderStatus) - RESTING
#: How long a refusal waits for the error text that says why.
REASON_WAIT_SECONDS = 2.0
#: Reject reasons remembered for order reads (the order book does not carry them).
MAX_REJECT_REASONS = 10_000
#: How long closing waits for the events still queued for the event log.
DRAIN_SECONDS = 5.0
#: How long starting may spend taking the previous holder's records over.
RESTORE_SECONDS = 10.0


class QstConnector(Connector, AccountReads, OrderReads, OrderRouting, OrderStream):
    name: ClassVar[str] = "qst"
    platform: ClassVar[str] = PLATFORM
    version: ClassVar[str] = "0.1.0"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.ACCOUNT_READS,
            Capability.ORDER_READS,
            Capability.ORDER_ROUTING,
            Capability.ORDER_STREAM,
        }
    )
    #: QST closes an older session of the same login (4101): one replica holds it.
    single_session: ClassVar[bool] = True

    def __init__(self, context: ConnectorContext) -> None:
        super().__init__(context)
        self._log = context.logger
        self.settings = QstSettings.from_section(context.name, context.settings)
        self._session: QstSession | None = None
        self._closed = False
        self.feeds = Feeds(PLATFORM)
        self._appender = EventAppender(context.events, self._log)
        self._records = RecordSaver(
            context.store, context.name, lambda a: self.feeds[a].record(), self._log
        )
        self._load_locks: dict[str, asyncio.Lock] = {}
        self._waiters: dict[str, list[tuple[Callable[[Order], bool], asyncio.Future[Order]]]] = {}
        #: Error texts as they arrive: (arrival number, notice), for refusals to explain.
        self._errors: deque[tuple[int, wire.TextNotice]] = deque(maxlen=256)
        self._error_numbers = itertools.count(1)
        self._last_error_number = 0
        self._error_waiters: list[asyncio.Future[None]] = []
        #: Why an order was rejected (the text that follows its Rejected notification).
        self._reject_reasons: dict[str, str] = {}
        self._last_rejected: dict[str, str] = {}
        #: Changes found by diffing order books after a reconnect (tests, README).
        self.resync_changes = 0
        self._poller: asyncio.Task[None] | None = None
        #: QST accepted a placement without saying its number (see the module docstring).
        self.numberless = False
        self._placing: dict[str, asyncio.Lock] = {}

    # -- lifecycle ----------------------------------------------------------------------

    def session_identity(self) -> str:
        return f"{self.settings.url} {self.settings.username}"

    @property
    def session(self) -> QstSession:
        if self._session is None:
            raise RuntimeError("the QST connector is not started")
        return self._session

    @property
    def username(self) -> str:
        return self.session.config.username

    async def start(self) -> None:
        self._appender.start()
        self._records.start()
        # Before logging in: no notification may be numbered before the state it moves.
        await self._restore()
        self._session = QstSession(
            self.settings.session_config(),
            on_notice=self._on_notice,
            on_ready=self._resync,
            logger=self._log,
        )
        await self._session.start()
        if self.settings.poll_followed_seconds is not None:
            self._poller = asyncio.create_task(
                self._poll_followed(self.settings.poll_followed_seconds), name="qst-poll"
            )

    async def close(self) -> None:
        self._closed = True
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        if self._session is not None:
            await self._session.close()
        # After the session: no event comes any more, and what came reaches the log
        # before the session is handed over to another replica.
        await self._appender.close(DRAIN_SECONDS)
        await self._records.close(DRAIN_SECONDS)

    async def _restore(self) -> None:
        """Take over the accounts a previous holder of the session logged (their saved
        records), so that their first order books here add only what changed."""
        restored: list[str] = []
        try:
            async with asyncio.timeout(RESTORE_SECONDS):
                for account_id, record in await saved_records(
                    self.context.store, self.context.name
                ):
                    if await restore(self.feeds[account_id], record, self.context.events):
                        restored.append(account_id)
        except Exception as error:  # the store or log unreachable: the rest start afresh
            self._log.warning("QST: taking the saved order books over stopped: %r", error)
        if restored:
            self._log.info("QST: took over the logged order books of %s", ", ".join(restored))

    async def health(self) -> ConnectorHealth:
        session = self._session
        if session is None:
            return ConnectorHealth(status=HealthStatus.DOWN, detail="not started")
        if session.ready:
            return ConnectorHealth(status=HealthStatus.UP)
        if session.busy or not session.logged_in_once:
            error = session.last_error
            detail = error.code if error is not None else session.state.value
            return ConnectorHealth(status=HealthStatus.DOWN, detail=detail)
        # Was logged in, is reconnecting: streams continue once it is back.
        return ConnectorHealth(status=HealthStatus.DEGRADED, detail="RECONNECTING")

    # -- notifications (called in arrival order by the session's reader) ---------------

    def _on_notice(self, notice: wire.Notice) -> None:
        if isinstance(notice, wire.OrderNotice):
            self._on_order(notice.order)
        elif isinstance(notice, wire.TextNotice):
            self._on_text(notice)
        elif isinstance(notice, wire.PositionNotice):
            feed = self.feeds[notice.position.account_id]
            position = self._position(feed, notice.position)
            self._emit(feed, feed.event(OrderEventKind.POSITION, position=position))
        elif isinstance(notice, wire.AccountInfoNotice):
            feed = self.feeds[notice.info.account_id]
            account = self._account(notice.info)
            self._emit(feed, feed.event(OrderEventKind.ACCOUNT, account=account))
        else:  # account status (login, switch, logout) and connection status: session noise
            self._log.debug("QST notice %r", notice)

    def _on_order(self, order: Order) -> None:
        if order.status is OrderStatus.REJECTED:
            self._last_rejected[order.account_id] = order.id
        self._apply(self.feeds[order.account_id], order)

    def _emit(
        self, feed: AccountFeed, event: OrderEvent, positions: Sequence[Position] = ()
    ) -> None:
        """Queue ``event`` for the event log, which numbers it (in arrival order);
        ``positions``: see :meth:`AccountFeed.logged`."""

        def logged(sequence: int) -> None:
            feed.logged(sequence, event, positions)
            snapshot = event.kind is OrderEventKind.ORDER_BOOK_SNAPSHOT
            if event.order or event.position or positions or snapshot:
                self._records.changed(feed.account_id)

        self._appender.put(feed.topic, event, logged)

    def _apply(self, feed: AccountFeed, order: Order, kind: OrderEventKind | None = None) -> bool:
        """Move an order forward (publishing it) and wake whoever waits on it."""
        event = feed.apply_order(order, kind)
        if event is not None:
            self._emit(feed, event)
        changed = event is not None
        state = feed.order(order.id) or order
        for predicate, future in self._waiters.get(order.id, ()):
            if not future.done() and predicate(state):
                future.set_result(state)
        return changed

    def _on_text(self, notice: wire.TextNotice) -> None:
        account = notice.account_id or self.session.home_account
        if account is None:
            self._log.info("QST text without an account: %s", notice.title)
            return
        raw = {"title": notice.title, "body": notice.body}
        feed = self.feeds[account]
        self._emit(feed, feed.event(OrderEventKind.TEXT, text=notice.body, raw=raw))
        if not notice.is_error:
            return
        rejected = self._last_rejected.pop(account, None)
        if rejected is not None and notice.reason:
            self._reject_reasons[rejected] = notice.reason
            if len(self._reject_reasons) > MAX_REJECT_REASONS:  # oldest first (dict order)
                del self._reject_reasons[next(iter(self._reject_reasons))]
        self._last_error_number = next(self._error_numbers)
        self._errors.append((self._last_error_number, notice))
        waiters, self._error_waiters = self._error_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    # -- conversions (brokergraph_qst.convert, with what only the session knows) ----------

    def _position(self, feed: AccountFeed, p: wire.NetPosition) -> Position:
        summary = self.session.accounts.get(p.account_id)
        currency = summary.currency if summary is not None else "USD"
        return convert.position(p, currency=currency, previous=feed.positions.get(p.contract))

    def _account(self, info: wire.AccountInfo) -> Account:
        summary = self.session.accounts.get(info.account_id)
        return convert.account(info, trader_id=self.username, summary=summary)

    def _with_reason(self, order: Order) -> Order:
        reason = self._reject_reasons.get(order.id)
        if reason is None or order.reject_reason is not None:
            return order
        return dataclasses.replace(order, reject_reason=reason)

    # -- order state --------------------------------------------------------------------

    def _reconcile(self, feed: AccountFeed, book: wire.OrderBook) -> list[Order]:
        """Apply an order book; publish what it changed; the merged orders, book order.

        The first book of a feed is its snapshot in the log — unless the feed took a
        previous holder's logged state over: then, like every later book, it is
        diffed and only what changed becomes an event.
        """
        first = not feed.loaded and not feed.seeded
        changes = 0
        for order in book.orders:
            kind = OrderEventKind.ORDER_BOOK_SNAPSHOT if first else None
            if self._apply(feed, order, kind):
                changes += 1
        for net in book.positions:
            position = self._position(feed, net)
            previous = feed.positions.get(net.contract)
            same = previous is not None and (
                (previous.side, previous.volume, previous.open_price)
                == (position.side, position.volume, position.open_price)
            )
            if first or same:
                feed.positions[net.contract] = position
            else:
                self._emit(feed, feed.event(OrderEventKind.POSITION, position=position))
                changes += 1
        feed.loaded = True
        if first:
            # Closes the book in the log: what this replica logged is now the whole
            # account (the positions set above included), and a snapshot has a
            # sequence to continue from.
            text = f"order book loaded: {len(book.orders)} orders"
            event = feed.event(OrderEventKind.ORDER_BOOK_SNAPSHOT, text=text)
            self._emit(feed, event, list(feed.positions.values()))
        else:
            self.resync_changes += changes
        return [self._with_reason(feed.order(o.id) or o) for o in book.orders]

    async def _load_book(self, account_id: str, *, internal: bool = False) -> list[Order]:
        book = await self.session.call(wire.order_book(), account=account_id, internal=internal)
        return self._reconcile(self.feeds[account_id], book)

    async def _ensure_loaded(self, account_id: str) -> AccountFeed:
        feed = self.feeds[account_id]
        if feed.loaded:
            return feed
        lock = self._load_locks.setdefault(account_id, asyncio.Lock())
        async with lock:
            if not feed.loaded:
                await self._load_book(account_id)
        return feed

    async def _resync(self, session: QstSession, relogin: bool) -> None:
        """After every (re)login: snapshot the followed accounts and emit what changed.

        Followed accounts are those loaded here and those taken over from a previous
        holder: what changed there while no replica held the session reaches the log
        now, not when someone next asks.
        """
        home = session.home_account
        followed = self.feeds.followed()
        accounts = [f.account_id for f in followed if f.account_id in session.accounts]
        if home is not None and home not in accounts:
            accounts.append(home)
        accounts.sort(key=lambda a: a != home)  # the current account first: no switch
        for account in accounts:
            try:
                await self._load_book(account, internal=True)
            except NotFound:  # no longer this user's: nothing to follow there
                self._log.warning("QST account %s is gone; its feed is not resynchronised", account)
        if home is not None:
            await session.activate(home, internal=True)
        if relogin:
            self._log.info("QST resynchronised %d accounts after a reconnect", len(accounts))

    async def _poll_followed(self, interval: float) -> None:
        """For a QST that notifies only the session's current account (the setting says
        so; QST does not): every ``interval``, diff the book of each subscribed account,
        the current one last — it is switched away from meanwhile, and back to."""
        while True:
            await asyncio.sleep(interval)
            session = self._session
            if session is None or not session.ready:
                continue
            current = session.home_account
            others = [
                f.account_id
                for f in self.feeds.followed()
                if f.subscriber_count
                and f.account_id in session.accounts
                and f.account_id != current
            ]
            if not others:  # the current account's own notifications keep it live
                continue
            back = [current] if current is not None and current in session.accounts else []
            try:
                for account in others + back:
                    await self._load_book(account)
            except BrokerGraphError as error:  # the next round tries again
                self._log.info("QST: polling the followed books stopped: %s", error.message)

    async def _await_order(
        self, account_id: str, order_id: str, predicate: Callable[[Order], bool], what: str
    ) -> Order:
        current = self.feeds[account_id].order(order_id)
        if current is not None and predicate(current):
            return current
        future: asyncio.Future[Order] = asyncio.get_running_loop().create_future()
        entry = (predicate, future)
        self._waiters.setdefault(order_id, []).append(entry)
        try:
            async with asyncio.timeout(self.settings.ack_timeout_seconds):
                return await future
        except TimeoutError:
            raise UpstreamTimeout(
                f"QST acknowledged the request but sent no {what} of order {order_id} in time",
                details={"platform": PLATFORM, "orderId": order_id},
            ) from None
        finally:
            entries = self._waiters.get(order_id, [])
            if entry in entries:
                entries.remove(entry)
            if not entries:
                self._waiters.pop(order_id, None)

    async def _refusal(self, account_id: str, mark: int, order_id: str | None) -> BrokerGraphError:
        """The error for a FAILED status: from the error text QST sends with it."""
        deadline = time.monotonic() + REASON_WAIT_SECONDS
        while True:
            found = [
                n
                for number, n in self._errors
                if number > mark and (n.account_id in (None, account_id))
            ]
            if order_id is not None:
                found = [n for n in found if f"#{order_id}" in n.body] or found
            if found:
                notice = found[0]
                return refusal(notice.reason or notice.body)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return UpstreamRejected(
                    "QST refused the request without saying why", details={"platform": PLATFORM}
                )
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._error_waiters.append(waiter)
            try:
                async with asyncio.timeout(remaining):
                    await waiter
            except TimeoutError:
                pass

    # -- account reads --------------------------------------------------------------------

    async def get_traders(self, trader_ids: Sequence[str]) -> Sequence[Trader | None]:
        await self._ready()
        return [
            Trader(platform=PLATFORM, id=i, login=i) if i == self.username else None
            for i in trader_ids
        ]

    async def _ready(self) -> None:
        """Reads of what the OE login told us still need a logged-in session once."""
        if not self.session.accounts:
            await self.session.wait_ready()

    async def get_accounts(self, account_ids: Sequence[str]) -> Sequence[Account | None]:
        await self._ready()
        found: dict[str, Account] = {}
        for account_id in dict.fromkeys(account_ids):
            summary = self.session.accounts.get(account_id)
            if summary is None:
                continue
            info = await self.session.call(wire.account_info(summary.currency), account=account_id)
            found[account_id] = self._account(info)
        return [found.get(i) for i in account_ids]

    async def get_trader_accounts(self, trader_ids: Sequence[str]) -> Sequence[Sequence[Account]]:
        await self._ready()
        if self.username not in trader_ids:
            return [[] for _ in trader_ids]
        mine = [a for a in await self.get_accounts(list(self.session.accounts)) if a is not None]
        return [mine if i == self.username else [] for i in trader_ids]

    async def get_positions(self, account_ids: Sequence[str]) -> Sequence[Sequence[Position]]:
        await self._ready()
        found: dict[str, list[Position]] = {}
        for account_id in dict.fromkeys(account_ids):
            if account_id not in self.session.accounts:
                continue
            await self._load_book(account_id)
            positions = self.feeds[account_id].positions.values()
            found[account_id] = [p for p in positions if p.volume]
        return [found.get(i, []) for i in account_ids]

    # -- QST extras (the QstAccount GraphQL type) ----------------------------------------

    @read
    async def get_activity(self, account_id: str) -> list[wire.ActivityItem]:
        """The order activity log of an account (what QST recorded while subscribed)."""
        items: tuple[wire.ActivityItem, ...] = await self.session.call(
            wire.activity_items(), account=account_id
        )
        return list(items)

    @read
    async def get_account_information(self, account_id: str, currency: str) -> wire.AccountInfo:
        """QST's account information, money converted into ``currency`` (invalid: USD)."""
        info: wire.AccountInfo = await self.session.call(
            wire.account_info(currency), account=account_id
        )
        return info

    # -- order reads ------------------------------------------------------------------------

    async def get_orders(self, account_ids: Sequence[str]) -> Sequence[Sequence[Order]]:
        await self._ready()
        found: dict[str, list[Order]] = {}
        for account_id in dict.fromkeys(account_ids):
            if account_id in self.session.accounts:
                found[account_id] = await self._load_book(account_id)
        return [found.get(i, []) for i in account_ids]

    # -- order routing ----------------------------------------------------------------------

    async def place_order(self, request: PlaceOrderRequest) -> Order:
        account_id = request.account_id
        spec = wire.OrderSpec(
            contract=request.symbol,
            side=request.side,
            type=request.type,
            quantity=request.quantity,
            time_in_force=request.time_in_force,
            price=request.price,
            stop_price=request.stop_price,
            expires_at=request.expires_at,
        )
        feed = await self._ensure_loaded(account_id)
        async with self._one_placement(account_id):
            known = feed.order_count()
            mark = self._last_error_number
            placed: wire.Placed = await self.session.call(
                wire.place_order(spec), account=account_id
            )
            if placed.ok and not placed.order_number:
                return await self._identify(feed, spec, known)
        if not placed.order_number:
            raise await self._refusal(account_id, mark, None)
        order = await self._await_order(
            account_id, placed.order_number, lambda o: True, "notification"
        )
        if not placed.ok or order.status is OrderStatus.REJECTED:
            raise await self._refusal(account_id, mark, None)
        return order

    @contextlib.asynccontextmanager
    async def _one_placement(self, account_id: str) -> AsyncIterator[None]:
        """Once QST answered a placement without its number: one at a time per account,
        after a fresh book (so "new since" means new since this placement)."""
        if not self.numberless:
            yield
            return
        async with self._placing.setdefault(account_id, asyncio.Lock()):
            await self._load_book(account_id)
            yield

    async def _identify(self, feed: AccountFeed, spec: wire.OrderSpec, known: int) -> Order:
        """The order an accepted, unnumbered placement made: the only new one like it
        (``known``: the account's order count before the placement)."""
        if not self.numberless:
            self._log.warning("QST accepted an order without its number: reading the book")
            self.numberless = True
        account_id = feed.account_id
        book = await self._load_book(account_id)
        new = feed.orders_since(known)
        wanted = (spec.contract, spec.side, spec.type, spec.quantity, spec.price, spec.stop_price)
        found = [
            o
            for o in book
            if o.id in new
            and (o.symbol, o.side, o.type, o.quantity, o.price, o.stop_price) == wanted
        ]
        if len(found) == 1:
            return found[0]
        raise UpstreamTimeout(
            "QST accepted the order without its number and the order book does not tell"
            f" which it is ({len(found)} new orders like it); its outcome is unknown",
            details={"platform": PLATFORM, "accountId": account_id, "candidates": len(found)},
        )

    async def _cancelled(self, account_id: str, order_id: str) -> Order:
        return await self._await_order(
            account_id, order_id, lambda o: o.status in TERMINAL, "cancellation"
        )

    async def cancel_order(self, account_id: str, order_id: str) -> Order:
        await self._ensure_loaded(account_id)
        mark = self._last_error_number
        status: wire.Status = await self.session.call(
            wire.cancel_order(order_id), account=account_id
        )
        if not status.ok:
            raise await self._refusal(account_id, mark, order_id)
        return await self._cancelled(account_id, order_id)

    async def cancel_orders(self, request: CancelOrdersRequest) -> Sequence[Order]:
        account_id, ids = request.account_id, list(dict.fromkeys(request.order_ids))
        await self._ensure_loaded(account_id)
        mark = self._last_error_number
        status: wire.Status = await self.session.call(wire.cancel_orders(ids), account=account_id)
        if not status.ok:
            error = await self._refusal(account_id, mark, None)
            texts = " ".join(n.body for number, n in self._errors if number > mark)
            error.details["refusedOrderIds"] = [i for i in ids if f"#{i} " in texts] or ids
            raise error
        return list(await asyncio.gather(*(self._cancelled(account_id, i) for i in ids)))

    async def cancel_orders_for_contract(self, account_id: str, symbol: str) -> Sequence[Order]:
        await self._ensure_loaded(account_id)
        # A fresh book first: the working orders QST will cancel, even ones placed elsewhere.
        await self._load_book(account_id)
        expected = [o.id for o in self.feeds[account_id].working() if o.symbol == symbol]
        mark = self._last_error_number
        status: wire.Status = await self.session.call(
            wire.cancel_orders_for_contract(symbol), account=account_id
        )
        if not status.ok:
            raise await self._refusal(account_id, mark, None)
        return list(await asyncio.gather(*(self._cancelled(account_id, i) for i in expected)))

    async def replace_order(self, request: ReplaceOrderRequest) -> Order:
        account_id = request.account_id
        feed = await self._ensure_loaded(account_id)
        old = feed.order(request.order_id)
        if old is None or old.status not in RESTING:
            await self._load_book(account_id)
            old = feed.order(request.order_id)
        if old is None:
            raise NotFound("order not found", details={"platform": PLATFORM})
        price, stop_price = old.price, old.stop_price
        if request.price is not None and old.type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
            price = request.price
        if request.stop_price is not None and old.type in (OrderType.STOP, OrderType.STOP_LIMIT):
            stop_price = request.stop_price
        spec = wire.OrderSpec(
            contract=old.symbol,
            side=old.side,
            type=old.type,
            quantity=request.quantity or old.quantity,
            time_in_force=old.time_in_force,
            price=price,
            stop_price=stop_price,
            expires_at=old.expires_at,
        )
        async with self._one_placement(account_id):
            known = feed.order_count()
            mark = self._last_error_number
            placed: wire.Placed = await self.session.call(
                wire.cancel_replace_order(old.id, spec), account=account_id
            )
            if placed.ok and not placed.order_number:
                return await self._identify(feed, spec, known)
        if not placed.ok or not placed.order_number:
            raise await self._refusal(account_id, mark, old.id)
        if placed.order_number != old.id:
            return await self._await_order(
                account_id, placed.order_number, lambda o: True, "notification"
            )
        # Replaced in place (QST does not say a replacement gets a new number): the
        # order's state from before would answer at once; wait for the new one.
        wanted = (spec.quantity, spec.price, spec.stop_price)
        return await self._await_order(
            account_id,
            old.id,
            lambda o: o.status in TERMINAL or (o.quantity, o.price, o.stop_price) == wanted,
            "replacement",
        )

    # -- order stream -------------------------------------------------------------------------

    async def order_events(
        self, account_id: str, *, after: int | None = None
    ) -> AsyncIterator[OrderEvent]:
        """The account's events from the gateway's event log, numbered by it.

        Without ``after``: a snapshot of the working orders as of a logged sequence,
        then every event after it.  With ``after`` (the last sequence a subscriber
        got): what it missed — orders that reached a final state meanwhile included —
        then live events.  A reconnect of the session does not end the stream (the
        changes it missed follow once resynchronised).
        """
        snapshot: list[OrderEvent] = []
        if after is None:
            snapshot = await self._snapshot(account_id)
            after = snapshot[-1].sequence
        feed = self.feeds[account_id]
        feed.subscriber_count += 1
        try:
            events = follow_account(
                self.context.events,
                account_id,
                snapshot=snapshot,
                after=after,
                max_queue=self.settings.max_subscriber_lag,
            )
            async with contextlib.aclosing(events):
                async for event in events:
                    yield event
        finally:
            feed.subscriber_count -= 1

    async def _snapshot(self, account_id: str) -> list[OrderEvent]:
        """The working orders as logged, ending at the sequence to follow the log from."""
        if self._session is None or self._closed:  # another replica holds the session
            record = await self.context.store.get_flow(record_id(self.context.name, account_id))
            return snapshot_of(PLATFORM, account_id, record)
        await self._ready()
        self.session.known_account(account_id)
        feed = await self._ensure_loaded(account_id)
        # Everything noticed until now is in the log: the snapshot includes the book.
        await self._appender.drained()
        return feed.snapshot()
