"""A cTrader account has no stream: ``Account.streams`` says so, and a subscription
to either stream is refused as the field said it would be (CAPABILITY_NOT_SUPPORTED),
over a real WebSocket."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import websockets
from websockets.typing import Subprotocol

from gateway.testing import TestGateway

from .conftest import account_gid

PROTOCOL = Subprotocol("graphql-transport-ws")
WAIT = 10.0


async def _first_answer(gateway: TestGateway, query: str, login: str) -> dict[str, Any]:
    init = {"Authorization": f"Bearer {gateway.tokens['admin']}"}
    async with websockets.connect(gateway.websocket_url, subprotocols=[PROTOCOL]) as socket:
        await socket.send(json.dumps({"type": "connection_init", "payload": init}))
        payload = {"query": query, "variables": {"id": account_gid(login)}}
        await socket.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        while True:
            message: dict[str, Any] = json.loads(await asyncio.wait_for(socket.recv(), WAIT))
            if message["type"] == "ping":
                await socket.send('{"type":"pong"}')
            elif message["type"] != "connection_ack":
                return message


async def test_a_ctrader_account_lists_no_stream_and_each_is_refused(
    gateway: TestGateway,
) -> None:
    data = await gateway.data(
        "query($id: ID!) { account(id: $id) { streams } }", {"id": account_gid("9000001")}
    )
    assert data["account"]["streams"] == []
    for field in ("orderEvents", "accountEvents"):
        answer = await _first_answer(
            gateway,
            f"subscription($id: ID!) {{ {field}(accountId: $id) {{ sequence }} }}",
            "9000001",
        )
        assert answer["type"] == "next", answer
        codes = [error["extensions"]["code"] for error in answer["payload"]["errors"]]
        assert codes == ["CAPABILITY_NOT_SUPPORTED"], field
