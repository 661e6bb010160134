"""The gateway's own state, on SQLite (default) or PostgreSQL, with the same code."""

from ._records import (
    ApiKeyRecord,
    AuditEntry,
    IdempotencyRecord,
    IdempotencyState,
    Link,
    PartnerRecord,
    UnsettledClaim,
)
from ._store import Store

__all__ = [
    "ApiKeyRecord",
    "AuditEntry",
    "IdempotencyRecord",
    "IdempotencyState",
    "Link",
    "PartnerRecord",
    "Store",
    "UnsettledClaim",
]
