"""Persisted operations: an optional allow-list, and Apollo's automatic persisted queries.

The allow-list is a JSON file mapping each operation's SHA-256 (hex of the query
text) to the query.  Clients send ``extensions.persistedQuery.sha256Hash`` (Apollo's
convention) or a top-level ``documentId``, with or without the query text.  With
``limits.persisted_only`` every request must name a listed operation, so a
production gateway runs nothing it has not seen before.

Automatic persisted queries (APQ) follow Apollo's protocol: a client first sends
only ``extensions.persistedQuery {version: 1, sha256Hash}``; an unknown hash answers
``PERSISTED_QUERY_NOT_FOUND``, the client repeats the request with the query text,
the gateway checks that the text hashes to the hash (``PERSISTED_QUERY_MISMATCH``
otherwise) and, once the operation has parsed and validated, remembers it, so later
requests carry the hash alone (over GET too, which makes them cacheable URLs).  The
texts live in the gateway's cache: with Redis, shared by every replica; in memory, a
dedicated LRU of ``limits.apq_max_entries``, so registrations cannot evict upstream
reads.  Texts longer than ``limits.apq_max_query_bytes`` run but are not
remembered, which bounds the memory held to entries times that size.  With
``limits.persisted_only`` nothing is registered: only allow-listed hashes run.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from gateway.cache import Cache
from gateway.cache._base import check_ttl

__all__ = [
    "APQ_KEY_PREFIX",
    "AutomaticPersistedQueries",
    "PersistedOperationRefused",
    "PersistedOperations",
    "ResolvedOperation",
]

#: Cache keys of registered texts: ``apq:<sha256 hex>``.
APQ_KEY_PREFIX = "apq:"

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class PersistedOperationRefused(Exception):
    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class ResolvedOperation(NamedTuple):
    """The query text to run, and the APQ hash to remember it under once it validates."""

    query: str | None
    register: str | None = None


class AutomaticPersistedQueries:
    """Registered query texts by SHA-256, in a cache whose entries all expire."""

    def __init__(self, cache: Cache, *, ttl_seconds: float, max_query_bytes: int) -> None:
        check_ttl(ttl_seconds)
        if max_query_bytes < 1:
            raise ValueError(f"apq_max_query_bytes must be >= 1, got {max_query_bytes!r}")
        self.cache = cache
        self.ttl_seconds = ttl_seconds
        self.max_query_bytes = max_query_bytes

    async def lookup(self, digest: str) -> str | None:
        found = await self.cache.get(APQ_KEY_PREFIX + digest)
        return found if isinstance(found, str) else None

    async def register(self, digest: str, query: str) -> None:
        if len(query.encode()) <= self.max_query_bytes:
            await self.cache.set(APQ_KEY_PREFIX + digest, query, self.ttl_seconds)


def _sha256(query: str) -> str:
    return hashlib.sha256(query.encode()).hexdigest()


class PersistedOperations:
    def __init__(
        self,
        operations: Mapping[str, str],
        *,
        only: bool,
        apq: AutomaticPersistedQueries | None = None,
    ) -> None:
        for digest, query in operations.items():
            if _sha256(query) != digest.lower():
                raise ValueError(f"persisted operation {digest[:12]}… does not hash to its key")
        self._operations = {digest.lower(): query for digest, query in operations.items()}
        self.only = only
        # Registration would let a client add operations: never beside persisted_only.
        self.apq = None if only else apq

    @classmethod
    def from_file(
        cls, path: str | None, *, only: bool, apq: AutomaticPersistedQueries | None = None
    ) -> PersistedOperations:
        if not path:
            if only:
                raise ValueError("limits.persisted_only needs limits.persisted_operations_file")
            return cls({}, only=False, apq=apq)
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()
        ):
            raise ValueError(f"{path} must map SHA-256 hex digests to query strings")
        return cls(data, only=only, apq=apq)

    async def resolve(self, params: Mapping[str, Any]) -> ResolvedOperation:
        """The query text to run for one request's parameters."""
        query = params.get("query")
        text = query if isinstance(query, str) and query else None
        digest = params.get("documentId")
        extensions = params.get("extensions") or {}
        persisted = extensions.get("persistedQuery") if isinstance(extensions, dict) else None
        if isinstance(persisted, dict):
            if persisted.get("version", 1) != 1:
                raise PersistedOperationRefused(
                    "only version 1 of persistedQuery is supported",
                    "PERSISTED_QUERY_VERSION_UNSUPPORTED",
                )
            digest = persisted.get("sha256Hash", digest)
        if digest is None:
            if self.only:
                raise PersistedOperationRefused(
                    "this gateway runs persisted operations only; send their sha256Hash",
                    "PERSISTED_QUERY_REQUIRED",
                )
            return ResolvedOperation(text)
        if not isinstance(digest, str):
            raise PersistedOperationRefused(
                "the persisted operation's hash must be a string", "PERSISTED_QUERY_NOT_FOUND"
            )
        digest = digest.lower()
        stored = self._operations.get(digest)
        if stored is not None:
            if text is not None and text != stored:
                raise PersistedOperationRefused(
                    "the query does not match its persisted hash", "PERSISTED_QUERY_MISMATCH"
                )
            return ResolvedOperation(stored)
        # Only Apollo's extension registers: a documentId names an allow-listed document.
        if self.apq is None or not isinstance(persisted, dict):
            raise PersistedOperationRefused(
                "unknown persisted operation"
                + (" (this gateway registers none: persisted_only)" if text and self.only else ""),
                "PERSISTED_QUERY_NOT_FOUND",
            )
        if text is not None:
            if _sha256(text) != digest:
                raise PersistedOperationRefused(
                    "the query does not hash to extensions.persistedQuery.sha256Hash",
                    "PERSISTED_QUERY_MISMATCH",
                )
            return ResolvedOperation(text, register=digest)
        registered = await self.apq.lookup(digest) if _SHA256_HEX.fullmatch(digest) else None
        if registered is None:
            # Apollo's clients look for exactly this message and code, then resend
            # the request with its query text.
            raise PersistedOperationRefused("PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND")
        return ResolvedOperation(registered)

    async def register(self, digest: str, query: str) -> None:
        """Remember an APQ text that parsed and validated (called after execution)."""
        if self.apq is not None:
            await self.apq.register(digest, query)
