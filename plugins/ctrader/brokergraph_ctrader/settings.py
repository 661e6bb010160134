"""The ``[connectors.ctrader]`` settings section, read and checked once at start."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

__all__ = ["CTraderSettings"]


def _reveal(value: Any) -> Any:
    # The gateway wraps secret-looking keys (password, token, key) in a Secret whose
    # ``reveal()`` gives the value; Secret is not part of gateway.contract, so duck-type.
    reveal = getattr(value, "reveal", None)
    return reveal() if callable(reveal) else value


@dataclass(frozen=True, slots=True, kw_only=True)
class CTraderSettings:
    """What the connector needs; defaults follow cTrader's guidance (see the README)."""

    url: str
    login: int
    password: str
    broker_name: str
    environment: str = "live"
    timeout_seconds: float = 10.0
    #: Look-back before ``from`` for deals of positions opened earlier (closedPositions
    #: filters on position creation time).
    deals_lookback_days: int = 90
    #: closedPositions windows fetched at once.
    window_concurrency: int = 4
    #: Batches of at most this many accounts read each trader (4.2); larger ones make
    #: one list call (4.3).
    single_read_limit: int = 3
    preferred_language: str = "EN"
    default_group: str = "Default"
    default_currency: str = "USD"
    default_leverage: Decimal = Decimal(100)
    #: TTL of the connector's own history/analytics cache entries (cTrader: ~1/min).
    history_cache_seconds: float = 60.0
    #: TTL of a closedPositions window that can no longer change (no position opened in
    #: it is still open, and it lies in the past).
    final_window_cache_seconds: float = 86400.0
    #: TTL of reference data (trader groups, deposit assets).
    reference_cache_seconds: float = 300.0

    @property
    def is_live(self) -> bool:
        return not self.environment.lower().startswith("demo")

    @classmethod
    def from_section(cls, name: str, section: Mapping[str, Any]) -> CTraderSettings:
        def text(key: str, default: str | None = None) -> str:
            value = _reveal(section.get(key, default))
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"[connectors.{name}] {key} must be a non-empty string")
            return value.strip()

        def number(key: str, default: float, *, minimum: float = 0.0) -> float:
            value = section.get(key, default)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= minimum:
                raise ValueError(f"[connectors.{name}] {key} must be a number > {minimum}")
            return float(value)

        login = _reveal(section.get("login"))
        if isinstance(login, str) and login.strip().isdigit():
            login = int(login)
        if isinstance(login, bool) or not isinstance(login, int) or login <= 0:
            raise ValueError(f"[connectors.{name}] login must be the manager's numeric login")
        leverage = section.get("default_leverage", 100)
        return cls(
            url=text("url"),
            login=login,
            password=text("password"),
            broker_name=text("broker_name"),
            environment=text("environment", "live"),
            timeout_seconds=number("timeout_seconds", 10.0),
            deals_lookback_days=int(number("deals_lookback_days", 90, minimum=-1)),
            window_concurrency=int(number("window_concurrency", 4)),
            single_read_limit=int(number("single_read_limit", 3, minimum=-1)),
            preferred_language=text("preferred_language", "EN"),
            default_group=text("default_group", "Default"),
            default_currency=text("default_currency", "USD").upper(),
            default_leverage=Decimal(str(leverage)),
            history_cache_seconds=number("history_cache_seconds", 60.0),
            final_window_cache_seconds=number("final_window_cache_seconds", 86400.0),
            reference_cache_seconds=number("reference_cache_seconds", 300.0),
        )
