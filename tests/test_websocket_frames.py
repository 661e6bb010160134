"""The gateway's WebSocket frames: sent uncompressed, and counted per operation by the
observability middleware whatever characters the client put in the operation id."""

from __future__ import annotations

import json

import websockets

from tests.gateway_fixtures import GatewayUnderTest
from tests.test_metrics import scrape, value
from tests.test_websocket import PROTOCOL, receive


async def test_permessage_deflate_is_declined(gateway: GatewayUnderTest) -> None:
    # The client offers permessage-deflate (websockets does by default); the server
    # must not take it up: its frames are small and compressing each costs CPU per socket.
    async with websockets.connect(
        gateway.websocket_url, subprotocols=[PROTOCOL], compression="deflate"
    ) as ws:
        assert ws.request is not None and ws.response is not None
        assert "permessage-deflate" in ws.request.headers["Sec-WebSocket-Extensions"]
        assert "Sec-WebSocket-Extensions" not in ws.response.headers


async def test_events_are_counted_for_an_id_that_needs_escaping(
    gateway: GatewayUnderTest,
) -> None:
    events = "brokergraph_subscription_events_total"
    running = "brokergraph_subscriptions"
    before = await scrape(gateway)
    operation_id = 'tick "é" \\ 1'  # a quote, a backslash and non-ASCII: escaped in frames
    async with websockets.connect(gateway.websocket_url, subprotocols=[PROTOCOL]) as ws:
        init = {"type": "connection_init", "payload": {"token": gateway.tokens["client"]}}
        await ws.send(json.dumps(init))
        assert (await receive(ws))["type"] == "connection_ack"
        subscribe = {
            "id": operation_id,
            "type": "subscribe",
            "payload": {"query": "subscription Ticks { toyTicks(count: 3) }"},
        }
        await ws.send(json.dumps(subscribe))
        frames = [await receive(ws) for _ in range(4)]
        assert [(f["id"], f["type"]) for f in frames] == [(operation_id, "next")] * 3 + [
            (operation_id, "complete")
        ]
        during = await scrape(gateway)
    delivered = value(during, events, topic="toyTicks", result="delivered")
    assert delivered - value(before, events, topic="toyTicks", result="delivered") == 3
    # The complete frame was recognised as this operation's end: no subscription left open.
    assert value(during, running, topic="toyTicks") == value(before, running, topic="toyTicks")
