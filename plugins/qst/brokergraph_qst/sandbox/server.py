"""The QST sandbox: a websockets server on a local port speaking our order-routing .proto.

One ClientMessage per binary frame in, one ServerMessage per binary frame out.  State
(book, sessions, the price path) lives on the sandbox object, so it survives client
disconnects and ``restart()``.  Knobs and counters are plain attributes.  It listens
on ``wss://`` with the process's sandbox certificate, as QST serves "Secure
WebSockets" [V]; ``plaintext`` (set before start) makes it ``ws://``.

The standard knobs, which the conformance kit drives on every sandbox alike:

* ``latency_seconds`` - each response waits this long (plus the jitter below).  The
  request is applied at once, as a busy QST would, so its notifications may come first.
* ``fail_next(n, status=503)`` - the next ``n`` requests are answered
  ``ServerErrorMessage("Internal server error (<status>)")`` [D] and not applied.
* ``drop_next(n, after_apply=False)`` - the connection drops (1011) before the next ``n``
  requests are answered; with ``after_apply=True`` each is applied first, and its
  answer and notifications are lost with the connection.
* ``reset()`` - every knob back to its constructor value, pending failures and drops
  forgotten.  The book is not re-seeded: order numbers must never repeat under a
  connected client (it keys orders by them); a fresh seed is a new sandbox.

``fail_next`` and ``drop_next`` count the requests of a logged-in session only, not the
login, OE login and logouts that set it up or end it, so a fault aimed at a read or a
write is not spent on the reconnect that an earlier drop caused.

QST's own knobs:

* ``response_jitter_seconds`` - each response waits ``uniform(0, jitter)`` seconds
  (seeded), so responses come out of order; notifications are never delayed.
  ``reordered_responses`` counts the responses that overtook an earlier request's,
  ``max_in_flight`` the most requests one connection had unanswered at once.
* ``echo_request_id`` - off: every response carries request_id 0, as QST's order
  routing may (its docs never mention the id; the market-data API echoes it) [I].
* ``order_number_in_response`` - off: PlaceOrderResponse and CancelReplaceOrderResponse
  carry no order number (the documented workflow reads it from the order book) [I].
* ``replace_keeps_number`` - on: a cancel-replace changes the order in place, keeping
  its number, instead of giving the replacement a new one [I].
* ``report_fills`` - off: Order messages carry no fills (QST's published example shows
  none); on (the default), each order lists its fills with id, quantity, price and time,
  our reading of the fill notifications QST sends [I] (``Fill`` in the .proto).
* ``max_fill_quantity`` - None (default): an order fills whole when its price is
  reached; a quantity: each matching round fills at most that much of it ("Partially
  Filled" until the rest fills, one ``Fill`` each) [D] — QST's matching is not
  documented, partial fills are (the JSON API's PF status [V]).
* ``status_texts`` - order status display texts renamed on the wire, e.g. to the codes
  of QST's JSON API ({"Working": "N", "Canceled": "CXL", ...}) [I].
* ``hash_scheme`` - how logins must hash the password: "sha256" (hex, our reading
  of QST's "hash_password" [I]) or "md5".
* ``notify_current_account_only`` - on: a user's connection gets the notifications of
  its current account only (QST does not say whether the others' come) [I];
  ``withheld_notifications`` counts those not sent.
* ``tick_seconds`` - the price path steps this often (``<= 0``: only ``set_price`` moves).
* ``slow_consumer_limit`` - frames a connection may have waiting before it is dropped (4102).
* ``on_emit(order_number, perf_counter())`` - right before an Order notification is sent.
* ``drop_connections()`` - close every client socket with 1011, keep serving.
* ``set_price(contract, price)`` - move a price now and fill what it crosses.
* ``requests`` (Counter by request name, e.g. "PlaceOrderRequest"), ``connections``
  (int, accepted WebSocket connections), ``closes`` (Counter of the close codes the
  sandbox initiated: 1000, 4001, 4101, 4102, 1011, ...; not the 1001 of ``stop()``).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, ClassVar

from google.protobuf.message import DecodeError
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from brokergraph_qst._proto import order_routing_pb2 as pb
from brokergraph_qst.sandbox.book import HASH_SCHEMES, Book, Event, OrderEvent
from brokergraph_qst.sandbox.handler import ConnectionHandler, Drop, Fail, Fault
from brokergraph_qst.sandbox.market import Market
from brokergraph_qst.sandbox.outbox import Outbox
from brokergraph_qst.sandbox.session import ActivityItem, UserSession
from gateway.contract.sandbox import DemoLink, Sandbox

CLIENT_UNIQUE_ID = "6a1f0c1e-0000-4000-8000-000000000001"
#: Seconds a server-side close waits for the client's close frame before dropping TCP.
CLOSE_TIMEOUT = 5.0


class QstSandbox(Sandbox):
    """QST Binary Order Routing on 127.0.0.1 (see the package docstring for the rules)."""

    name: ClassVar[str] = "qst"

    def __init__(
        self,
        *,
        seed: int = 1,
        latency_seconds: float = 0.0,
        response_jitter_seconds: float = 0.0,
        tick_seconds: float = 0.2,
        slow_consumer_limit: int = 1000,
        echo_request_id: bool = True,
        order_number_in_response: bool = True,
        replace_keeps_number: bool = False,
        notify_current_account_only: bool = False,
        report_fills: bool = True,
        max_fill_quantity: Decimal | None = None,
        hash_scheme: str = "sha256",
        status_texts: Mapping[str, str] | None = None,
    ) -> None:
        if hash_scheme not in HASH_SCHEMES:
            raise ValueError(f"hash_scheme must be one of {HASH_SCHEMES}")
        self.seed = seed
        self._knobs = (
            latency_seconds,
            response_jitter_seconds,
            tick_seconds,
            slow_consumer_limit,
            echo_request_id,
            order_number_in_response,
            replace_keeps_number,
            notify_current_account_only,
            hash_scheme,
            dict(status_texts or {}),
            report_fills,
            max_fill_quantity,
        )
        self.latency_seconds = latency_seconds
        self.response_jitter_seconds = response_jitter_seconds
        self.tick_seconds = tick_seconds
        self.slow_consumer_limit = slow_consumer_limit
        self.echo_request_id = echo_request_id
        self.order_number_in_response = order_number_in_response
        self.replace_keeps_number = replace_keeps_number
        self.notify_current_account_only = notify_current_account_only
        self.report_fills = report_fills
        self.withheld_notifications = 0
        self.status_texts: dict[str, str] = dict(status_texts or {})
        self.reordered_responses = 0
        self.max_in_flight = 0
        self.on_emit: Callable[[str, float], None] | None = None
        self._faults: list[Fault] = []
        self.requests: Counter[str] = Counter()
        self.connections = 0
        self.closes: Counter[int] = Counter()
        self.market = Market(seed)
        self.book = Book(self.market)
        self.book.hash_scheme = hash_scheme
        self.book.max_fill_quantity = max_fill_quantity
        self.sessions: dict[str, UserSession] = {}
        self._active: dict[str, ConnectionHandler] = {}
        self._handlers: set[ConnectionHandler] = set()
        self._jitter = random.Random(seed)  # noqa: S311 - delays, not secrets
        self._server: Server | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._host = "127.0.0.1"
        self._port: int | None = None

    # -- the Sandbox contract -------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        certificate = self.certificate  # wss:// like QST, unless plaintext
        self._server = await serve(
            self._serve,
            host,
            port,
            compression=None,
            close_timeout=CLOSE_TIMEOUT,
            ssl=None if certificate is None else certificate.server_context(),
        )
        self._host = host
        self._port = self._server.sockets[0].getsockname()[1]
        if self.tick_seconds > 0:
            self._ticker = asyncio.create_task(self._tick())

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def restart(self) -> None:
        """Stop (clients see 1001) and listen again on the same port, keeping all state."""
        port = self._port or 0
        await self.stop()
        await self.start(self._host, port)

    @property
    def url(self) -> str:
        if self._port is None:
            raise RuntimeError("the QST sandbox is not started")
        scheme = "ws" if self.plaintext else "wss"
        return f"{scheme}://{self._host}:{self._port}/"

    @property
    def port(self) -> int | None:
        return self._port

    def connector_settings(self) -> Mapping[str, Any]:
        return {
            "url": self.url,
            "username": "demo-trader",
            "password": "demo-pass",
            "client_unique_id": CLIENT_UNIQUE_ID,
            "order_entry_provider": "QOR",
            **self.tls_settings(),
        }

    def demo_links(self) -> Sequence[DemoLink]:
        return [
            DemoLink("DEMO-001", "trader", "demo-trader"),
            DemoLink("DEMO-001", "account", "297999", trader_id="demo-trader"),
            DemoLink("DEMO-001", "account", "297998", trader_id="demo-trader"),
            DemoLink("OTHER-001", "trader", "other-trader"),
            DemoLink("OTHER-001", "account", "400001", trader_id="other-trader"),
        ]

    # -- knobs ------------------------------------------------------------------------------

    def fail_next(self, n: int, status: int = 503) -> None:
        """The next ``n`` requests get a server error message and apply nothing."""
        self._faults.extend([Fail(status)] * n)

    def drop_next(self, n: int = 1, *, after_apply: bool = False) -> None:
        """The connection drops before the next ``n`` answers (after applying, if asked)."""
        self._faults.extend([Drop(after_apply)] * n)

    def reset(self) -> None:
        """Every knob back to its constructor value; pending faults forgotten (see above)."""
        (
            latency,
            jitter,
            tick,
            limit,
            echo,
            numbered,
            keeps,
            current_only,
            scheme,
            texts,
            fills,
            max_fill,
        ) = self._knobs
        self.latency_seconds = latency
        self.response_jitter_seconds = jitter
        self.tick_seconds = tick
        self.slow_consumer_limit = limit
        self.echo_request_id = echo
        self.order_number_in_response = numbered
        self.replace_keeps_number = keeps
        self.notify_current_account_only = current_only
        self.report_fills = fills
        self.book.max_fill_quantity = max_fill
        self.book.hash_scheme = scheme
        self.status_texts = dict(texts)
        self.on_emit = None
        self._faults.clear()
        self._jitter = random.Random(self.seed)  # noqa: S311 - delays, not secrets

    def drop_connections(self) -> asyncio.Future[list[None]]:
        """Close every client socket with 1011 and keep serving; awaiting is optional."""
        server = self._server
        connections = list(server.connections) if server is not None else []
        for handler in list(self._handlers):
            handler.outbox.drop(1011, "sandbox dropped the connection")
        return asyncio.gather(*(c.wait_closed() for c in connections))

    def set_price(self, contract: str, price: Decimal | str) -> None:
        """Set a contract's price and fill or trigger the orders it reaches, now."""
        self.market.set_price(contract, Decimal(price))
        self.route(self.book.match(self.now_ms()))

    # -- what connections need (handler.Hub) -----------------------------------------------------

    def attach(self, handler: ConnectionHandler, username: str) -> UserSession:
        """Make ``handler`` the user's connection; an older one is closed with 4101."""
        older = self._active.get(username)
        if older is not None and older is not handler:
            older.outbox.drop(4101, "same user connected from another device")
        self._active[username] = handler
        session = self.sessions.get(username)
        if session is None:
            session = UserSession(username, list(self.book.user_accounts[username]))
            self.sessions[username] = session
        return session

    def route(self, events: list[Event]) -> None:
        """Record activity and send each event to its account owner's OE connection."""
        for event in events:
            owner = self.book.accounts[event.account].owner
            session = self.sessions.get(owner)
            if isinstance(event, OrderEvent) and event.action and session is not None:
                order = event.order
                item = ActivityItem(
                    order.account,
                    order.number,
                    self.now_ms(),
                    event.action,
                    order.status,
                    event.body,
                )
                session.record(item)
            handler = self._active.get(owner)
            if handler is None or not handler.receives_notifications:
                continue
            if (
                self.notify_current_account_only
                and session is not None
                and session.current_account != event.account
            ):
                self.withheld_notifications += 1
                continue
            handler.deliver(event)

    def response_delay(self) -> float:
        if self.response_jitter_seconds <= 0:
            return self.latency_seconds
        return self.latency_seconds + self._jitter.uniform(0, self.response_jitter_seconds)

    def take_fault(self) -> Fault | None:
        return self._faults.pop(0) if self._faults else None

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def text_title(self, username: str, kind: str) -> str:
        """QST's title: "<user>@SIM1(<host>:<port>) <kind> Message"."""
        return f"{username}@SIM1({self._host}:{self._port}) {kind} Message"

    # -- plumbing ---------------------------------------------------------------------------

    async def _serve(self, websocket: ServerConnection) -> None:
        self.connections += 1
        outbox = Outbox(websocket, self)
        handler = ConnectionHandler(self, outbox)
        self._handlers.add(handler)
        try:
            with contextlib.suppress(ConnectionClosed):
                await self._read(websocket, outbox, handler)
        finally:
            self._handlers.discard(handler)
            if self._active.get(handler.username) is handler:
                del self._active[handler.username]
            await outbox.shutdown()

    @staticmethod
    async def _read(
        websocket: ServerConnection, outbox: Outbox, handler: ConnectionHandler
    ) -> None:
        async for frame in websocket:
            if not outbox.accepting:
                continue
            if isinstance(frame, str):
                outbox.drop(1003, "binary frames only")
                continue
            try:
                message = pb.ClientMessage.FromString(frame)
            except DecodeError:
                outbox.drop(1007, "not a ClientMessage")
                continue
            handler.handle(message)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.tick_seconds)
            self.market.step()
            self.route(self.book.match(self.now_ms()))
