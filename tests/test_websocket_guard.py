"""Sockets follow their credentials, their caps and their client's keep-alive.

Each test runs its own gateway (over real sockets, on the shared toy sandbox) with
the limits it needs: short keep-alive and check intervals, small caps.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.asyncio.client import ClientConnection

import tests.toy
from gateway.auth import Role, bearer_expiry, create_api_key
from gateway.testing import open_test_gateway
from tests.gateway_fixtures import GatewayUnderTest, open_gateway
from tests.test_websocket import ACCOUNT, PROTOCOL, WAIT, subscribe
from tests.toy.sandbox import ToySandbox

PLACE_ORDER_CALLS = "POST /accounts/{id}/orders"
ORDER_EVENTS = "subscription($id: ID!) { orderEvents(accountId: $id) { sequence } }"
TICKS = "subscription { toyTicks(count: 3) }"
PLACE_ORDER = """mutation($input: PlaceOrderInput!) {
    placeOrder(input: $input) { order { externalId } errors { code } } }"""
# Nothing in a test below waits for a keep-alive unless it asks for one.
QUIET = {"ws_ping_interval_seconds": 0, "ws_credential_check_seconds": 0}


@asynccontextmanager
async def gateway_with(
    sandbox: ToySandbox, tmp_path: Path, **limits: Any
) -> AsyncIterator[GatewayUnderTest]:
    async with open_gateway(sandbox, tmp_path, limits={**QUIET, **limits}) as gateway:
        yield gateway


@asynccontextmanager
async def opened(gateway: GatewayUnderTest, authorization: str) -> AsyncIterator[ClientConnection]:
    """A socket after ``connection_init`` (the ack, or the close, is the caller's to read)."""
    async with websockets.connect(gateway.websocket_url, subprotocols=[PROTOCOL]) as socket:
        init = {"type": "connection_init", "payload": {"Authorization": authorization}}
        await socket.send(json.dumps(init))
        yield socket


async def receive(socket: ClientConnection, *, answer_pings: bool = True) -> dict[str, Any]:
    """The next message; a server ``ping`` is answered (and skipped) unless told not to."""
    while True:
        message: dict[str, Any] = json.loads(await asyncio.wait_for(socket.recv(), WAIT))
        if message["type"] != "ping" or not answer_pings:
            return message
        await socket.send(json.dumps({"type": "pong"}))


async def close_code(socket: ClientConnection) -> int:
    """Read until the server closes the socket; its close code."""
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await drain(socket)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code


async def drain(socket: ClientConnection) -> None:
    """Read (answering nothing) until the socket closes."""
    while True:
        await receive(socket, answer_pings=False)


async def ticks(socket: ClientConnection) -> list[int]:
    """Run ``toyTicks(count: 3)`` on an open socket: proof that it still executes."""
    operation = await subscribe(socket, TICKS, {})
    values = []
    while (message := await receive(socket))["type"] == "next":
        assert message["id"] == operation, message
        values.append(message["payload"]["data"]["toyTicks"])
    assert message["type"] == "complete", message
    return values


async def send_place_order(socket: ClientConnection) -> None:
    """Send a ``placeOrder`` over the socket; a socket already closed swallows it."""
    variables = {
        "input": {
            "accountId": ACCOUNT,
            "symbol": "EURUSD",
            "side": "BUY",
            "type": "LIMIT",
            "quantity": "1000",
            "price": "0.5",
            "idempotencyKey": f"ws-guard-{uuid.uuid4()}",
        }
    }
    with suppress(websockets.ConnectionClosed):
        await subscribe(socket, PLACE_ORDER, variables)


async def test_a_socket_is_closed_at_its_tokens_expiry_and_runs_nothing_after(
    toy_sandbox: ToySandbox, tmp_path: Path
) -> None:
    async with gateway_with(toy_sandbox, tmp_path) as gateway:
        token = gateway.services.authenticator.issue(
            subject="short-lived", role=Role.CLIENT, partner_code="DEMO-001", ttl_seconds=3
        )
        expires_at = bearer_expiry(f"Bearer {token}")
        assert expires_at is not None
        async with opened(gateway, f"Bearer {token}") as socket:
            assert (await receive(socket))["type"] == "connection_ack"
            assert await ticks(socket) == [0, 1, 2]
            await subscribe(socket, ORDER_EVENTS, {"id": ACCOUNT})  # a stream left open
            placed = toy_sandbox.calls[PLACE_ORDER_CALLS]
            await asyncio.sleep(max(0.0, expires_at - time.time()))
            await send_place_order(socket)
            assert await close_code(socket) == 4403
        assert toy_sandbox.calls[PLACE_ORDER_CALLS] == placed


async def test_a_token_inside_the_verifiers_leeway_opens_no_socket(
    toy_sandbox: ToySandbox, tmp_path: Path
) -> None:
    async with gateway_with(toy_sandbox, tmp_path) as gateway:
        token = gateway.services.authenticator.issue(
            subject="just-expired",
            role=Role.CLIENT,
            partner_code="DEMO-001",
            ttl_seconds=1,
            now=datetime.now(UTC) - timedelta(seconds=5),
        )
        # HTTP still accepts it (clock-skew leeway), a socket that would outlive it does not.
        status, _ = await gateway.query("{ __typename }", token=token)
        assert status == 200
        async with opened(gateway, f"Bearer {token}") as socket:
            assert await close_code(socket) == 4403


async def test_an_operation_after_a_key_revocation_is_refused_and_not_run(
    toy_sandbox: ToySandbox, tmp_path: Path
) -> None:
    async with gateway_with(toy_sandbox, tmp_path) as gateway:
        new = await create_api_key(
            gateway.services.store, role=Role.CLIENT, partner_code="DEMO-001"
        )
        async with opened(gateway, f"ApiKey {new.key}") as socket:
            assert (await receive(socket))["type"] == "connection_ack"
            assert await ticks(socket) == [0, 1, 2]
            # Revoked in the store, as `brokergraph api-key revoke` does from another
            # process: this process still has the key in its verified-key cache.
            await gateway.services.store.revoke_api_key(new.key_id)
            placed = toy_sandbox.calls[PLACE_ORDER_CALLS]
            await send_place_order(socket)
            assert await close_code(socket) == 4403
        assert toy_sandbox.calls[PLACE_ORDER_CALLS] == placed


async def test_a_revoked_keys_idle_socket_is_closed_by_the_periodic_check(
    toy_sandbox: ToySandbox, tmp_path: Path
) -> None:
    async with gateway_with(toy_sandbox, tmp_path, ws_credential_check_seconds=0.2) as gateway:
        new = await create_api_key(
            gateway.services.store, role=Role.CLIENT, partner_code="DEMO-001"
        )
        async with opened(gateway, f"ApiKey {new.key}") as socket:
            assert (await receive(socket))["type"] == "connection_ack"
            await subscribe(socket, ORDER_EVENTS, {"id": ACCOUNT})
            await gateway.services.store.revoke_api_key(new.key_id)
            assert await close_code(socket) == 4403


async def test_caps_refuse_one_socket_and_one_subscription_too_many(
    toy_sandbox: ToySandbox, tmp_path: Path
) -> None:
    async with gateway_with(
        toy_sandbox,
        tmp_path,
        max_sockets_per_viewer=2,
        max_subscriptions_per_connection=2,
        max_subscriptions_per_viewer=3,
    ) as gateway:
        client = f"Bearer {gateway.tokens['client']}"
        async with opened(gateway, client) as first, opened(gateway, client) as second:
            for socket in (first, second):
                assert (await receive(socket))["type"] == "connection_ack"
            async with opened(gateway, client) as third:
                assert await close_code(third) == 4429
            # Another viewer has sockets of its own.
            async with opened(gateway, f"Bearer {gateway.tokens['admin']}") as admin:
                assert (await receive(admin))["type"] == "connection_ack"

            for _ in range(2):
                await subscribe(first, ORDER_EVENTS, {"id": ACCOUNT})
            refused = await refusal(first)  # the socket's cap
            assert refused["extensions"]["code"] == "RATE_LIMITED", refused
            await subscribe(second, ORDER_EVENTS, {"id": ACCOUNT})
            refused = await refusal(second)  # the viewer's cap, over both sockets
            assert refused["extensions"]["code"] == "RATE_LIMITED", refused
        # Closed sockets give their places back.
        async with opened(gateway, client) as again:
            assert (await receive(again))["type"] == "connection_ack"
            assert await ticks(again) == [0, 1, 2]


async def refusal(socket: ClientConnection) -> dict[str, Any]:
    """Subscribe once more and return the ``error`` the server answers with."""
    operation = await subscribe(socket, ORDER_EVENTS, {"id": ACCOUNT})
    message = await receive(socket)
    assert message["type"] == "error" and message["id"] == operation, message
    error: dict[str, Any] = message["payload"][0]
    return error


async def test_keep_alive_closes_a_silent_client_and_keeps_an_answering_one(
    toy_sandbox: ToySandbox, tmp_path: Path
) -> None:
    async with gateway_with(
        toy_sandbox, tmp_path, ws_ping_interval_seconds=0.1, ws_pong_timeout_seconds=0.2
    ) as gateway:
        client = f"Bearer {gateway.tokens['client']}"
        async with opened(gateway, client) as answering:
            assert (await receive(answering))["type"] == "connection_ack"
            for _ in range(3):
                message = await receive(answering, answer_pings=False)
                assert message["type"] == "ping", message
                await answering.send(json.dumps({"type": "pong"}))
            assert await ticks(answering) == [0, 1, 2]
        async with opened(gateway, client) as silent:
            assert (await receive(silent))["type"] == "connection_ack"
            assert (await receive(silent, answer_pings=False))["type"] == "ping"
            assert await close_code(silent) == 4408


async def test_the_guards_ping_is_the_only_keep_alive(
    toy_sandbox: ToySandbox, tmp_path: Path
) -> None:
    # uvicorn pings every socket at the WebSocket protocol level unless told not to:
    # with the guard's ping that was two keep-alives per socket per period.
    async with open_test_gateway(tests.toy.plugin, [toy_sandbox], tmp_path) as gateway:
        assert gateway.running.server.config.ws_ping_interval is None


async def test_api_key_failures_beyond_the_limit_close_connection_init_unchecked(
    toy_sandbox: ToySandbox, tmp_path: Path
) -> None:
    async with gateway_with(toy_sandbox, tmp_path, api_key_failures_per_minute=3) as gateway:
        created = await create_api_key(
            gateway.services.store, role=Role.CLIENT, partner_code="DEMO-001"
        )
        right = f"ApiKey {created.key}"
        wrong = f"ApiKey {created.key[:-1]}{'A' if created.key[-1] != 'A' else 'B'}"
        # One count per client address, over HTTP and WebSocket together.
        for _ in range(2):
            status, _ = await gateway.query(
                "{ viewer { role } }", token=None, headers={"Authorization": wrong}
            )
            assert status == 401
        async with opened(gateway, wrong) as socket:
            assert await close_code(socket) == 4403
        for authorization in (wrong, right):
            # Closed before the key is checked: even the right key, from this client.
            async with opened(gateway, authorization) as socket:
                assert await close_code(socket) == 4429
        status, body = await gateway.query(
            "{ viewer { role } }", token=None, headers={"Authorization": right}
        )
        assert status == 429, body
        # A bearer token from the same client is no API-key attempt.
        async with opened(gateway, f"Bearer {gateway.tokens['client']}") as socket:
            assert (await receive(socket))["type"] == "connection_ack"
        # Another client address keeps its own count: the right key opens a socket there.
        async with websockets.connect(
            gateway.websocket_url, subprotocols=[PROTOCOL], local_addr=("127.0.0.2", 0)
        ) as other:
            init = {"type": "connection_init", "payload": {"Authorization": right}}
            await other.send(json.dumps(init))
            assert (await receive(other))["type"] == "connection_ack"
            assert await ticks(other) == [0, 1, 2]
