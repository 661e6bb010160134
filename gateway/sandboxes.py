"""The sandbox contract: a local server speaking one vendor's wire protocol."""

from __future__ import annotations

import abc
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Self

from gateway.sandbox_tls import SandboxCertificate, sandbox_certificate

if TYPE_CHECKING:
    from gateway.store import Store

__all__ = ["DEMO_PARTNERS", "DemoLink", "Sandbox", "seed_demo"]

#: The demo's business partners: code -> (broker, display name).
DEMO_PARTNERS: Mapping[str, tuple[str, str]] = {
    "DEMO-001": ("demo-broker", "Demo Client One"),
    "DEMO-002": ("demo-broker", "Demo Client Two"),
    "OTHER-001": ("other-broker", "Other Broker's Client"),
}


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

    Like the vendors, a sandbox speaks TLS (``https://``, ``wss://``) with the
    process's throwaway certificate (:func:`~gateway.sandbox_tls.sandbox_certificate`);
    its ``connector_settings`` carry :meth:`tls_settings`, the CA to trust.  Plain
    ``http://``/``ws://`` only when ``plaintext`` is set before start.
    """

    name: ClassVar[str]
    #: Serve without TLS (set before :meth:`start`); the connector must then be told
    #: ``allow_plaintext`` (which :meth:`tls_settings` does).
    plaintext: bool = False

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

    @property
    def certificate(self) -> SandboxCertificate | None:
        """The certificate served (the process's throwaway one), None when ``plaintext``."""
        return None if self.plaintext else sandbox_certificate()

    def tls_settings(self) -> Mapping[str, Any]:
        """The TLS part of :meth:`connector_settings`: the CA file to trust, or, for a
        ``plaintext`` sandbox, the explicit permission to speak plain HTTP/WS."""
        certificate = self.certificate
        if certificate is None:
            return {"allow_plaintext": True}
        return {"ca_file": str(certificate.ca_file)}

    def client_ssl_context(self) -> ssl.SSLContext:
        """A client context trusting the sandbox CA, for code that calls a sandbox directly
        (``httpx.AsyncClient(verify=...)``, ``websockets.connect(ssl=...)``)."""
        return sandbox_certificate().client_context()

    async def __aenter__(self) -> Self:
        """Start on a free local port: ``async with MySandbox() as sandbox: ...``."""
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def attach_gateway(self, base_url: str) -> None:  # noqa: B027  (optional, empty on purpose)
        """Learn the running gateway's URL (e.g. to send webhooks to it); ignored by default."""

    def demo_links(self) -> Sequence[DemoLink]:
        """Seeded traders/accounts the demo links to partners; none by default."""
        return ()


async def seed_demo(
    store: Store, sandboxes: Sequence[Sandbox], platform_of: Callable[[str], str]
) -> None:
    """Write the demo partners and link each sandbox's seeded traders and accounts to them
    (``platform_of`` maps a sandbox name to its connector's platform)."""
    for code, (broker, name) in DEMO_PARTNERS.items():
        await store.upsert_partner(code, broker=broker, display_name=name)
    for sandbox in sandboxes:
        platform = platform_of(sandbox.name)
        for link in sandbox.demo_links():
            await store.upsert_partner(link.partner_code)
            await store.link(
                link.partner_code, platform, link.kind, link.external_id, trader_id=link.trader_id
            )
