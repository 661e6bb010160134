"""Choosing an event bus from the configured URL."""

from __future__ import annotations

from urllib.parse import urlsplit

from gateway.events._base import EventBus
from gateway.events._log import EventLog, Retention
from gateway.events._memory import InProcessEventBus
from gateway.events._memory_log import InProcessEventLog
from gateway.events._redis import RedisEventBus
from gateway.events._redis_log import RedisEventLog

__all__ = ["create_event_bus", "create_event_log"]

_SUPPORTED = "memory://, redis://host:port/db or rediss://host:port/db"


def create_event_bus(url: str, *, secret: bytes) -> EventBus:
    """``memory://`` gives an :class:`InProcessEventBus`; ``redis://`` or
    ``rediss://`` a :class:`RedisEventBus` signing with ``secret``."""
    if _is_memory(url):
        return InProcessEventBus()
    return RedisEventBus(url, secret=secret)


def _is_memory(url: str) -> bool:
    """True for ``memory://``, False for a Redis URL; ValueError for anything else."""
    # Error messages name the scheme only: the URL may carry a Redis password.
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "memory":
        if parts.netloc or parts.path or parts.query or parts.fragment:
            raise ValueError("a memory:// event bus URL takes no host, path or options")
        return True
    if scheme in ("redis", "rediss"):
        return False
    if not scheme:
        raise ValueError(f"the event bus URL has no scheme; use {_SUPPORTED}")
    raise ValueError(f"unsupported event bus URL scheme {scheme!r}; use {_SUPPORTED}")


def create_event_log(
    url: str,
    *,
    secret: bytes,
    namespace: str = "bg:events:",
    retention: Retention | None = None,
    reconnect_seconds: float = 30.0,
) -> EventLog:
    """``memory://`` gives an :class:`InProcessEventLog`; ``redis://`` or ``rediss://``
    a :class:`RedisEventLog` (Redis Streams) under ``namespace``, signing with ``secret``."""
    if _is_memory(url):
        return InProcessEventLog(retention)
    return RedisEventLog(
        url,
        secret=secret,
        namespace=namespace,
        retention=retention,
        reconnect_seconds=reconnect_seconds,
    )
