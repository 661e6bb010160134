"""The store of brokergraph 0.1.0, the first release.

Before migrations existed the gateway made these tables with ``metadata.create_all``;
a database made that way has no ``alembic_version`` and is recognised by its tables
(``gateway.store._migrate.LEGACY_SCHEMAS``), then stamped, never re-created.

Forward only: there is no downgrade (restore the backup taken before upgrading).

Revision ID: 0001_v0_1_0
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_v0_1_0"
down_revision = None
branch_labels = None
depends_on = None

# Frozen copies of the 0.1.0 column types (gateway/store/_tables.py then): a revision
# never imports today's tables, which will have moved on.
_WHEN = sa.DateTime(timezone=True)
_AUTO_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "partners",
        sa.Column("code", sa.String(), primary_key=True),
        sa.Column("broker", sa.String(), nullable=True),
        sa.Column("display_name", sa.String(), nullable=True),
        sa.Column("created_at", _WHEN, nullable=False),
    )
    op.create_index("ix_partners_broker", "partners", ["broker"])
    op.create_table(
        "links",
        sa.Column("platform", sa.String(), primary_key=True),
        sa.Column("kind", sa.String(), primary_key=True),
        sa.Column("external_id", sa.String(), primary_key=True),
        sa.Column("partner_code", sa.String(), sa.ForeignKey("partners.code"), nullable=False),
        sa.Column("trader_id", sa.String(), nullable=True),
        sa.Column("created_at", _WHEN, nullable=False),
    )
    op.create_index("ix_links_partner_code", "links", ["partner_code"])
    op.create_table(
        "idempotency_keys",
        sa.Column("scope", sa.String(), primary_key=True),
        sa.Column("key", sa.String(), primary_key=True),
        sa.Column("operation", sa.String(), nullable=False),
        sa.Column("request_hash", sa.String(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("response", sa.JSON(), nullable=True),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("completed_at", _WHEN, nullable=True),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", _AUTO_ID, primary_key=True, autoincrement=True),
        sa.Column("at", _WHEN, nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("role", sa.String(), nullable=False),
        sa.Column("operation", sa.String(), nullable=False),
        sa.Column("target", sa.String(), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("error_code", sa.String(), nullable=True),
        sa.Column("upstream_ref", sa.String(), nullable=True),
        sa.Column("idempotency_key", sa.String(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
    )
    op.create_index("ix_audit_log_at_id", "audit_log", ["at", "id"])
    op.create_index("ix_audit_log_operation", "audit_log", ["operation"])
    op.create_index("ix_audit_log_actor", "audit_log", ["actor"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("source", sa.String(), primary_key=True),
        sa.Column("delivery_id", sa.String(), primary_key=True),
        sa.Column("received_at", _WHEN, nullable=False),
    )
    op.create_table(
        "flows",
        sa.Column("flow_id", sa.String(), primary_key=True),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("updated_at", _WHEN, nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(), nullable=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("partner_code", sa.String(), nullable=True),
        sa.Column("brokers", sa.JSON(), nullable=False),
        sa.Column("secret_hash", sa.String(), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("last_used_at", _WHEN, nullable=True),
        sa.Column("revoked_at", _WHEN, nullable=True),
    )
