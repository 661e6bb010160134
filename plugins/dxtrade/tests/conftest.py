"""A real gateway wired to the DXtrade sandbox, for the plugin's tests (session-scoped).

``dx_gateway`` is the core's :class:`~gateway.testing.TestGateway`: the gateway under
uvicorn on a free port with only this plugin loaded (strictly); ``dx_sandbox`` is the
sandbox on another port, attached to the gateway so its dxFeed callbacks reach the
plugin's webhook route.  Everything goes over real sockets.  The session shares one
sandbox: tests create their own users (unique logins) instead of relying on seeded
balances.  The small helpers below are plain functions.  ``cash_id_repeat``,
``etag_checks``, ``expired_session_status`` and ``disable_route`` run a test under each
alternative of a rule the vendor facts only infer (``ruled`` changes the sandbox's
rules for a block).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import brokergraph_dxtrade.plugin
import pytest
import pytest_asyncio
import websockets
from brokergraph_dxtrade.sandbox import (
    CASH_ID_REPEATS,
    EXPIRED_SESSION_STATUSES,
    MISSING_ROUTE_STATUSES,
    CashIdRepeat,
    DxTradeSandbox,
)
from websockets.asyncio.client import ClientConnection
from websockets.typing import Subprotocol

from gateway.contract.schema import encode_id
from gateway.testing import TestGateway, open_test_gateway

PROTOCOL = Subprotocol("graphql-transport-ws")
WAIT = 10.0


def account_gid(native_id: str) -> str:
    return encode_id("Account", "dxtrade", native_id)


def trader_gid(native_id: str) -> str:
    return encode_id("Trader", "dxtrade", native_id)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@asynccontextmanager
async def websocket(gateway: TestGateway, token: str = "admin") -> AsyncIterator[ClientConnection]:
    """A graphql-transport-ws connection to ``gateway``, acknowledged."""
    init = {"Authorization": f"Bearer {gateway.tokens.get(token, token)}"}
    async with websockets.connect(gateway.websocket_url, subprotocols=[PROTOCOL]) as socket:
        await socket.send(json.dumps({"type": "connection_init", "payload": init}))
        assert (await receive(socket))["type"] == "connection_ack"
        yield socket


async def receive(socket: ClientConnection, wait: float = WAIT) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(socket.recv(), wait))
    while message["type"] == "ping":  # the server's keep-alive: answer, read on
        await socket.send('{"type":"pong"}')
        message = json.loads(await asyncio.wait_for(socket.recv(), wait))
    return message


async def subscribe(socket: ClientConnection, query: str, variables: dict[str, Any]) -> str:
    operation_id = str(uuid.uuid4())
    payload = {"query": query, "variables": variables}
    await socket.send(json.dumps({"id": operation_id, "type": "subscribe", "payload": payload}))
    return operation_id


@contextmanager
def ruled(sandbox: DxTradeSandbox, **changes: Any) -> Iterator[None]:
    """The sandbox's [I] rules changed for a block (see ``sandbox.rules``), then restored."""
    previous = sandbox.rules
    sandbox.rules = dataclasses.replace(previous, **changes)
    try:
        yield
    finally:
        sandbox.rules = previous


# Each vendor-unknown rule the connector meets, as a parametrised fixture: a test that
# takes one runs once per alternative on the session's sandbox.


@pytest.fixture(params=CASH_ID_REPEATS)
def cash_id_repeat(
    request: pytest.FixtureRequest, dx_sandbox: DxTradeSandbox
) -> Iterator[CashIdRepeat]:
    """What DXtrade does with a repeated cash id: replay, 409, or apply it again."""
    with ruled(dx_sandbox, cash_id_repeat=request.param):
        yield request.param


@pytest.fixture(params=[True, False], ids=["412", "overwrite"])
def etag_checks(request: pytest.FixtureRequest, dx_sandbox: DxTradeSandbox) -> Iterator[bool]:
    """A stale ``If-Match``: 412, or simply overwritten."""
    with ruled(dx_sandbox, etag_checks=request.param):
        yield request.param


@pytest.fixture(params=EXPIRED_SESSION_STATUSES)
def expired_session_status(
    request: pytest.FixtureRequest, dx_sandbox: DxTradeSandbox
) -> Iterator[int]:
    """What a session token DXtrade ended answers: 401, or 403."""
    with ruled(dx_sandbox, expired_session_status=request.param):
        yield request.param


@pytest.fixture(params=[None, *MISSING_ROUTE_STATUSES], ids=["served", "404", "405", "400"])
def disable_route(
    request: pytest.FixtureRequest, dx_sandbox: DxTradeSandbox
) -> Iterator[int | None]:
    """Seed 004's disable route: served, or a host without it answering 404/405/400."""
    with ruled(dx_sandbox, disable_route=request.param):
        yield request.param


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def dx_sandbox() -> AsyncIterator[DxTradeSandbox]:
    async with DxTradeSandbox() as sandbox:
        yield sandbox


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def dx_gateway(
    dx_sandbox: DxTradeSandbox, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[TestGateway]:
    directory = tmp_path_factory.mktemp("dx-gateway")
    async with open_test_gateway(brokergraph_dxtrade.plugin, [dx_sandbox], directory) as gateway:
        yield gateway
