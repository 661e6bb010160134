"""The ``[connectors.dxtrade]`` settings section, read and checked once.

Both the connector and the webhook route read it, so the route verifies callbacks
with exactly the secret the connector was configured with.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["DxTradeSettings", "reveal"]


def reveal(value: Any) -> Any:
    """The plain value of a setting.

    The gateway wraps secret-looking keys (``password``, ``secret``, ``token``, ``key``)
    in a ``Secret`` whose ``reveal()`` gives the value; ``Secret`` is not part of
    ``gateway.contract``, so this duck-types it.
    """
    method = getattr(value, "reveal", None)
    return method() if callable(method) else value


@dataclass(frozen=True, slots=True, kw_only=True)
class DxTradeSettings:
    """What the connector and the webhook need (defaults in the README's table)."""

    url: str
    username: str
    domain: str
    password: str
    #: The dxFeed callback secret (HMAC-SHA256); None: the webhook refuses everything.
    webhook_secret: str | None = None
    #: The secret before a rotation, accepted too until it is removed.
    webhook_previous_secret: str | None = None
    clearing_code: str = "default"
    broker_code: str | None = None
    timeout_seconds: float = 10.0
    reads_per_second: int = 10
    #: The dxFeed account API (our stand-in, [D]); defaults to ``url`` and the webhook secret.
    dxfeed_url: str | None = None
    dxfeed_token: str | None = None
    #: Deactivate through seed 004's ``disable-user-and-terminate-accounts`` route; False
    #: (or a host without it) uses the two documented steps instead.
    use_disable_route: bool = True
    #: Concurrent dxweb calls of one batch (dxweb reads one user/account per call).
    concurrency: int = 8

    @property
    def webhook_secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.webhook_secret, self.webhook_previous_secret) if s)

    @classmethod
    def from_section(cls, name: str, section: Mapping[str, Any]) -> DxTradeSettings:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(section) - known)
        if unknown:
            raise ValueError(f"[connectors.{name}] unknown keys {unknown}; known: {sorted(known)}")

        def text(key: str, default: str | None = None) -> str:
            value = reveal(section.get(key, default))
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"[connectors.{name}] {key} must be a non-empty string")
            return value.strip()

        def optional(key: str) -> str | None:
            value = reveal(section.get(key))
            if value is None:
                return None
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"[connectors.{name}] {key} must be a non-empty string")
            return value.strip()

        def number(key: str, default: float) -> float:
            value = section.get(key, default)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"[connectors.{name}] {key} must be a number > 0")
            return float(value)

        flag = section.get("use_disable_route", True)
        if not isinstance(flag, bool):
            raise ValueError(f"[connectors.{name}] use_disable_route must be true or false")
        secret = optional("webhook_secret")
        if secret is not None and len(secret) < 16:
            raise ValueError(f"[connectors.{name}] webhook_secret must be at least 16 characters")
        return cls(
            url=text("url").rstrip("/"),
            username=text("username"),
            domain=text("domain", "default"),
            password=text("password"),
            webhook_secret=secret,
            webhook_previous_secret=optional("webhook_previous_secret"),
            clearing_code=text("clearing_code", "default"),
            broker_code=optional("broker_code"),
            timeout_seconds=number("timeout_seconds", 10.0),
            reads_per_second=int(number("reads_per_second", 10)),
            dxfeed_url=optional("dxfeed_url"),
            dxfeed_token=optional("dxfeed_token"),
            use_disable_route=flag,
            concurrency=int(number("concurrency", 8)),
        )
