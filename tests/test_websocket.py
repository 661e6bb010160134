"""Subscriptions over graphql-transport-ws on a real socket: auth, scope, live events."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.typing import Subprotocol

from gateway.graphql.ids import encode_id

PROTOCOL = Subprotocol("graphql-transport-ws")
ACCOUNT = encode_id("Account", "toy", "1001")
WAIT = 10.0


@asynccontextmanager
async def connect(gateway: Any, init: dict[str, Any] | None) -> AsyncIterator[ClientConnection]:
    async with websockets.connect(gateway.websocket_url, subprotocols=[PROTOCOL]) as socket:
        await socket.send(json.dumps({"type": "connection_init", "payload": init or {}}))
        yield socket


async def receive(socket: ClientConnection) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(socket.recv(), WAIT))
    while message["type"] == "ping":  # the server's keep-alive: answer, read on
        await socket.send('{"type":"pong"}')
        message = json.loads(await asyncio.wait_for(socket.recv(), WAIT))
    return message


async def subscribe(socket: ClientConnection, query: str, variables: dict[str, Any]) -> str:
    operation_id = str(uuid.uuid4())
    await socket.send(
        json.dumps(
            {
                "id": operation_id,
                "type": "subscribe",
                "payload": {"query": query, "variables": variables},
            }
        )
    )
    return operation_id


def bearer(gateway: Any, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {gateway.tokens[role]}"}


async def test_bad_token_closes_with_4403(gateway: Any) -> None:
    async with connect(gateway, {"Authorization": "Bearer nonsense"}) as socket:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await receive(socket)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403


async def test_subscribe_before_init_closes_with_4401(gateway: Any) -> None:
    async with websockets.connect(gateway.websocket_url, subprotocols=[PROTOCOL]) as socket:
        await subscribe(socket, "subscription { toyTicks(count: 1) }", {})
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await receive(socket)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


async def test_order_events_arrive_for_an_order_placed_over_http(gateway: Any) -> None:
    async with connect(gateway, bearer(gateway, "client")) as socket:
        assert (await receive(socket))["type"] == "connection_ack"
        operation = await subscribe(
            socket,
            "subscription($id: ID!) { orderEvents(accountId: $id) "
            "{ sequence kind order { externalId status } } }",
            {"id": ACCOUNT},
        )
        await asyncio.sleep(0.2)  # let the stream attach before the order is placed
        status, body = await gateway.query(
            """mutation($input: PlaceOrderInput!) { placeOrder(input: $input) {
                order { externalId } errors { code message } } }""",
            {
                "input": {
                    "accountId": ACCOUNT,
                    "symbol": "EURUSD",
                    "side": "BUY",
                    "type": "LIMIT",
                    "quantity": "1000",
                    "price": "0.5",
                    "idempotencyKey": f"ws-{uuid.uuid4()}",
                }
            },
            token="client",
        )
        assert body["data"]["placeOrder"]["errors"] == [], body
        placed = body["data"]["placeOrder"]["order"]["externalId"]
        sequences = []
        while True:
            message = await receive(socket)
            assert message["type"] == "next" and message["id"] == operation, message
            event = message["payload"]["data"]["orderEvents"]
            sequences.append(event["sequence"])
            if event["order"] and event["order"]["externalId"] == placed:
                break
        assert sequences == sorted(sequences)


async def test_a_client_cannot_subscribe_to_another_clients_account(gateway: Any) -> None:
    async with connect(gateway, bearer(gateway, "client")) as socket:
        await receive(socket)
        await subscribe(
            socket,
            "subscription($id: ID!) { orderEvents(accountId: $id) { sequence } }",
            {"id": encode_id("Account", "toy", "3001")},
        )
        message = await receive(socket)
    assert message["type"] in ("error", "next")
    errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
    assert errors[0]["extensions"]["code"] == "NOT_FOUND"
