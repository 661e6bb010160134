"""Real ``brokergraph serve`` replicas for the cluster tests: subprocesses on loopback.

Each replica is the installed command line, started with a TOML configuration the
test writes (shared store, secrets, connectors aimed at sandboxes running in the
test process), on a free port (``--port 0``); it prints its URL on the first line.
Its log goes to a file beside the configuration, for the failure message.

:func:`running_cluster` is the whole picture the cluster tests and the cluster
benchmark share: a fresh PostgreSQL database, a private redis-server (cache and
event log; the test may kill it), the four vendors' sandboxes and N replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import websockets
from brokergraph_ctrader.connector import CTraderConnector
from brokergraph_ctrader.sandbox import CTraderSandbox
from brokergraph_dxtrade.connector import DxTradeConnector
from brokergraph_dxtrade.sandbox import DxTradeSandbox
from brokergraph_qort.connector import QortConnector
from brokergraph_qort.sandbox import QortSandbox
from brokergraph_qst.connector import QstConnector
from brokergraph_qst.sandbox import QstSandbox
from websockets.asyncio.client import ClientConnection
from websockets.typing import Subprotocol

from gateway.auth import JwtAuthenticator, JwtSettings, Role
from gateway.cluster import lease_holders
from gateway.graphql.ids import encode_id
from gateway.sandboxes import Sandbox, seed_demo
from gateway.store import Store
from tests.private_redis import PrivateRedis, private_redis
from tests.services import fresh_database

__all__ = [
    "PLATFORMS",
    "Replica",
    "RunningCluster",
    "Sandboxes",
    "Subscriber",
    "fresh_database",
    "replicas",
    "resting_buy",
    "running_cluster",
    "toml_config",
]

ROOT = Path(__file__).resolve().parent.parent
START_SECONDS = 60.0


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def toml_config(sections: Mapping[str, Mapping[str, Any]]) -> str:
    """``{"store": {"url": …}, "connectors.qst": {...}}`` as TOML (flat tables only)."""
    lines: list[str] = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in values.items())
        lines.append("")
    return "\n".join(lines)


def resting_buy(account_id: str, price: str = "1000.25", symbol: str = "ESZ26") -> dict[str, Any]:
    """``placeOrder``'s input for a QST LIMIT BUY far below the market: it rests.

    A resting order holds its initial margin (QST checks buying power), so a test
    placing many uses a contract of small margin (ZCZ26) to stay within the account.
    """
    return {
        "input": {
            "accountId": account_id,
            "symbol": symbol,
            "side": "BUY",
            "type": "LIMIT",
            "quantity": "1",
            "price": price,
            "timeInForce": "GTC",
            "idempotencyKey": secrets.token_hex(8),
        }
    }


@dataclass
class Replica:
    """One ``brokergraph serve`` process and where it listens."""

    name: str
    process: asyncio.subprocess.Process
    url: str
    log: Path

    @property
    def graphql_url(self) -> str:
        return f"{self.url}/graphql"

    @property
    def alive(self) -> bool:
        return self.process.returncode is None

    def signal(self, sig: signal.Signals) -> None:
        if self.alive:
            self.process.send_signal(sig)

    async def wait(self, seconds: float = 20.0) -> int:
        return await asyncio.wait_for(self.process.wait(), seconds)

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(text[-lines:])


async def _start(name: str, config: Path, log: Path) -> Replica:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROKERGRAPH_")}
    env["BROKERGRAPH_CONFIG"] = str(config)
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway.cli",
            "--log-level",
            "INFO",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=sink,
        )
    assert process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), START_SECONDS)
    except TimeoutError:
        process.kill()
        raise
    if not line:
        await process.wait()
        tail = await asyncio.to_thread(log.read_text, encoding="utf-8", errors="replace")
        raise AssertionError(f"replica {name} exited: {tail[-3000:]}")
    url = line.decode().split()[-1].removesuffix("/graphql")
    return Replica(name, process, url, log)


@contextlib.asynccontextmanager
async def replicas(
    directory: Path, sections: Mapping[str, Mapping[str, Any]], count: int = 3
) -> AsyncIterator[Sequence[Replica]]:
    """``count`` replicas sharing one configuration; every one is killed on exit."""
    config = directory / "cluster.toml"
    config.write_text(toml_config(sections), encoding="utf-8")
    started: list[Replica] = []
    try:
        names = [chr(ord("a") + i) for i in range(count)]
        results = await asyncio.gather(
            *(_start(n, config, directory / f"replica-{n}.log") for n in names),
            return_exceptions=True,
        )
        started.extend(r for r in results if isinstance(r, Replica))
        for result in results:
            if isinstance(result, BaseException):
                raise result
        async with httpx.AsyncClient(timeout=10) as http:
            for replica in started:
                assert (await http.get(f"{replica.url}/healthz")).status_code == 200
        yield started
    finally:
        for replica in started:
            replica.signal(signal.SIGKILL)
        for replica in started:
            with contextlib.suppress(ProcessLookupError):
                await replica.wait()


# -- a whole cluster: database, private Redis, every sandbox, N replicas ------------------


@dataclass
class Sandboxes:
    """The four vendors' sandboxes, in the test process."""

    qst: QstSandbox
    qort: QortSandbox
    ctrader: CTraderSandbox
    dxtrade: DxTradeSandbox

    def all(self) -> list[Sandbox]:
        return [self.qst, self.qort, self.ctrader, self.dxtrade]


#: Sandbox (and connector) name -> the connector's platform, for global ids.
PLATFORMS: Mapping[str, str] = {
    "qst": QstConnector.platform,
    "qort": QortConnector.platform,
    "ctrader": CTraderConnector.platform,
    "dxtrade": DxTradeConnector.platform,
}


@dataclass
class RunningCluster:
    """Replicas sharing ``dsn`` and the private ``redis``, and a client for them."""

    members: list[Replica]
    sandboxes: Sandboxes
    redis: PrivateRedis
    dsn: str
    config: Path
    http: httpx.AsyncClient
    jwt_secret: str

    def token(self, subject: str = "cluster-test") -> str:
        issuer = JwtAuthenticator(JwtSettings(secret=self.jwt_secret))
        return issuer.issue(subject=subject, role=Role.ADMIN, ttl_seconds=3600)

    @staticmethod
    def account_id(connector: str, external_id: str) -> str:
        return encode_id("Account", PLATFORMS[connector], external_id)

    @staticmethod
    def trader_id(connector: str, external_id: str) -> str:
        return encode_id("Trader", PLATFORMS[connector], external_id)

    async def graphql(
        self, replica: Replica, query: str, variables: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """The response body of one GraphQL request to ``replica`` (an admin's token)."""
        response = await self.http.post(
            replica.graphql_url,
            json={"query": query, "variables": dict(variables or {})},
            headers={"Authorization": f"Bearer {self.token()}"},
        )
        body: dict[str, Any] = response.json()
        return body

    async def holder(self, connector: str, seconds: float = 20.0) -> Replica:
        """The replica holding ``connector``'s session (waits for one to hold it)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            holder = (await lease_holders(self.dsn)).get(connector)
            if holder is not None:
                for replica in self.members:
                    if replica.url == holder.address and replica.alive:
                        return replica
            await asyncio.sleep(0.02)
        raise AssertionError(f"no live replica holds the {connector} session within {seconds} s")

    async def add_replica(self, name: str) -> Replica:
        """Start one more replica on the same configuration."""
        replica = await _start(name, self.config, self.config.parent / f"replica-{name}.log")
        self.members.append(replica)
        return replica

    def log_tails(self, lines: int = 40) -> str:
        return "\n".join(
            f"--- replica {r.name} ({r.url})\n{r.log_tail(lines)}" for r in self.members
        )

    @contextlib.contextmanager
    def showing_logs(self) -> Iterator[None]:
        """Print every replica's log tail when the block fails (for the test's report)."""
        try:
            yield
        except BaseException:
            print(self.log_tails())
            raise


def cluster_sections(
    dsn: str, redis_url: str, sandboxes: Sandboxes, jwt_secret: str
) -> dict[str, Mapping[str, Any]]:
    """The replicas' shared configuration: store, cache and event log, every connector."""
    return {
        "auth": {"jwt_secret": jwt_secret},
        "store": {"url": dsn},
        "cache": {"url": redis_url, "secret": secrets.token_hex(32)},
        "events": {"url": redis_url},
        # One test viewer sends the traffic of many clients: its per-viewer budgets
        # (tested on their own, cluster-wide too, in test_client_limits/test_flood)
        # would refuse it as a flood.
        "limits": {"requests_per_viewer_per_second": 0, "upstream_calls_per_viewer_per_second": 0},
        "cluster": {
            "lease_seconds": 3,
            "secret": secrets.token_hex(32),
            "namespace": f"t{secrets.token_hex(4)}",
            "upstream_health_seconds": 1.0,
        },
        **{f"connectors.{s.name}": dict(s.connector_settings()) for s in sandboxes.all()},
    }


@contextlib.asynccontextmanager
async def running_cluster(
    directory: Path, count: int = 3, *, single_process: bool = False
) -> AsyncIterator[RunningCluster]:
    """``count`` replicas on a fresh database and a private redis-server, with every
    sandbox; the dxFeed sandbox calls back the first replica.  ``single_process``: one
    default replica instead (SQLite, in-memory cache and event log), for comparisons."""
    async with contextlib.AsyncExitStack() as stack:
        dsn = await stack.enter_async_context(fresh_database("brokergraph_cluster"))
        redis = await stack.enter_async_context(private_redis(directory))
        sandboxes = Sandboxes(QstSandbox(), QortSandbox(), CTraderSandbox(), DxTradeSandbox())
        for sandbox in sandboxes.all():
            await stack.enter_async_context(sandbox)
        jwt_secret = secrets.token_urlsafe(48)
        sections = cluster_sections(dsn, redis.url, sandboxes, jwt_secret)
        if single_process:
            dsn = f"sqlite+aiosqlite:///{directory / 'single.db'}"
            for section in ("store", "cache", "events"):
                del sections[section]
            sections["store"] = {"url": dsn}
        store = await Store.open(dsn)
        try:
            await seed_demo(store, sandboxes.all(), PLATFORMS.__getitem__)
        finally:
            await store.close()
        members = await stack.enter_async_context(replicas(directory, sections, count))
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=30))
        sandboxes.dxtrade.attach_gateway(members[0].url)
        cluster = RunningCluster(
            list(members), sandboxes, redis, dsn, directory / "cluster.toml", http, jwt_secret
        )
        try:
            yield cluster
        except BaseException:
            print(cluster.log_tails())
            raise
        finally:
            for replica in cluster.members[len(members) :]:  # added ones: replicas() has the rest
                replica.signal(signal.SIGKILL)
                with contextlib.suppress(ProcessLookupError):
                    await replica.wait()


PROTOCOL = "graphql-transport-ws"


class Subscriber:
    """One GraphQL subscription over graphql-transport-ws to one replica.

    A background task collects every ``next`` payload's field (with its arrival
    time); an ``error`` message or the connection's end stops it (``ended``).
    """

    def __init__(
        self, replica: Replica, token: str, query: str, variables: Mapping[str, Any]
    ) -> None:
        self.replica = replica
        self._token = token
        self._payload = {"query": query, "variables": dict(variables)}
        self.events: list[dict[str, Any]] = []
        self.arrivals: list[float] = []
        self.errors: list[Any] = []
        self.ended = False
        self._changed = asyncio.Event()
        self._socket: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Subscriber:
        url = self.replica.graphql_url.replace("http://", "ws://", 1)
        self._socket = await websockets.connect(url, subprotocols=[Subprotocol(PROTOCOL)])
        init = {"Authorization": f"Bearer {self._token}"}
        await self._socket.send(json.dumps({"type": "connection_init", "payload": init}))
        ack = json.loads(await asyncio.wait_for(self._socket.recv(), 10))
        assert ack["type"] == "connection_ack", ack
        message = {"id": "1", "type": "subscribe", "payload": self._payload}
        await self._socket.send(json.dumps(message))
        self._task = asyncio.create_task(self._read(self._socket))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._socket is not None:
            await self._socket.close()

    async def _read(self, socket: ClientConnection) -> None:
        try:
            async for text in socket:
                message = json.loads(text)
                if message["type"] == "next":
                    data = message["payload"].get("data") or {}
                    if message["payload"].get("errors"):
                        self.errors.extend(message["payload"]["errors"])
                    for value in data.values():
                        self.events.append(value)
                        self.arrivals.append(time.perf_counter())
                    self._changed.set()
                elif message["type"] == "error":
                    self.errors.extend(message["payload"])
                    break
                elif message["type"] == "complete":
                    break
                elif message["type"] == "ping":  # the server's keep-alive
                    await socket.send('{"type":"pong"}')
        except websockets.ConnectionClosed:
            pass
        finally:
            self.ended = True
            self._changed.set()

    async def wait_for(self, count: int, seconds: float = 20.0) -> list[dict[str, Any]]:
        """The first ``count`` events, waiting for them (AssertionError on the deadline or
        if the stream ended first)."""
        deadline = time.monotonic() + seconds
        while len(self.events) < count:
            remaining = deadline - time.monotonic()
            if self.ended or self.errors or remaining <= 0:
                raise AssertionError(
                    f"{len(self.events)} of {count} events from replica {self.replica.name} "
                    f"(ended={self.ended}, errors={self.errors}): {self.events}"
                )
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)
        return self.events[:count]

    async def wait_ended(self, seconds: float = 20.0) -> None:
        async with asyncio.timeout(seconds):
            while not self.ended:
                self._changed.clear()
                await self._changed.wait()
