"""Cache keys: one shape for every cached upstream read, built by the core only."""

from __future__ import annotations

__all__ = ["cache_key", "key_group"]


def cache_key(kind: str, platform: str, native_id: str) -> str:
    """The cache key of one upstream read; writes delete the keys they change."""
    return f"{kind}:{platform}:{native_id}"


#: A key is filed under its first three ``:``-separated parts, ``kind:platform:id:``: of
#: a key whose id has parts of its own (an account's read of a period), the prefix a
#: write to the account deletes.
_GROUP_PARTS = 3


def key_group(key: str) -> str | None:
    """The prefix ``key`` is filed under, or None for a key of fewer parts.  A prefix
    that is its own group is one a cache deletes without walking its other keys."""
    parts = key.split(":", _GROUP_PARTS)
    return key[: len(key) - len(parts[-1])] if len(parts) > _GROUP_PARTS else None
