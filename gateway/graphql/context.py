"""The context every resolver receives, and how a resolver reaches it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from strawberry.types import Info

from gateway.auth import Viewer
from gateway.errors import Unauthenticated
from gateway.graphql.loaders import Loaders
from gateway.services import GatewayServices

__all__ = ["RequestContext", "context_of"]


@dataclass
class RequestContext:
    """One HTTP request or one WebSocket connection.

    ``viewer`` is ``None`` only on a WebSocket before ``connection_init`` was
    accepted; resolvers read it through :meth:`require_viewer`.
    """

    services: GatewayServices
    account_types: Mapping[str, type]
    viewer: Viewer | None = None
    request: Any = None
    response: Any = None
    loaders_cache: bool = True
    connection_params: dict[str, Any] | None = None
    _loaders: Loaders | None = field(default=None, repr=False)

    @property
    def loaders(self) -> Loaders:
        if self._loaders is None:
            self._loaders = Loaders(self.services, cache=self.loaders_cache, viewer=self.viewer)
        return self._loaders

    def reset_loaders(self) -> None:
        """Start the next operation of a batch with empty loader caches."""
        self._loaders = None

    def require_viewer(self) -> Viewer:
        if self.viewer is None:
            raise Unauthenticated("authentication required")
        return self.viewer


def context_of(info: Info[Any, Any]) -> RequestContext:
    """The :class:`RequestContext` of a resolver (typed, for plugins' resolvers too)."""
    context = info.context
    if not isinstance(context, RequestContext):
        raise TypeError("resolver called outside a brokergraph request")
    return context
