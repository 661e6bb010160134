"""Subscription fan-out over real sockets: subscribers of one stream share its executions.

A QST sandbox and a gateway serving it; events are appended to the gateway's event
log (the road QST's notifications take), and graphql-transport-ws clients read them.
The hub's execution count says how often a selection ran; the clients say what they
got: every event once, in order, with their own operation id.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import brokergraph_qst.plugin
import pytest
import websockets
from brokergraph_qst.streams import topic_for
from prometheus_client import REGISTRY
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.asyncio.client import ClientConnection

from gateway import models
from gateway.http._fanout import MAX_BACKLOG, FanoutHub, viewer_independent
from gateway.http.websocket import GraphQLWebSocket
from gateway.http.ws_frames import BUFFER_LIMIT
from gateway.testing import TestGateway, open_test_gateway
from plugins.qst.tests.qst_testkit import (
    FAST_RECOVERY,
    PROTOCOL,
    WAIT,
    account_gid,
    started_sandbox,
    wait_until,
)

ACCOUNT = "297999"  # DEMO-001's: the ``client`` token may see it
PLAIN = """subscription($id: ID!) { orderEvents(accountId: $id) {
  sequence kind text order { externalId status } } }"""
#: ``Account.externalId`` is plain, but ``trader`` has a resolver reading the viewer.
VIEWER_DEPENDENT = """subscription($id: ID!) { orderEvents(accountId: $id) {
  sequence kind text account { externalId trader { externalId } } } }"""


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[TestGateway]:
    async with (
        started_sandbox() as sandbox,
        open_test_gateway(
            brokergraph_qst.plugin,
            [sandbox],
            tmp_path,
            connector_settings={"qst": FAST_RECOVERY},
            limits={"max_sockets_per_viewer": 0, "max_subscriptions_per_viewer": 0},
            events={"retention_count": 1000},
        ) as running,
    ):
        yield running


def hub_of(gateway: TestGateway) -> FanoutHub:
    app: Any = gateway.running.server.config.app
    while not isinstance(app, Starlette):
        app = app.app
    for route in app.routes:
        if isinstance(route, WebSocketRoute) and isinstance(route.endpoint, GraphQLWebSocket):
            return route.endpoint.fanout
    raise AssertionError("no GraphQL WebSocket route")


@dataclass
class Operation:
    """What one subscription received (event sequences, text) and how it ended."""

    sequences: list[int] = field(default_factory=list)
    texts: list[str | None] = field(default_factory=list)
    errors: list[Any] = field(default_factory=list)
    completed: bool = False


class Socket:
    """One graphql-transport-ws connection holding any number of subscriptions."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.operations: dict[str, Operation] = {}

    async def subscribe(self, query: str, account: str = ACCOUNT) -> Operation:
        operation_id = str(uuid.uuid4())
        self.operations[operation_id] = operation = Operation()
        payload = {"query": query, "variables": {"id": account_gid(account)}}
        await self.connection.send(
            json.dumps({"id": operation_id, "type": "subscribe", "payload": payload})
        )
        return operation

    async def pump(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            while True:
                await self.pump_one()

    async def pump_one(self) -> None:
        message = json.loads(await self.connection.recv())
        if message["type"] == "ping":
            await self.connection.send('{"type":"pong"}')
            return
        operation = self.operations[message["id"]]
        if operation.completed:
            operation.errors.append({"after complete": message})
        if message["type"] == "next":
            payload = message["payload"]
            operation.errors.extend(payload.get("errors") or ())
            if payload.get("data"):
                event = payload["data"]["orderEvents"]
                operation.sequences.append(event["sequence"])
                operation.texts.append(event["text"])
        elif message["type"] == "complete":
            operation.completed = True
        else:
            operation.errors.append(message)


@contextlib.asynccontextmanager
async def connected(gateway: TestGateway, token: str = "client") -> AsyncIterator[Socket]:
    async with websockets.connect(
        gateway.websocket_url, subprotocols=[PROTOCOL], compression=None, max_queue=None
    ) as connection:
        init = {"Authorization": f"Bearer {gateway.tokens[token]}"}
        await connection.send(json.dumps({"type": "connection_init", "payload": init}))
        ack = json.loads(await asyncio.wait_for(connection.recv(), WAIT))
        assert ack["type"] == "connection_ack", ack
        socket = Socket(connection)
        task = asyncio.create_task(socket.pump())
        try:
            yield socket
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def append(gateway: TestGateway, text: str, account: str = ACCOUNT) -> int:
    event = models.OrderEvent(
        platform="qst",
        account_id=account,
        sequence=0,
        kind=models.OrderEventKind.TEXT,
        at=datetime.now(UTC),
        text=text,
    )
    return (await gateway.services.events.append(topic_for(account), event)).sequence


def resident_bytes() -> int:
    """This process's resident memory (Linux's /proc/self/statm), in bytes."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def members(hub: FanoutHub) -> int:
    return sum(len(group.members) for group in hub.groups)


async def test_subscribers_of_one_stream_share_one_execution_per_event(
    gateway: TestGateway,
) -> None:
    hub = hub_of(gateway)
    first = await append(gateway, "before anyone")
    async with connected(gateway) as one, connected(gateway) as two:
        operations = [await s.subscribe(PLAIN) for s in (one, two) for _ in range(5)]
        await wait_until(lambda: members(hub) == 10, "every subscriber in a group")
        assert len(hub.groups) == 1
        executed = hub.executions
        sequences = [await append(gateway, f"event {n}") for n in range(20)]
        await wait_until(
            lambda: all(o.sequences[-1:] == sequences[-1:] for o in operations),
            "every event at every subscriber",
        )
        # 10 subscribers, 20 events: 20 executions, not 200.
        assert hub.executions - executed == 20
    for operation in operations:
        assert operation.errors == []
        # The snapshot (ending at the log's head), then each event once, in order.
        live = [s for s in operation.sequences if s > first]
        assert live == sequences
        assert operation.texts[-20:] == [f"event {n}" for n in range(20)]


async def test_subscribers_joining_a_running_stream_miss_nothing_and_get_nothing_twice(
    gateway: TestGateway,
) -> None:
    hub = hub_of(gateway)
    await append(gateway, "start")
    appended: list[int] = []

    async def produce() -> None:
        for n in range(300):
            appended.append(await append(gateway, f"live {n}"))
            if n % 10 == 0:
                await asyncio.sleep(0.005)

    async with connected(gateway) as early, connected(gateway) as late:
        first = [await early.subscribe(PLAIN) for _ in range(3)]
        await wait_until(lambda: members(hub) == 3, "the early subscribers in a group")
        producer = asyncio.create_task(produce())
        await wait_until(lambda: len(appended) > 50, "events flowing")
        second = [await late.subscribe(PLAIN) for _ in range(3)]
        await producer
        await wait_until(
            lambda: all(o.sequences[-1:] == appended[-1:] for o in first + second),
            "the last event at every subscriber",
        )
    for operation in first + second:
        assert operation.errors == []
        # Contiguous from where each started: no gap, no duplicate.
        start = operation.sequences[0]
        assert operation.sequences == list(range(start, appended[-1] + 1))
    assert hub.groups == []  # the clients left: the group stopped following


async def test_viewers_share_only_what_cannot_depend_on_the_viewer(gateway: TestGateway) -> None:
    hub = hub_of(gateway)
    await append(gateway, "start")
    async with connected(gateway, "client") as client, connected(gateway, "admin") as admin:
        plain = [await client.subscribe(PLAIN), await admin.subscribe(PLAIN)]
        dependent = [
            await client.subscribe(VIEWER_DEPENDENT),
            await admin.subscribe(VIEWER_DEPENDENT),
        ]
        await wait_until(lambda: members(hub) == 4, "every subscriber in a group")
        # One group for the plain selection, one per viewer for the other.
        assert sorted(len(g.members) for g in hub.groups) == [1, 1, 2]
        executed = hub.executions
        last = [await append(gateway, f"event {n}") for n in range(5)][-1]
        await wait_until(
            lambda: all(o.sequences[-1:] == [last] for o in plain + dependent),
            "every event at every subscriber",
        )
        assert hub.executions - executed == 3 * 5


def test_documents_reading_the_viewer_are_recognised(gateway: TestGateway) -> None:
    schema = gateway.schema._schema
    assert viewer_independent(schema, PLAIN, None)
    assert not viewer_independent(schema, VIEWER_DEPENDENT, None)
    via_fragment = """subscription($id: ID!) { orderEvents(accountId: $id) { ...E } }
        fragment E on OrderEvent { sequence account { ... on Account { trader { name } } } }"""
    assert not viewer_independent(schema, via_fragment, None)
    assert not viewer_independent(schema, "subscription { nonsense", None)
    assert not viewer_independent(schema, "query { viewer { subject } }", None)


async def test_a_group_ends_with_its_stream_and_its_members_complete(
    gateway: TestGateway,
) -> None:
    hub = hub_of(gateway)
    await append(gateway, "start")
    async with connected(gateway) as socket:
        operations = [await socket.subscribe(PLAIN) for _ in range(3)]
        await wait_until(lambda: members(hub) == 3, "every subscriber in a group")
        # The group follows the log live once it has made a frame (a follower listens
        # before it reads storage): closing earlier would meet its stream still opening.
        await append(gateway, "last 0")
        await wait_until(lambda: all("last 0" in o.texts for o in operations), "the group live")
        for n in range(1, 5):
            await append(gateway, f"last {n}")
        await gateway.services.events.close()  # followers end after what they hold
        await wait_until(lambda: all(o.completed for o in operations), "every subscriber done")
    assert hub.groups == []
    for operation in operations:
        # Every event before the complete, nothing after it (the connector's own notes
        # may come in between: only ours are looked at).
        assert operation.errors == []
        ours = [t for t in operation.texts if t is not None and t.startswith("last ")]
        assert ours == [f"last {n}" for n in range(5)]


async def test_memory_stays_flat_while_100_subscribers_get_10000_events(
    gateway: TestGateway,
) -> None:
    hub = hub_of(gateway)
    await append(gateway, "start")
    async with contextlib.AsyncExitStack() as stack:
        sockets = [await stack.enter_async_context(connected(gateway)) for _ in range(10)]
        operations = [await s.subscribe(PLAIN) for s in sockets for _ in range(10)]
        await wait_until(lambda: members(hub) == 100, "every subscriber in a group")

        async def deliver(count: int) -> None:
            for batch in range(count // 100):
                last = [await append(gateway, f"{batch}.{n}") for n in range(100)][-1]
                await wait_until(
                    lambda last=last: all(o.sequences[-1] == last for o in operations),  # type: ignore[misc]
                    "the batch at every subscriber",
                )
                for operation in operations:  # the client keeps no history: only ours counts
                    del operation.sequences[:-1], operation.texts[:-1]

        # Warm up past the log's retention (1,000 entries), so it is full and flat too.
        await deliver(2000)
        gc.collect()
        before = resident_bytes()
        await deliver(8000)
        gc.collect()
        grown = resident_bytes() - before
        assert all(o.errors == [] for o in operations)
        assert len(hub.groups) == 1
    # 800,000 deliveries: graphql-core's shared memo alone kept ~3.5 KiB of objects per
    # delivery (gigabytes here); the resident size, not traced allocations, so the run
    # is not slowed by tracing every allocation.
    assert grown < 48 * 1024 * 1024, f"grew by {grown / 1024:.0f} KiB over 8,000 events"


async def test_a_subscriber_that_stops_reading_holds_nobody_back_and_misses_nothing(
    gateway: TestGateway,
) -> None:
    hub = hub_of(gateway)
    await append(gateway, "start")
    padding = "x" * 8000  # big frames fill the slow socket's buffers soon
    async with (
        connected(gateway) as fast,
        websockets.connect(
            gateway.websocket_url, subprotocols=[PROTOCOL], compression=None, max_queue=1
        ) as slow_connection,
    ):
        init = {"Authorization": f"Bearer {gateway.tokens['client']}"}
        await slow_connection.send(json.dumps({"type": "connection_init", "payload": init}))
        assert json.loads(await slow_connection.recv())["type"] == "connection_ack"
        slow = Socket(slow_connection)
        slow_operation = await slow.subscribe(PLAIN)
        # Read the snapshot, then nothing: the client stops reading from its socket.
        await asyncio.wait_for(slow.pump_one(), WAIT)
        await wait_until(lambda: members(hub) == 1, "the slow subscriber in a group")
        fast_operation = await fast.subscribe(PLAIN)
        await wait_until(lambda: members(hub) == 2, "both subscribers in the group")
        appended: list[int] = []
        for batch in range((MAX_BACKLOG + 1500) // 100):
            appended.extend([await append(gateway, f"{batch}.{n} {padding}") for n in range(100)])
            await wait_until(  # the fast one keeps up: the log never drops what it lacks
                lambda last=appended[-1]: fast_operation.sequences[-1:] == [last],  # type: ignore[misc]
                "the fast one has the batch",
            )
        # The slow one fell more than MAX_BACKLOG frames behind: it left the group.
        assert members(hub) == 1
        # What the gateway holds for it unsent is bounded: its socket's buffer took
        # direct writes only while under the limit (then at most one batch more), the
        # rest waited in its backlog of at most MAX_BACKLOG frames.
        unsent = server_side(gateway, slow).transport.get_write_buffer_size()
        assert unsent <= BUFFER_LIMIT + 100 * (len(padding) + 200), unsent
        task = asyncio.create_task(slow.pump())  # it reads again and catches up alone
        try:
            await wait_until(
                lambda: slow_operation.sequences[-1:] == appended[-1:], "the slow one has all"
            )
        finally:
            task.cancel()
    for operation in (fast_operation, slow_operation):
        assert operation.errors == []
        start = operation.sequences[0]
        assert operation.sequences == list(range(start, appended[-1] + 1))


class CountingTransport:
    """A server connection's real transport, its ``write`` calls recorded."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        self.inner.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def server_side(gateway: TestGateway, socket: Socket) -> WebSocketsSansIOProtocol:
    """The gateway's uvicorn protocol of the connection ``socket`` is the client of."""
    address = socket.connection.local_address[:2]
    for protocol in gateway.running.server.server_state.connections:
        if isinstance(protocol, WebSocketsSansIOProtocol) and protocol.client == address:
            return protocol
    raise AssertionError(f"no server connection from {address}")


def unframed(data: bytes) -> list[str]:
    """The text frames a server wrote (final, unmasked: RFC 6455 5.2), in order."""
    texts: list[str] = []
    at = 0
    while at < len(data):
        assert data[at] == 0x81, "a final text frame"
        length, at = data[at + 1], at + 2
        assert length < 0x80, "unmasked"
        if length == 126:
            length, at = int.from_bytes(data[at : at + 2], "big"), at + 2
        elif length == 127:
            length, at = int.from_bytes(data[at : at + 8], "big"), at + 8
        texts.append(data[at : at + length].decode())
        at += length
    return texts


def delivered() -> float:
    labels = {"topic": "orderEvents", "result": "delivered"}
    return REGISTRY.get_sample_value("brokergraph_subscription_events_total", labels) or 0.0


async def test_a_burst_of_events_reaches_each_socket_in_one_write(gateway: TestGateway) -> None:
    hub = hub_of(gateway)
    await append(gateway, "start")
    burst = 20
    async with contextlib.AsyncExitStack() as stack:
        sockets = [await stack.enter_async_context(connected(gateway)) for _ in range(3)]
        operations = [await s.subscribe(PLAIN) for s in sockets]
        await wait_until(lambda: members(hub) == 3, "every subscriber in a group")
        await wait_until(lambda: all(o.sequences for o in operations), "every snapshot read")
        protocols = [server_side(gateway, s) for s in sockets]
        counting = [CountingTransport(p.transport) for p in protocols]
        counted_before = delivered()
        try:
            for protocol, transport in zip(protocols, counting, strict=True):
                protocol.transport = transport  # type: ignore[assignment]
            # One burst: the events are in the log before the group reads the first.
            sequences = await asyncio.gather(*(append(gateway, f"burst {n}") for n in range(burst)))
            await wait_until(
                lambda: all(o.sequences[-1:] == [max(sequences)] for o in operations),
                "the burst at every subscriber",
            )
        finally:
            for protocol, transport in zip(protocols, counting, strict=True):
                protocol.transport = transport.inner
    for socket, transport in zip(sockets, counting, strict=True):
        # One write (one send system call) per socket for the whole burst ...
        assert len(transport.writes) == 1, [len(w) for w in transport.writes]
        frames = [json.loads(text) for text in unframed(transport.writes[0])]
        # ... holding every event once, in order, each with the socket's own operation id.
        assert [f["payload"]["data"]["orderEvents"]["sequence"] for f in frames] == sorted(
            sequences
        )
        assert {f["id"] for f in frames} == set(socket.operations)
        assert {f["type"] for f in frames} == {"next"}
    for operation in operations:
        assert operation.errors == []
        assert operation.sequences[-burst:] == sorted(sequences)
        in_order = sorted(range(burst), key=lambda n: sequences[n])
        assert operation.texts[-burst:] == [f"burst {n}" for n in in_order]
    # Written past ASGI send, still counted as delivered (the metrics and access lines).
    assert delivered() - counted_before == 3 * burst
