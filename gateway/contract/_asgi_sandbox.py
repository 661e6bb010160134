"""An HTTP sandbox in a few lines: the vendor's ASGI app, served, with the standard knobs.

Every HTTP sandbox needs the same frame — start on a free port over HTTPS with the
process's sandbox certificate (plain HTTP only when ``plaintext`` is set), stop,
know its URL — and the same ways to misbehave, which the conformance kit drives without
knowing the vendor:

* ``latency_seconds`` — every request waits this long first;
* ``fail_next(n, status)`` — the next ``n`` requests are answered ``status`` without
  reaching the vendor app (nothing applied), in the vendor's error shape
  (:meth:`AsgiSandbox.failure_body`);
* ``drop_next(n, after_apply=...)`` — the next ``n`` requests lose their answer: the
  connection breaks mid-response, before the vendor app runs or, with
  ``after_apply=True``, after it applied the request (the case that makes a write's
  outcome unknown);
* ``reset()`` — the seed and every knob back to the constructor's values.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any, ClassVar, Protocol, runtime_checkable

from gateway.asgi_server import ServedApp, serve_asgi
from gateway.sandboxes import Sandbox

__all__ = ["ASGIApp", "AsgiSandbox", "Misbehaving"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@runtime_checkable
class Misbehaving(Protocol):
    """The standard knobs; every built-in sandbox has them, whatever its transport."""

    latency_seconds: float

    def fail_next(self, n: int, status: int = 503) -> None: ...

    def drop_next(self, n: int = 1, *, after_apply: bool = False) -> None: ...

    def reset(self) -> None: ...


class _ConnectionDropped(Exception):
    """Raised after a partial response so the server breaks the connection."""


class AsgiSandbox(Sandbox):
    """Base of an HTTP sandbox: implement :meth:`asgi_app` and ``connector_settings``."""

    #: Shown in errors ("the cTrader sandbox is not started").
    display_name: ClassVar[str] = "the sandbox"

    def __init__(self, *, latency_seconds: float = 0.0) -> None:
        self._initial_latency = latency_seconds
        self.latency_seconds = latency_seconds
        self._fail_statuses: list[int] = []
        self._drops: list[bool] = []
        self._served: ServedApp | None = None
        self._app: ASGIApp | None = None

    # -- what a vendor sandbox provides ---------------------------------------------

    @abc.abstractmethod
    def asgi_app(self) -> ASGIApp:
        """The vendor's API as an ASGI app (built once, at start)."""

    def failure_body(self, status: int) -> tuple[bytes, str]:
        """The body and media type of a ``fail_next`` answer; override for the vendor's shape."""
        return b'{"error":"sandbox failure (fail_next)"}', "application/json"

    def serve_options(self) -> Mapping[str, Any]:
        """Extra uvicorn options for :meth:`start`: by default the sandbox certificate
        (HTTPS), none when ``plaintext``; override to serve another certificate."""
        certificate = self.certificate
        if certificate is None:
            return {}
        return {
            "ssl_certfile": str(certificate.cert_file),
            "ssl_keyfile": str(certificate.key_file),
        }

    def reset_state(self) -> None:
        """Restore the seeded data and clear the vendor's counters; called by :meth:`reset`."""

    # -- knobs -------------------------------------------------------------------------

    def fail_next(self, n: int, status: int = 503) -> None:
        """The next ``n`` requests answer ``status`` and apply nothing."""
        self._fail_statuses.extend([status] * n)

    def drop_next(self, n: int = 1, *, after_apply: bool = False) -> None:
        """The next ``n`` requests lose their answer (after applying it, if ``after_apply``)."""
        self._drops.extend([after_apply] * n)

    def reset(self) -> None:
        """Restore the seed and every knob to its constructor value."""
        self.latency_seconds = self._initial_latency
        self._fail_statuses.clear()
        self._drops.clear()
        self.reset_state()

    # -- the Sandbox contract ------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._app = self.asgi_app()
        self._served = await serve_asgi(
            self._serve,
            host=host,
            port=port,
            name=self.display_name,
            **{**self.serve_options(), "interface": "asgi3"},
        )

    async def stop(self) -> None:
        if self._served is not None:
            await self._served.stop()
        self._served = None

    @property
    def url(self) -> str:
        if self._served is None:
            raise RuntimeError(f"{self.display_name} is not started")
        return self._served.url

    # -- the misbehaving frame around the vendor app ---------------------------------------

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self._app is not None
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        if self.latency_seconds > 0:
            await asyncio.sleep(self.latency_seconds)
        if self._drops:
            after_apply = self._drops.pop(0)
            if after_apply:
                await self._app(scope, receive, _discard)
            await _break(send)
        if self._fail_statuses:
            status = self._fail_statuses.pop(0)
            body, media_type = self.failure_body(status)
            headers = [
                (b"content-type", media_type.encode()),
                (b"content-length", str(len(body)).encode()),
            ]
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await self._app(scope, receive, send)


async def _discard(message: Message) -> None:
    """The vendor app's answer to a request whose answer is to be lost."""


async def _break(send: Send) -> None:
    # Promise a body and never send it: uvicorn closes the connection, and the
    # client sees the answer cut off after the request was received.
    headers = [(b"content-length", b"1024")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    raise _ConnectionDropped("sandbox dropped the answer (drop_next)")
