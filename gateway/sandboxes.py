"""The sandbox contract: a local server speaking one vendor's wire protocol."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = ["DemoLink", "Sandbox"]


@dataclass(frozen=True, slots=True)
class DemoLink:
    """A seeded trader or account of a sandbox that the demo links to a demo partner."""

    partner_code: str
    kind: str
    external_id: str
    trader_id: str | None = None


class Sandbox(abc.ABC):
    """A real server on a local port, seeded and deterministic, that can be told to misbehave.

    The demo starts every registered sandbox and hands ``connector_settings()`` to
    the connector of the same ``name``, so a newcomer sees real data at once.
    """

    name: ClassVar[str]

    @abc.abstractmethod
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on ``host:port`` (0 picks a free port) and return once it accepts."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Stop listening and drop every connection."""

    @property
    @abc.abstractmethod
    def url(self) -> str:
        """The base URL clients use, known once started."""

    @abc.abstractmethod
    def connector_settings(self) -> Mapping[str, Any]:
        """The connector settings section that points a connector at this sandbox."""

    def attach_gateway(self, base_url: str) -> None:  # noqa: B027  (optional, empty on purpose)
        """Learn the running gateway's URL (e.g. to send webhooks to it); ignored by default."""

    def demo_links(self) -> Sequence[DemoLink]:
        """Seeded traders/accounts the demo links to partners; none by default."""
        return ()
