"""The ``[connectors.qst]`` section, read once when the connector starts.

Unknown keys are refused (a typo such as ``reconect_wait_seconds`` stops the gateway
instead of silently leaving the default in force); the README's configuration table
lists every key.  The TLS keys (``verify_tls``, ``ca_file``, ``allow_plaintext``)
come from :class:`~gateway.contract.TlsSettings`: QST is ``wss://``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from brokergraph_qst import wire
from brokergraph_qst.session import SessionConfig
from gateway.contract import SettingsError, TlsSettings, setting

__all__ = ["QstSettings"]


@dataclass(frozen=True, slots=True, kw_only=True)
class QstSettings(TlsSettings):
    url: str = setting(doc="wss://… given by QST with the credentials")
    username: str = setting(doc="the QST user: the gateway's Trader")
    password: str = setting(doc="sent as sha256 hex, never in clear")
    client_unique_id: str = setting(doc="issued by QST at sign-up")
    order_entry_provider: str = setting("QOR", doc="QOR or PTS")
    request_timeout_seconds: float = setting(10.0, doc="one request's response")
    ack_timeout_seconds: float = setting(
        10.0, doc="after QST's response, the wait for the order notification a write causes"
    )
    reconnect_wait_seconds: float = setting(5.0, doc="how long a request waits for a reconnection")
    reconnect_initial_seconds: float = setting(0.2, doc="the first reconnect backoff step")
    reconnect_max_seconds: float = setting(10.0, doc="the longest reconnect backoff step")
    busy_backoff_seconds: float = setting(30.0, doc="the wait after close 4101")
    max_subscriber_lag: int = setting(1000, doc="events a subscriber may have queued")
    poll_followed_seconds: float | None = setting(
        None,
        doc="read the books of subscribed accounts this often (QST notifying only its"
        " current account); unset: never",
    )

    def __post_init__(self) -> None:
        # Checked here, not at the first OE login: a wrong provider is a setup mistake.
        if self.order_entry_provider not in wire.PROVIDERS:
            raise SettingsError(
                f"[connectors.qst] order_entry_provider must be one of {sorted(wire.PROVIDERS)}"
            )

    def session_config(self) -> SessionConfig:
        return SessionConfig(
            url=self.url,
            username=self.username,
            password_hash=hashlib.sha256(self.password.encode()).hexdigest(),
            client_unique_id=self.client_unique_id,
            provider=self.order_entry_provider,
            request_timeout=self.request_timeout_seconds,
            ready_wait=self.reconnect_wait_seconds,
            backoff_initial=self.reconnect_initial_seconds,
            backoff_max=self.reconnect_max_seconds,
            busy_backoff=self.busy_backoff_seconds,
            # websockets refuses a TLS context for a ws:// URL (allowed by allow_plaintext).
            ssl=self.ssl_context() if self.url.lower().startswith("wss:") else None,
        )
