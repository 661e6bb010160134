"""An optional allow-list of persisted operations.

A JSON file maps each operation's SHA-256 (hex of the query text) to the query.
Clients send ``extensions.persistedQuery.sha256Hash`` (Apollo's convention) or a
top-level ``documentId``, with or without the query text.  With
``limits.persisted_only`` every request must name a listed operation, so a
production gateway runs nothing it has not seen before.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["PersistedOperationRefused", "PersistedOperations"]


class PersistedOperationRefused(Exception):
    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def _sha256(query: str) -> str:
    return hashlib.sha256(query.encode()).hexdigest()


class PersistedOperations:
    def __init__(self, operations: Mapping[str, str], *, only: bool) -> None:
        for digest, query in operations.items():
            if _sha256(query) != digest.lower():
                raise ValueError(f"persisted operation {digest[:12]}… does not hash to its key")
        self._operations = {digest.lower(): query for digest, query in operations.items()}
        self.only = only

    @classmethod
    def from_file(cls, path: str | None, *, only: bool) -> PersistedOperations:
        if not path:
            if only:
                raise ValueError("limits.persisted_only needs limits.persisted_operations_file")
            return cls({}, only=False)
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()
        ):
            raise ValueError(f"{path} must map SHA-256 hex digests to query strings")
        return cls(data, only=only)

    def resolve(self, params: Mapping[str, Any]) -> str | None:
        """The query text to run for one request's parameters."""
        query = params.get("query")
        digest = params.get("documentId")
        extensions = params.get("extensions") or {}
        persisted = extensions.get("persistedQuery") if isinstance(extensions, dict) else None
        if isinstance(persisted, dict):
            digest = persisted.get("sha256Hash", digest)
        if digest is not None:
            if not isinstance(digest, str) or digest.lower() not in self._operations:
                raise PersistedOperationRefused(
                    "unknown persisted operation", "PERSISTED_QUERY_NOT_FOUND"
                )
            stored = self._operations[digest.lower()]
            if isinstance(query, str) and query and query != stored:
                raise PersistedOperationRefused(
                    "the query does not match its persisted hash", "PERSISTED_QUERY_MISMATCH"
                )
            return stored
        if self.only:
            raise PersistedOperationRefused(
                "this gateway runs persisted operations only; send their sha256Hash",
                "PERSISTED_QUERY_REQUIRED",
            )
        return query if isinstance(query, str) else None
