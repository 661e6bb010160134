"""Subscriptions over HTTP streams on real sockets: GraphQL over SSE (graphql-sse's own
client, pinned in tests/npm) and Apollo's multipart protocol (parsed here from an httpx
stream), against a QST sandbox through the gateway, with the WebSocket's rules: 401
without credentials, the per-viewer cap shared with the sockets, ``afterSequence``
resume with no gap, RESUME_POINT_EXPIRED in the stream, the stream ended when its token
expires, a coded 400 for a subscription sent as a plain JSON request, and Hive
Gateway (bench/mesh's pin) relaying a subscription from a composed supergraph over its
default subgraph transport (SSE)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import brokergraph_qst.plugin
import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute

from gateway.auth import Role
from gateway.http._sse import socket_policy
from gateway.http.websocket import GraphQLWebSocket
from gateway.http.ws_guard import SocketPolicy
from gateway.testing import TestGateway, open_test_gateway
from plugins.qst.tests.qst_testkit import (
    FAST_RECOVERY,
    WAIT,
    account_gid,
    new_key,
    started_sandbox,
    subscribe,
    wait_until,
)

NPM_DIR = Path(__file__).resolve().parent / "npm"
ACCOUNT = "297999"  # DEMO-001's: the ``client`` token may see it
ORDER_EVENTS = """subscription($id: ID!, $after: Int) {
  orderEvents(accountId: $id, afterSequence: $after) {
    sequence kind order { externalId status } } }"""
PLACE = """mutation($input: PlaceOrderInput!) { placeOrder(input: $input) {
  order { externalId status } errors { code message } } }"""
MULTIPART = 'multipart/mixed;boundary="graphql";subscriptionSpec=1.0,application/json'
SSE = "text/event-stream"


@contextlib.asynccontextmanager
async def serving(tmp_path: Path, **limits: Any) -> AsyncIterator[TestGateway]:
    async with (
        started_sandbox() as sandbox,
        open_test_gateway(
            brokergraph_qst.plugin,
            [sandbox],
            tmp_path,
            connector_settings={"qst": FAST_RECOVERY},
            limits=limits,
        ) as running,
    ):
        yield running


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[TestGateway]:
    async with serving(tmp_path) as running:
        yield running


def policy_of(gateway: TestGateway) -> SocketPolicy:
    app: Any = gateway.running.server.config.app
    while not isinstance(app, Starlette):
        app = app.app
    for route in app.routes:
        if isinstance(route, WebSocketRoute) and isinstance(route.endpoint, GraphQLWebSocket):
            return socket_policy(route.endpoint)
    raise AssertionError("no GraphQL WebSocket route")


def operation(after: int | None = None) -> dict[str, Any]:
    return {"query": ORDER_EVENTS, "variables": {"id": account_gid(ACCOUNT), "after": after}}


async def place(gateway: TestGateway, price: str = "1000") -> str:
    order = {
        "accountId": account_gid(ACCOUNT),
        "symbol": "ESZ26",
        "side": "BUY",
        "type": "LIMIT",
        "quantity": "1",
        "price": price,
        "timeInForce": "GTC",
        "idempotencyKey": new_key(),
    }
    payload = (await gateway.data(PLACE, {"input": order}, token="client"))["placeOrder"]
    assert payload["errors"] == [], payload
    external_id: str = payload["order"]["externalId"]
    return external_id


@dataclass
class Received:
    """What one streamed subscription delivered, filled by a reading task."""

    events: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    heartbeats: int = 0
    completed: bool = False
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, result: dict[str, Any]) -> None:
        self.errors.extend(result.get("errors") or ())
        if result.get("data"):
            self.events.append(result["data"]["orderEvents"])
        self.changed.set()

    def end(self) -> None:
        self.completed = True
        self.changed.set()

    async def wait_for(self, predicate: Callable[[Received], bool], what: str) -> None:
        try:
            async with asyncio.timeout(WAIT):
                while not predicate(self):
                    if self.completed:
                        raise AssertionError(f"stream ended before {what}: {self.errors}")
                    self.changed.clear()
                    await self.changed.wait()
        except TimeoutError:
            raise AssertionError(f"no {what} in {WAIT} s; got {self.events[-5:]}") from None

    async def wait_order(self, order_id: str, status: str) -> None:
        await self.wait_for(
            lambda r: any(
                e["order"] is not None
                and e["order"]["externalId"] == order_id
                and e["order"]["status"] == status
                for e in r.events
            ),
            f"order {order_id} {status}",
        )

    def sequences(self) -> list[int]:
        return [e["sequence"] for e in self.events]


def statuses(received: Received, order_id: str) -> list[str]:
    return [
        e["order"]["status"]
        for e in received.events
        if e["order"] is not None and e["order"]["externalId"] == order_id
    ]


# --------------------------------------------------------------------------- multipart


def multipart_parts(buffer: str) -> tuple[list[dict[str, Any] | None], str]:
    """The complete parts at the head of ``buffer`` (None: the closing delimiter) and the
    rest.  The body is ``--graphql`` then parts each ending with ``\\r\\n--graphql``."""
    parts: list[dict[str, Any] | None] = []
    while True:
        if buffer.startswith("--\r\n"):
            return [*parts, None], buffer[4:]
        end = buffer.find("\r\n--graphql")
        if end < 0:
            return parts, buffer
        headers, _, body = buffer[:end].partition("\r\n\r\n")
        assert "content-type: application/json" in headers.lower(), headers
        parts.append(json.loads(body))
        buffer = buffer[end + len("\r\n--graphql") :]


@contextlib.asynccontextmanager
async def multipart(
    gateway: TestGateway, body: dict[str, Any], token: str | None = "client"
) -> AsyncIterator[Received]:
    headers = {"Accept": MULTIPART}
    if token is not None:
        headers["Authorization"] = f"Bearer {gateway.tokens.get(token, token)}"
    received = Received()
    async with gateway.http.stream(
        "POST", gateway.graphql_url, json=body, headers=headers, timeout=WAIT
    ) as response:
        assert response.status_code == 200, await response.aread()
        media = response.headers["content-type"]
        assert media.startswith("multipart/mixed") and "subscriptionSpec=1.0" in media, media

        async def pump() -> None:
            chunks = response.aiter_text()
            buffer = await anext(chunks)
            assert buffer.startswith("--graphql"), buffer
            buffer = buffer[len("--graphql") :]
            async for chunk in chunks:
                parts, buffer = multipart_parts(buffer + chunk)
                for part in parts:
                    if part is None:
                        received.end()
                    elif part == {}:
                        received.heartbeats += 1
                        received.changed.set()
                    elif part.get("payload") is None:  # a transport-level error
                        received.errors.extend(part["errors"])
                    else:
                        received.add(part["payload"])
            received.end()

        task = asyncio.create_task(pump())
        try:
            yield received
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_multipart_delivers_order_events_with_heartbeats(gateway: TestGateway) -> None:
    async with multipart(gateway, operation()) as received:
        await received.wait_for(lambda r: bool(r.events), "the snapshot")
        placed = await place(gateway)
        await received.wait_order(placed, "WORKING")
        assert received.heartbeats >= 1  # the first part, before any event
    assert statuses(received, placed)[:2] == ["PENDING", "WORKING"]
    assert received.sequences() == sorted(set(received.sequences()))
    assert received.errors == []
    # The client left: the stream no longer counts towards the viewer's cap.
    await wait_until(lambda: not policy_of(gateway).http_streams, "the stream released")


async def test_a_resume_after_a_sequence_misses_nothing(gateway: TestGateway) -> None:
    async with multipart(gateway, operation()) as first:
        await first.wait_for(lambda r: bool(r.events), "the snapshot")
        before = await place(gateway)
        await first.wait_order(before, "WORKING")
    last = first.sequences()[-1]
    missed = await place(gateway)  # while nobody listens
    async with multipart(gateway, operation(after=last)) as resumed:
        await resumed.wait_order(missed, "WORKING")
    sequences = resumed.sequences()
    assert sequences == list(range(last + 1, last + 1 + len(sequences))), sequences
    assert statuses(resumed, missed)[:2] == ["PENDING", "WORKING"]


async def test_a_resume_point_the_log_lacks_is_a_graphql_error_in_the_stream(
    gateway: TestGateway,
) -> None:
    async with multipart(gateway, operation(after=10**9)) as received:
        await received.wait_for(lambda r: bool(r.errors), "an error")
    assert received.errors[0]["extensions"]["code"] == "RESUME_POINT_EXPIRED", received.errors
    assert received.events == []


async def test_an_expiring_token_ends_the_stream(gateway: TestGateway) -> None:
    token = gateway.services.authenticator.issue(
        subject="client-short", role=Role.CLIENT, partner_code="DEMO-001", ttl_seconds=2
    )
    async with multipart(gateway, operation(), token=token) as received:
        await received.wait_for(lambda r: bool(r.events), "the snapshot")
        await received.wait_for(lambda r: r.completed, "the end of the stream")
    assert [e["extensions"]["code"] for e in received.errors] == ["UNAUTHENTICATED"]
    await wait_until(lambda: not policy_of(gateway).http_streams, "the stream released")


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("accept", [SSE, MULTIPART])
async def test_no_credentials_are_refused_with_401(gateway: TestGateway, accept: str) -> None:
    response = await gateway.http.post(
        gateway.graphql_url, json=operation(), headers={"Accept": accept}
    )
    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_a_subscription_as_plain_json_is_a_coded_400(gateway: TestGateway) -> None:
    response = await gateway.post(ORDER_EVENTS, operation()["variables"], token="client")
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "STREAM_REQUIRED"


async def test_streams_and_sockets_share_the_viewers_cap(tmp_path: Path) -> None:
    async with serving(tmp_path, max_subscriptions_per_viewer=1) as gateway:
        bearer = f"Bearer {gateway.tokens['client']}"
        viewer = await gateway.services.authenticator.viewer_from_authorization_header(bearer)
        policy = policy_of(gateway)
        # A socket's subscription fills the cap: a stream is refused.
        async with subscribe(gateway, ACCOUNT) as socket:
            await socket.wait_for(lambda e: True, "the snapshot")
            refused = await gateway.http.post(
                gateway.graphql_url,
                json=operation(),
                headers={"Accept": SSE, "Authorization": bearer},
            )
        assert refused.status_code == 429
        assert refused.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
        await wait_until(lambda: policy.operations_of(viewer.subject) == 0, "the socket gone")
        # A stream fills it: a socket's subscription is refused.
        async with multipart(gateway, operation()) as received:
            await received.wait_for(lambda r: bool(r.events), "the snapshot")
            assert policy.operations_of(viewer.subject) == 1
            async with subscribe(gateway, ACCOUNT) as socket:
                await wait_until(lambda: socket.errors, "a refusal")
        assert socket.errors[0]["extensions"]["code"] == "RATE_LIMITED"
        assert socket.events == []


# --------------------------------------------------------------------------- graphql-sse


@contextlib.asynccontextmanager
async def graphql_sse_client(
    gateway: TestGateway, body: dict[str, Any], token: str | None = "client"
) -> AsyncIterator[Received]:
    """graphql-sse's own client in a node process, its results read from its stdout."""
    node = shutil.which("node")
    if node is None or not (NPM_DIR / "node_modules" / "graphql-sse").is_dir():
        pytest.skip("node or tests/npm/node_modules is missing: run scripts/setup-test-deps")
    env = {**os.environ, "BROKERGRAPH_SSE_OPERATION": json.dumps(body)}
    if token is not None:
        env["BROKERGRAPH_SSE_TOKEN"] = gateway.tokens.get(token, token)
    process = await asyncio.create_subprocess_exec(
        node,
        "sse_subscribe.mjs",
        gateway.graphql_url,
        cwd=NPM_DIR,
        env=env,
        stdout=asyncio.subprocess.PIPE,
    )
    received = Received()

    async def pump() -> None:
        assert process.stdout is not None
        async for line in process.stdout:
            message = json.loads(line)
            if "next" in message:
                received.add(message["next"])
            elif "error" in message:
                received.errors.append(message)
        received.end()

    task = asyncio.create_task(pump())
    try:
        yield received
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        await task


async def test_the_graphql_sse_client_receives_order_events(gateway: TestGateway) -> None:
    async with graphql_sse_client(gateway, operation()) as received:
        await received.wait_for(lambda r: bool(r.events), "the snapshot")
        assert sum(policy_of(gateway).http_streams.values()) == 1
        placed = await place(gateway)
        await received.wait_order(placed, "WORKING")
    assert statuses(received, placed)[:2] == ["PENDING", "WORKING"]
    assert received.errors == []
    await wait_until(lambda: not policy_of(gateway).http_streams, "the stream released")


async def test_the_graphql_sse_client_is_refused_without_a_token(gateway: TestGateway) -> None:
    async with graphql_sse_client(gateway, operation(), token=None) as received:
        await received.wait_for(lambda r: r.completed, "the end")
    assert received.events == []
    assert len(received.errors) == 1 and "401" in json.dumps(received.errors), received.errors


async def test_another_clients_account_is_not_found_in_the_stream(gateway: TestGateway) -> None:
    async with multipart(gateway, operation(), token="other_client") as received:
        await received.wait_for(lambda r: bool(r.errors), "an error")
    assert received.errors[0]["extensions"]["code"] == "NOT_FOUND", received.errors
    assert received.events == []


async def test_the_depth_rule_refuses_a_streamed_subscription(tmp_path: Path) -> None:
    async with (
        serving(tmp_path, max_depth=1) as gateway,  # the document has depth 2
        graphql_sse_client(gateway, operation()) as received,
    ):
        await received.wait_for(lambda r: r.completed, "the end")
    assert [e["extensions"]["code"] for e in received.errors] == ["QUERY_TOO_DEEP"]
    assert received.events == []


# --------------------------------------------------------------------------- Hive Gateway

MESH_DIR = Path(__file__).resolve().parent.parent / "bench" / "mesh"


def sse_results(buffer: str) -> tuple[list[dict[str, Any] | None], str]:
    """The complete events at the head of ``buffer`` (None: ``complete``) and the rest."""
    results: list[dict[str, Any] | None] = []
    while "\n\n" in buffer:
        block, buffer = buffer.split("\n\n", 1)
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if fields.get("event") == "next":
            results.append(json.loads(fields["data"]))
        elif block.startswith("event: complete"):
            results.append(None)
    return results, buffer


@contextlib.asynccontextmanager
async def hive_gateway(gateway: TestGateway, directory: Path) -> AsyncIterator[str]:
    """Hive Gateway (bench/mesh's pin) on a supergraph composing this gateway: its URL.

    The subgraph is read from the public SDL; the caller's Authorization header is
    forwarded to it, as a gateway in front of brokergraph would."""
    hive = MESH_DIR / "node_modules" / ".bin" / "hive-gateway"
    if shutil.which("node") is None or not hive.exists():
        pytest.skip("node or bench/mesh/node_modules is missing: npm ci --prefix bench/mesh")
    (directory / "brokergraph.graphql").write_text(str(gateway.schema))
    (directory / "node_modules").symlink_to(MESH_DIR / "node_modules")
    (directory / "mesh.config.ts").write_text(
        "import { defineConfig, loadGraphQLHTTPSubgraph } from '@graphql-mesh/compose-cli';\n"
        "export const composeConfig = defineConfig({ subgraphs: [{\n"
        "  sourceHandler: loadGraphQLHTTPSubgraph('brokergraph', {\n"
        f"    endpoint: {json.dumps(gateway.graphql_url)},\n"
        "    source: './brokergraph.graphql',\n"
        "    operationHeaders: { authorization: '{context.headers.authorization}' },\n"
        "  }),\n"
        "}] });\n"
    )
    compose = await asyncio.create_subprocess_exec(
        str(MESH_DIR / "node_modules" / ".bin" / "mesh-compose"),
        "-o",
        "supergraph.graphql",
        cwd=directory,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(compose.communicate(), 120)
    assert compose.returncode == 0, out.decode()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = await asyncio.create_subprocess_exec(
        str(hive),
        "supergraph",
        "supergraph.graphql",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        cwd=directory,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        health = f"http://127.0.0.1:{port}/healthcheck"
        await wait_until_answering(gateway, health, process)
        yield f"http://127.0.0.1:{port}/graphql"
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


async def wait_until_answering(
    gateway: TestGateway, url: str, process: asyncio.subprocess.Process
) -> None:
    async with asyncio.timeout(60):
        while True:
            assert process.returncode is None, "hive-gateway exited"
            with contextlib.suppress(httpx.TransportError):
                if (await gateway.http.get(url)).status_code == 200:
                    return
            await asyncio.sleep(0.2)


async def test_hive_gateways_default_transport_streams_order_events(
    gateway: TestGateway, tmp_path: Path
) -> None:
    async with hive_gateway(gateway, tmp_path) as hive_url:
        headers = {"Accept": SSE, "Authorization": f"Bearer {gateway.tokens['client']}"}
        received = Received()
        async with gateway.http.stream(
            "POST", hive_url, json=operation(), headers=headers, timeout=WAIT
        ) as response:
            assert response.status_code == 200

            async def pump() -> None:
                buffer = ""
                async for chunk in response.aiter_text():
                    results, buffer = sse_results(buffer + chunk)
                    for result in results:
                        if result is None:
                            received.end()
                        else:
                            received.add(result)
                received.end()

            task = asyncio.create_task(pump())
            try:
                await received.wait_for(lambda r: bool(r.events), "the snapshot")
                # Hive opened its stream to brokergraph with the client's token.
                assert sum(policy_of(gateway).http_streams.values()) == 1
                placed = await place(gateway)
                await received.wait_order(placed, "WORKING")
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    assert statuses(received, placed)[:2] == ["PENDING", "WORKING"]
    assert received.errors == []
