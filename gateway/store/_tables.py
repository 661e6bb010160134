"""The schema, in SQLAlchemy Core, portable between SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on both backends.

    SQLite keeps no offset: it would store an aware value's wall time and hand
    back a naive one, so values are normalised to UTC going in and tagged as UTC
    coming out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use an aware UTC datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# SQLite only autoincrements an INTEGER PRIMARY KEY (the rowid alias).
_AUTO_ID = BigInteger().with_variant(Integer, "sqlite")
# none_as_null so a missing response is SQL NULL rather than the JSON text 'null'.
_JSON = JSON(none_as_null=True)

metadata = MetaData()

partners = Table(
    "partners",
    metadata,
    Column("code", String, primary_key=True),
    Column("broker", String, nullable=True, index=True),
    Column("display_name", String, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
)

# The primary key is what makes "one owner per platform object" hold under races.
links = Table(
    "links",
    metadata,
    Column("platform", String, primary_key=True),
    Column("kind", String, primary_key=True),
    Column("external_id", String, primary_key=True),
    Column("partner_code", String, ForeignKey("partners.code"), nullable=False, index=True),
    Column("trader_id", String, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
)

# The primary key is the atomic claim of an idempotency key.
idempotency = Table(
    "idempotency_keys",
    metadata,
    Column("scope", String, primary_key=True),
    Column("key", String, primary_key=True),
    Column("operation", String, nullable=False),
    Column("request_hash", String, nullable=False),
    Column("state", String(16), nullable=False),
    Column("response", _JSON, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("completed_at", UtcDateTime, nullable=True),
)

# What a background reconciler needs to settle a claim left STARTED (outcome unknown)
# without its client: the platform, account and read that find the write, who asked.
# A table of its own, so a store created before it gains it on start (create_all adds
# missing tables, never columns).  ``check_after`` is the per-claim hold: a replica
# moves it forward (a conditional update) before reading, so one replica at a time
# settles a claim, and a failed read waits for it to pass.
idempotency_recovery = Table(
    "idempotency_recovery",
    metadata,
    Column("scope", String, primary_key=True),
    Column("key", String, primary_key=True),
    Column("recovery", _JSON, nullable=False),
    Column("check_after", UtcDateTime, nullable=False),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", _AUTO_ID, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime, nullable=False),
    Column("actor", String, nullable=False),
    Column("role", String, nullable=False),
    Column("operation", String, nullable=False),
    Column("target", String, nullable=True),
    Column("outcome", String(16), nullable=False),
    Column("error_code", String, nullable=True),
    Column("upstream_ref", String, nullable=True),
    Column("idempotency_key", String, nullable=True),
    Column("details", _JSON, nullable=False),
    Index("ix_audit_log_at_id", "at", "id"),
    Index("ix_audit_log_operation", "operation"),
    Index("ix_audit_log_actor", "actor"),
    # auditTrail: a target's rows newest first, and a range of targets (an account's
    # orders, by prefix) in byte order: text_pattern_ops on PostgreSQL, whose column
    # compares under the database's collation; SQLite's BINARY default already is.
    Index(
        "ix_audit_log_target_at_id",
        "target",
        "at",
        "id",
        postgresql_ops={"target": "text_pattern_ops"},
    ),
)

# The primary key is the atomic "seen this delivery before" check.
deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("source", String, primary_key=True),
    Column("delivery_id", String, primary_key=True),
    Column("received_at", UtcDateTime, nullable=False),
)

flows = Table(
    "flows",
    metadata,
    Column("flow_id", String, primary_key=True),
    Column("kind", String, nullable=False),
    Column("state", _JSON, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

# Server-to-server credentials.  Only a salted hash of each key's secret is kept
# (the key itself is shown once, by whoever created it); the primary key is the
# public id inside the key, so checking a key reads exactly one row.
api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", String(64), primary_key=True),
    Column("name", String, nullable=True),
    Column("role", String(16), nullable=False),
    # No foreign key to partners: a client token needs no partner row either.
    Column("partner_code", String, nullable=True),
    Column("brokers", _JSON, nullable=False),
    Column("secret_hash", String, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_used_at", UtcDateTime, nullable=True),
    Column("revoked_at", UtcDateTime, nullable=True),
)

# A transfer between two accounts run as a saga (withdraw, deposit, maybe compensate):
# its state machine, so a retry or an operator sees where the money is.  The primary
# key is derived from the source account and the client's key: the atomic "one saga
# per key" claim.  ``steps`` lists each step's outcome as it settled.
transfers = Table(
    "transfers",
    metadata,
    Column("transfer_id", String, primary_key=True),
    Column("partner_code", String, nullable=False),
    Column("state", String(32), nullable=False),
    Column("request", _JSON, nullable=False),
    Column("steps", _JSON, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index("ix_transfers_partner_code", "partner_code"),
)
