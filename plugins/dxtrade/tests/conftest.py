"""A real gateway wired to the DXtrade sandbox, for the plugin's tests (session-scoped).

Modelled on the core's ``tests/gateway_fixtures.py``: the gateway runs under uvicorn on
a free port with only this plugin loaded (strictly), the sandbox on another port, and
the sandbox is attached to the gateway so its dxFeed callbacks reach the plugin's
webhook route.  Everything goes over real sockets.  The session shares one sandbox:
tests create their own users (unique logins) instead of relying on seeded balances.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import brokergraph_dxtrade.plugin
import httpx
import pytest
import pytest_asyncio
import websockets
from brokergraph_dxtrade.sandbox import DxTradeSandbox
from websockets.asyncio.client import ClientConnection

from gateway.services import GatewayServices
from gateway.contract.schema import encode_id
from gateway.testing import open_test_gateway

JWT_SECRET = "brokergraph-dxtrade-test-secret-0123456789abcdef"
PARTNERS = {"DEMO-001": "demo-broker", "DEMO-002": "demo-broker", "OTHER-001": "other-broker"}
PROTOCOL = "graphql-transport-ws"
WAIT = 10.0


def account_gid(native_id: str) -> str:
    return encode_id("Account", "dxtrade", native_id)


def trader_gid(native_id: str) -> str:
    return encode_id("Trader", "dxtrade", native_id)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class DxGateway:
    """A running gateway (dxtrade connector + sandbox) and what tests need to talk to it."""

    url: str
    graphql_url: str
    websocket_url: str
    services: GatewayServices
    sandbox: DxTradeSandbox
    tokens: Mapping[str, str]
    http: httpx.AsyncClient

    async def query(
        self, query: str, variables: Mapping[str, Any] | None = None, token: str = "admin"
    ) -> dict[str, Any]:
        """POST an operation; returns the JSON body (asserting HTTP 200)."""
        body: dict[str, Any] = {"query": query}
        if variables is not None:
            body["variables"] = dict(variables)
        headers = {"Authorization": f"Bearer {self.tokens.get(token, token)}"}
        response = await self.http.post(self.graphql_url, json=body, headers=headers)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def clear_cache(self) -> None:
        await self.services.cache.delete_prefix("")

    @staticmethod
    def account_gid(native_id: str) -> str:
        return account_gid(native_id)

    @staticmethod
    def trader_gid(native_id: str) -> str:
        return trader_gid(native_id)

    @staticmethod
    def unique(prefix: str) -> str:
        return unique(prefix)

    @staticmethod
    async def receive(socket: ClientConnection, wait: float = WAIT) -> dict[str, Any]:
        return await receive(socket, wait)

    @staticmethod
    async def subscribe(socket: ClientConnection, query: str, variables: dict[str, Any]) -> str:
        return await subscribe(socket, query, variables)

    @asynccontextmanager
    async def websocket(self, token: str = "admin") -> AsyncIterator[ClientConnection]:
        """A graphql-transport-ws connection, acknowledged."""
        init = {"Authorization": f"Bearer {self.tokens.get(token, token)}"}
        async with websockets.connect(self.websocket_url, subprotocols=[PROTOCOL]) as socket:
            await socket.send(json.dumps({"type": "connection_init", "payload": init}))
            assert (await receive(socket))["type"] == "connection_ack"
            yield socket


async def receive(socket: ClientConnection, wait: float = WAIT) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(socket.recv(), wait))
    return message


async def subscribe(socket: ClientConnection, query: str, variables: dict[str, Any]) -> str:
    operation_id = str(uuid.uuid4())
    payload = {"query": query, "variables": variables}
    await socket.send(json.dumps({"id": operation_id, "type": "subscribe", "payload": payload}))
    return operation_id


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def dx_sandbox() -> AsyncIterator[DxTradeSandbox]:
    sandbox = DxTradeSandbox()
    await sandbox.start()
    try:
        yield sandbox
    finally:
        await sandbox.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def dx_gateway(
    dx_sandbox: DxTradeSandbox, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[DxGateway]:
    directory = tmp_path_factory.mktemp("dx-gateway")
    async with open_test_gateway(brokergraph_dxtrade.plugin, [dx_sandbox], directory) as running:
        yield DxGateway(
            url=running.url,
            graphql_url=running.graphql_url,
            websocket_url=running.websocket_url,
            services=running.services,
            sandbox=dx_sandbox,
            tokens=running.tokens,
            http=running.http,
        )
