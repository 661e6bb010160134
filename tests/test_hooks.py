"""Every hook of the contract is exercised by the toy plugin and has a visible effect.

The checks are keyed by hook name; a hook added to gateway/hookspecs.py without a
check here fails ``test_every_hook_has_a_check``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import websockets
from websockets.typing import Subprotocol

from gateway.cli import build_parser
from gateway.plugins import load_plugins
from tests.test_contract import hook_names
from tests.toy import plugin as toy_plugin
from tests.toy.sandbox import ToySandbox

Check = Callable[[Any, Any], Awaitable[None]]


async def check_connectors(gateway: Any, capsys: Any) -> None:
    _, body = await gateway.query("{ connectors { name platform configured } }")
    assert {"name": "toy", "platform": "toy", "configured": True} in body["data"]["connectors"]


async def check_account_types(gateway: Any, capsys: Any) -> None:
    _, body = await gateway.query(
        "query($id: ID!) { account(id: $id) { __typename ... on ToyAccount { toyTier } } }",
        {"id": gateway.account_id("1001")},
    )
    account = body["data"]["account"]
    assert account["__typename"] == "ToyAccount" and account["toyTier"]


async def check_schema_types(gateway: Any, capsys: Any) -> None:
    assert "type ToyStatus" in gateway.schema.as_str()


async def check_query_fields(gateway: Any, capsys: Any) -> None:
    _, body = await gateway.query("{ toyStatus { platform configured } }")
    assert body["data"]["toyStatus"] == {"platform": "toy", "configured": True}


async def check_mutation_fields(gateway: Any, capsys: Any) -> None:
    _, body = await gateway.query(
        'mutation { toyPing(input: {message: "hi"}) { message viewer } }', token="client"
    )
    assert body["data"]["toyPing"]["message"] == "pong: hi"


async def check_subscription_fields(gateway: Any, capsys: Any) -> None:
    async with websockets.connect(
        gateway.websocket_url, subprotocols=[Subprotocol("graphql-transport-ws")]
    ) as socket:
        init = {"Authorization": f"Bearer {gateway.tokens['client']}"}
        await socket.send(json.dumps({"type": "connection_init", "payload": init}))
        assert json.loads(await socket.recv())["type"] == "connection_ack"
        await socket.send(
            json.dumps(
                {
                    "id": "1",
                    "type": "subscribe",
                    "payload": {"query": "subscription { toyTicks(count: 3) }"},
                }
            )
        )
        ticks = []
        while True:
            message = json.loads(await socket.recv())
            if message["type"] == "complete":
                break
            ticks.append(message["payload"]["data"]["toyTicks"])
    assert ticks == [0, 1, 2]


async def check_routes(gateway: Any, capsys: Any) -> None:
    response = await gateway.http.post(f"{gateway.url}/toy/webhook", json={"ping": 1})
    assert response.status_code == 202 and response.json() == {"received": True}


async def check_cli_commands(gateway: Any, capsys: Any) -> None:
    plugins = load_plugins(entry_points=False, extra=[toy_plugin])
    parser = build_parser(plugins.collect("brokergraph_cli_commands"))
    args = parser.parse_args(["toy-hello"])
    assert args.run(args) == 0
    assert "hello from toy" in capsys.readouterr().out


async def check_sandboxes(gateway: Any, capsys: Any) -> None:
    plugins = load_plugins(entry_points=False, extra=[toy_plugin])
    assert plugins.collect("brokergraph_sandboxes") == [ToySandbox]
    # the session's gateway talks to a sandbox started from that class
    assert isinstance(gateway.sandbox, ToySandbox)
    assert gateway.services.settings.connectors["toy"]["url"] == gateway.sandbox.url


CHECKS: dict[str, Check] = {
    "brokergraph_connectors": check_connectors,
    "brokergraph_account_types": check_account_types,
    "brokergraph_schema_types": check_schema_types,
    "brokergraph_query_fields": check_query_fields,
    "brokergraph_mutation_fields": check_mutation_fields,
    "brokergraph_subscription_fields": check_subscription_fields,
    "brokergraph_routes": check_routes,
    "brokergraph_cli_commands": check_cli_commands,
    "brokergraph_sandboxes": check_sandboxes,
}


def test_every_hook_has_a_check() -> None:
    assert set(CHECKS) == set(hook_names())


def test_the_toy_plugin_implements_every_hook() -> None:
    assert {name for name in hook_names() if hasattr(toy_plugin, name)} == set(hook_names())


@pytest.mark.parametrize("hook", sorted(CHECKS))
async def test_hook_is_exercised(hook: str, gateway: Any, capsys: Any) -> None:
    await CHECKS[hook](gateway, capsys)
