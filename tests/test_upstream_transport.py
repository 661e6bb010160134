"""The connectors' HTTP transport (``gateway.contract.upstream_transport``) over a real
TLS server: keep-alive connections are reused and their sockets are found without
walking anyio's stream attributes per request, and a connection the server closed is
still noticed before it is reused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import anyio.streams.tls
import httpx
import pytest

from gateway.asgi_server import ServedApp, serve_asgi
from gateway.contract import upstream_transport
from gateway.sandbox_tls import sandbox_certificate

CONNECTIONS = 8


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    await asyncio.sleep(0.01)  # concurrent requests need connections of their own
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
async def server() -> AsyncIterator[ServedApp]:
    certificate = sandbox_certificate()
    served = await serve_asgi(
        _app,
        name="the TLS server",
        ssl_certfile=str(certificate.cert_file),
        ssl_keyfile=str(certificate.key_file),
        timeout_keep_alive=60,
    )
    try:
        yield served
    finally:
        await served.stop()


async def test_sockets_are_not_looked_up_per_request(
    server: ServedApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    looked_up = 0
    extra = anyio.streams.tls.TLSStream.extra

    def counted(self: anyio.streams.tls.TLSStream, attribute: Any, *default: Any) -> Any:
        nonlocal looked_up
        looked_up += 1
        return extra(self, attribute, *default)

    monkeypatch.setattr(anyio.streams.tls.TLSStream, "extra", counted)
    transport = upstream_transport(verify=sandbox_certificate().client_context())
    async with httpx.AsyncClient(base_url=server.url, transport=transport) as client:
        # A pool of CONNECTIONS keep-alive connections, then many requests over it.
        answers = await asyncio.gather(*(client.get("/") for _ in range(CONNECTIONS)))
        assert all(a.text == "ok" for a in answers)
        after_opening = looked_up
        for _ in range(5):
            answers = await asyncio.gather(*(client.get("/") for _ in range(CONNECTIONS)))
            assert all(a.text == "ok" for a in answers)
    # Each connection looked its socket up once when opened (and its TLS object once);
    # 40 more requests over 8 idle connections asked again on every hand-out before.
    assert after_opening <= 2 * CONNECTIONS
    assert looked_up == after_opening


async def test_a_connection_the_server_closed_is_not_reused(server: ServedApp) -> None:
    transport = upstream_transport(verify=sandbox_certificate().client_context())
    async with httpx.AsyncClient(base_url=server.url, transport=transport) as client:
        first = await client.get("/")
        assert first.text == "ok"
        # The server ends its keep-alive connections: the idle one is readable (EOF).
        await server.stop()
        restarted = await serve_asgi(
            _app,
            port=server.port,
            name="the TLS server again",
            ssl_certfile=str(sandbox_certificate().cert_file),
            ssl_keyfile=str(sandbox_certificate().key_file),
        )
        try:
            second = await client.get("/")
        finally:
            await restarted.stop()
    assert second.text == "ok"
