"""Benchmark: the gateway's hot path — writes against their direct call, warm reads
against a bare Strawberry app serving the same cache.

Run from the repository root (bounded: about two minutes, stops by itself)::

    .venv/bin/python tests/bench_hotpath.py      # or: scripts/bench hotpath

This process serves the QST and cTrader sandboxes, a gateway wired to both (SQLite
store, in-memory cache) and a bare Strawberry app answering the same balance from the
gateway's cache (no auth, no extensions, no store); the load client runs in another
process (this file with ``--client``) so it never shares the event loop under test.
Printed as markdown, medians of interleaved rounds:

* ``placeOrder`` through the gateway (HTTP + GraphQL + idempotency + audit) against a
  bare protobuf client placing the same order on the QST sandbox (request → response +
  the order's first notification, as the connector waits for).  Both do the same
  upstream work: the sandbox answers with the order number (its default; QST's own
  answer may omit it, the ``order_number_in_response`` knob, and then any client must
  read the order book to learn its order) and sends the first notification right
  behind the answer, so neither side waits for it beyond reading it;
* a cTrader ``deposit`` through the gateway against the same ``changebalance`` REST
  call made directly (with a manager token fetched once);
* warm ``account { balance }`` reads and ``{ viewer { role } }``: requests per second
  of a closed loop of concurrent keep-alive connections, gateway against the bare app.

``--profile`` also profiles the gateway while it serves the warm balance reads
(cProfile on the process's CPU time, top entries by own time, to stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import hashlib
import io
import json
import pstats
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import brokergraph_ctrader.plugin  # noqa: E402
import brokergraph_qst.plugin  # noqa: E402
import httpx  # noqa: E402
import strawberry  # noqa: E402
import websockets  # noqa: E402
from brokergraph_ctrader.sandbox import CTraderSandbox  # noqa: E402
from brokergraph_qst import wire  # noqa: E402
from brokergraph_qst.sandbox import QstSandbox, password_hash  # noqa: E402
from strawberry.asgi import GraphQL  # noqa: E402
from strawberry.extensions import ParserCache, ValidationCache  # noqa: E402

from gateway.asgi_server import ServedApp, serve_asgi  # noqa: E402
from gateway.auth import Role  # noqa: E402
from gateway.cache import Cache  # noqa: E402
from gateway.cli import run_server  # noqa: E402
from gateway.config import load_settings  # noqa: E402
from gateway.contract import OrderSide, OrderType, TimeInForce  # noqa: E402
from gateway.graphql.ids import encode_id  # noqa: E402
from gateway.graphql.loaders import cache_key  # noqa: E402
from gateway.plugins import load_plugins  # noqa: E402
from gateway.runner import RunningGateway, running_gateway  # noqa: E402
from gateway.sandboxes import Sandbox, seed_demo  # noqa: E402
from gateway.testing import TEST_JWT_SECRET  # noqa: E402

QST_ACCOUNT = "297999"  # DEMO-001's
CTRADER_ACCOUNT = "9000001"  # DEMO-001's
ROUNDS = 5
PER_ROUND = 30
WARMUP = 10
#: Seconds of each throughput measurement, and concurrent keep-alive connections.
LOAD_SECONDS = 4.0
CONNECTIONS = 16
#: Every wait of the client (one request, one notification) is bounded by this.
WAIT = 30.0
#: The whole client run is bounded by this.
CLIENT_TIMEOUT = 240.0
#: The client's lines around each throughput case; ``--profile`` profiles this one.
PROFILE_START, PROFILE_STOP, PROFILED = "case-start", "case-stop", "balance_gateway"

PLACE = """mutation($input: PlaceOrderInput!) { placeOrder(input: $input) {
  order { id externalId status } errors { code message } } }"""
CANCEL = """mutation($input: CancelOrderInput!) { cancelOrder(input: $input) {
  errors { code message } } }"""
DEPOSIT = """mutation($input: MoneyMovementInput!) { deposit(input: $input) {
  operation { externalId } errors { code message } } }"""
BALANCE = "query($id: ID!) { account(id: $id) { balance { amount currency } } }"
VIEWER = "{ viewer { role } }"


# -- the bare app: Strawberry answering from the same cache, nothing else ---------------


@strawberry.type
class BareMoney:
    amount: str
    currency: str


@strawberry.type
class BareAccount:
    balance: BareMoney | None


@strawberry.type
class BareViewer:
    role: str


def bare_app(cache: Cache) -> GraphQL[Any, Any]:
    @strawberry.type
    class Query:
        @strawberry.field
        async def account(self, id: strawberry.ID) -> BareAccount | None:
            account = await cache.get(cache_key("account", "ctrader", CTRADER_ACCOUNT))
            if account is None or account.balance is None:
                return None
            money = BareMoney(amount=str(account.balance.amount), currency=account.balance.currency)
            return BareAccount(balance=money)

        @strawberry.field
        def viewer(self) -> BareViewer:
            return BareViewer(role="CLIENT")

    # The same document caches as the gateway's schema: parsing and validating a
    # repeated query is not what either app should pay per request.
    schema = strawberry.Schema(query=Query, extensions=[ParserCache, ValidationCache])
    return GraphQL(schema, graphql_ide=None)


# -- the load client (another process) -------------------------------------------------


class RawClient:
    """One keep-alive HTTP/1.1 connection: the cheapest client, so the server is measured."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, url: str) -> RawClient:
        parsed = httpx.URL(url)
        reader, writer = await asyncio.open_connection(parsed.host, parsed.port)
        return cls(reader, writer)

    async def exchange(self, request: bytes) -> bytes:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"unexpected answer: {head[:80]!r}")
        return await self.reader.readexactly(length)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


def post_bytes(url: str, body: dict[str, Any], token: str | None) -> bytes:
    parsed = httpx.URL(url)
    payload = json.dumps(body).encode()
    headers = [
        f"POST {parsed.raw_path.decode()} HTTP/1.1",
        f"Host: {parsed.host}:{parsed.port}",
        "Content-Type: application/json",
        f"Content-Length: {len(payload)}",
    ]
    if token is not None:
        headers.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + payload


async def throughput(url: str, body: dict[str, Any], token: str | None) -> tuple[float, int]:
    """Requests per second of CONNECTIONS closed loops for LOAD_SECONDS, and how many."""
    request = post_bytes(url, body, token)
    clients = [await RawClient.open(url) for _ in range(CONNECTIONS)]
    check = json.loads(await clients[0].exchange(request))
    if check.get("errors") or not check.get("data"):
        raise RuntimeError(f"{url} answered {check}")
    done = 0
    deadline = time.perf_counter() + LOAD_SECONDS

    async def loop(client: RawClient) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await client.exchange(request)
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(loop(c) for c in clients))
    elapsed = time.perf_counter() - started
    for client in clients:
        await client.close()
    return done / elapsed, done + 1


async def until_notified(socket: Any, request_id: int, number: str | None = None) -> str:
    """Read until the answer to ``request_id`` and a notification of its order."""
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


class Direct:
    """The bare clients of the vendors: QST protobuf over WebSocket, cTrader REST."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.trust = ssl.create_default_context(cafile=config["ca_file"])
        self.request_id = 10

    @contextlib.asynccontextmanager
    async def qst(self) -> AsyncIterator[Any]:
        async with websockets.connect(
            self.config["qst_url"], compression=None, ssl=self.trust
        ) as socket:
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
            yield socket

    async def place(self, socket: Any) -> str:
        spec = wire.OrderSpec(
            contract="ESZ26",
            side=OrderSide.BUY,
            type=OrderType.LIMIT,
            quantity=Decimal(1),
            time_in_force=TimeInForce.GTC,
            price=Decimal("1000.00"),
        )
        self.request_id += 1
        await socket.send(wire.encode(self.request_id, wire.place_order(spec)))
        return await until_notified(socket, self.request_id)

    async def cancel(self, socket: Any, number: str) -> None:
        """Cancel a placed order (its margin would refuse the next placements)."""
        self.request_id += 1
        await socket.send(wire.encode(self.request_id, wire.cancel_order(number)))
        await until_notified(socket, self.request_id, number)


async def timed(samples: list[float], call: Any) -> Any:
    started = time.perf_counter()
    result = await asyncio.wait_for(call, WAIT)
    samples.append(time.perf_counter() - started)
    return result


async def run_client(config: dict[str, Any]) -> dict[str, Any]:
    direct = Direct(config)
    gateway_url = config["graphql_url"]
    client_token, admin_token = config["client_token"], config["admin_token"]
    results: dict[str, Any] = {}
    trust = ssl.create_default_context(cafile=config["ca_file"])
    # The gateway's requests go over one raw keep-alive connection, the cheapest client,
    # like the bare protobuf client of the direct case: what differs is the server side.
    gateway = await RawClient.open(gateway_url)

    async def graphql(body: dict[str, Any], token: str) -> dict[str, Any]:
        answer = json.loads(await gateway.exchange(post_bytes(gateway_url, body, token)))
        if not isinstance(answer.get("data"), dict):
            raise RuntimeError(f"the gateway answered {answer}")
        data: dict[str, Any] = answer["data"]
        return data

    async with (
        httpx.AsyncClient(
            timeout=WAIT,
            verify=trust,
            base_url=config["ctrader_url"],
            headers={"Accept": "application/json"},  # cTrader answers XML unless asked
        ) as ctrader,
        direct.qst() as socket,
    ):

        async def gateway_place() -> str:
            variables = {
                "input": {
                    "accountId": config["qst_account"],
                    "symbol": "ESZ26",
                    "side": "BUY",
                    "type": "LIMIT",
                    "quantity": "1",
                    "price": "1000",
                    "timeInForce": "GTC",
                    "idempotencyKey": f"bench-{uuid.uuid4().hex}",
                }
            }
            payload = (await graphql({"query": PLACE, "variables": variables}, client_token))[
                "placeOrder"
            ]
            if payload["errors"]:
                raise RuntimeError(f"placeOrder failed: {payload['errors']}")
            order_id: str = payload["order"]["id"]
            return order_id

        async def gateway_cancel(order_id: str) -> None:
            body = {"query": CANCEL, "variables": {"input": {"orderId": order_id}}}
            payload = (await graphql(body, client_token))["cancelOrder"]
            if payload["errors"]:
                raise RuntimeError(f"cancelOrder failed: {payload['errors']}")

        async def gateway_deposit() -> None:
            variables = {
                "input": {
                    "accountId": config["ctrader_account"],
                    "amount": "1.00",
                    "idempotencyKey": f"bench-{uuid.uuid4().hex}",
                }
            }
            payload = (await graphql({"query": DEPOSIT, "variables": variables}, admin_token))[
                "deposit"
            ]
            if payload["errors"]:
                raise RuntimeError(f"deposit failed: {payload['errors']}")

        token_answer = await ctrader.post(
            "/v2/webserv/managers/token",
            json={"login": 30017, "hashedPassword": hashlib.md5(b"manager-pass").hexdigest()},
        )
        manager_token = token_answer.json()["webservToken"]

        async def direct_deposit() -> None:
            response = await ctrader.post(
                f"/v2/webserv/traders/{CTRADER_ACCOUNT}/changebalance",
                params={"token": manager_token},
                json={
                    "login": int(CTRADER_ACCOUNT),
                    "preciseAmount": "1.00",
                    "type": "DEPOSIT",
                    "externalId": f"bench-{uuid.uuid4().hex}",
                    "comment": "bench",
                    "source": "bench",
                },
            )
            response.raise_for_status()

        async def nothing(_: Any) -> None:
            return None

        # name -> (the timed call, what undoes it untimed)
        cases: dict[str, tuple[Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]]]
        cases = {
            "place_gateway": (gateway_place, gateway_cancel),
            "place_direct": (lambda: direct.place(socket), lambda n: direct.cancel(socket, n)),
            "deposit_gateway": (gateway_deposit, nothing),
            "deposit_direct": (direct_deposit, nothing),
        }
        samples: dict[str, list[float]] = {name: [] for name in cases}
        for call, undo in cases.values():
            for _ in range(WARMUP):
                await undo(await asyncio.wait_for(call(), WAIT))
        for _ in range(ROUNDS):  # interleaved: a drift of the machine hits every case alike
            for name, (call, undo) in cases.items():
                # The server counts its CPU time per round (the undo's included).
                print(f"{PROFILE_START} {name}", flush=True)
                for _ in range(PER_ROUND):
                    await undo(await timed(samples[name], call()))
                print(PROFILE_STOP, flush=True)
        results["latency"] = {name: statistics.median(s) for name, s in samples.items()}
        # The tenth percentile too: on a machine shared with other work, the median
        # waits for other processes' time slices; the fastest tenth mostly does not.
        results["latency_p10"] = {
            name: statistics.quantiles(s, n=10)[0] for name, s in samples.items()
        }
        results["served_writes"] = dict.fromkeys(cases, ROUNDS * PER_ROUND)
    await gateway.close()

    balance = {"query": BALANCE, "variables": {"id": config["ctrader_account"]}}
    viewer = {"query": VIEWER}
    rates: dict[str, list[float]] = {}
    served: dict[str, int] = {}
    for _ in range(2):  # interleaved twice, the best of each kept
        for name, url, body, token in (
            ("balance_gateway", gateway_url, balance, client_token),
            ("balance_bare", config["bare_url"], balance, None),
            ("viewer_gateway", gateway_url, viewer, client_token),
            ("viewer_bare", config["bare_url"], viewer, None),
        ):
            # The server counts its CPU time between the markers (and profiles one case).
            print(f"{PROFILE_START} {name}", flush=True)
            rate, count = await throughput(url, body, token)
            print(PROFILE_STOP, flush=True)
            rates.setdefault(name, []).append(rate)
            served[name] = served.get(name, 0) + count
    results["throughput"] = {name: max(values) for name, values in rates.items()}
    results["served"] = served
    return results


# -- the server side (this process) ----------------------------------------------------


async def client_output(
    stream: asyncio.StreamReader, profiler: cProfile.Profile | None, cpu: dict[str, float]
) -> str:
    """The client's result line.  Between its markers of a throughput case, this
    process's CPU time is added to ``cpu[case]`` (CPU per request holds up on a busy
    machine, where requests per second do not), and cProfile runs for the profiled one."""
    case, started = "", 0.0
    while True:
        line = (await stream.readline()).decode().strip()
        if not line:
            raise RuntimeError("the load client stopped without its results")
        if line.startswith(PROFILE_START):
            case, started = line.split(" ", 1)[1], time.process_time()
            if profiler is not None and case == PROFILED:
                profiler.enable()
        elif line == PROFILE_STOP:
            cpu[case] = cpu.get(case, 0.0) + time.process_time() - started
            if profiler is not None and case == PROFILED:
                profiler.disable()
        else:
            return line


def top(profiler: cProfile.Profile, entries: int = 30) -> str:
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(entries)
    return out.getvalue()


@dataclass(frozen=True)
class Gateway:
    running: RunningGateway
    tokens: dict[str, str]


@contextlib.asynccontextmanager
async def serve_gateway(sandboxes: list[Sandbox], directory: Path) -> AsyncIterator[Gateway]:
    """The QST and cTrader plugins against their sandboxes, demo links seeded."""
    plugins = load_plugins(
        entry_points=False,
        extra=[brokergraph_qst.plugin, brokergraph_ctrader.plugin],
        strict=True,
    )
    settings = load_settings(
        environ={},
        overrides={
            "auth": {"jwt_secret": TEST_JWT_SECRET},
            "store": {"url": f"sqlite+aiosqlite:///{directory / 'store.db'}"},
            "plugins": {"strict": True},
            "connectors": {s.name: dict(s.connector_settings()) for s in sandboxes},
            # The per-viewer limiter still runs (its cost is measured), never refusing.
            "limits": {
                "requests_per_viewer_per_second": 1e9,
                "requests_per_viewer_burst": 1_000_000_000,
            },
        },
    )
    async with running_gateway(settings, plugins, host="127.0.0.1", port=0) as running:
        for sandbox in sandboxes:
            sandbox.attach_gateway(running.url)
        classes = plugins.connector_classes
        await seed_demo(running.services.store, sandboxes, lambda n: classes[n].platform)
        issue = running.services.authenticator.issue
        yield Gateway(
            running,
            {
                "admin": issue(subject="bench-admin", role=Role.ADMIN, ttl_seconds=3600),
                "client": issue(
                    subject="bench-client",
                    role=Role.CLIENT,
                    partner_code="DEMO-001",
                    ttl_seconds=3600,
                ),
            },
        )


async def serve(profile: bool) -> dict[str, Any]:
    qst = QstSandbox(tick_seconds=0)
    await qst.start()
    try:
        with tempfile.TemporaryDirectory() as directory:
            async with (
                CTraderSandbox() as ctrader,
                serve_gateway([qst, ctrader], Path(directory)) as gateway,
            ):
                bare: ServedApp = await serve_asgi(
                    bare_app(gateway.running.services.cache), name="the bare app"
                )
                try:
                    return await drive(gateway, qst, ctrader, bare, profile)
                finally:
                    await bare.stop()
    finally:
        await qst.stop()


async def drive(
    gateway: Gateway,
    qst: QstSandbox,
    ctrader: CTraderSandbox,
    bare: ServedApp,
    profile: bool,
) -> dict[str, Any]:
    ctrader_gid = encode_id("Account", "ctrader", CTRADER_ACCOUNT)
    async with httpx.AsyncClient(timeout=WAIT) as http:  # fills the cache
        warm = await http.post(
            gateway.running.graphql_url,
            json={"query": BALANCE, "variables": {"id": ctrader_gid}},
            headers={"Authorization": f"Bearer {gateway.tokens['client']}"},
        )
    assert warm.json()["data"]["account"]["balance"] is not None, warm.text
    config = {
        "graphql_url": gateway.running.graphql_url,
        "bare_url": f"{bare.url}/graphql",
        "client_token": gateway.tokens["client"],
        "admin_token": gateway.tokens["admin"],
        "qst_url": qst.url,
        "qst_account": encode_id("Account", "qst", QST_ACCOUNT),
        "ctrader_url": ctrader.connector_settings()["url"],
        "ctrader_account": ctrader_gid,
        "ca_file": str(ctrader.connector_settings()["ca_file"]),
    }
    # CPU time, not wall time: on a shared machine a wall-clock profile charges other
    # processes' time slices to whatever line was running when the process was paused.
    profiler = cProfile.Profile(time.process_time) if profile else None
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--client",
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        process.stdin.write(json.dumps(config).encode())
        process.stdin.close()
        cpu: dict[str, float] = {}
        line = await asyncio.wait_for(client_output(process.stdout, profiler, cpu), CLIENT_TIMEOUT)
        await asyncio.wait_for(process.wait(), WAIT)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    if process.returncode != 0:
        raise RuntimeError(f"the load client failed ({process.returncode})")
    if profiler is not None:
        print(top(profiler), file=sys.stderr)
    results: dict[str, Any] = json.loads(line)
    served = {**results["served"], **results["served_writes"]}
    results["cpu"] = {case: cpu[case] / n for case, n in served.items()}
    return results


def table(results: dict[str, Any]) -> str:
    latency, rate, cpu = results["latency"], results["throughput"], results["cpu"]
    p10 = results["latency_p10"]
    rows = [
        "| measure | gateway | reference | ratio | goal |",
        "|---|---:|---:|---:|---|",
        "| QST `placeOrder` p50 ms (reference: direct protobuf) "
        f"| {latency['place_gateway'] * 1000:.2f} | {latency['place_direct'] * 1000:.2f} "
        f"| {latency['place_gateway'] / latency['place_direct']:.1f}x | ≤ 3x |",
        "| QST `placeOrder` p10 ms "
        f"| {p10['place_gateway'] * 1000:.2f} | {p10['place_direct'] * 1000:.2f} "
        f"| {p10['place_gateway'] / p10['place_direct']:.1f}x | — |",
        "| QST `placeOrder` and its cancel, server CPU µs (reference: the sandbox's own) "
        f"| {cpu['place_gateway'] * 1e6:.0f} | {cpu['place_direct'] * 1e6:.0f} "
        f"| {cpu['place_gateway'] / cpu['place_direct']:.1f}x | — |",
        "| cTrader `deposit` p50 ms (reference: direct REST) "
        f"| {latency['deposit_gateway'] * 1000:.2f} | {latency['deposit_direct'] * 1000:.2f} "
        f"| {latency['deposit_gateway'] / latency['deposit_direct']:.1f}x | ≤ 3x |",
        "| cTrader `deposit` p10 ms "
        f"| {p10['deposit_gateway'] * 1000:.2f} | {p10['deposit_direct'] * 1000:.2f} "
        f"| {p10['deposit_gateway'] / p10['deposit_direct']:.1f}x | — |",
        "| cTrader `deposit` server CPU µs (reference: the sandbox's own) "
        f"| {cpu['deposit_gateway'] * 1e6:.0f} | {cpu['deposit_direct'] * 1e6:.0f} "
        f"| {cpu['deposit_gateway'] / cpu['deposit_direct']:.1f}x | — |",
        "| warm `account { balance }` req/s (reference: bare Strawberry) "
        f"| {rate['balance_gateway']:.0f} | {rate['balance_bare']:.0f} "
        f"| {rate['balance_gateway'] / rate['balance_bare']:.2f}x | ≥ 0.6x |",
        "| `{ viewer { role } }` req/s (reference: bare Strawberry) "
        f"| {rate['viewer_gateway']:.0f} | {rate['viewer_bare']:.0f} "
        f"| {rate['viewer_gateway'] / rate['viewer_bare']:.2f}x | ≥ 0.9x |",
        "| warm `account { balance }` server CPU µs/request (ratio: reference / gateway) "
        f"| {cpu['balance_gateway'] * 1e6:.0f} | {cpu['balance_bare'] * 1e6:.0f} "
        f"| {cpu['balance_bare'] / cpu['balance_gateway']:.2f}x | ≥ 0.6x |",
        "| `{ viewer { role } }` server CPU µs/request (ratio: reference / gateway) "
        f"| {cpu['viewer_gateway'] * 1e6:.0f} | {cpu['viewer_bare'] * 1e6:.0f} "
        f"| {cpu['viewer_bare'] / cpu['viewer_gateway']:.2f}x | ≥ 0.9x |",
    ]
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--client", action="store_true", help="run as the load client")
    parser.add_argument("--profile", action="store_true", help="cProfile the warm reads")
    args = parser.parse_args()
    if args.client:
        config = json.loads(sys.stdin.read())
        results = asyncio.run(asyncio.wait_for(run_client(config), CLIENT_TIMEOUT))
        print(json.dumps(results))
        return
    # On the loop `brokergraph serve` runs (uvloop): the bare app shares it.
    print(table(run_server(serve(args.profile))))


if __name__ == "__main__":
    main()
