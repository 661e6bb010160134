"""No secret reaches a log record at any level, from our code, uvicorn or libraries.

One gateway runs with every logger at DEBUG while HTTP and WebSocket requests carry
a token in the URL query and in headers, an API key, and a connector password;
then every captured record is searched for each secret, as the configured log
format writes it: text, or JSON with the access lines' extra fields.
"""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path

import httpx
import pytest
import websockets

from gateway.auth import Role, create_api_key
from gateway.logging_redaction import REDACTED, redact
from gateway.observability.access_log import JsonFormatter, TextFormatter
from tests.gateway_fixtures import TEST_JWT_SECRET, open_gateway
from tests.test_websocket import ACCOUNT, PROTOCOL, receive, subscribe
from tests.toy.sandbox import API_KEY, ToySandbox

PLACE_ORDER = """mutation($input: PlaceOrderInput!) {
    placeOrder(input: $input) { order { externalId } errors { code } } }"""


@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_no_secret_appears_in_any_log_record_at_debug(
    toy_sandbox: ToySandbox, tmp_path: Path, caplog: pytest.LogCaptureFixture, log_format: str
) -> None:
    caplog.set_level(logging.DEBUG)
    # A uvicorn.Config made elsewhere (tests/browser.py: log_level="warning") sets this
    # logger's own level for the whole process; the test needs its INFO access lines.
    caplog.set_level(logging.DEBUG, logger="uvicorn.error")
    password = f"toy-Pa55word-{uuid.uuid4().hex}"
    async with open_gateway(
        toy_sandbox,
        tmp_path,
        connector_settings={"toy": {"password": password}},
        observability={"log_format": log_format},
    ) as gateway:
        token = gateway.tokens["client"]
        new = await create_api_key(
            gateway.services.store, role=Role.CLIENT, partner_code="DEMO-001"
        )
        order = {
            "accountId": ACCOUNT,
            "symbol": "EURUSD",
            "side": "BUY",
            "type": "LIMIT",
            "quantity": "1000",
            "price": "0.5",
            "idempotencyKey": f"logs-{uuid.uuid4()}",
        }
        status, _ = await gateway.query(PLACE_ORDER, {"input": order}, token="client")
        assert status == 200
        status, _ = await gateway.query("{ __typename }", token=f"ApiKey {new.key}")
        # A forged token and a wrong key are refused, and logged at DEBUG as refused.
        await gateway.query("{ __typename }", token=token[:-4] + "AAAA")
        await gateway.query("{ __typename }", headers={"Authorization": f"ApiKey {new.key}x"})
        # The token in a URL's query string, over HTTP and WebSocket.
        await gateway.http.get(
            f"{gateway.graphql_url}?token={token}&query=%7B__typename%7D",
            headers={"Authorization": f"Bearer {token}"},
        )
        for authorization in (f"Bearer {token}", f"ApiKey {new.key}"):
            url = f"{gateway.websocket_url}?token={token}&key={new.key}"
            async with websockets.connect(url, subprotocols=[PROTOCOL]) as socket:
                init = {"type": "connection_init", "payload": {"Authorization": authorization}}
                await socket.send(json.dumps(init))
                assert (await receive(socket))["type"] == "connection_ack"
                await subscribe(socket, "subscription { toyTicks(count: 1) }", {})
                assert (await receive(socket))["type"] == "next"
        async with httpx.AsyncClient() as raw:  # a key in the query, as a careless client sends
            await raw.get(f"{gateway.graphql_url}?api_key={new.key}&password={password}")

    secrets = {
        "token": token,
        **{f"token part {i}": part for i, part in enumerate(token.split("."))},
        # websockets logs a frame cut to its head and tail: the signature's tail alone.
        "token tail": token[-12:],
        "API key": new.key,
        "API key secret": new.key.rsplit("_", 1)[1],
        "JWT secret": TEST_JWT_SECRET,
        "connector API key": API_KEY,
        "connector password": password,
    }
    logged = [record_text(record, log_format) for record in caplog.records]
    assert any(f"WebSocket /graphql?{REDACTED}" in text for text in logged), "no uvicorn line"
    assert any('"logger":"gateway.access"' in text for text in logged) or log_format == "text"
    for name, secret in secrets.items():
        leaks = [text for text in logged if secret in text]
        assert not leaks, f"the {name} was logged: {leaks[:3]}"


def record_text(record: logging.LogRecord, log_format: str = "text") -> str:
    """All a handler could print of ``record``: message, traceback, stack — and in
    the format the gateway writes (JSON adds the access lines' fields)."""
    formatted = logging.Formatter("%(name)s %(message)s").format(record)
    written = (JsonFormatter() if log_format == "json" else TextFormatter()).format(record)
    return "\n".join([formatted, written, record.exc_text or "", record.stack_info or ""])


def test_redaction_keeps_ordinary_text_and_public_ids() -> None:
    assert redact("did you mean 'account'? yes") == "did you mean 'account'? yes"
    assert redact("key bg_0123456789abcdef_" + "Ab1" * 15) == (
        f"key bg_0123456789abcdef_{REDACTED}"
    )
    assert redact("request 0123456789abcdef0123456789abcdef done") == (
        "request 0123456789abcdef0123456789abcdef done"
    )
    assert redact("postgresql://user:pw-1234@db/x") == f"postgresql://user:{REDACTED}@db/x"
