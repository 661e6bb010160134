"""Benchmark of the QST plugin: order events and order placement, gateway vs direct.

Run from the repository root (``scripts/bench qst`` does)::

    .venv/bin/python plugins/qst/tests/bench_events.py

Everything runs in this one process and event loop, over real sockets: the QST
sandbox, the gateway under uvicorn and every WebSocket client.  Prints markdown:

1. emit → client latency: from the sandbox about to send an Order notification
   (its ``on_emit`` hook) to a graphql-transport-ws client of ``orderEvents`` having
   received the event, p50/p99, with 1, 100 and 1,000 concurrent subscribers.  One
   upstream session feeds them all; each round places an order (QST sends New Order
   and Working at once) and, once every subscriber has both, cancels it (Canceled).
2. placement round trip: ``placeOrder`` over HTTP through the gateway (it returns
   once QST answered and sent the order's first notification) against the same
   exchange done directly on the sandbox by a bare protobuf client (PlaceOrderRequest
   → PlaceOrderResponse + first Order notification), with the ratio.

Bounded: a fixed number of rounds per case and a deadline on every wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import websockets

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from brokergraph_qst import wire  # noqa: E402
from brokergraph_qst.sandbox import QstSandbox, password_hash  # noqa: E402

from gateway.contract import (  # noqa: E402
    OrderSide,
    OrderType,
    PlaceOrderRequest,
    TimeInForce,
)
from gateway.testing import TestGateway  # noqa: E402
from plugins.qst.tests.qst_testkit import (  # noqa: E402
    PROTOCOL,
    account_gid,
    connector,
    qst_gateway_on,
)

#: subscribers -> rounds (each round: 3 Order notifications to every subscriber)
EVENT_CASES = {1: 100, 100: 30, 1000: 10}
PLACEMENTS = 100
WARMUP = 3
WAIT = 60.0
ACCOUNT = "297999"
QUERY = (
    "subscription($id: ID!) { orderEvents(accountId: $id) "
    "{ sequence kind order { externalId status } } }"
)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


class Client:
    """One graphql-transport-ws subscriber that timestamps each order event on arrival."""

    def __init__(self) -> None:
        self.arrivals: dict[str, list[float]] = defaultdict(list)
        self.ready = asyncio.Event()
        self.changed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def run(self, url: str, token: str) -> None:
        async with websockets.connect(url, subprotocols=[PROTOCOL], max_queue=None) as socket:
            init = {"Authorization": f"Bearer {token}"}
            await socket.send(json.dumps({"type": "connection_init", "payload": init}))
            await socket.recv()
            payload = {"query": QUERY, "variables": {"id": account_gid(ACCOUNT)}}
            await socket.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
            async for text in socket:
                received = time.perf_counter()
                message = json.loads(text)
                if message["type"] != "next":
                    raise RuntimeError(f"subscription failed: {message}")
                event = message["payload"]["data"]["orderEvents"]
                if event["kind"] == "ORDER_BOOK_SNAPSHOT":
                    self.ready.set()
                elif event["order"] is not None:
                    self.arrivals[event["order"]["externalId"]].append(received)
                    self.changed.set()


async def all_received(clients: list[Client], emits: dict[str, list[float]], order: str) -> None:
    async with asyncio.timeout(WAIT):
        for client in clients:
            while len(client.arrivals[order]) < len(emits[order]):
                client.changed.clear()
                await client.changed.wait()


async def event_latency(
    gateway: TestGateway, sandbox: QstSandbox, subscribers: int, rounds: int
) -> list[float]:
    qst = connector(gateway)
    emits: dict[str, list[float]] = defaultdict(list)
    sandbox.on_emit = lambda number, at: emits[number].append(at)
    clients = [Client() for _ in range(subscribers)]
    token = gateway.tokens["client"]
    for client in clients:
        client.task = asyncio.create_task(client.run(gateway.websocket_url, token))
    samples: list[float] = []
    try:
        async with asyncio.timeout(WAIT):
            await asyncio.gather(*(c.ready.wait() for c in clients))
        for round_number in range(WARMUP + rounds):
            request = PlaceOrderRequest(
                account_id=ACCOUNT,
                symbol="ESZ26",
                side=OrderSide.BUY,
                type=OrderType.LIMIT,
                quantity=Decimal(1),
                price=Decimal("1000.00"),
                time_in_force=TimeInForce.GTC,
                idempotency_key=f"bench-{uuid.uuid4().hex}",
            )
            # Each QST burst (New Order + Working, then Canceled) fans out fully before
            # the next: latency, not a backlog of rounds, is measured.
            order = await qst.place_order(request)
            await all_received(clients, emits, order.id)
            await qst.cancel_order(ACCOUNT, order.id)
            await all_received(clients, emits, order.id)
            if round_number >= WARMUP:
                for client in clients:
                    for emitted, received in zip(
                        emits[order.id], client.arrivals[order.id], strict=True
                    ):
                        samples.append(received - emitted)
    finally:
        sandbox.on_emit = None
        for client in clients:
            if client.task is not None:
                client.task.cancel()
        await asyncio.gather(*(c.task for c in clients if c.task), return_exceptions=True)
    return samples


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
        request = PlaceOrderRequest(
            account_id=ACCOUNT,
            symbol="ESZ26",
            side=OrderSide.BUY,
            type=OrderType.LIMIT,
            quantity=Decimal(1),
            price=Decimal("1000.00"),
            time_in_force=TimeInForce.GTC,
            idempotency_key=f"bench-{uuid.uuid4().hex}",
        )
        started = time.perf_counter()
        order = await qst.place_order(request)
        elapsed = time.perf_counter() - started
        if n >= WARMUP:
            samples.append(elapsed)
        await qst.cancel_order(ACCOUNT, order.id)
    return samples


async def until_notified(socket: Any, request_id: int, number: str | None = None) -> str:
    """Read until the response to ``request_id`` and an Order notification of its order."""
    seen: set[str] = set()
    answered = False
    while not (answered and number in seen):
        frame = wire.decode(await socket.recv())
        if frame.request_id == request_id:
            answered = True
            number = number or frame.body.order_number
        elif isinstance(frame.body, wire.OrderNotice):
            seen.add(frame.body.order.id)
    assert number is not None
    return number


async def direct_placements(sandbox: QstSandbox) -> list[float]:
    """A bare protobuf client of another user (one session per user: no 4101 fight)."""
    samples: list[float] = []
    trust = sandbox.client_ssl_context()
    async with websockets.connect(sandbox.url, compression=None, ssl=trust) as socket:
        hashed = password_hash("other-pass")
        for request_id, request in enumerate(
            (
                wire.login("other-trader", hashed, "bench"),
                wire.oe_login("other-trader", hashed, "QOR", is_relogin=False),
            ),
            start=1,
        ):
            await socket.send(wire.encode(request_id, request))
            while wire.decode(await socket.recv(decode=False)).request_id != request_id:
                pass
        spec = wire.OrderSpec(
            contract="ESZ26",
            side=OrderSide.BUY,
            type=OrderType.LIMIT,
            quantity=Decimal(1),
            time_in_force=TimeInForce.GTC,
            price=Decimal("1000.00"),
        )
        for n in range(WARMUP + PLACEMENTS):
            request_id = 100 + 2 * n
            started = time.perf_counter()
            await socket.send(wire.encode(request_id, wire.place_order(spec)))
            number = await until_notified(socket, request_id)
            elapsed = time.perf_counter() - started
            if n >= WARMUP:
                samples.append(elapsed)
            await socket.send(wire.encode(request_id + 1, wire.cancel_order(number)))
            await until_notified(socket, request_id + 1, number)
        await socket.send(wire.encode(1, wire.logout()))
        with contextlib.suppress(websockets.ConnectionClosed):
            while True:
                await socket.recv()
    return samples


async def main() -> None:
    logging.basicConfig(level=logging.ERROR)
    sandbox = QstSandbox(tick_seconds=0)
    await sandbox.start()
    rows: list[str] = []
    try:
        with tempfile.TemporaryDirectory() as directory:
            async with qst_gateway_on(sandbox, Path(directory)) as gateway:
                for subscribers, rounds in EVENT_CASES.items():
                    samples = await event_latency(gateway, sandbox, subscribers, rounds)
                    rows.append(
                        f"| emit → GraphQL WS client | {subscribers} | {len(samples)} "
                        f"| {ms(statistics.median(samples))} | {ms(percentile(samples, 0.99))} |"
                    )
                    print(rows[-1], file=sys.stderr, flush=True)
                through = await gateway_placements(gateway)
                alone = await connector_placements(gateway)
                direct = await direct_placements(sandbox)
    finally:
        await sandbox.stop()
    p50 = (statistics.median(through), statistics.median(alone), statistics.median(direct))
    p99 = (percentile(through, 0.99), percentile(alone, 0.99), percentile(direct, 0.99))
    print("| measure | subscribers | samples | p50 ms | p99 ms |")
    print("|---|---:|---:|---:|---:|")
    for row in rows:
        print(row)
    print(f"| placement, direct on the sandbox | - | {len(direct)} | {ms(p50[2])} | {ms(p99[2])} |")
    print(f"| placement, QstConnector alone | - | {len(alone)} | {ms(p50[1])} | {ms(p99[1])} |")
    print(f"| placement, through the gateway | - | {len(through)} | {ms(p50[0])} | {ms(p99[0])} |")
    print(f"| ratio connector / direct | - | - | {p50[1] / p50[2]:.1f}x | {p99[1] / p99[2]:.1f}x |")
    print(f"| ratio gateway / direct | - | - | {p50[0] / p50[2]:.1f}x | {p99[0] / p99[2]:.1f}x |")


if __name__ == "__main__":
    asyncio.run(main())
