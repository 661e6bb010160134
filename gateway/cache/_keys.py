"""Cache keys: one shape for every cached upstream read, built by the core only."""

from __future__ import annotations

__all__ = ["cache_key"]


def cache_key(kind: str, platform: str, native_id: str) -> str:
    """The cache key of one upstream read; writes delete the keys they change."""
    return f"{kind}:{platform}:{native_id}"
