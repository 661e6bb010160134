"""The ``[connectors.qort]`` settings section."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.contract import ConnectorSettings, Secret, SettingsError

__all__ = ["QortSettings"]


@dataclass(frozen=True, slots=True, kw_only=True)
class QortSettings(ConnectorSettings):
    """The ``[connectors.qort]`` section (read with ``QortSettings.from_section``).

    ``url`` is the module's base URL (``https://`` in production); the endpoint is
    ``{url}/qort`` and the WSDL ``{url}/qort?wsdl`` unless ``endpoint``/``wsdl`` say
    otherwise (``wsdl`` may be a local file).
    """

    url: str
    login: str
    password: Secret
    app_name: str = "brokergraph-gateway"
    endpoint: str | None = None
    wsdl: str | None = None
    timeout_seconds: float = 10.0
    #: TLS: verify the server (default), or the path of a CA bundle to verify against.
    verify_tls: bool | str = True
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

    def __post_init__(self) -> None:
        object.__setattr__(self, "url", self.url.rstrip("/"))
        verify: Any = self.verify_tls
        if not isinstance(verify, bool) and not (isinstance(verify, str) and verify.strip()):
            raise SettingsError(
                "[connectors.qort] verify_tls must be true, false or the path of a CA bundle"
            )

    @property
    def endpoint_url(self) -> str:
        return self.endpoint or f"{self.url}/qort"

    @property
    def wsdl_location(self) -> str:
        return self.wsdl or f"{self.url}/qort?wsdl"
