"""Choosing an event bus from the configured URL."""

from __future__ import annotations

from urllib.parse import urlsplit

from gateway.events._base import EventBus
from gateway.events._memory import InProcessEventBus
from gateway.events._redis import RedisEventBus

__all__ = ["create_event_bus"]

_SUPPORTED = "memory://, redis://host:port/db or rediss://host:port/db"


def create_event_bus(url: str, *, secret: bytes) -> EventBus:
    """``memory://`` gives an :class:`InProcessEventBus`; ``redis://`` or
    ``rediss://`` a :class:`RedisEventBus` signing with ``secret``."""
    # Error messages name the scheme only: the URL may carry a Redis password.
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "memory":
        if parts.netloc or parts.path or parts.query or parts.fragment:
            raise ValueError("a memory:// event bus URL takes no host, path or options")
        return InProcessEventBus()
    if scheme in ("redis", "rediss"):
        return RedisEventBus(url, secret=secret)
    if not scheme:
        raise ValueError(f"the event bus URL has no scheme; use {_SUPPORTED}")
    raise ValueError(f"unsupported event bus URL scheme {scheme!r}; use {_SUPPORTED}")
