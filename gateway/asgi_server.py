"""Serving an ASGI app under uvicorn inside the current event loop.

The gateway itself (``running_gateway``) and every HTTP sandbox start a server the
same way: bind (port 0 picks a free one), wait until it accepts, learn the bound
address, and on stop let in-flight requests finish within a bound.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import uvicorn

__all__ = ["ServedApp", "serve_asgi"]


@dataclass
class ServedApp:
    """A running uvicorn server and the address it bound."""

    server: uvicorn.Server
    task: asyncio.Task[None]
    host: str
    port: int
    scheme: str = "http"

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:43127`` (IPv6 hosts in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    async def stop(self) -> None:
        self.server.should_exit = True
        await self.task
        # uvicorn cancels requests still running after the graceful timeout but does not
        # wait for them: wait here, so nothing they hold outlives the server.
        pending = [task for task in self.server.server_state.tasks if not task.done()]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)


async def serve_asgi(
    app: Any, *, host: str = "127.0.0.1", port: int = 0, name: str = "server", **options: Any
) -> ServedApp:
    """Serve ``app`` and return once it accepts connections; ``options`` go to uvicorn."""
    settings: dict[str, Any] = {
        "lifespan": "off",
        "log_config": None,
        "access_log": False,
        "timeout_graceful_shutdown": 5,
        **options,
    }
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, **settings))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # surfaces the bind error
            raise RuntimeError(f"{name} stopped before it started")
        await asyncio.sleep(0.01)
    bound_host, bound_port = server.servers[0].sockets[0].getsockname()[:2]
    scheme = "https" if settings.get("ssl_certfile") else "http"
    return ServedApp(server, task, bound_host, bound_port, scheme)
