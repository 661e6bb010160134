"""The gateway's own state, on SQLite (default) or PostgreSQL, with the same code."""

from ._migrate import (
    UPGRADE_COMMAND,
    SchemaBehind,
    SchemaState,
    SchemaUnknown,
    head_revision,
    history,
    read_store_schema,
    upgrade_store,
)
from ._records import (
    ApiKeyRecord,
    AuditEntry,
    IdempotencyRecord,
    IdempotencyState,
    Link,
    PartnerRecord,
    TransferRecord,
    UnsettledClaim,
)
from ._store import Store

__all__ = [
    "UPGRADE_COMMAND",
    "ApiKeyRecord",
    "AuditEntry",
    "IdempotencyRecord",
    "IdempotencyState",
    "Link",
    "PartnerRecord",
    "SchemaBehind",
    "SchemaState",
    "SchemaUnknown",
    "Store",
    "TransferRecord",
    "UnsettledClaim",
    "head_revision",
    "history",
    "read_store_schema",
    "upgrade_store",
]
