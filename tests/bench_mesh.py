"""Benchmark: one cTrader REST read through brokergraph and through GraphQL Mesh + Hive
Gateway, side by side, cold and warm.

Run from the repository root (``scripts/bench mesh`` installs the pinned npm packages
with ``npm ci`` first; bounded: about 2.5 minutes, stops by itself)::

    .venv/bin/python tests/bench_mesh.py [--profile [ROW]]

The logical read is one account's balance: cTrader's ``GET /v2/webserv/traders/{login}``
(manager token in the query string, money an integer scaled by ``moneyDigits``).

* **brokergraph**: ``account(id:) { balance { amount currency } }`` with an admin's
  JWT; the gateway is this file run with ``--brokergraph`` (a process of its own,
  SQLite in memory, in-memory cache), the cTrader connector only.
* **Mesh + Hive Gateway**: ``traderByLogin(login:) { balance moneyDigits
  depositCurrency }`` of a supergraph that Mesh Compose makes from
  ``bench/mesh/ctrader-webserv.openapi.yaml`` (``mesh.config.ts``: the endpoint, the
  token as a query parameter and ``Accept: application/json`` from the environment),
  served by ``hive-gateway supergraph`` (``gateway.config.ts``) with its JWT auth on
  (the same HS256 token; a request without one is refused, checked at start); the
  client gets the scaled integer and ``moneyDigits``, not an amount.

This process serves the cTrader sandbox (HTTPS with its throwaway CA when the
sandbox speaks TLS: Node is given it with ``NODE_EXTRA_CA_CERTS``) and counts its
calls; each measurement's load comes from another process (this file with
``--client``: keep-alive HTTP/1.1 connections in closed loops, ``CONCURRENCY`` of
them), never from a server's own event loop.

**Cold** is no cache: brokergraph with the cTrader connector's cache TTLs at 0 (reads
arriving while the same read is in flight still share its upstream call), Hive
Gateway without response caching.  **Warm** is each one's cache on: brokergraph's
60 s read cache (as shipped: authentication, the account's ownership check and
GraphQL execution still run per request), Hive Gateway's ``responseCaching``
(in-memory, keyed by the Authorization header, 60 s: a hit answers the stored
response after JWT verification).  Both run with per-viewer limits out of the way
(brokergraph's request and upstream-call rates set to 0 = unlimited; Hive has none
by default).  Cold is measured twice: every connection reading the same account (a
dashboard's hot account: brokergraph's concurrent reads share one upstream call) and
each connection reading its own account (``CONCURRENCY`` traders made through the
API first: nothing to share, every request reaches the upstream in both).  One more
row, not compared: Hive Gateway warm without JWT auth, what the authentication costs it.

The cases are interleaved over ``ROUNDS`` rounds (a drift of the shared machine hits
every case alike); the best round of each is printed as a markdown table: req/s,
p50 and p99 latency, upstream calls per request, and brokergraph/Mesh ratios.
``--profile [ROW]`` writes a cProfile of brokergraph's server during that row's load
(default: brokergraph warm; top entries by own and by cumulative time) to stderr.
Skips, saying why, when ``node`` or the npm packages are missing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import hashlib
import io
import json
import os
import pstats
import secrets
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from tests.bench_support import RawClient, post_bytes  # noqa: E402

MESH = ROOT / "bench" / "mesh"
HIVE = MESH / "node_modules" / ".bin" / "hive-gateway"
COMPOSE = MESH / "node_modules" / ".bin" / "mesh-compose"
LOGIN = "9000001"  # DEMO-001's first cTrader account
CONCURRENCY = 16
#: Seconds of load before measuring (Node's JIT, connection set-up), then measured.
WARMUP_SECONDS = 1.0
MEASURE_SECONDS = 3.0
ROUNDS = 3
START_SECONDS = 60.0
#: Every client run is bounded by this.
CLIENT_TIMEOUT = 60.0
BROKERGRAPH_QUERY = "query($id: ID!) { account(id: $id) { balance { amount currency } } }"
MESH_QUERY = """query($login: BigInt!) {
  traderByLogin(login: $login) { balance moneyDigits depositCurrency } }"""
SPREAD = "an account per connection"
#: (row, server, spread): each measured load; spread, each connection reads its own
#: account (no two reads in flight are the same), else all read LOGIN.  The last row,
#: Hive Gateway warm without JWT auth, shows what the authentication costs it.
CASES: tuple[tuple[str, str, bool], ...] = (
    ("brokergraph cold", "brokergraph cold", False),
    ("mesh cold", "mesh cold", False),
    (f"brokergraph cold, {SPREAD}", "brokergraph cold", True),
    (f"mesh cold, {SPREAD}", "mesh cold", True),
    ("brokergraph warm", "brokergraph warm", False),
    ("mesh warm", "mesh warm", False),
    ("mesh warm, no auth", "mesh warm, no auth", False),
)
#: The ratios printed: (what, brokergraph's row, Mesh's row).
COMPARED = (
    ("cold, one account", "brokergraph cold", "mesh cold"),
    (f"cold, {SPREAD}", f"brokergraph cold, {SPREAD}", f"mesh cold, {SPREAD}"),
    ("warm", "brokergraph warm", "mesh warm"),
)


# -- the load client (another process) -------------------------------------------------


async def load(config: Mapping[str, Any]) -> dict[str, Any]:
    """CONCURRENCY closed loops: WARMUP_SECONDS unrecorded, then MEASURE_SECONDS recorded."""
    url = config["url"]
    requests = [post_bytes(url, body, headers=config["headers"]) for body in config["bodies"]]
    clients = [await RawClient.open(url) for _ in range(config["concurrency"])]
    for client, request in zip(clients, requests, strict=False):
        # A retry or two: a server idle since the last round may find its pooled upstream
        # connection closed by the sandbox's keep-alive timeout on the first call (Hive
        # Gateway then answers "socket hang up"); errors while measuring are counted.
        for _ in range(3):
            first = json.loads(await client.exchange(request))
            if first.get("data") and not first.get("errors"):
                break
        else:
            raise RuntimeError(f"{url} answered {first}")
    latencies: list[float] = []
    sent = len(requests)
    errors = 0
    started = time.perf_counter()
    measure_from = started + config["warmup_seconds"]
    stop_at = measure_from + config["measure_seconds"]

    async def loop(client: RawClient, request: bytes) -> None:
        nonlocal sent, errors
        while (now := time.perf_counter()) < stop_at:
            answer = await client.exchange(request)
            done = time.perf_counter()
            sent += 1
            if b'"errors"' in answer:
                errors += 1
            if now >= measure_from:
                latencies.append(done - now)

    await asyncio.gather(
        *(loop(client, requests[i % len(requests)]) for i, client in enumerate(clients))
    )
    for client in clients:
        await client.close()
    # Requests that started in the window, over the window and the tail of the last ones.
    elapsed = time.perf_counter() - measure_from
    ordered = sorted(latencies)
    return {
        "rate": len(ordered) / elapsed,
        "p50": statistics.median(ordered) * 1000,
        "p99": ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))] * 1000,
        "requests": sent,
        "errors": errors,
    }


# -- brokergraph's server (another process) --------------------------------------------


async def serve_brokergraph(config: Mapping[str, Any], cold: bool, profile: Path | None) -> None:
    """brokergraph's gateway with the cTrader plugin; prints its URL, serves until SIGTERM."""
    import brokergraph_ctrader.plugin
    from brokergraph_ctrader.connector import CTraderConnector

    from gateway.config import load_settings
    from gateway.plugins import load_plugins
    from gateway.runner import running_gateway, tune_garbage_collector

    if cold:
        # No cache: every TTL 0 (the read road then only shares reads in flight).
        CTraderConnector.cache_ttl_seconds = dict.fromkeys(CTraderConnector.cache_ttl_seconds, 0.0)
    settings = load_settings(environ={}, overrides=dict(config))
    plugins = load_plugins(entry_points=False, extra=[brokergraph_ctrader.plugin], strict=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    profiler = cProfile.Profile()
    profiled: list[bool] = []

    def enable() -> None:
        profiled.append(True)
        profiler.enable()

    if profile is not None:  # profiled while the orchestrator's load runs, not when idle
        loop.add_signal_handler(signal.SIGUSR1, enable)
        loop.add_signal_handler(signal.SIGUSR2, profiler.disable)
    async with running_gateway(settings, plugins, host="127.0.0.1", port=0) as gateway:
        tune_garbage_collector()  # as `brokergraph serve` does once serving
        print(json.dumps({"url": gateway.graphql_url}), flush=True)
        await stop.wait()
    if profile is not None and profiled:
        profiler.disable()
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(45)
        await asyncio.to_thread(profile.write_text, out.getvalue(), encoding="utf-8")


# -- the orchestration (this process) --------------------------------------------------


@dataclass
class Server:
    """A server process, where it answers GraphQL, and how to ask it for a balance."""

    name: str
    process: asyncio.subprocess.Process
    url: str
    headers: dict[str, str]
    log: Path

    def body(self, login: str) -> dict[str, Any]:
        """The request reading the balance of account ``login``."""
        if self.name.startswith("mesh"):
            return {"query": MESH_QUERY, "variables": {"login": int(login)}}
        # Imported here: the load client's process starts without the gateway (2 s).
        from gateway.graphql.ids import encode_id

        account = encode_id("Account", "ctrader", login)
        return {"query": BROKERGRAPH_QUERY, "variables": {"id": account}}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def tail(log: Path) -> str:
    return log.read_text(encoding="utf-8", errors="replace")[-3000:]


async def start_brokergraph(
    directory: Path, sections: Mapping[str, Any], token: str, *, cold: bool, profile: bool
) -> Server:
    name = "brokergraph cold" if cold else "brokergraph warm"
    config = directory / f"{name.replace(' ', '-')}.json"
    config.write_text(json.dumps(sections), encoding="utf-8")
    log = directory / f"{name.replace(' ', '-')}.log"
    arguments = ["--brokergraph", str(config)]
    if cold:
        arguments.append("--cold")
    if profile:
        arguments += ["--profile-to", str(directory / f"{name.replace(' ', '-')}.profile")]
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable, __file__, *arguments, stdout=asyncio.subprocess.PIPE, stderr=sink
        )
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), START_SECONDS)
    if not line:
        await process.wait()
        raise RuntimeError(f"{name} exited:\n{tail(log)}")
    url = json.loads(line)["url"]
    return Server(name, process, url, {"Authorization": f"Bearer {token}"}, log)


async def start_hive(
    directory: Path,
    supergraph: Path,
    env: Mapping[str, str],
    token: str,
    *,
    warm: bool,
    auth: bool = True,
) -> Server:
    name = ("mesh warm" if warm else "mesh cold") + ("" if auth else ", no auth")
    port = free_port()
    log = directory / f"{name.replace(' ', '-').replace(',', '')}.log"
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            str(HIVE),
            "supergraph",
            str(supergraph),
            "--config-path",
            str(MESH / "gateway.config.ts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            cwd=MESH,
            env={
                **os.environ,
                **env,
                "MESH_RESPONSE_CACHE": "1" if warm else "0",
                "MESH_JWT_AUTH": "1" if auth else "0",
            },
            stdout=sink,
            stderr=sink,
        )
    url = f"http://127.0.0.1:{port}/graphql"
    body = {"query": MESH_QUERY, "variables": {"login": int(LOGIN)}}
    headers = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + START_SECONDS
    async with httpx.AsyncClient(timeout=5) as http:
        while True:
            if process.returncode is not None:
                raise RuntimeError(f"{name} exited:\n{tail(log)}")
            with contextlib.suppress(httpx.TransportError):
                answer = await http.post(url, json=body, headers=headers)
                data = answer.json().get("data") if answer.status_code == 200 else None
                if data and data.get("traderByLogin"):
                    break
                raise RuntimeError(f"{name} answered {answer.status_code}: {answer.text[:500]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start in {START_SECONDS:.0f} s:\n{tail(log)}")
            await asyncio.sleep(0.2)
        # The same job as brokergraph's: a request without a valid token is refused.
        refused = await http.post(url, json=body)
        answered = refused.status_code == 200 and refused.json().get("data")
        if auth and answered:
            raise RuntimeError(f"{name} answered without a token: JWT auth is not on")
    return Server(name, process, url, headers, log)


async def stop(servers: Sequence[Server]) -> None:
    for server in servers:
        if server.process.returncode is None:
            server.process.send_signal(signal.SIGTERM)
    for server in servers:
        try:
            await asyncio.wait_for(server.process.wait(), 10)
        except TimeoutError:
            server.process.kill()
            await server.process.wait()


async def run_client(server: Server, logins: Sequence[str]) -> dict[str, Any]:
    config = {
        "url": server.url,
        "bodies": [server.body(login) for login in logins],
        "headers": server.headers,
        "concurrency": CONCURRENCY,
        "warmup_seconds": WARMUP_SECONDS,
        "measure_seconds": MEASURE_SECONDS,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--client",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        out, _ = await asyncio.wait_for(
            process.communicate(json.dumps(config).encode()), CLIENT_TIMEOUT
        )
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    if process.returncode != 0:
        raise RuntimeError(f"the load client of {server.name} failed:\n{tail(server.log)}")
    result: dict[str, Any] = json.loads(out)
    return result


async def versions() -> dict[str, str]:
    """The installed versions of the pinned packages, and Node's."""
    found = {}
    for package in ("@graphql-hive/gateway", "@graphql-mesh/compose-cli", "@omnigraph/openapi"):
        manifest = MESH / "node_modules" / package / "package.json"
        found[package] = json.loads(manifest.read_text(encoding="utf-8"))["version"]
    node = await asyncio.create_subprocess_exec("node", "--version", stdout=asyncio.subprocess.PIPE)
    out, _ = await node.communicate()
    found["node"] = out.decode().strip()
    return found


async def compose(directory: Path) -> Path:
    supergraph = directory / "supergraph.graphql"
    process = await asyncio.create_subprocess_exec(
        str(COMPOSE),
        "--output",
        str(supergraph),
        cwd=MESH,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), START_SECONDS)
    if process.returncode != 0 or not supergraph.exists():
        raise RuntimeError(f"mesh-compose failed:\n{out.decode(errors='replace')[-3000:]}")
    return supergraph


async def new_trader(http: httpx.AsyncClient, token: str, cents: int) -> str:
    """A trader made through cTrader's API (as a CRM would); its login."""
    reply = await http.post(
        "/v2/webserv/traders",
        params={"token": token},
        json={
            "accessRights": "FULL_ACCESS",
            "accountType": "HEDGED",
            "balance": 100_000 + cents,
            "brokerName": "DEMOBROKER",
            "depositCurrency": "USD",
            "groupName": "Default",
            "hashedPassword": hashlib.md5(b"bench-trader").hexdigest(),
            "leverageInCents": 10000,
        },
    )
    reply.raise_for_status()
    return str(reply.json()["login"])


@contextlib.asynccontextmanager
async def started(
    directory: Path, profile: bool
) -> AsyncIterator[tuple[Any, list[Server], list[str]]]:
    """The sandbox (here), the servers (processes) and CONCURRENCY accounts made for the
    spread loads; every process is stopped on exit."""
    from brokergraph_ctrader.sandbox import CTraderSandbox

    from gateway.auth import JwtAuthenticator, JwtSettings, Role

    supergraph = await compose(directory)
    async with CTraderSandbox() as sandbox:
        upstream = dict(sandbox.connector_settings())
        ca_file = upstream.get("ca_file")
        async with httpx.AsyncClient(
            base_url=sandbox.url,
            verify=str(ca_file) if ca_file else True,
            headers={"Accept": "application/json"},
        ) as http:
            reply = await http.post(
                "/v2/webserv/managers/token",
                json={
                    "login": upstream["login"],
                    "hashedPassword": hashlib.md5(upstream["password"].encode()).hexdigest(),
                },
            )
            reply.raise_for_status()
            manager_token = reply.json()["webservToken"]
            logins = [
                await new_trader(http, manager_token, balance) for balance in range(CONCURRENCY)
            ]
        secret = secrets.token_urlsafe(48)
        env = {
            "CTRADER_URL": sandbox.url,
            "CTRADER_TOKEN": manager_token,
            "JWT_SECRET": secret,
        }
        if ca_file:
            env["NODE_EXTRA_CA_CERTS"] = str(ca_file)
        sections = {
            "auth": {"jwt_secret": secret},
            "store": {"url": "sqlite+aiosqlite:///:memory:"},
            "limits": {
                "requests_per_viewer_per_second": 0,
                "upstream_calls_per_viewer_per_second": 0,
            },
            "connectors": {
                "ctrader": {k: str(v) if isinstance(v, Path) else v for k, v in upstream.items()}
            },
        }
        token = JwtAuthenticator(JwtSettings(secret=secret)).issue(
            subject="bench", role=Role.ADMIN, ttl_seconds=3600
        )
        starting = await asyncio.gather(
            start_brokergraph(directory, sections, token, cold=True, profile=profile),
            start_brokergraph(directory, sections, token, cold=False, profile=profile),
            start_hive(directory, supergraph, env, token, warm=False),
            start_hive(directory, supergraph, env, token, warm=True),
            start_hive(directory, supergraph, env, token, warm=True, auth=False),
            return_exceptions=True,
        )
        servers = [server for server in starting if isinstance(server, Server)]
        try:
            for failed in starting:
                if isinstance(failed, BaseException):
                    raise failed
            yield sandbox, servers, logins
        finally:
            await stop(servers)


def profiles(directory: Path) -> list[str]:
    """The profile written by the server that was profiled (the other was not)."""
    return [found.read_text(encoding="utf-8") for found in sorted(directory.glob("*.profile"))]


async def main(profile: str | None) -> int:
    if shutil.which("node") is None or not HIVE.exists() or not COMPOSE.exists():
        print(
            "skipped: GraphQL Mesh + Hive Gateway are not installed "
            "(needs node and `npm ci` in bench/mesh; `scripts/bench mesh` runs it)"
        )
        return 0
    installed = await versions()
    results: dict[str, list[dict[str, Any]]] = {row: [] for row, _, _ in CASES}
    with tempfile.TemporaryDirectory(prefix="brokergraph-bench-mesh-") as name:
        directory = Path(name)
        async with started(directory, profile is not None) as (sandbox, servers, logins):
            by_name = {server.name: server for server in servers}
            for _ in range(ROUNDS):
                for row, name, spread in CASES:
                    server = by_name[name]
                    profiled = row == profile
                    if profiled:
                        server.process.send_signal(signal.SIGUSR1)
                    before = sum(sandbox.calls.values())
                    result = await run_client(server, logins if spread else [LOGIN])
                    if profiled:
                        server.process.send_signal(signal.SIGUSR2)
                    result["upstream"] = (sum(sandbox.calls.values()) - before) / result["requests"]
                    results[row].append(result)
        for text in await asyncio.to_thread(profiles, directory):
            print(f"{profile}:\n{text}", file=sys.stderr)
    best = {case: max(runs, key=lambda r: r["rate"]) for case, runs in results.items()}
    print(table(best, installed))
    return 0


def table(best: Mapping[str, Mapping[str, Any]], installed: Mapping[str, str]) -> str:
    rows = [
        f"cTrader `GET /v2/webserv/traders/{{login}}` as GraphQL (account {LOGIN}; spread: "
        f"{CONCURRENCY} accounts made for the run, one per connection), {CONCURRENCY} keep-alive "
        f"connections, best of {ROUNDS} rounds of {MEASURE_SECONDS:.0f} s "
        f"(after {WARMUP_SECONDS} s of warm-up); "
        + ", ".join(f"{package} {version}" for package, version in installed.items()),
        "",
        "| case | req/s | p50 ms | p99 ms | upstream calls / request | errors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row, _, _ in CASES:
        r = best[row]
        rows.append(
            f"| {row} | {r['rate']:.0f} | {r['p50']:.2f} | {r['p99']:.2f} "
            f"| {r['upstream']:.2f} | {r['errors']} |"
        )
    rows += ["", "| brokergraph / Mesh | req/s | p50 | p99 |", "|---|---:|---:|---:|"]
    for what, brokergraph, mesh in COMPARED:
        ours, theirs = best[brokergraph], best[mesh]
        rows.append(
            f"| {what} | {ours['rate'] / theirs['rate']:.2f} "
            f"| {ours['p50'] / theirs['p50']:.2f} | {ours['p99'] / theirs['p99']:.2f} |"
        )
    return "\n".join(rows)


def entry() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--profile",
        nargs="?",
        const="brokergraph warm",
        choices=[row for row, name, _ in CASES if name.startswith("brokergraph")],
        help="cProfile brokergraph's server during this row's load (default: brokergraph warm)",
    )
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--brokergraph", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--cold", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--profile-to", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        config = json.loads(sys.stdin.read())
        print(json.dumps(asyncio.run(asyncio.wait_for(load(config), CLIENT_TIMEOUT))))
        return 0
    # The servers (brokergraph; the sandbox in this process) on the loop `brokergraph
    # serve` runs, uvloop; the load client, which imports no gateway, on asyncio's.
    from gateway.cli import run_server

    if args.brokergraph is not None:
        sections = json.loads(args.brokergraph.read_text(encoding="utf-8"))
        run_server(serve_brokergraph(sections, args.cold, args.profile_to))
        return 0
    return run_server(main(args.profile))


if __name__ == "__main__":
    sys.exit(entry())
