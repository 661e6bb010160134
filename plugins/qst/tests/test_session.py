"""QstSession against the real sandbox: the login sequence and strict state machine,
request-id correlation with responses out of order, account switching, reconnect with
re-login, 4101 (another session of the user) without a reconnect fight, and the
per-account state and snapshot of :mod:`brokergraph_qst.streams` on the event log."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from brokergraph_qst import streams, wire
from brokergraph_qst.sandbox import QstSandbox
from brokergraph_qst.session import AccountGate, QstSession, SessionConfig, SessionState
from brokergraph_qst.streams import AccountFeed, follow_account, is_newer

from gateway.contract import (
    NotFound,
    Order,
    OrderEvent,
    OrderEventKind,
    OrderSide,
    OrderStatus,
    OrderType,
    TimeInForce,
    UpstreamBusy,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.events import InProcessEventLog
from plugins.qst.tests.qst_testkit import started_sandbox, wait_until

S = SessionState


def config(sandbox: QstSandbox, **changes: Any) -> SessionConfig:
    settings = sandbox.connector_settings()
    values: dict[str, Any] = {
        "url": settings["url"],
        "username": settings["username"],
        "password_hash": hashlib.sha256(settings["password"].encode()).hexdigest(),
        "client_unique_id": settings["client_unique_id"],
        "ssl": sandbox.client_ssl_context(),
        "backoff_initial": 0.05,
        "backoff_max": 0.5,
        "busy_backoff": 1.0,
        "ready_wait": 5.0,
    }
    values.update(changes)
    return SessionConfig(**values)


@contextlib.asynccontextmanager
async def session_on(sandbox: QstSandbox, **changes: Any) -> AsyncIterator[QstSession]:
    notices: list[wire.Notice] = []
    session = QstSession(config(sandbox, **changes), on_notice=notices.append)
    session.notices = notices  # type: ignore[attr-defined]
    await session.start()
    try:
        yield session
    finally:
        await session.close()


def spec(price: str = "1000") -> wire.OrderSpec:
    return wire.OrderSpec(
        contract="ESZ26",
        side=OrderSide.BUY,
        type=OrderType.LIMIT,
        quantity=Decimal(1),
        time_in_force=TimeInForce.GTC,
        price=Decimal(price),
    )


async def test_the_login_sequence_and_logout() -> None:
    async with started_sandbox(tick_seconds=0) as sandbox:
        session = QstSession(config(sandbox, ready_wait=0.2), on_notice=lambda n: None)
        # Before start: nothing may leave, and nothing does.
        with pytest.raises(UpstreamUnavailable):
            await session.call(wire.order_book(), account="297999")
        assert sum(sandbox.requests.values()) == 0
        await session.start()
        try:
            assert session.state is S.OE_LOGGED_IN
            assert list(session.history) == [
                S.DISCONNECTED,
                S.CONNECTED,
                S.LOGGED_IN,
                S.OE_LOGGED_IN,
            ]
            assert set(session.accounts) == {"297999", "297998"}
            assert session.home_account == "297999"
            assert sandbox.requests["LoginRequest"] == 1
            assert sandbox.requests["OELoginRequest"] == 1
            assert sandbox.requests["ChangeOALSubscriptionLevelRequest"] == 1
            assert sandbox.sessions["demo-trader"].oal_subscribed
        finally:
            await session.close()
        # mypy keeps the narrowing to OE_LOGGED_IN above across close(); the state moved.
        assert session.state is S.CLOSED  # type: ignore[comparison-overlap]
        assert sandbox.requests["OELogoutRequest"] == 1
        assert sandbox.requests["LogoutRequest"] == 1
        assert sandbox.closes[1000] == 1, "QST answers a logout by closing with 1000"
        with pytest.raises(UpstreamUnavailable):
            await session.call(wire.order_book(), account="297999")


async def test_a_bad_password_is_refused_not_retried_in_a_loop() -> None:
    async with started_sandbox(tick_seconds=0) as sandbox:
        changes = {"password_hash": "0" * 64, "ready_wait": 0.2, "backoff_max": 30.0}
        async with session_on(sandbox, **changes) as session:
            assert session.state is not S.OE_LOGGED_IN
            with pytest.raises(UpstreamRejected, match="Invalid username or password"):
                await session.call(wire.order_book(), account="297999")
            await asyncio.sleep(0.3)
            assert sandbox.requests["LoginRequest"] == 1, "a refused login waits the long backoff"


async def test_responses_out_of_order_reach_their_requests() -> None:
    async with (
        started_sandbox(tick_seconds=0, response_jitter_seconds=0.03) as sandbox,
        session_on(sandbox) as session,
    ):
        accounts = ["297999", "297998"] * 10
        infos = await asyncio.gather(
            *(session.call(wire.account_info("USD"), account=a) for a in accounts)
        )
        assert [i.account_id for i in infos] == accounts
        assert sandbox.reordered_responses > 0, "the jitter reordered the answers"
        assert not session.lockstep
        # Switches were serialised: far fewer than one per request.
        assert sandbox.requests["OESwitchAccountRequest"] < len(accounts)
        with pytest.raises(NotFound):
            await session.call(wire.order_book(), account="400001")
        assert sandbox.requests["OrderBookRequest"] == 0, "unknown accounts never leave"


def mixed_reads() -> list[wire.Request]:
    """Reads whose answers tell each other apart: a misdelivered one cannot pass."""
    return [
        wire.account_info("USD"),
        wire.order_book(),
        wire.account_info("EUR"),
        wire.activity_items(),
        wire.account_info("GBP"),
    ]


def answers_its_request(request: wire.Request, answer: object) -> bool:
    if isinstance(answer, wire.AccountInfo):
        return request.kind == "account_info" and request.message.currency_code == answer.currency
    if isinstance(answer, wire.OrderBook):
        return request.kind == "order_book"
    return request.kind == "get_activity_items" and isinstance(answer, tuple)


async def test_without_request_ids_the_session_runs_in_lockstep() -> None:
    """QST's order routing may answer without the request id (it never documents one)."""
    async with (
        started_sandbox(
            tick_seconds=0, response_jitter_seconds=0.03, echo_request_id=False
        ) as sandbox,
        session_on(sandbox) as session,
    ):
        assert session.lockstep, "the unnumbered LoginResponse gave it away"
        asked = [(a, r) for a in ("297999", "297998") for r in mixed_reads()]
        answers = await asyncio.gather(*(session.call(r, account=a) for a, r in asked))
        for (account, request), answer in zip(asked, answers, strict=True):
            assert answers_its_request(request, answer), (request, answer)
            if isinstance(answer, wire.AccountInfo):
                assert answer.account_id == account
        placed = await asyncio.gather(
            *(session.call(wire.place_order(spec()), account=a) for a in ("297998", "297999"))
        )
        accounts = [sandbox.book.orders[p.order_number].account for p in placed]
        assert accounts == ["297998", "297999"]
        assert sandbox.max_in_flight == 1, "one request at a time"
        assert sandbox.reordered_responses == 0


async def test_unnumbered_answers_amid_several_requests_start_a_clean_connection() -> None:
    """Ids echoed at login, then no more: no answer may reach the wrong request."""
    async with (
        started_sandbox(tick_seconds=0, latency_seconds=0.05) as sandbox,
        session_on(sandbox) as session,
    ):
        assert not session.lockstep
        sandbox.echo_request_id = False
        requests = mixed_reads()
        results = await asyncio.gather(
            *(session.call(r, account="297999") for r in requests), return_exceptions=True
        )
        for request, result in zip(requests, results, strict=True):
            if isinstance(result, BaseException):
                assert isinstance(result, UpstreamUnavailable), result
            else:
                assert answers_its_request(request, result), (request, result)
        assert any(isinstance(r, BaseException) for r in results), "none could be matched"
        await wait_until(lambda: session.ready and session.connections == 2, "reconnected")
        assert session.lockstep
        info = await session.call(wire.account_info("EUR"), account="297998")
        assert (info.account_id, info.currency) == ("297998", "EUR")


async def test_placements_land_on_the_account_asked_for() -> None:
    async with (
        started_sandbox(tick_seconds=0, response_jitter_seconds=0.02) as sandbox,
        session_on(sandbox) as session,
    ):
        accounts = ["297999", "297998", "297998", "297999", "297998", "297999"]
        placed = await asyncio.gather(
            *(session.call(wire.place_order(spec()), account=a) for a in accounts)
        )
        for account, result in zip(accounts, placed, strict=True):
            assert sandbox.book.orders[result.order_number].account == account


async def test_a_dropped_connection_reconnects_and_logs_in_again() -> None:
    async with started_sandbox(tick_seconds=0) as sandbox, session_on(sandbox) as session:
        await session.activate("297998")
        await session.call(wire.place_order(spec()), account="297998")
        activity = await session.call(wire.activity_items(), account="297998")
        assert activity
        await sandbox.drop_connections()
        await wait_until(lambda: session.relogins == 1 and session.ready, "a re-login")
        assert sandbox.closes[1011] == 1
        history = list(session.history)[-5:]
        assert history == [S.OE_LOGGED_IN, S.DISCONNECTED, S.CONNECTED, S.LOGGED_IN, S.OE_LOGGED_IN]
        # Re-login (is_relogin=true) kept the QST session: its activity log and, switched
        # back, its current account.
        assert sandbox.sessions["demo-trader"].current_account == "297998"
        assert session.gate.current == "297998"
        again = await session.call(wire.activity_items(), account="297998")
        assert [i.order_number for i in again] == [i.order_number for i in activity]
        assert sandbox.sessions["demo-trader"].oal_subscribed


async def test_another_session_of_the_user_is_not_fought() -> None:
    async with started_sandbox(tick_seconds=0) as sandbox, session_on(sandbox) as first:
        connections = sandbox.connections
        async with session_on(sandbox, busy_backoff=60.0) as second:
            await wait_until(lambda: first.busy, "the first session to see 4101")
            assert sandbox.closes[4101] == 1
            with pytest.raises(UpstreamBusy) as busy:
                await first.call(wire.order_book(), account="297999")
            assert busy.value.details["retryAfter"] > 0
            await asyncio.sleep(0.5)
            assert sandbox.connections == connections + 1, "no reconnect during the back-off"
            assert second.ready
        # The other session logged out: after its back-off the first one comes back.
        await wait_until(lambda: first.ready, "the first session back", seconds=5)
        book = await first.call(wire.order_book(), account="297999")
        assert isinstance(book, wire.OrderBook)


# --------------------------------------------------------------------------- the gate


async def test_the_gate_never_switches_under_a_request_in_flight() -> None:
    gate = AccountGate()
    current: list[str] = []
    in_flight: dict[str, int] = {"a": 0, "b": 0}
    switches: list[str] = []

    async def switch(account: str) -> None:
        assert not any(in_flight.values()), "switched while a request was in flight"
        switches.append(account)
        await asyncio.sleep(0.001)
        current[:] = [account]

    async def request(account: str) -> None:
        async with gate.use(account, switch):
            assert current == [account]
            in_flight[account] += 1
            await asyncio.sleep(0.002)
            in_flight[account] -= 1

    await asyncio.gather(*(request("a" if i % 3 else "b") for i in range(60)))
    assert len(switches) < 60
    assert gate.current in ("a", "b")


# --------------------------------------------------------------------------- the fan-out


def order(order_id: str, status: OrderStatus, filled: str = "0") -> Order:
    return Order(
        platform="qst",
        id=order_id,
        account_id="297999",
        symbol="ESZ26",
        side=OrderSide.BUY,
        type=OrderType.LIMIT,
        quantity=Decimal(1),
        status=status,
        filled_quantity=Decimal(filled),
        price=Decimal(1000),
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def test_order_state_only_moves_forward() -> None:
    working, filled = order("1", OrderStatus.WORKING), order("1", OrderStatus.FILLED, "1")
    assert is_newer(None, working)
    assert is_newer(working, filled)
    assert not is_newer(filled, working), "a stale book must not undo a fill"
    assert not is_newer(working, order("1", OrderStatus.WORKING)), "same state is no event"
    assert not is_newer(filled, order("1", OrderStatus.CANCELLED)), "terminal is final"


def test_a_feed_forgets_the_oldest_final_orders(monkeypatch: pytest.MonkeyPatch) -> None:
    """The live state keeps the resting orders and the newest MAX_FINISHED final ones: a
    busy account's feed no longer holds every order it ever had."""
    monkeypatch.setattr(streams, "MAX_FINISHED", 5)
    feed = AccountFeed("qst", "297999")

    def apply(number: int, status: OrderStatus) -> None:
        event = feed.apply_order(order(str(number), status))
        assert event is not None
        feed.logged(feed.order_count() * 2 + number, event)

    apply(0, OrderStatus.WORKING)  # rests throughout
    for number in range(1, 20):
        apply(number, OrderStatus.WORKING)
        apply(number, OrderStatus.CANCELLED)
    assert sorted(feed.orders, key=int) == ["0", "15", "16", "17", "18", "19"]
    assert feed.order_count() == 20
    assert feed.orders_since(18) == {"18", "19"}
    assert [o.id for o in feed.working()] == ["0"]
    # A final order still remembered is not news again; one forgotten is a new order.
    assert feed.apply_order(order("19", OrderStatus.CANCELLED)) is None
    assert feed.apply_order(order("1", OrderStatus.WORKING)) is not None
    assert feed.order_count() == 21
    assert feed.orders_since(20) == {"1"}


async def logged(log: InProcessEventLog, feed: AccountFeed, event: OrderEvent | None) -> None:
    """Append ``event`` to the account's topic as the connector's appender does."""
    assert event is not None
    entry = await log.append(feed.topic, event)
    feed.logged(entry.sequence, event)


async def test_a_subscription_starts_with_a_snapshot_then_counts_on() -> None:
    log, feed = InProcessEventLog(), AccountFeed("qst", "297999")
    await logged(log, feed, feed.apply_order(order("1", OrderStatus.WORKING)))  # 1
    await logged(log, feed, feed.apply_order(order("2", OrderStatus.WORKING)))  # 2
    await logged(log, feed, feed.apply_order(order("1", OrderStatus.CANCELLED)))  # 3
    await logged(log, feed, feed.event(OrderEventKind.TEXT, text="Order canceled"))  # 4
    stream = follow_account(log, "297999", snapshot=feed.snapshot(), after=4)
    snapshot = [await anext(stream) for _ in range(2)]
    assert [(e.kind, e.sequence) for e in snapshot] == [
        (OrderEventKind.ORDER_BOOK_SNAPSHOT, 2),
        (OrderEventKind.ORDER_BOOK_SNAPSHOT, 4),
    ]
    assert snapshot[0].order is not None
    assert snapshot[0].order.id == "2"
    assert snapshot[1].order is None, "the closing snapshot event carries the current number"
    await logged(log, feed, feed.apply_order(order("2", OrderStatus.FILLED, "1")))
    live = await anext(stream)
    assert (live.kind, live.sequence) == (OrderEventKind.FILL, 5)
    assert feed.apply_order(order("2", OrderStatus.WORKING)) is None
    assert feed.sequence == 5
    await stream.aclose()
    await log.close()


async def test_a_slow_subscriber_catches_up_from_the_log_not_skipped() -> None:
    log, feed = InProcessEventLog(), AccountFeed("qst", "297999")
    await logged(log, feed, feed.event(OrderEventKind.TEXT, text="start"))  # 1
    slow, fast = (
        follow_account(log, "297999", after=0, max_queue=3),
        follow_account(log, "297999", after=0, max_queue=3),
    )
    assert [(await anext(slow)).sequence, (await anext(fast)).sequence] == [1, 1]
    for n in range(10):  # the slow one's live queue overflows after 3
        await logged(log, feed, feed.event(OrderEventKind.TEXT, text=f"event {n}"))
        assert (await anext(fast)).sequence == n + 2
    caught_up = [await anext(slow) for _ in range(10)]
    assert [e.sequence for e in caught_up] == list(range(2, 12))
    assert [e.text for e in caught_up] == [f"event {n}" for n in range(10)]
    await slow.aclose()
    await fast.aclose()
    await log.close()


async def test_an_unreachable_qst_is_a_transport_error_naming_qst() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    unreachable = SessionConfig(
        url=f"ws://127.0.0.1:{port}/",
        username="demo-trader",
        password_hash="0" * 64,
        client_unique_id="c",
        ready_wait=0.1,
        backoff_initial=5.0,
    )
    session = QstSession(unreachable, on_notice=lambda notice: None)
    await session.start()
    try:
        with pytest.raises(UpstreamUnavailable) as refused:
            await session.wait_ready()
        assert refused.value.message == "QST cannot be reached (ConnectionRefusedError)"
        assert refused.value.details == {"platform": "qst"}
    finally:
        await session.close()


async def test_a_lost_answer_fails_a_read_as_unavailable_and_a_write_as_unknown() -> None:
    async with started_sandbox(tick_seconds=0) as sandbox, session_on(sandbox) as session:
        sandbox.drop_next(1)
        with pytest.raises(UpstreamUnavailable) as lost:
            await session.call(wire.order_book(), account="297999")
        assert lost.value.details["vendorCode"] == 1011
        # Else the reconnect's own requests (switch, OAL subscription) take the next fault.
        await wait_until(lambda: session.relogins == 1, "logged in again")
        sandbox.drop_next(1, after_apply=True)
        with pytest.raises(UpstreamTimeout, match="outcome is unknown"):
            await session.call(wire.place_order(spec()), account="297999")
        await wait_until(lambda: session.relogins == 2, "logged in again after both drops")
        book = await session.call(wire.order_book(), account="297999")
        assert [o.status for o in book.orders] == [OrderStatus.WORKING], "QST applied it"
