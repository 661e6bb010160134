"""What the gateway hands a connector and a plugin's routes: narrow, typed views.

A connector gets its settings section and only the shared services it needs —
records of its own multi-step flows, the owners of its ids, the event log and
cached sub-reads — never the whole store (API keys, partners, audit are the gateway's).
Each protocol is satisfied structurally by the gateway's implementations, so a
plugin can be type-checked against this file alone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, Protocol, TypeVar

__all__ = [
    "ConnectorReads",
    "ConnectorStore",
    "EventLog",
    "LoggedEvent",
    "PartnerLink",
    "PluginServices",
]

T = TypeVar("T")


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


class ConnectorReads(Protocol):
    """A connector's own sub-reads on the gateway's cache road (``context.reads``).

    For reads no family method covers (cTrader's 2-day history windows, reference
    data behind a write): the gateway keeps the entry under a key it builds, for
    ``ttl`` seconds (0: only concurrent identical reads are shared; a function of the
    value when only the value tells how long it stays true), and makes one
    upstream call for concurrent identical reads.  A connector keeps no cache of
    its own.
    """

    async def read(
        self,
        kind: str,
        key: str,
        fetch: Callable[[], Awaitable[T]],
        *,
        ttl: float | Callable[[T], float],
    ) -> T: ...

    async def forget(self, kind: str, key: str) -> None: ...


class LoggedEvent(Protocol):
    """One event in the log: ``sequence`` numbers it within its topic (1, 2, 3, ...),
    the same on every replica."""

    @property
    def topic(self) -> str: ...

    @property
    def sequence(self) -> int: ...

    @property
    def event(self) -> Any: ...

    @property
    def appended_at(self) -> datetime: ...

    @property
    def repeated(self) -> bool:
        """Set on what ``append(..., key=)`` returns for a key appended before."""
        ...


class EventLog(Protocol):
    """The gateway's event log: the one road of every event, to subscribers on any replica.

    ``append`` numbers an event in its topic once, where it enters the cluster, and
    returns when it is stored (raises when it is not: then it was not, and may be
    retried).  ``follow`` yields the entries after ``after`` (None: from now), then
    live ones, with no gap and no duplicate; a resume point the log no longer holds
    raises ``ResumeTooOld``, a log unreachable for long ``StreamInterrupted``.
    ``publish``/``subscribe`` are the payload-only forms (``publish`` returns the
    sequence).  A connector keeps no fan-out of its own.
    """

    async def publish(self, topic: str, event: Any) -> int: ...

    def subscribe(
        self, topic: str, *, max_queue: int = 1000
    ) -> AbstractAsyncContextManager[AsyncIterator[Any]]: ...

    async def append(self, topic: str, event: Any, *, key: str | None = None) -> LoggedEvent:
        """Store ``event``; with ``key``, once per key (a repeat returns the first)."""
        ...

    def follow(
        self, topic: str, *, after: int | None = None, max_queue: int = 1000
    ) -> AbstractAsyncContextManager[AsyncIterator[LoggedEvent]]: ...

    async def head(self, topic: str) -> int:
        """The last sequence the topic's log gave out (0: none yet)."""
        ...


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
