"""The ``[connectors.qort]`` settings section."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from gateway.contract import Secret, TlsSettings

__all__ = ["QortSettings"]


@dataclass(frozen=True, slots=True, kw_only=True)
class QortSettings(TlsSettings):
    """The ``[connectors.qort]`` section (read with ``QortSettings.from_section``).

    ``url`` is the module's base URL (``https://``: the module is HTTPS-only); the
    endpoint is ``{url}/qort`` and the WSDL ``{url}/qort?wsdl`` unless
    ``endpoint``/``wsdl`` say otherwise (``wsdl`` may be a local file).  The TLS keys
    (``verify_tls``, ``ca_file``, ``allow_plaintext``) come from
    :class:`~gateway.contract.TlsSettings` and cover all three URLs.
    """

    url: str
    login: str
    password: Secret
    app_name: str = "brokergraph-gateway"
    endpoint: str | None = None
    wsdl: str | None = None
    timeout_seconds: float = 10.0
    #: After QORT answers BUSY (another application holds it), fail fast this long.
    busy_cooldown_seconds: float = 5.0
    #: Ping to keep the token alive; the interval defaults to a third of its lifetime.
    keepalive: bool = True
    keepalive_seconds: float | None = None
    #: GetFirmPacket calls in flight at once for one batch of partners.
    max_concurrency: int = 4
    #: New sub-accounts' currency, agreements' type, and the country IsResident='y' means.
    default_currency: str = "RUB"
    agreement_type: str = "BA"  # ClientAgreeTypes.ShortName: brokerage agreement
    home_country: str = "RU"
    #: How long the Data model extension's field definitions are kept (FirmAttributeDefs).
    attribute_definitions_ttl_seconds: float = 300.0

    url_settings: ClassVar[tuple[str, ...]] = ("url", "endpoint", "wsdl")

    def __post_init__(self) -> None:
        object.__setattr__(self, "url", self.url.rstrip("/"))

    @property
    def endpoint_url(self) -> str:
        return self.endpoint or f"{self.url}/qort"

    @property
    def wsdl_location(self) -> str:
        return self.wsdl or f"{self.url}/qort?wsdl"
