"""What the gateway hands a connector and a plugin's routes: narrow, typed views.

A connector gets its settings section and only the shared services it needs —
records of its own multi-step flows, the owners of its ids, the event log and the
cache — never the whole store (API keys, partners, audit are the gateway's).
Each protocol is satisfied structurally by the gateway's implementations, so a
plugin can be type-checked against this file alone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

__all__ = [
    "ConnectorCache",
    "ConnectorStore",
    "EventLog",
    "PartnerLink",
    "PluginServices",
]


class PartnerLink(Protocol):
    """One platform object (``kind`` is ``trader`` or ``account``) a partner owns."""

    @property
    def partner_code(self) -> str: ...

    @property
    def platform(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def external_id(self) -> str: ...

    @property
    def trader_id(self) -> str | None: ...


class ConnectorStore(Protocol):
    """The part of the gateway's store a connector may use."""

    async def owners(
        self, platform: str, kind: str, external_ids: Sequence[str]
    ) -> list[str | None]:
        """The partner code owning each id (``kind`` is ``trader`` or ``account``)."""
        ...

    async def links_of_partner(
        self, partner_code: str, *, platform: str | None = None, kind: str | None = None
    ) -> Sequence[PartnerLink]:
        """The partner's links, by platform, kind and id."""
        ...

    async def save_flow(self, flow_id: str, kind: str, state: dict[str, Any]) -> None:
        """Record the state of a multi-step flow (resumable provisioning, pending reports)."""
        ...

    async def get_flow(self, flow_id: str) -> dict[str, Any] | None: ...

    async def list_flows(
        self, kind: str, *, prefix: str = "", limit: int = 1000
    ) -> list[tuple[str, dict[str, Any]]]: ...

    async def delete_flow(self, flow_id: str) -> None: ...

    async def remember_delivery(self, source: str, delivery_id: str) -> bool:
        """True the first time a webhook delivery is seen, False on every redelivery."""
        ...


class ConnectorCache(Protocol):
    """The gateway's cache (in memory or Redis); values are pickled models."""

    async def get(self, key: str) -> Any | None: ...

    async def set(self, key: str, value: Any, ttl: float) -> None: ...

    async def delete(self, *keys: str) -> None: ...

    async def delete_prefix(self, prefix: str) -> int: ...


class EventLog(Protocol):
    """Topics connectors publish upstream events to, and subscribe to."""

    async def publish(self, topic: str, event: Any) -> int: ...

    def subscribe(
        self, topic: str, *, max_queue: int = 1000
    ) -> AbstractAsyncContextManager[AsyncIterator[Any]]: ...


class _ConnectorSections(Protocol):
    @property
    def connectors(self) -> Mapping[str, Mapping[str, Any]]: ...


class PluginServices(Protocol):
    """What ``brokergraph_routes`` receives: enough for a webhook, nothing more."""

    @property
    def settings(self) -> _ConnectorSections: ...

    @property
    def store(self) -> ConnectorStore: ...

    @property
    def events(self) -> EventLog: ...
