"""The connectors' HTTP client (``gateway.contract.upstream_client``) over real sockets:
keep-alive connections are reused and their sockets are found without walking anyio's
stream attributes per request, a connection the server closed is still noticed before
it is reused, and the proxies the environment names are still used, as by httpx's own
client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import anyio.streams.tls
import httpx
import pytest

from gateway.asgi_server import ServedApp, serve_asgi
from gateway.contract import upstream_client
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
    trust = sandbox_certificate().client_context()
    async with upstream_client(base_url=server.url, verify=trust) as client:
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
    trust = sandbox_certificate().client_context()
    async with upstream_client(base_url=server.url, verify=trust) as client:
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


async def test_proxies_named_by_the_environment_are_used(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await reader.readline()
        if not asked.done():
            asked.set_result(line)
        writer.close()

    listening = await asyncio.start_server(proxy, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{port}")
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    try:
        async with upstream_client(verify=sandbox_certificate().client_context()) as client:
            with pytest.raises(httpx.TransportError):  # the "proxy" hangs up
                await client.get("https://platform.invalid/")
        assert (await asyncio.wait_for(asked, 5)).startswith(b"CONNECT platform.invalid:443")
    finally:
        listening.close()
        await listening.wait_closed()
