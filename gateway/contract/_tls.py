"""The TLS settings every connector that dials its vendor shares, read and checked at start.

Three keys, the same in every ``[connectors.<name>]`` section of such a connector:

* ``verify_tls`` (default true): check the vendor's certificate and host name;
* ``ca_file``: a PEM bundle of the CAs to trust instead of the system's trust store
  (a broker's private CA; a sandbox hands over its throwaway CA this way);
* ``allow_plaintext`` (default false): accept a plain ``http://`` or ``ws://`` URL.
  Every vendor is HTTPS/WSS-only, so a plain URL is a mistake unless someone said
  otherwise: without this key the connector refuses to start.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self
from urllib.parse import urlsplit

from gateway.contract._settings import ConnectorSettings, SettingsError, setting

__all__ = ["TlsSettings"]

#: Schemes that carry no TLS.
PLAIN_SCHEMES = frozenset({"http", "ws"})


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsSettings(ConnectorSettings):
    """Base of the settings of a connector that reaches its vendor over TLS.

    Subclass it instead of :class:`ConnectorSettings`; name in ``url_settings`` every
    setting holding a URL the connector dials, and build the connector's HTTP or
    WebSocket client with :meth:`ssl_context`.
    """

    verify_tls: bool = setting(
        True, doc="check the vendor's certificate and host name; false only for a test host"
    )
    ca_file: str | None = setting(
        None, doc="PEM file of the CAs to trust instead of the system's (a private CA)"
    )
    allow_plaintext: bool = setting(
        False, doc="accept plain http:// or ws:// URLs (a local stand-in only)"
    )

    #: The settings holding URLs the connector dials; each is checked at start.
    url_settings: ClassVar[tuple[str, ...]] = ("url",)

    @classmethod
    def from_section(cls, name: str, section: Mapping[str, Any]) -> Self:
        # Zero-argument super() fails in a classmethod of a slots dataclass (3.11).
        settings = super(TlsSettings, cls).from_section(name, section)
        settings._check_tls(f"[connectors.{name}]")
        return settings

    def _check_tls(self, where: str) -> None:
        if not self.allow_plaintext:
            for key in self.url_settings:
                value = getattr(self, key)
                scheme = urlsplit(value).scheme.lower() if isinstance(value, str) else ""
                if scheme in PLAIN_SCHEMES:
                    raise SettingsError(
                        f"{where} {key} is plain {scheme}:// (no TLS); the vendor speaks "
                        f"{scheme}s:// — use it, or set allow_plaintext = true for a local "
                        "stand-in"
                    )
        if self.ca_file is None:
            return
        if not self.verify_tls:
            raise SettingsError(f"{where} ca_file is set but verify_tls is false: drop one")
        if not Path(self.ca_file).is_file():
            raise SettingsError(f"{where} ca_file {self.ca_file!r} is not a file")
        try:
            self.ssl_context()
        except ssl.SSLError:
            raise SettingsError(
                f"{where} ca_file {self.ca_file!r} holds no PEM certificate"
            ) from None

    def ssl_context(self) -> ssl.SSLContext:
        """The client context for the vendor: ``ca_file`` (or the system's trust store)
        with host names checked, or no checks at all when ``verify_tls`` is false."""
        context = ssl.create_default_context(cafile=self.ca_file)
        if not self.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context
