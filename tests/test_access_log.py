"""Access lines and request ids, from a real gateway over real sockets."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import uuid
from pathlib import Path
from typing import Any

import pytest
import websockets
from opentelemetry.sdk.trace import TracerProvider

from gateway.observability import tracing
from gateway.observability.access_log import JsonFormatter, TextFormatter
from tests.gateway_fixtures import GatewayUnderTest, open_gateway
from tests.test_metrics import PLACE_ORDER, order
from tests.test_tracing import TRACE_ID, TRACEPARENT
from tests.test_websocket import PROTOCOL, receive, subscribe
from tests.toy.sandbox import ToySandbox


def access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [
        record.access  # type: ignore[attr-defined]
        for record in caplog.records
        if record.name == "gateway.access"
    ]


async def test_a_mutation_leaves_one_access_line_with_its_request_id(
    gateway: GatewayUnderTest, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.access")
    calls = sum(gateway.sandbox.calls.values())
    request_id = f"client-{uuid.uuid4().hex[:8]}.1"
    response = await gateway.http.post(
        gateway.graphql_url,
        json={"query": PLACE_ORDER, "variables": {"input": order(f"log-{uuid.uuid4()}")}},
        headers={
            "Authorization": f"Bearer {gateway.tokens['client']}",
            "X-Request-Id": request_id,
        },
    )
    assert response.status_code == 200 and response.json()["data"]["placeOrder"]["errors"] == []
    assert response.headers["x-request-id"] == request_id
    (line,) = [a for a in access_lines(caplog) if a["request_id"] == request_id]
    assert line["kind"] == "http" and line["method"] == "POST" and line["path"] == "/graphql"
    assert line["operation"] == "PlaceOrder" and line["status"] == 200
    assert line["viewer"] == "test-client"  # the subject, never the token
    assert line["upstream_calls"] == sum(gateway.sandbox.calls.values()) - calls >= 1
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    (record,) = [r for r in caplog.records if getattr(r, "access", None) is line]
    for formatted in (
        JsonFormatter().format(record),
        TextFormatter().format(record),
        record.getMessage(),
    ):
        assert gateway.tokens["client"] not in formatted
        assert request_id in formatted and "PlaceOrder" in formatted
    assert json.loads(JsonFormatter().format(record))["viewer"] == "test-client"


@pytest.mark.parametrize("offered", ["x" * 129, "bad id", "id\u00e9".encode(), 'a"b', ""])
async def test_an_unsafe_request_id_is_replaced_by_a_fresh_one(
    gateway: GatewayUnderTest, offered: str | bytes
) -> None:
    response = await gateway.http.post(
        gateway.graphql_url,
        json={"query": "{ __typename }"},
        headers=[
            (b"Authorization", f"Bearer {gateway.tokens['admin']}".encode()),
            (b"X-Request-Id", offered if isinstance(offered, bytes) else offered.encode()),
        ],
    )
    echoed = response.headers["x-request-id"]
    assert echoed != offered and len(echoed) == 32 and int(echoed, 16) >= 0


async def test_every_line_of_a_request_carries_its_request_and_trace_ids(
    toy_sandbox: ToySandbox, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="gateway")
    tracing.install(TracerProvider())
    try:
        async with open_gateway(toy_sandbox, tmp_path) as gateway:
            await gateway.query(
                "query Broken { nope }",
                headers={"X-Request-Id": "traced-1", "traceparent": TRACEPARENT},
            )
    finally:
        tracing.uninstall()
    mine = [r for r in caplog.records if getattr(r, "request_id", None) == "traced-1"]
    names = {r.name for r in mine}
    # The schema's debug line of the refused operation, and the access line.
    assert {"gateway.graphql", "gateway.access"} <= names
    assert all(getattr(r, "trace_id", None) == TRACE_ID for r in mine)
    text = TextFormatter().format(next(r for r in mine if r.name == "gateway.graphql"))
    assert "request_id=traced-1" in text and f"trace_id={TRACE_ID}" in text


async def test_json_log_format_on_the_command_lines_handler(
    toy_sandbox: ToySandbox, tmp_path: Path
) -> None:
    """``log_format = "json"``: the root's plain StreamHandler (``basicConfig``'s, as
    ``brokergraph`` installs it) writes one JSON object a line."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)
    try:
        async with open_gateway(
            toy_sandbox, tmp_path, observability={"log_format": "json"}
        ) as gateway:
            await gateway.query("query Hello { __typename }", token="client")
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    assert isinstance(handler.formatter, JsonFormatter)
    written = stream.getvalue().splitlines()
    # Text until the gateway set the format, then JSON, every line.
    first = next(i for i, line in enumerate(written) if line.startswith("{"))
    lines = [json.loads(line) for line in written[first:]]
    access = [e for e in lines if e["logger"] == "gateway.access" and e.get("kind") == "http"]
    hello = next(e for e in access if e.get("operation") == "Hello")
    assert hello["status"] == 200 and hello["viewer"] == "test-client"
    assert hello["request_id"] and hello["level"] == "INFO" and hello["time"].endswith("Z")


async def test_each_websocket_operation_leaves_an_access_line(
    gateway: GatewayUnderTest, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.access")
    request_id = f"socket-{uuid.uuid4().hex[:8]}"
    async with websockets.connect(
        gateway.websocket_url,
        subprotocols=[PROTOCOL],
        additional_headers={"X-Request-Id": request_id},
    ) as ws:
        assert ws.response is not None
        assert ws.response.headers["x-request-id"] == request_id
        init = {"type": "connection_init", "payload": {"token": gateway.tokens["client"]}}
        await ws.send(json.dumps(init))
        assert (await receive(ws))["type"] == "connection_ack"
        await subscribe(ws, "subscription Ticks { toyTicks(count: 2) }", {})
        assert [(await receive(ws))["type"] for _ in range(3)] == ["next", "next", "complete"]
    for _ in range(200):  # the connection's line comes once the server saw the close
        lines = [a for a in access_lines(caplog) if a["request_id"] == request_id]
        if any(a["kind"] == "websocket" for a in lines):
            break
        await asyncio.sleep(0.02)
    operation = next(a for a in lines if a["kind"] == "websocket operation")
    assert operation["operation"] == "Ticks" and operation["status"] == "complete"
    assert operation["events"] == 2 and operation["viewer"] == "test-client"
    connection = next(a for a in lines if a["kind"] == "websocket")
    assert connection["path"] == "/graphql" and connection["viewer"] == "test-client"
    assert connection["status"] == 1000  # the client's normal close
    for record in caplog.records:
        assert gateway.tokens["client"] not in JsonFormatter().format(record)
