"""The HTTP client connectors call their platforms through.

httpx's own, built by httpx from the same options (TLS, limits, timeouts, proxies from
the environment), with one change: httpcore's pool asks each idle keep-alive connection
whether its socket became readable (a server that closed it) every time it hands out
or takes back a connection, and each ask walks anyio's stream attributes to find the
socket again — ~30 µs a connection, so ~1 ms per request with sixteen connections
open (a fifth of the gateway's CPU on reads of sixteen accounts at once, measured by
the side-by-side benchmark).  Here each connection's stream remembers its socket.
Everything else is httpx's and httpcore's.
"""

# The stream and backend methods take httpcore's ``timeout`` arguments: its interface.
# ruff: noqa: ASYNC109

from __future__ import annotations

import select
import socket
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

__all__ = ["upstream_client"]


def upstream_client(**options: Any) -> httpx.AsyncClient:
    """``httpx.AsyncClient(**options)``, its connections remembering their socket.

    The client is httpx's own, so its options mean what they mean there: a transport
    of one's own (``transport=``) would turn off the proxies the environment names.
    """
    client = httpx.AsyncClient(**options)
    # httpx takes no network backend: each pool (the direct one, one per proxy) gets
    # ours before it has a connection to keep.
    for transport in (client._transport, *client._mounts.values()):
        pool = getattr(transport, "_pool", None)
        if isinstance(pool, httpcore.AsyncConnectionPool) and hasattr(pool, "_network_backend"):
            pool._network_backend = _SocketRemembering(pool._network_backend)
    return client


class _SocketRemembering(httpcore.AsyncNetworkBackend):
    """The pool's backend, its streams remembering their socket."""

    def __init__(self, backend: httpcore.AsyncNetworkBackend) -> None:
        self._backend = backend

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._backend.connect_tcp(host, port, timeout, local_address, socket_options)
        return _Stream(stream)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        return _Stream(await self._backend.connect_unix_socket(path, timeout, socket_options))

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


class _Stream(httpcore.AsyncNetworkStream):
    def __init__(self, stream: httpcore.AsyncNetworkStream) -> None:
        self._stream = stream
        self._socket: socket.socket | None = stream.get_extra_info("socket")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._stream.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._stream.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return _Stream(await self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        if info == "socket":
            return self._socket
        if info == "is_readable":
            return _readable(self._socket)
        return self._stream.get_extra_info(info)


def _readable(sock: socket.socket | None) -> bool:
    """As httpcore's check: readable (or gone) means the server closed it."""
    if sock is None or sock.fileno() < 0:
        return True
    if not hasattr(select, "poll"):  # Windows
        return bool(select.select([sock], [], [], 0)[0])
    poll = select.poll()
    poll.register(sock.fileno(), select.POLLIN)
    return bool(poll.poll(0))
