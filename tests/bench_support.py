"""What the benchmarks share: the cheapest HTTP load client, the bare QST protobuf client
of the direct baselines, and server processes that report their own CPU time.

A benchmark's servers (sandboxes, gateway) and its load client run in processes of their
own: a client or a sandbox on the gateway's event loop is timed as gateway work.
:class:`ServerProcess` starts one (this interpreter, a script and its arguments), reads
the JSON line the child prints once it serves (:func:`serve_until_stopped`), asks it for
its CPU time (``SIGUSR1``: the child prints ``time.process_time()``, every thread
included) and stops it (``SIGTERM``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import ssl
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import websockets
from brokergraph_qst import wire
from brokergraph_qst.sandbox import password_hash

from gateway.contract import OrderSide, OrderType, TimeInForce

__all__ = [
    "QstDirect",
    "RawClient",
    "ServerProcess",
    "post_bytes",
    "serve_until_stopped",
    "until_notified",
]

#: How long a server process may take to start, and to stop after SIGTERM.
START_SECONDS = 60.0
STOP_SECONDS = 10.0


# -- the load client ---------------------------------------------------------------------


class RawClient:
    """One keep-alive HTTP/1.1 connection: the cheapest client, so the server is measured."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, url: str) -> RawClient:
        parsed = httpx.URL(url)
        reader, writer = await asyncio.open_connection(parsed.host, parsed.port)
        return cls(reader, writer)

    async def exchange(self, request: bytes) -> bytes:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"unexpected answer: {head[:200]!r}")
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                return await self.reader.readexactly(int(line.split(b":", 1)[1]))
        raise RuntimeError(f"an answer without content-length: {head[:300]!r}")

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


def post_bytes(
    url: str,
    body: Mapping[str, Any],
    token: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> bytes:
    """A whole HTTP/1.1 POST of ``body`` as JSON (with a bearer ``token`` and other
    ``headers`` when given)."""
    parsed = httpx.URL(url)
    payload = json.dumps(body).encode()
    lines = [
        f"POST {parsed.raw_path.decode()} HTTP/1.1",
        f"Host: {parsed.host}:{parsed.port}",
        "Content-Type: application/json",
        "Accept: application/json",
        f"Content-Length: {len(payload)}",
        *(f"{name}: {value}" for name, value in (headers or {}).items()),
    ]
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


# -- the bare QST client of the direct baselines -------------------------------------------


async def until_notified(socket: Any, request_id: int, number: str | None = None) -> str:
    """Read until the answer to ``request_id`` and an Order notification of its order."""
    seen: set[str] = set()
    answered = False
    while not (answered and number in seen):
        frame = wire.decode(await socket.recv())
        if frame.request_id == request_id:
            answered = True
            number = number or frame.body.order_number
        elif isinstance(frame.body, wire.OrderNotice):
            seen.add(frame.body.order.id)
    assert number is not None
    return number


class QstDirect:
    """A bare protobuf client of the QST sandbox, logged in as another user than the
    gateway's (one session per user: no 4101 fight), placing and cancelling the order
    the benchmarks place through the gateway: a buy limit of one ESZ26 at 1000."""

    SPEC = wire.OrderSpec(
        contract="ESZ26",
        side=OrderSide.BUY,
        type=OrderType.LIMIT,
        quantity=Decimal(1),
        time_in_force=TimeInForce.GTC,
        price=Decimal("1000.00"),
    )

    def __init__(self, socket: Any) -> None:
        self.socket = socket
        self.request_id = 10

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, url: str, trust: ssl.SSLContext) -> AsyncIterator[QstDirect]:
        async with websockets.connect(url, compression=None, ssl=trust) as socket:
            hashed = password_hash("other-pass")
            for request_id, request in enumerate(
                (
                    wire.login("other-trader", hashed, "bench"),
                    wire.oe_login("other-trader", hashed, "QOR", is_relogin=False),
                ),
                start=1,
            ):
                await socket.send(wire.encode(request_id, request))
                while wire.decode(await socket.recv(decode=False)).request_id != request_id:
                    pass
            yield cls(socket)
            await socket.send(wire.encode(1, wire.logout()))
            with contextlib.suppress(websockets.ConnectionClosed):
                while True:
                    await socket.recv()

    async def place(self) -> str:
        """PlaceOrderRequest → its answer and the order's first notification: the order."""
        self.request_id += 1
        await self.socket.send(wire.encode(self.request_id, wire.place_order(self.SPEC)))
        return await until_notified(self.socket, self.request_id)

    async def cancel(self, number: str) -> None:
        """Cancel a placed order (its margin would refuse the next placements)."""
        self.request_id += 1
        await self.socket.send(wire.encode(self.request_id, wire.cancel_order(number)))
        await until_notified(self.socket, self.request_id, number)


# -- server processes ----------------------------------------------------------------------


async def serve_until_stopped(
    info: Mapping[str, Any], answers: Mapping[signal.Signals, Callable[[], str]] | None = None
) -> None:
    """The child's side: print ``info`` as one JSON line, then print the process's CPU
    seconds at each SIGUSR1 (and the line ``answers[sig]()`` makes at each of those
    signals), until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    every: dict[signal.Signals, Callable[[], str]] = {
        signal.SIGUSR1: lambda: str(time.process_time()),
        **(answers or {}),
    }
    for sig, answer in every.items():
        loop.add_signal_handler(sig, _print_answer, answer)
    print(json.dumps(info), flush=True)
    await stop.wait()


def _print_answer(answer: Callable[[], str]) -> None:
    print(answer(), flush=True)


class ServerProcess:
    """A server in a process of its own (``script`` run by this interpreter), started
    with ``async with``; :attr:`info` is what it printed once serving."""

    def __init__(self, name: str, script: Path, arguments: Sequence[str], log: Path) -> None:
        self.name = name
        self.script = script
        self.arguments = list(arguments)
        self.log = log
        self.info: dict[str, Any] = {}
        self._process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    async def __aenter__(self) -> ServerProcess:
        with self.log.open("wb") as sink:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable,
                str(self.script),
                *self.arguments,
                stdout=asyncio.subprocess.PIPE,
                stderr=sink,
            )
        try:
            self.info = json.loads(await self._line(START_SECONDS))
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        process = self._process
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), STOP_SECONDS)
        except TimeoutError:
            process.kill()
            await process.wait()

    def send_signal(self, sig: signal.Signals) -> None:
        assert self._process is not None
        self._process.send_signal(sig)

    async def cpu(self) -> float:
        """The process's CPU seconds so far (user and system, every thread)."""
        return float(await self.ask(signal.SIGUSR1))

    async def ask(self, sig: signal.Signals) -> str:
        """Send ``sig`` and read the line the child answers it with."""
        assert self._process is not None
        self._process.send_signal(sig)
        return (await self._line(STOP_SECONDS)).decode().strip()

    async def _line(self, within: float) -> bytes:
        assert self._process is not None and self._process.stdout is not None
        line = await asyncio.wait_for(self._process.stdout.readline(), within)
        if not line:
            await self._process.wait()
            tail = self.log.read_text(encoding="utf-8", errors="replace")[-3000:]
            raise RuntimeError(f"{self.name} exited ({self._process.returncode}):\n{tail}")
        return line
