"""Benchmark: the gateway's hot path — writes against their direct call, warm reads
against a bare Strawberry app serving the same cache.

Run from the repository root (bounded: about a minute, stops by itself)::

    .venv/bin/python tests/bench_hotpath.py      # or: scripts/bench hotpath
    .venv/bin/python tests/bench_hotpath.py --only place --profile place_gateway

Four processes, each on its own event loop (uvloop for the servers, as `brokergraph
serve` runs): the QST and cTrader sandboxes (this file with ``--sandboxes``, HTTPS/WSS
with their throwaway CA, whose file the others trust); the gateway wired to them
(``--gateway``: SQLite store, in-memory cache) with, on the same loop, a bare Strawberry
app answering the same balance from the gateway's cache (no auth, no extensions, no
store), which is idle while the gateway is measured and the other way round; the load
client (``--client``), which times both the gateway and the direct calls on the same
sandbox process; and this one, which starts them and, at each mark of the client, reads
every server process's CPU time (the client waits for it).  A sandbox on the gateway's
loop would charge the gateway its TLS, framing and order book, serially, while the
direct baseline ran against an idle process.  Printed as markdown, medians of
interleaved rounds:

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

The gateway's cache is full, as on a gateway serving thousands of accounts: before the
measures it holds ``--cache-fill`` entries (default: the cache's bound, 10,000) of other
accounts, half their account reads and half their deal reads of a period (``0``: only
what the measures read, as the rounds before the eighth ran).

Beside each, every server process's CPU time per request (CPU per request holds still on a
busy machine, where latency and requests per second do not).  ``--profile`` profiles
the gateway process during one case, the warm balance reads unless named (cProfile on
the process's CPU time, top entries by own time, to stderr); the processes' ids go to
stderr too, for a sampling profiler (``py-spy record --pid``).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import hashlib
import io
import json
import pstats
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import brokergraph_ctrader.plugin  # noqa: E402
import brokergraph_qst.plugin  # noqa: E402
import httpx  # noqa: E402
import strawberry  # noqa: E402
from brokergraph_ctrader.sandbox import CTraderSandbox  # noqa: E402
from brokergraph_qst.sandbox import QstSandbox  # noqa: E402
from strawberry.asgi import GraphQL  # noqa: E402
from strawberry.extensions import ParserCache, ValidationCache  # noqa: E402

from gateway.asgi_server import ServedApp, serve_asgi  # noqa: E402
from gateway.auth import Role  # noqa: E402
from gateway.cache import Cache  # noqa: E402
from gateway.cli import run_server  # noqa: E402
from gateway.config import CacheSettings, load_settings  # noqa: E402
from gateway.graphql.ids import encode_id  # noqa: E402
from gateway.graphql.loaders import cache_key, period_key  # noqa: E402
from gateway.plugins import load_plugins  # noqa: E402
from gateway.runner import running_gateway, tune_garbage_collector  # noqa: E402
from gateway.sandboxes import Sandbox, seed_demo  # noqa: E402
from gateway.testing import TEST_JWT_SECRET  # noqa: E402
from tests.bench_support import (  # noqa: E402
    QstDirect,
    RawClient,
    ServerProcess,
    post_bytes,
    serve_until_stopped,
)

QST_ACCOUNT = "297999"  # DEMO-001's
CTRADER_ACCOUNT = "9000001"  # DEMO-001's
#: The first of the other accounts whose reads fill the cache.
FILL_FIRST_ACCOUNT = 7_000_000
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
#: The client's lines around each case's round.
CASE_START, CASE_STOP = "case-start", "case-stop"

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


async def timed(samples: list[float], call: Any) -> Any:
    started = time.perf_counter()
    result = await asyncio.wait_for(call, WAIT)
    samples.append(time.perf_counter() - started)
    return result


def chosen(config: dict[str, Any], case: str) -> bool:
    """Whether ``--only`` (a list of measures: place, deposit, balance, viewer) runs it."""
    only: list[str] = config["only"]
    return not only or case.split("_")[0] in only


def mark(line: str) -> None:
    """Tell the orchestrator where a case starts or stops, and wait until it has read
    the servers' CPU time (nothing of ours is in flight meanwhile)."""
    print(line, flush=True)
    if not sys.stdin.readline():
        raise RuntimeError("the orchestrator went away")


async def run_client(config: dict[str, Any]) -> dict[str, Any]:
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
        QstDirect.connect(config["qst_url"], trust) as direct,
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
            "place_direct": (direct.place, direct.cancel),
            "deposit_gateway": (gateway_deposit, nothing),
            "deposit_direct": (direct_deposit, nothing),
        }
        cases = {name: case for name, case in cases.items() if chosen(config, name)}
        samples: dict[str, list[float]] = {name: [] for name in cases}
        for call, undo in cases.values():
            for _ in range(WARMUP):
                await undo(await asyncio.wait_for(call(), WAIT))
        for _ in range(ROUNDS):  # interleaved: a drift of the machine hits every case alike
            for name, (call, undo) in cases.items():
                # The servers' CPU time is counted per round (the undo's included).
                mark(f"{CASE_START} {name}")
                for _ in range(PER_ROUND):
                    await undo(await timed(samples[name], call()))
                mark(CASE_STOP)
        results["latency"] = {name: statistics.median(s) for name, s in samples.items()}
        # The tenth percentile too: on a machine shared with other work, the median
        # waits for other processes' time slices; the fastest tenth mostly does not.
        results["latency_p10"] = {
            name: statistics.quantiles(s, n=10)[0] for name, s in samples.items()
        }
        # And the 99th: what a stall of the gateway's loop (a checkpoint, a collection)
        # does to the writes that meet it.
        results["latency_p99"] = {
            name: statistics.quantiles(s, n=100)[98] for name, s in samples.items()
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
            if not chosen(config, name):
                continue
            # The servers' CPU time is counted between the marks (and one case profiled).
            mark(f"{CASE_START} {name}")
            rate, count = await throughput(url, body, token)
            mark(CASE_STOP)
            rates.setdefault(name, []).append(rate)
            served[name] = served.get(name, 0) + count
    results["throughput"] = {name: max(values) for name, values in rates.items()}
    results["served"] = served
    return results


# -- the servers (processes of their own) ------------------------------------------------


async def sandboxes_process() -> None:
    """The QST and cTrader sandboxes, serving until stopped."""
    qst = QstSandbox(tick_seconds=0)
    await qst.start()
    try:
        async with CTraderSandbox() as ctrader:
            sandboxes: list[Sandbox] = [qst, ctrader]
            await serve_until_stopped(
                {
                    "connectors": {s.name: dict(s.connector_settings()) for s in sandboxes},
                    "qst_url": qst.url,
                    "ctrader_url": ctrader.connector_settings()["url"],
                    "ca_file": str(ctrader.connector_settings()["ca_file"]),
                }
            )
    finally:
        await qst.stop()


async def gateway_process(config: dict[str, Any]) -> None:
    """The gateway wired to the sandboxes' process (demo links seeded, the cTrader balance
    read once so the cache is warm) and the bare app on the gateway's cache, serving until
    stopped; SIGUSR2 starts and stops cProfile (on CPU time) when ``config["profile"]``
    names a file, which the profile is written to at the end."""
    plugins = load_plugins(
        entry_points=False,
        extra=[brokergraph_qst.plugin, brokergraph_ctrader.plugin],
        strict=True,
    )
    settings = load_settings(
        environ={},
        overrides={
            "auth": {"jwt_secret": TEST_JWT_SECRET},
            "store": {"url": f"sqlite+aiosqlite:///{config['store']}"},
            "plugins": {"strict": True},
            "connectors": config["connectors"],
            # The per-viewer limiter still runs (its cost is measured), never refusing.
            "limits": {
                "requests_per_viewer_per_second": 1e9,
                "requests_per_viewer_burst": 1_000_000_000,
            },
        },
    )
    # CPU time, not wall time: on a shared machine a wall-clock profile charges other
    # processes' time slices to whatever line was running when the process was paused.
    profiler = cProfile.Profile(time.process_time)
    profiling: list[bool] = []

    def toggle() -> None:
        if profiling:
            profiler.disable()
            profiling.clear()
        else:
            profiler.enable()
            profiling.append(True)

    if config["profile"]:
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR2, toggle)
    async with running_gateway(settings, plugins, host="127.0.0.1", port=0) as running:
        # Not started: their seeded traders and accounts are what the demo links.
        seeded: list[Sandbox] = [QstSandbox(tick_seconds=0), CTraderSandbox()]
        classes = plugins.connector_classes
        await seed_demo(running.services.store, seeded, lambda n: classes[n].platform)
        issue = running.services.authenticator.issue
        tokens = {
            "admin": issue(subject="bench-admin", role=Role.ADMIN, ttl_seconds=3600),
            "client": issue(
                subject="bench-client",
                role=Role.CLIENT,
                partner_code="DEMO-001",
                ttl_seconds=3600,
            ),
        }
        await fill_cache(running.services.cache, config["cache_fill"])
        ctrader_gid = encode_id("Account", "ctrader", CTRADER_ACCOUNT)
        async with httpx.AsyncClient(timeout=WAIT) as http:  # its entry, newest in the LRU
            warm = await http.post(
                running.graphql_url,
                json={"query": BALANCE, "variables": {"id": ctrader_gid}},
                headers={"Authorization": f"Bearer {tokens['client']}"},
            )
        if warm.json()["data"]["account"]["balance"] is None:
            raise RuntimeError(f"no balance to serve warm: {warm.text}")
        bare: ServedApp = await serve_asgi(bare_app(running.services.cache), name="the bare app")
        tune_garbage_collector()  # as `brokergraph serve` does once serving (the bare app's too)
        try:
            await serve_until_stopped(
                {
                    "graphql_url": running.graphql_url,
                    "bare_url": f"{bare.url}/graphql",
                    "client_token": tokens["client"],
                    "admin_token": tokens["admin"],
                    "qst_account": encode_id("Account", "qst", QST_ACCOUNT),
                    "ctrader_account": ctrader_gid,
                }
            )
        finally:
            await bare.stop()
    if config["profile"]:
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(30)
        await asyncio.to_thread(
            Path(config["profile"]).write_text, out.getvalue(), encoding="utf-8"
        )


async def fill_cache(cache: Cache, entries: int) -> None:
    """``entries`` cached reads of other accounts than the measured ones: their account
    and a period of their deals, for an hour (nothing expires while the bench runs)."""
    start = datetime(2026, 11, 1, tzinfo=UTC)
    for n in range(entries):
        account = str(FILL_FIRST_ACCOUNT + n // 2)
        if n % 2:
            key = cache_key("deals", "ctrader", period_key(account, start, start + timedelta(30)))
        else:
            key = cache_key("account", "ctrader", account)
        await cache.set(key, {"filled": n}, ttl=3600)


# -- the orchestration (this process: idle but for reading the marks) --------------------


async def client_output(
    process: asyncio.subprocess.Process,
    servers: dict[str, ServerProcess],
    cpu: dict[str, dict[str, float]],
    profiled: str | None,
) -> str:
    """The client's result line.  At each of its marks, every server process's CPU time
    is read (the case's share added to ``cpu[server][case]``: CPU per request holds up
    on a busy machine, where requests per second do not) and the client told to go on;
    the gateway's profiler runs during the ``profiled`` case."""
    assert process.stdin is not None and process.stdout is not None
    case, started = "", dict.fromkeys(servers, 0.0)
    gateway = servers["gateway"]
    while True:
        line = (await process.stdout.readline()).decode().strip()
        if not line:
            raise RuntimeError("the load client stopped without its results")
        if line.startswith(CASE_START):
            case = line.split(" ", 1)[1]
            if case == profiled:
                gateway.send_signal(signal.SIGUSR2)
            for name, server in servers.items():
                started[name] = await server.cpu()
        elif line == CASE_STOP:
            for name, server in servers.items():
                spent = await server.cpu() - started[name]
                cpu[name][case] = cpu[name].get(case, 0.0) + spent
            if case == profiled:
                gateway.send_signal(signal.SIGUSR2)
        else:
            return line
        process.stdin.write(b"go\n")
        await process.stdin.drain()


async def orchestrate(profiled: str | None, only: list[str], cache_fill: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-hotpath-") as name:
        directory = Path(name)
        profile = directory / "gateway.profile" if profiled else None
        async with ServerProcess(
            "the sandboxes", Path(__file__), ["--sandboxes"], directory / "sandboxes.log"
        ) as sandboxes:
            gateway_config = {
                "connectors": sandboxes.info["connectors"],
                "store": str(directory / "store.db"),
                "profile": str(profile) if profile else "",
                "cache_fill": cache_fill,
            }
            (directory / "gateway.json").write_text(json.dumps(gateway_config))
            async with ServerProcess(
                "the gateway",
                Path(__file__),
                ["--gateway", str(directory / "gateway.json")],
                directory / "gateway.log",
            ) as gateway:
                # For py-spy and the like: `py-spy top --pid <gateway>` while it runs.
                print(f"pids: gateway {gateway.pid}, sandboxes {sandboxes.pid}", file=sys.stderr)
                servers = {"gateway": gateway, "sandboxes": sandboxes}
                config = {**sandboxes.info, **gateway.info, "only": only}
                del config["connectors"]
                results = await run_client_process(config, servers, profiled)
        if profile is not None:
            print(profile.read_text(encoding="utf-8"), file=sys.stderr)
    return results


async def run_client_process(
    config: dict[str, Any], servers: dict[str, ServerProcess], profiled: str | None
) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--client",
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert process.stdin is not None
    try:
        process.stdin.write(json.dumps(config).encode() + b"\n")
        cpu: dict[str, dict[str, float]] = {name: {} for name in servers}
        line = await asyncio.wait_for(
            client_output(process, servers, cpu, profiled), CLIENT_TIMEOUT
        )
        await asyncio.wait_for(process.wait(), WAIT)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    if process.returncode != 0:
        raise RuntimeError(f"the load client failed ({process.returncode})")
    results: dict[str, Any] = json.loads(line)
    served = {**results["served"], **results["served_writes"]}
    results["cpu"] = {
        name: {case: spent[case] / n for case, n in served.items()} for name, spent in cpu.items()
    }
    return results


def table(results: dict[str, Any]) -> str:
    latency, rate, p10 = results["latency"], results["throughput"], results["latency_p10"]
    p99 = results["latency_p99"]
    gateway, sandboxes = results["cpu"]["gateway"], results["cpu"]["sandboxes"]

    def ratio(case: str, measure: str, values: dict[str, float], scale: float = 1000) -> str:
        through, direct = values[f"{case}_gateway"], values[f"{case}_direct"]
        return (
            f"| {measure} | {through * scale:.2f} | {direct * scale:.2f} "
            f"| {through / direct:.1f}x |"
        )

    def cpu_rows(case: str, measure: str) -> list[str]:
        own = gateway[f"{case}_gateway"]
        upstream = sandboxes[f"{case}_gateway"]
        alone = sandboxes[f"{case}_direct"]
        return [
            f"| {measure}, gateway process CPU µs (reference: sandbox process, direct) "
            f"| {own * 1e6:.0f} | {alone * 1e6:.0f} | {own / alone:.1f}x | — |",
            f"| {measure}, sandbox process CPU µs, through the gateway (reference: direct) "
            f"| {upstream * 1e6:.0f} | {alone * 1e6:.0f} | {upstream / alone:.1f}x | — |",
            f"| {measure}, both processes' CPU (reference: sandbox process, direct) "
            f"| {(own + upstream) * 1e6:.0f} | {alone * 1e6:.0f} "
            f"| {(own + upstream) / alone:.1f}x | — |",
        ]

    def reads(case: str, measure: str, goal: str) -> list[str]:
        if f"{case}_gateway" not in rate:  # not run (--only)
            return []
        through, bare = rate[f"{case}_gateway"], rate[f"{case}_bare"]
        own, reference = gateway[f"{case}_gateway"], gateway[f"{case}_bare"]
        return [
            f"| {measure} req/s (reference: bare Strawberry) "
            f"| {through:.0f} | {bare:.0f} | {through / bare:.2f}x | {goal} |",
            f"| {measure} server CPU µs/request (ratio: reference / gateway) "
            f"| {own * 1e6:.0f} | {reference * 1e6:.0f} | {reference / own:.2f}x | {goal} |",
        ]

    def writes(case: str, name: str, reference: str) -> list[str]:
        if f"{case}_gateway" not in latency:  # not run (--only)
            return []
        return [
            ratio(case, f"{name} p50 ms (reference: {reference})", latency) + " ≤ 3x |",
            ratio(case, f"{name} p10 ms", p10) + " — |",
            ratio(case, f"{name} p99 ms", p99) + " — |",
            *cpu_rows(case, name + (" and its cancel" if case == "place" else "")),
        ]

    rows = [
        "| measure | gateway | reference | ratio | goal |",
        "|---|---:|---:|---:|---|",
        *writes("place", "QST `placeOrder`", "direct protobuf"),
        *writes("deposit", "cTrader `deposit`", "direct REST"),
        *reads("balance", "warm `account { balance }`", "≥ 0.6x"),
        *reads("viewer", "`{ viewer { role } }`", "≥ 0.9x"),
    ]
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    role = parser.add_mutually_exclusive_group()
    role.add_argument("--client", action="store_true", help="run as the load client")
    role.add_argument("--sandboxes", action="store_true", help="run as the sandboxes' process")
    role.add_argument("--gateway", metavar="CONFIG", help="run as the gateway's process")
    parser.add_argument(
        "--profile",
        nargs="?",
        const="balance_gateway",
        metavar="CASE",
        help="cProfile the gateway process during one case (default: balance_gateway; "
        "place_gateway, deposit_gateway, viewer_gateway, ...)",
    )
    parser.add_argument(
        "--only",
        metavar="MEASURES",
        default="",
        help="only these measures, comma-separated: place, deposit, balance, viewer",
    )
    parser.add_argument(
        "--cache-fill",
        metavar="N",
        type=int,
        default=CacheSettings().max_entries,
        help="cached reads of other accounts held before the measures "
        "(default: the cache's bound; 0: an empty cache)",
    )
    args = parser.parse_args()
    if args.client:
        config = json.loads(sys.stdin.readline())
        results = asyncio.run(asyncio.wait_for(run_client(config), CLIENT_TIMEOUT))
        print(json.dumps(results))
    elif args.sandboxes:
        run_server(sandboxes_process())  # on the loop `brokergraph serve` runs (uvloop)
    elif args.gateway:
        run_server(gateway_process(json.loads(Path(args.gateway).read_text())))
    else:
        only = [name for name in args.only.split(",") if name]
        print(table(asyncio.run(orchestrate(args.profile, only, args.cache_fill))))


if __name__ == "__main__":
    main()
