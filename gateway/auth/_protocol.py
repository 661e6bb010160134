"""The one interface the HTTP and WebSocket layers authenticate through."""

from __future__ import annotations

from typing import Protocol

from gateway.auth._viewer import Viewer

__all__ = ["Authenticator"]


class Authenticator(Protocol):
    """Turns a request's credentials into a :class:`Viewer`.

    Call sites depend only on this, so any authenticator (JWT, API key, or the
    chain of them a gateway runs) serves them unchanged.  It is async because
    checking an API key reads the store.  WebSocket ``connection_init`` passes
    the ``Authorization`` value from its payload here.
    """

    async def viewer_from_authorization_header(self, value: str | None) -> Viewer:
        """The viewer for ``value``; raise ``Unauthenticated`` if it proves no one."""
        ...
