"""The ``[connectors.dxtrade]`` settings section, read and checked once.

Both the connector and the webhook route read it, so the route verifies callbacks
with exactly the secret the connector was configured with.  The TLS keys
(``verify_tls``, ``ca_file``, ``allow_plaintext``) come from
:class:`~gateway.contract.TlsSettings` and cover ``url`` and ``dxfeed_url`` alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from gateway.contract import Secret, SettingsError, TlsSettings

__all__ = ["DxTradeSettings"]

#: HMAC-SHA256 keys shorter than this are guessable.
MIN_WEBHOOK_SECRET = 16


@dataclass(frozen=True, slots=True, kw_only=True)
class DxTradeSettings(TlsSettings):
    """What the connector and the webhook need (defaults in the README's table).

    The password and the secrets stay wrapped in :class:`Secret`, so printing the
    settings never shows them; they are revealed only where they are used.
    """

    url: str
    username: str
    domain: str = "default"
    password: Secret
    #: The dxFeed callback secret (HMAC-SHA256); None: the webhook refuses everything.
    webhook_secret: Secret | None = None
    #: The secret before a rotation, accepted too until it is removed.
    webhook_previous_secret: Secret | None = None
    clearing_code: str = "default"
    broker_code: str | None = None
    timeout_seconds: float = 10.0
    reads_per_second: int = 10
    #: The dxFeed account API (our stand-in, [D]); defaults to ``url`` and the webhook secret.
    dxfeed_url: str | None = None
    dxfeed_token: Secret | None = None
    #: Deactivate through seed 004's ``disable-user-and-terminate-accounts`` route; False
    #: (or a host without it) uses the two documented steps instead.
    use_disable_route: bool = True
    #: Concurrent dxweb calls of one batch (dxweb reads one user/account per call).
    concurrency: int = 8
    #: Read dxsca-web (balances, positions, transfers, deals) in sessions opened on behalf
    #: of each account's user, for a host whose service account sees no user's accounts
    #: there; DXtrade then requires the LOGIN_ON_BEHALF permission (B2).
    read_on_behalf: bool = False
    #: How long DXtrade's category list (the check of a new account's categories) is
    #: kept before it is read again.
    category_cache_seconds: float = 300.0
    #: A createTrader without an idempotencyKey identical to one that made a DXtrade user
    #: (same e-mail, name, account currency and type) this recently is refused as a
    #: double submit (CONFLICT naming that user); 0 turns the check off.
    double_submit_seconds: float = 600.0

    url_settings: ClassVar[tuple[str, ...]] = ("url", "dxfeed_url")

    @property
    def webhook_secrets(self) -> tuple[str, ...]:
        pair = (self.webhook_secret, self.webhook_previous_secret)
        return tuple(s.reveal() for s in pair if s is not None)

    @classmethod
    def from_section(cls, name: str, section: Mapping[str, Any]) -> Self:
        # Zero-argument super() fails in a classmethod of a slots dataclass (3.11).
        settings = super(DxTradeSettings, cls).from_section(name, section)
        secret = settings.webhook_secret
        if secret is not None and len(secret.reveal()) < MIN_WEBHOOK_SECRET:
            raise SettingsError(
                f"[connectors.{name}] webhook_secret must be at least "
                f"{MIN_WEBHOOK_SECRET} characters"
            )
        return settings
