"""Helpers of the QST plugin's tests: a real sandbox, a real gateway, a real GraphQL
WebSocket client.  Everything talks over sockets; nothing of ours is mocked.

The gateway is the kit's :class:`~gateway.testing.TestGateway` (the plugin loaded
explicitly and strictly, the sandbox's demo links stored, a token per role: DEMO-001's
``client`` owns 297999 and 297998, OTHER-001's ``other_client`` owns 400001).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import brokergraph_qst.plugin
import websockets
from brokergraph_qst.connector import QstConnector
from brokergraph_qst.sandbox import QstSandbox
from websockets.asyncio.client import ClientConnection
from websockets.typing import Subprotocol

from gateway.contract.schema import encode_id
from gateway.testing import TestGateway, open_test_gateway

PROTOCOL = Subprotocol("graphql-transport-ws")
WAIT = 15.0
#: Connector settings that keep the tests quick: reconnects and the 4101 back-off are short.
FAST_RECOVERY = {
    "reconnect_initial_seconds": 0.05,
    "reconnect_max_seconds": 0.5,
    "busy_backoff_seconds": 1.0,
    "reconnect_wait_seconds": 8.0,
}


def account_gid(native_id: str) -> str:
    return encode_id("Account", "qst", native_id)


def order_gid(account_id: str, order_id: str) -> str:
    return encode_id("Order", "qst", account_id, order_id)


def connector(gateway: TestGateway) -> QstConnector:
    """The gateway's QST connector (to read its session and feeds)."""
    found = gateway.services.registry.require_any("qst")
    assert isinstance(found, QstConnector)
    return found


def qst_gateway_on(
    sandbox: QstSandbox, directory: Path, **settings: Any
) -> AbstractAsyncContextManager[TestGateway]:
    """A gateway serving the QST plugin against ``sandbox``, recovering quickly."""
    extra = {"qst": {**FAST_RECOVERY, **settings}}
    return open_test_gateway(brokergraph_qst.plugin, [sandbox], directory, connector_settings=extra)


#: QST answers out of order unless the client waits for each answer [V]: every sandbox of
#: these tests does too (seeded delays), unless a test asks for ``response_jitter_seconds=0``.
REORDERING_JITTER_SECONDS = 0.005


@contextlib.asynccontextmanager
async def started_sandbox(**knobs: Any) -> AsyncIterator[QstSandbox]:
    knobs.setdefault("response_jitter_seconds", REORDERING_JITTER_SECONDS)
    async with QstSandbox(**knobs) as sandbox:
        yield sandbox


# --------------------------------------------------------------------------- GraphQL over WS

ORDER_EVENTS = """
subscription($id: ID!) {
  orderEvents(accountId: $id) {
    sequence kind at text
    order { id externalId status symbol quantity price filledQuantity rejectReason }
    position { externalId symbol side volume }
    account { externalId balance { amount currency } }
  }
}
"""


@dataclass
class Subscription:
    """One graphql-transport-ws subscription, read by a task into ``events``."""

    socket: ClientConnection
    operation_id: str
    events: list[dict[str, Any]] = field(default_factory=list)
    errors: list[Any] = field(default_factory=list)
    completed: bool = False
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def _pump(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for text in self.socket:
                message = json.loads(text)
                if message["type"] == "ping":  # the server's keep-alive
                    await self.socket.send('{"type":"pong"}')
                    continue
                if message.get("id") != self.operation_id:
                    continue
                if message["type"] == "next":
                    payload = message["payload"]
                    if payload.get("errors"):
                        self.errors.extend(payload["errors"])
                    if payload.get("data"):
                        self.events.append(payload["data"]["orderEvents"])
                elif message["type"] == "error":
                    self.errors.extend(message["payload"])
                elif message["type"] == "complete":
                    self.completed = True
                self._changed.set()
        self.completed = True
        self._changed.set()

    async def wait_for(self, predicate: Any, what: str, wait: float = WAIT) -> dict[str, Any]:
        """The first event (old or new) matching ``predicate``."""
        try:
            async with asyncio.timeout(wait):
                while True:
                    for event in self.events:
                        if predicate(event):
                            return event
                    if self.errors or self.completed:
                        raise AssertionError(f"subscription ended: {self.errors}")
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            tail = self.events[-5:]
            raise AssertionError(f"no event {what} in {wait} s; last: {tail}") from None

    async def wait_order(self, order_id: str, status: str) -> dict[str, Any]:
        return await self.wait_for(
            lambda e: (
                e["order"] is not None
                and e["order"]["externalId"] == order_id
                and e["order"]["status"] == status
            ),
            f"order {order_id} {status}",
        )

    def sequences(self) -> list[int]:
        return [e["sequence"] for e in self.events]


@contextlib.asynccontextmanager
async def subscribe(
    gateway: TestGateway, account_id: str, token: str = "client", query: str = ORDER_EVENTS
) -> AsyncIterator[Subscription]:
    async with websockets.connect(gateway.websocket_url, subprotocols=[PROTOCOL]) as socket:
        init = {"Authorization": f"Bearer {gateway.tokens.get(token, token)}"}
        await socket.send(json.dumps({"type": "connection_init", "payload": init}))
        ack = json.loads(await asyncio.wait_for(socket.recv(), WAIT))
        assert ack["type"] == "connection_ack", ack
        operation_id = str(uuid.uuid4())
        payload = {"query": query, "variables": {"id": account_gid(account_id)}}
        await socket.send(json.dumps({"id": operation_id, "type": "subscribe", "payload": payload}))
        subscription = Subscription(socket, operation_id)
        task = asyncio.create_task(subscription._pump())
        try:
            yield subscription
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def wait_until(condition: Callable[[], object], what: str, seconds: float = WAIT) -> None:
    """Poll ``condition`` (state owned by the code under test) until true, bounded."""
    try:
        async with asyncio.timeout(seconds):
            while not condition():  # noqa: ASYNC110 (no event to wait on: we observe)
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"not {what} within {seconds} s") from None


def new_key() -> str:
    return f"qst-test-{uuid.uuid4().hex}"
