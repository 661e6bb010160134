"""Choosing a cache backend from the configured URL."""

from __future__ import annotations

from urllib.parse import urlsplit

from gateway.cache._base import Cache
from gateway.cache._memory import MemoryCache
from gateway.cache._redis import RedisCache

__all__ = ["create_cache"]

_SUPPORTED = "memory://, redis://host:port/db or rediss://host:port/db"


def create_cache(
    url: str, *, secret: bytes, max_entries: int = 10_000, namespace: str = "bg"
) -> Cache:
    """``memory://`` gives a :class:`MemoryCache` of ``max_entries``; ``redis://`` or
    ``rediss://`` a :class:`RedisCache` signing with ``secret``, its keys under
    ``<namespace>:cache:`` (the cluster's namespace, so environments can share a Redis)."""
    # Error messages name the scheme only: the URL may carry a Redis password.
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "memory":
        if parts.netloc or parts.path or parts.query or parts.fragment:
            raise ValueError("a memory:// cache URL takes no host, path or options")
        return MemoryCache(max_entries)
    if scheme in ("redis", "rediss"):
        return RedisCache(url, secret=secret, namespace=f"{namespace}:cache:")
    if not scheme:
        raise ValueError(f"the cache URL has no scheme; use {_SUPPORTED}")
    raise ValueError(f"unsupported cache URL scheme {scheme!r}; use {_SUPPORTED}")
