"""Benchmark of the QST plugin: order events and order placement, gateway vs direct.

Run from the repository root (``scripts/bench qst`` does)::

    .venv/bin/python plugins/qst/tests/bench_events.py [--profile] [--fanout-only|--before-only]
        [--subscribers N,N...] [--no-spread] [--no-placements] [--no-bare]

The gateway under uvicorn runs in this process, the QST sandbox in a process of its own
and the graphql-transport-ws subscribers in client processes (a sandbox or clients on
the gateway's loop would be timed as gateway work).  Timestamps are ``perf_counter``,
which is the machine's monotonic clock in every process.  Prints markdown:

1. emit → client latency of ``orderEvents``, p50/p99, with the gateway's CPU per
   delivery (process time over the measured rounds / events x subscribers) and its RSS
   growth, first with every subscription executed on its own (strawberry's handler,
   as before the fan-out), then with the fan-out; and the client processes' CPU per
   event received (what the harness itself costs, on the same cores) and the time the
   gateway process spent collecting garbage over the measured rounds:

   * one account, 1 to 10,000 subscribers: each round places an order through the
     connector (QST sends New Order and Working at once) and, once every subscriber
     has both, cancels it (Canceled).  From the sandbox about to send the Order
     notification (its ``on_emit`` hook) to the client having the event;
   * 5,000 subscribers on 5,000 different accounts, each round one event on every
     account, appended to the gateway's event log (the road QST's notifications take
     after decoding): from the append to the client having the event.

   Each fan-out one-account case runs again against the floor, a bare server in
   this process that speaks just enough graphql-transport-ws for the same client
   processes and writes each burst's frames, built once, to every socket in one loop
   (:class:`BareFanout`): the ratio table sets the fan-out against it (latency, and
   the server's CPU a delivery, most of which is the kernel's loopback ``send``).

   ``--profile`` adds the top functions (own time) over the measured rounds (not the
   sockets' setup) of the fan-out's 1,000-subscriber run, or of the one case
   ``--subscribers`` names; ``--fanout-only`` / ``--before-only``: only the cases
   with / without it; ``--subscribers 1000,10000``: only those one-account cases;
   ``--no-spread``: without the 5,000-account case; ``--no-placements``: without
   part 2; ``--no-bare``: without the bare server.
2. placement round trip: ``placeOrder`` over HTTP through the gateway (it returns
   once QST answered and sent the order's first notification) against the same
   exchange done directly on the sandbox by a bare protobuf client (PlaceOrderRequest
   → PlaceOrderResponse + first Order notification), with the ratio.

Bounded: a fixed number of rounds per case and a deadline on every wait.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import cProfile
import gc
import io
import json
import logging
import os
import pstats
import resource
import signal
import ssl
import statistics
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from websockets.utils import accept_key

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import brokergraph_qst.plugin  # noqa: E402
from brokergraph_qst.sandbox import QstSandbox  # noqa: E402
from brokergraph_qst.streams import topic_for  # noqa: E402

from gateway import models  # noqa: E402
from gateway.contract import (  # noqa: E402
    OrderSide,
    OrderType,
    PlaceOrderRequest,
    TimeInForce,
)
from gateway.http.websocket import GraphQLWebSocket  # noqa: E402
from gateway.http.ws_frames import text_frame_header  # noqa: E402
from gateway.runner import tune_garbage_collector  # noqa: E402
from gateway.testing import TestGateway, open_test_gateway  # noqa: E402
from plugins.qst.tests.qst_testkit import (  # noqa: E402
    FAST_RECOVERY,
    PROTOCOL,
    account_gid,
    connector,
)
from tests.bench_support import QstDirect, ServerProcess, serve_until_stopped  # noqa: E402

#: subscribers on one account -> measured rounds (3 Order notifications each)
EVENT_CASES = {1: 30, 100: 20, 1000: 10, 10000: 3}
#: the same without the fan-out: fewer rounds where each takes seconds (10,000 sockets
#: were not all subscribed within minutes: each one's setup competes with the fan-out)
BEFORE_CASES = {1: 30, 100: 10, 1000: 4}
#: subscribers on as many accounts, and rounds of one event on each
SPREAD_ACCOUNTS = 5000
SPREAD_ROUNDS = 5
#: client processes sharing the subscribers of a case with at least this many
CLIENT_PROCESSES = 2
MANY = 1000
PLACEMENTS = 100
WARMUP = 2
WAIT = 120.0
#: for thousands of subscribers to connect and subscribe
SETUP_WAIT = 900.0
ACCOUNT = "297999"
QUERY = (
    "subscription($id: ID!) { orderEvents(accountId: $id) "
    "{ sequence kind text order { externalId status } } }"
)
SPREAD_QUERY = (
    "subscription($id: ID!) { orderEvents(accountId: $id, afterSequence: 0) "
    "{ sequence kind text order { externalId status } } }"
)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


# --------------------------------------------------------------------------- client process


def client_frame(opcode: int, payload: bytes) -> bytes:
    """One final WebSocket frame from a client: masked, as RFC 6455 requires."""
    size = len(payload)
    if size < 126:
        head = bytes((0x80 | opcode, 0x80 | size))
    elif size < 1 << 16:
        head = bytes((0x80 | opcode, 0x80 | 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + size.to_bytes(8, "big")
    mask = os.urandom(4)
    return head + mask + masked(mask, payload)


def masked(mask: bytes, data: bytes) -> bytes:
    """``data`` XORed with the 4-byte ``mask`` repeated (masking and unmasking alike)."""
    size = len(data)
    key = int.from_bytes((mask * (size // 4 + 1))[:size], "big")
    return (int.from_bytes(data, "big") ^ key).to_bytes(size, "big")


def read_frame(data: bytes, at: int, *, mask: bool) -> tuple[int, bytes, int] | None:
    """The frame at ``at`` of ``data``: its first byte, its payload (unmasked when
    ``mask``: a client's frame) and where the next frame starts; None if incomplete."""
    end = len(data)
    if end - at < 2:
        return None
    first, size = data[at], data[at + 1] & 0x7F
    start = at + 2
    if size == 126:
        size, start = int.from_bytes(data[start : start + 2], "big"), start + 2
    elif size == 127:
        size, start = int.from_bytes(data[start : start + 8], "big"), start + 8
    key = data[start : start + 4] if mask else b""
    start += len(key)
    if len(key) < (4 if mask else 0) or end < start + size:
        return None
    payload = data[start : start + size]
    return first, masked(key, payload) if mask else payload, start + size


class Subscriber(asyncio.Protocol):
    """One graphql-transport-ws socket and subscription, timestamping each event.

    The client end of the socket is this protocol over the bare transport, not a
    WebSocket library: the clients share the machine's two cores with the gateway, and
    a library's per-message cost (a frame reader, a queue and a future per message,
    ~20 µs on this machine) was CPU taken from the gateway at 10,000 subscribers, where
    real subscribers run on machines of their own.  It speaks what the gateway sends:
    unfragmented unmasked frames (text, ping, close), no extension.
    """

    def __init__(
        self,
        variables: dict[str, Any],
        config: dict[str, Any],
        on_event: Callable[[], None],
    ) -> None:
        self.variables = variables
        self.config = config
        self.url = urllib.parse.urlsplit(config["url"])
        self.on_event = on_event
        #: event key (the order's external id, else the event's text) -> arrival times
        self.arrivals: dict[str, list[float]] = defaultdict(list)
        self.count = 0
        self.ready = asyncio.Event()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.upgraded = False
        self.unread = b""

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.create_connection(lambda: self, self.url.hostname, self.url.port)
        try:
            await self.closed
        finally:
            if self.transport is not None:
                self.transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            f"GET {self.url.path} HTTP/1.1\r\nHost: {self.url.netloc}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {PROTOCOL}\r\n\r\n".encode()
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(exc or ConnectionError("the gateway closed the socket"))

    def fail(self, error: Exception) -> None:
        if not self.closed.done():  # (cancelled when the client process stops it)
            self.closed.set_exception(error)

    def send(self, message: dict[str, Any]) -> None:
        assert self.transport is not None
        self.transport.write(client_frame(0x1, json.dumps(message).encode()))

    def data_received(self, data: bytes) -> None:
        received = time.perf_counter()
        data = self.unread + data if self.unread else data
        if not self.upgraded:
            head, found, data = data.partition(b"\r\n\r\n")
            if not found:
                self.unread = head
                return
            if not head.startswith(b"HTTP/1.1 101"):
                raise RuntimeError(f"no WebSocket: {head[:200]!r}")
            self.upgraded = True
            init = {"Authorization": f"Bearer {self.config['token']}"}
            self.send({"type": "connection_init", "payload": init})
        at = 0
        while (frame := read_frame(data, at, mask=False)) is not None:
            first, payload, at = frame
            if first == 0x81:  # a final text frame (orjson: json.loads took ~9 µs of
                # the ~16 µs a client spent on an event, CPU taken from the gateway)
                self.message(orjson.loads(payload), received)
            elif first == 0x89:  # the server's ping
                assert self.transport is not None
                self.transport.write(client_frame(0xA, payload))
            elif first == 0x88:  # its close
                self.fail(ConnectionError(f"closed by the gateway: {payload!r}"))
            else:
                raise RuntimeError(f"unexpected frame (fragmented or an extension): {first:#x}")
        self.unread = data[at:]

    def message(self, message: dict[str, Any], received: float) -> None:
        kind = message["type"]
        if kind == "connection_ack":
            payload = {"query": self.config["query"], "variables": self.variables}
            self.send({"id": "1", "type": "subscribe", "payload": payload})
            if not self.config["snapshot"]:  # a resume misses nothing appended meanwhile
                self.ready.set()
            return
        if kind == "ping":  # the server's keep-alive
            self.send({"type": "pong"})
            return
        if kind != "next":
            self.fail(RuntimeError(f"subscription failed: {message}"))
            return
        event = message["payload"]["data"]["orderEvents"]
        if event["kind"] == "ORDER_BOOK_SNAPSHOT":
            self.ready.set()  # live from here on
            return
        key = event["order"]["externalId"] if event["order"] else event["text"]
        if key is None:
            return  # the connector's own notes (position, account): not timed
        self.arrivals[key].append(received)
        self.count += 1
        self.on_event()


async def client_process() -> None:
    """Serve one share of a case's subscribers; commands on stdin, answers on stdout.

    First line: ``{"url", "token", "query", "snapshot", "variables": [one per
    subscriber]}`` (``snapshot``: a subscriber is live once it had its snapshot); then
    ``wait N [KEY]`` (answered ``ok`` once every subscriber has N events, of order KEY if
    given), ``mark`` (answered ``ok``: the measured rounds start; the process's CPU time
    is counted from here) and ``dump PATH`` (arrival times and the CPU time and events
    since the mark written as JSON, then exit).
    """
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**26)  # the config line names every subscriber
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    config = json.loads(await reader.readline())
    progressed = asyncio.Event()
    subscribers = [Subscriber(v, config, progressed.set) for v in config["variables"]]
    target = 0
    marked = (time.process_time(), 0)
    tasks: list[asyncio.Task[None]] = []
    gate = asyncio.Semaphore(100)  # the gateway accepts a burst, not 10,000 handshakes

    async def start(subscriber: Subscriber) -> None:
        async with gate:
            tasks.append(asyncio.create_task(subscriber.run()))
            await subscriber.ready.wait()

    async with asyncio.timeout(SETUP_WAIT):
        await asyncio.gather(*(start(s) for s in subscribers))
    print("subscribed", flush=True)
    while command := (await reader.readline()).decode().split():
        if command[0] == "wait":
            # ``wait N``: N events each; ``wait N KEY``: N events of that order each.
            target = int(command[1])
            key = command[2] if len(command) > 2 else None

            def behind(s: Subscriber, target: int = target, key: str | None = key) -> bool:
                return (s.count if key is None else len(s.arrivals.get(key, ()))) < target

            # Counts only grow: one that is not behind stays so, and each is looked at
            # until it is not (a scan of every subscriber per wake-up was quadratic in
            # the subscribers, client CPU taken from the gateway's two cores).
            first_behind = 0
            async with asyncio.timeout(WAIT):
                while True:
                    while first_behind < len(subscribers) and not behind(subscribers[first_behind]):
                        first_behind += 1
                    if first_behind == len(subscribers):
                        break
                    progressed.clear()
                    try:
                        await asyncio.wait_for(progressed.wait(), 1.0)
                    except TimeoutError:  # no progress for a second: has a socket failed?
                        failed = [t for t in tasks if t.done()]
                        if failed:
                            failed[0].result()
                            raise RuntimeError("a subscriber's socket closed") from None
            print("ok", flush=True)
        elif command[0] == "mark":
            marked = (time.process_time(), sum(s.count for s in subscribers))
            print("ok", flush=True)
        elif command[0] == "dump":
            cpu = time.process_time() - marked[0]
            events = sum(s.count for s in subscribers) - marked[1]
            arrivals = [s.arrivals for s in subscribers]
            dumped = json.dumps({"arrivals": arrivals, "cpu": cpu, "events": events})
            await asyncio.to_thread(Path(command[1]).write_text, dumped)
            break
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class Clients:
    """Client processes holding ``variables`` (one subscriber each) between them."""

    def __init__(self, url: str, token: str, query: str, variables: list[dict[str, Any]]):
        self.url, self.token, self.query = url, token, query
        count = CLIENT_PROCESSES if len(variables) >= MANY else 1
        self.shares = [variables[i::count] for i in range(count)]
        self.processes: list[asyncio.subprocess.Process] = []
        #: The client processes' CPU seconds and events since :meth:`mark` (at the dump).
        self.cpu = 0.0
        self.events = 0

    async def __aenter__(self) -> Clients:
        for share in self.shares:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                __file__,
                "client",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
            self.processes.append(process)
            config = {
                "url": self.url,
                "token": self.token,
                "query": self.query,
                "snapshot": "afterSequence" not in self.query,
            }
            await self._send(process, json.dumps({**config, "variables": share}))
        await self._all_answer("subscribed", SETUP_WAIT)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for process in self.processes:
            if process.returncode is None:
                process.kill()
            await process.wait()

    async def wait(self, events: int, key: str = "") -> None:
        for process in self.processes:
            await self._send(process, f"wait {events} {key}".strip())
        await self._all_answer("ok")

    async def mark(self) -> None:
        for process in self.processes:
            await self._send(process, "mark")
        await self._all_answer("ok")

    async def arrivals(self) -> list[dict[str, list[float]]]:
        result: list[dict[str, list[float]]] = []
        with tempfile.TemporaryDirectory() as directory:
            for n, process in enumerate(self.processes):
                path = Path(directory) / f"{n}.json"
                await self._send(process, f"dump {path}")
                await process.wait()
                dumped = json.loads(path.read_text())
                result.extend(dumped["arrivals"])
                self.cpu += dumped["cpu"]
                self.events += dumped["events"]
        return result

    @staticmethod
    async def _send(process: asyncio.subprocess.Process, line: str) -> None:
        assert process.stdin is not None
        process.stdin.write(line.encode() + b"\n")
        await process.stdin.drain()

    async def _all_answer(self, expected: str, within: float = WAIT) -> None:
        async with asyncio.timeout(within):
            for process in self.processes:
                assert process.stdout is not None
                answer = (await process.stdout.readline()).decode().strip()
                if answer != expected:
                    raise RuntimeError(f"client process said {answer!r}, not {expected!r}")


# --------------------------------------------------------------------------- gateway process


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Measured:
    """One case's samples and the gateway process's cost over its measured rounds."""

    def __init__(self, subscribers: int, profiler: cProfile.Profile | None = None) -> None:
        """``profiler``: enabled over the measured rounds (not the sockets' setup)."""
        self.subscribers = subscribers
        self.profiler = profiler
        self.samples: list[float] = []
        self.deliveries = 0
        self.cpu = 0.0
        self.rss_growth = 0.0
        #: The client processes' CPU seconds and events over the measured rounds.
        self.client_cpu = 0.0
        self.client_events = 0
        #: Seconds the gateway process spent in garbage collections over those rounds,
        #: and in the full ones (of the oldest generation: every tracked object).
        self.gc_seconds = 0.0
        self.full_gc_seconds = 0.0
        self.full_collections = 0
        #: Objects the collector tracks when the measured rounds start (what a full
        #: collection walks; frozen ones excepted).
        self.tracked = 0
        self._gc_started = 0.0
        self._cpu0 = 0.0
        self._rss0 = 0.0

    def start(self) -> None:
        self.tracked = len(gc.get_objects())
        self._cpu0, self._rss0 = time.process_time(), rss_mib()
        gc.callbacks.append(self._collecting)
        if self.profiler is not None:
            self.profiler.enable()

    def _collecting(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            took = time.perf_counter() - self._gc_started
            self.gc_seconds += took
            if info["generation"] == 2:
                self.full_gc_seconds += took
                self.full_collections += 1

    def stop(self, deliveries: int) -> None:
        gc.callbacks.remove(self._collecting)
        if self.profiler is not None:
            self.profiler.disable()
        self.cpu = time.process_time() - self._cpu0
        self.rss_growth = rss_mib() - self._rss0
        self.deliveries = deliveries

    @property
    def cpu_per_delivery(self) -> float:
        """The server process's CPU µs a delivery over the measured rounds."""
        return self.cpu / self.deliveries * 1e6 if self.deliveries else 0.0

    def row(self, mode: str, shape: str) -> str:
        per_event = self.client_cpu / self.client_events * 1e6 if self.client_events else 0.0
        return (
            f"| {mode} | {shape} | {self.subscribers} | {len(self.samples)} "
            f"| {ms(statistics.median(self.samples))} | {ms(percentile(self.samples, 0.99))} "
            f"| {self.cpu_per_delivery:.0f} | {self.rss_growth:+.0f} | {per_event:.0f} "
            f"| {self.gc_seconds * 1000:.0f} "
            f"| {self.full_collections}, {self.full_gc_seconds * 1000:.0f} "
            f"| {self.tracked / 1000:,.0f} |"
        )

    def clients(self, clients: Clients) -> None:
        self.client_cpu, self.client_events = clients.cpu, clients.events


def matched(
    emits: dict[str, list[float]], arrivals: list[dict[str, list[float]]], keys: set[str]
) -> list[float]:
    samples: list[float] = []
    for client in arrivals:  # each client's own keys: all keys for every client of
        for key, received in client.items():  # the spread case were 125 million looks
            if key in keys:
                samples.extend(r - e for e, r in zip(emits[key], received, strict=False))
    return samples


# ------------------------------------------------------------- the bare reference server


def _server_frame(payload: bytes) -> bytes:
    """A final, unmasked text frame, as the gateway's fan-out writes one."""
    return text_frame_header(len(payload)) + payload


def _next_frame(operation_id: str, key: str, kind: str, status: str, sequence: int) -> bytes:
    event = {"sequence": sequence, "kind": kind, "text": None}
    event["order"] = {"externalId": key, "status": status} if key else None
    message = {"id": operation_id, "type": "next", "payload": {"data": {"orderEvents": event}}}
    return _server_frame(json.dumps(message, separators=(",", ":")).encode())


class _BareSocket(asyncio.Protocol):
    """One client of :class:`BareFanout`: the upgrade, then masked client frames."""

    def __init__(self, server: BareFanout) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.upgraded = False
        self.unread = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.subscribed.pop(self, None)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        data = self.unread + data
        if not self.upgraded:
            head, found, data = data.partition(b"\r\n\r\n")
            if not found:
                self.unread = head
                return
            headers = dict(
                line.split(b": ", 1) for line in head.split(b"\r\n")[1:] if b": " in line
            )
            accept = accept_key(headers[b"Sec-WebSocket-Key"].decode()).encode()
            self.transport.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n"
                b"Sec-WebSocket-Protocol: " + PROTOCOL.encode() + b"\r\n\r\n"
            )
            self.upgraded = True
        at = 0
        while (frame := read_frame(data, at, mask=True)) is not None:
            first, payload, at = frame
            if first == 0x81:
                self.message(json.loads(payload))
        self.unread = data[at:]

    def message(self, message: dict[str, Any]) -> None:
        assert self.transport is not None
        kind = message["type"]
        if kind == "connection_init":
            self.transport.write(_server_frame(b'{"type":"connection_ack"}'))
        elif kind == "subscribe":
            operation_id = message["id"]
            self.transport.write(_next_frame(operation_id, "", "ORDER_BOOK_SNAPSHOT", "", 0))
            self.server.subscribed[self] = operation_id


class BareFanout:
    """The floor a fan-out stands on here: a server that speaks just enough
    graphql-transport-ws for the bench's clients and writes each event's frame, built
    before the sweep, to every subscribed socket in one loop of ``transport.write`` — no
    GraphQL, no checks, no yield to other work.  Its emit → client latency is what the
    kernel's loopback sends and the clients cost on this machine's two cores."""

    def __init__(self) -> None:
        self.subscribed: dict[_BareSocket, str] = {}
        self.server: asyncio.Server | None = None
        self.url = ""

    async def __aenter__(self) -> BareFanout:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            lambda: _BareSocket(self), "127.0.0.1", 0, backlog=4096
        )
        port = self.server.sockets[0].getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}/graphql"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self.server is not None
        self.server.close()
        for socket in list(self.subscribed):
            if socket.transport is not None:
                socket.transport.close()

    def emit(self, key: str, statuses: list[str], emits: dict[str, list[float]]) -> None:
        """One burst: the orders' ``statuses`` as one write per socket."""
        frames: dict[str, bytes] = {}
        emits.setdefault(key, []).extend(time.perf_counter() for _ in statuses)
        for socket, operation_id in self.subscribed.items():
            data = frames.get(operation_id)
            if data is None:
                data = frames[operation_id] = b"".join(
                    _next_frame(operation_id, key, "ORDER", status, n + 1)
                    for n, status in enumerate(statuses)
                )
            assert socket.transport is not None
            socket.transport.write(data)


async def bare_one_account(subscribers: int, rounds: int) -> Measured:
    """The one-account case's bursts (New Order + Working, then Canceled) from
    :class:`BareFanout` to the same client processes."""
    measured = Measured(subscribers)
    emits: dict[str, list[float]] = {}
    keys: set[str] = set()
    async with BareFanout() as bare:
        variables = [{"id": account_gid(ACCOUNT)}] * subscribers
        async with Clients(bare.url, "none", QUERY, variables) as clients:
            async for _ in warmed_rounds(rounds, measured, clients, keys):
                key = uuid.uuid4().hex
                keys.add(key)
                bare.emit(key, ["NEW", "WORKING"], emits)
                await clients.wait(PLACED_EVENTS, key)
                bare.emit(key, ["CANCELED"], emits)
                await clients.wait(CANCELLED_EVENTS, key)
            measured.stop(len(keys) * CANCELLED_EVENTS * subscribers)
            measured.samples = matched(emits, await clients.arrivals(), keys)
            measured.clients(clients)
    return measured


def views(gateway: TestGateway) -> list[GraphQLWebSocket]:
    app: Any = gateway.running.server.config.app
    while not isinstance(app, Starlette):
        app = app.app
    return [
        route.endpoint
        for route in app.routes
        if isinstance(route, WebSocketRoute) and isinstance(route.endpoint, GraphQLWebSocket)
    ]


@contextlib.contextmanager
def fanout(gateway: TestGateway, enabled: bool) -> Iterator[None]:
    """With ``enabled`` false: every subscription executed on its own, as before."""
    saved = [(v, v.graphql_transport_ws_handler_class) for v in views(gateway)]
    try:
        if not enabled:
            for view, fanned in saved:
                view.graphql_transport_ws_handler_class = fanned.__mro__[2]  # the guarded one
        yield
    finally:
        for view, fanned in saved:
            view.graphql_transport_ws_handler_class = fanned


def resting_order() -> PlaceOrderRequest:
    """A limit buy far below the market: it rests until cancelled."""
    return PlaceOrderRequest(
        account_id=ACCOUNT,
        symbol="ESZ26",
        side=OrderSide.BUY,
        type=OrderType.LIMIT,
        quantity=Decimal(1),
        price=Decimal("1000.00"),
        time_in_force=TimeInForce.GTC,
        idempotency_key=f"bench-{uuid.uuid4().hex}",
    )


#: Order notifications the sandbox sends for a placement (New Order, Working), and
#: with its cancel (Canceled): counted in the sandbox's process, checked after a case.
PLACED_EVENTS = 2
CANCELLED_EVENTS = 3


async def warmed_rounds(
    rounds: int, measured: Measured, clients: Clients, sent: set[str]
) -> AsyncIterator[int]:
    """``WARMUP`` rounds, then ``rounds`` measured ones: from the first of those the
    gateway's and the clients' costs are counted and what the warm-up ``sent`` is
    forgotten."""
    for round_number in range(WARMUP + rounds):
        if round_number == WARMUP:
            measured.start()
            sent.clear()
            await clients.mark()
        yield round_number


async def one_account(
    gateway: TestGateway,
    sandbox: ServerProcess,
    subscribers: int,
    rounds: int,
    profiler: cProfile.Profile | None = None,
) -> Measured:
    qst = connector(gateway)
    measured = Measured(subscribers, profiler)
    variables = [{"id": account_gid(ACCOUNT)}] * subscribers
    orders: set[str] = set()
    token = gateway.tokens["client"]
    async with Clients(gateway.websocket_url, token, QUERY, variables) as clients:
        async for _ in warmed_rounds(rounds, measured, clients, orders):
            # Each QST burst (New Order + Working, then Canceled) fans out fully
            # before the next: latency, not a backlog of rounds, is measured.
            order = await qst.place_order(resting_order())
            orders.add(order.id)
            await clients.wait(PLACED_EVENTS, order.id)
            await qst.cancel_order(ACCOUNT, order.id)
            await clients.wait(CANCELLED_EVENTS, order.id)
        measured.stop(len(orders) * CANCELLED_EVENTS * subscribers)
        emits = await sandbox_emits(sandbox)
        counted = {len(emits.get(o, ())) for o in orders}
        if counted != {CANCELLED_EVENTS}:
            raise RuntimeError(f"the sandbox sent {counted} notifications an order, not 3")
        measured.samples = matched(emits, await clients.arrivals(), orders)
        measured.clients(clients)
    return measured


async def sandbox_emits(sandbox: ServerProcess) -> dict[str, list[float]]:
    """Every Order notification's emit time so far, by order number (SIGUSR2)."""
    path = await sandbox.ask(signal.SIGUSR2)
    emits: dict[str, list[float]] = json.loads(await asyncio.to_thread(Path(path).read_text))
    return emits


async def sandbox_process(emits_path: str) -> None:
    """The QST sandbox, serving until stopped; at SIGUSR2 it writes the emit times of
    its Order notifications to ``emits_path`` as JSON and answers that path."""
    sandbox = QstSandbox(tick_seconds=0)
    emits: dict[str, list[float]] = defaultdict(list)
    sandbox.on_emit = lambda number, at: emits[number].append(at)

    def dump() -> str:
        Path(emits_path).write_text(json.dumps(emits))
        return emits_path

    await sandbox.start()
    try:
        await serve_until_stopped(
            {"settings": dict(sandbox.connector_settings())}, {signal.SIGUSR2: dump}
        )
    finally:
        await sandbox.stop()


class QstElsewhere(QstSandbox):
    """The sandbox serving in another process, as the gateway's test harness sees it:
    that one's settings, and the seeded traders and accounts the demo links name."""

    def __init__(self, settings: dict[str, Any]) -> None:
        super().__init__(tick_seconds=0)
        self._settings = settings

    def connector_settings(self) -> dict[str, Any]:
        return self._settings


async def many_accounts(gateway: TestGateway, accounts: int, rounds: int) -> Measured:
    log = gateway.services.events
    ids = [f"9{n:05d}" for n in range(accounts)]
    variables = [{"id": account_gid(a)} for a in ids]
    measured = Measured(accounts)
    emits: dict[str, list[float]] = {}
    keys: set[str] = set()
    token = gateway.tokens["admin"]  # sees every account, linked or not
    async with Clients(gateway.websocket_url, token, SPREAD_QUERY, variables) as clients:
        async for round_number in warmed_rounds(rounds, measured, clients, keys):
            for account in ids:
                key = f"{uuid.uuid4().hex}"
                event = models.OrderEvent(
                    platform="qst",
                    account_id=account,
                    sequence=0,
                    kind=models.OrderEventKind.TEXT,
                    at=datetime.now(UTC),
                    text=key,
                )
                emits[key] = [time.perf_counter()]
                keys.add(key)
                await log.append(topic_for(account), event)
            await clients.wait(round_number + 1)
        measured.stop(len(keys))
        measured.samples = matched(emits, await clients.arrivals(), keys)
        measured.clients(clients)
    return measured


def top_entries(profile: cProfile.Profile, count: int = 15) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.sort_stats("tottime").print_stats(count)
    return out.getvalue()


BARE = "bare server (the floor)"


def ratio_row(subscribers: int, gateway: Measured, bare: Measured) -> str:
    """The fan-out against the bare server: latency and the server's CPU a delivery."""

    def ratio(ours: float, floor: float) -> str:
        return f"{ours / floor:.1f}x" if floor else "-"

    return (
        f"| {subscribers} "
        f"| {ratio(statistics.median(gateway.samples), statistics.median(bare.samples))} "
        f"| {ratio(percentile(gateway.samples, 0.99), percentile(bare.samples, 0.99))} "
        f"| {ratio(gateway.cpu_per_delivery, bare.cpu_per_delivery)} |"
    )


async def event_cases(
    gateway: TestGateway, sandbox: ServerProcess, options: Options
) -> tuple[list[str], list[str], str]:
    """The rows of the latency table, of the fan-out / bare server ratios, and the
    profile's top entries (when asked)."""
    rows: list[str] = []
    ratios: list[str] = []
    profiled = ""
    every = ((False, BEFORE_CASES), (True, EVENT_CASES))
    modes = [m for m in every if (options.before or m[0]) and (options.after or not m[0])]
    for enabled, cases in modes:
        mode = "fan-out" if enabled else "before (one execution per subscriber)"
        with fanout(gateway, enabled):
            for subscribers, rounds in cases.items():
                if options.subscribers is not None and subscribers not in options.subscribers:
                    continue
                profile = options.profile and subscribers == options.profiled
                profiler = cProfile.Profile() if profile and enabled else None
                measured = await one_account(gateway, sandbox, subscribers, rounds, profiler)
                if profiler is not None:
                    profiled = top_entries(profiler)
                rows.append(measured.row(mode, "one account"))
                print(rows[-1], file=sys.stderr, flush=True)
                if enabled and options.bare:
                    floor = await bare_one_account(subscribers, rounds)
                    rows.append(floor.row(BARE, "one account"))
                    print(rows[-1], file=sys.stderr, flush=True)
                    ratios.append(ratio_row(subscribers, measured, floor))
            if not options.spread:
                continue
            measured = await many_accounts(gateway, SPREAD_ACCOUNTS, SPREAD_ROUNDS)
            rows.append(measured.row(mode, "one account each"))
            print(rows[-1], file=sys.stderr, flush=True)
    return rows, ratios, profiled


PLACE = """mutation($input: PlaceOrderInput!) { placeOrder(input: $input) {
  order { externalId status } errors { code message } } }"""


async def gateway_placements(gateway: TestGateway) -> list[float]:
    samples: list[float] = []
    headers = {"Authorization": f"Bearer {gateway.tokens['client']}"}
    for n in range(WARMUP + PLACEMENTS):
        variables = {
            "input": {
                "accountId": account_gid(ACCOUNT),
                "symbol": "ESZ26",
                "side": "BUY",
                "type": "LIMIT",
                "quantity": "1",
                "price": "1000",
                "timeInForce": "GTC",
                "idempotencyKey": f"bench-{uuid.uuid4().hex}",
            }
        }
        started = time.perf_counter()
        response = await gateway.http.post(
            gateway.graphql_url, json={"query": PLACE, "variables": variables}, headers=headers
        )
        elapsed = time.perf_counter() - started
        payload = response.json()["data"]["placeOrder"]
        if payload["errors"]:
            raise RuntimeError(f"placeOrder failed: {payload['errors']}")
        if n >= WARMUP:
            samples.append(elapsed)
        await connector(gateway).cancel_order(ACCOUNT, payload["order"]["externalId"])
    return samples


async def connector_placements(gateway: TestGateway) -> list[float]:
    """The connector alone (no HTTP, GraphQL, store): where the gateway's time goes."""
    qst = connector(gateway)
    samples: list[float] = []
    for n in range(WARMUP + PLACEMENTS):
        request = resting_order()
        started = time.perf_counter()
        order = await qst.place_order(request)
        elapsed = time.perf_counter() - started
        if n >= WARMUP:
            samples.append(elapsed)
        await qst.cancel_order(ACCOUNT, order.id)
    return samples


async def direct_placements(settings: dict[str, Any]) -> list[float]:
    """A bare protobuf client of another user (one session per user: no 4101 fight)."""
    samples: list[float] = []
    trust = ssl.create_default_context(cafile=settings["ca_file"])
    async with QstDirect.connect(settings["url"], trust) as direct:
        for n in range(WARMUP + PLACEMENTS):
            started = time.perf_counter()
            number = await direct.place()
            elapsed = time.perf_counter() - started
            if n >= WARMUP:
                samples.append(elapsed)
            await direct.cancel(number)
    return samples


@dataclass(frozen=True)
class Options:
    profile: bool = False
    before: bool = True
    after: bool = True
    #: the one-account cases to run (all when None)
    subscribers: frozenset[int] | None = None
    spread: bool = True
    placements: bool = True
    #: each fan-out case also against the bare server
    bare: bool = True

    @property
    def profiled(self) -> int:
        """The case ``--profile`` profiles: 1,000 subscribers, or the one case run."""
        only = self.subscribers
        return next(iter(only)) if only is not None and len(only) == 1 else MANY

    @classmethod
    def parse(cls, flags: list[str]) -> Options:
        subscribers = None
        if "--subscribers" in flags:
            listed = flags[flags.index("--subscribers") + 1]
            subscribers = frozenset(int(n) for n in listed.split(","))
        return cls(
            profile="--profile" in flags,
            before="--fanout-only" not in flags,
            after="--before-only" not in flags,
            subscribers=subscribers,
            spread="--no-spread" not in flags,
            placements="--no-placements" not in flags,
            bare="--no-bare" not in flags,
        )


async def main(options: Options) -> None:
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        arguments = ["sandbox", str(directory / "emits.json")]
        async with ServerProcess(
            "the QST sandbox", Path(__file__), arguments, directory / "sandbox.log"
        ) as sandbox:
            settings = sandbox.info["settings"]
            async with open_test_gateway(
                brokergraph_qst.plugin,
                [QstElsewhere(settings)],
                directory,
                connector_settings={"qst": FAST_RECOVERY},
                # One viewer holds every subscriber: the per-viewer caps would refuse them.
                limits={"max_sockets_per_viewer": 0, "max_subscriptions_per_viewer": 0},
            ) as gateway:
                tune_garbage_collector()  # as `brokergraph serve` does once serving
                rows, ratios, profiled = await event_cases(gateway, sandbox, options)
                if options.placements:
                    through = await gateway_placements(gateway)
                    alone = await connector_placements(gateway)
                    direct = await direct_placements(settings)
    print(
        "| emit → GraphQL WS client | shape | subscribers | samples | p50 ms | p99 ms "
        "| gateway CPU µs/delivery | RSS growth MiB | clients' CPU µs/event | gateway GC ms "
        "| full GCs, ms | tracked objects k |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(row)
    if ratios:
        print()
        print("| fan-out / bare server, one account | p50 | p99 | server CPU a delivery |")
        print("|---:|---:|---:|---:|")
        for row in ratios:
            print(row)
    if profiled:
        print()
        print(f"Fan-out, {options.profiled} subscribers, gateway process (own time):")
        print("```")
        print(profiled.strip())
        print("```")
    if not options.placements:
        return
    p50 = (statistics.median(through), statistics.median(alone), statistics.median(direct))
    p99 = (percentile(through, 0.99), percentile(alone, 0.99), percentile(direct, 0.99))
    print()
    print("| measure | samples | p50 ms | p99 ms |")
    print("|---|---:|---:|---:|")
    print(f"| placement, direct on the sandbox | {len(direct)} | {ms(p50[2])} | {ms(p99[2])} |")
    print(f"| placement, QstConnector alone | {len(alone)} | {ms(p50[1])} | {ms(p99[1])} |")
    print(f"| placement, through the gateway | {len(through)} | {ms(p50[0])} | {ms(p99[0])} |")
    print(f"| ratio connector / direct | - | {p50[1] / p50[2]:.1f}x | {p99[1] / p99[2]:.1f}x |")
    print(f"| ratio gateway / direct | - | {p50[0] / p50[2]:.1f}x | {p99[0] / p99[2]:.1f}x |")


if __name__ == "__main__":
    if sys.argv[1:2] == ["client"]:
        asyncio.run(client_process())
    elif sys.argv[1:2] == ["sandbox"]:
        asyncio.run(sandbox_process(sys.argv[2]))
    else:
        asyncio.run(main(Options.parse(sys.argv[1:])))
