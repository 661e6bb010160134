"""The reconciler's table: how to settle a claim left STARTED without its client.

Added after 0.1.0 (the background reconciler).  The ``identity`` kind of ``links``,
also added since, is a new value of an existing column: no schema change.

Forward only: there is no downgrade (restore the backup taken before upgrading).

Revision ID: 0002_idempotency_recovery
Revises: 0001_v0_1_0
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_idempotency_recovery"
down_revision = "0001_v0_1_0"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idempotency_recovery",
        sa.Column("scope", sa.String(), primary_key=True),
        sa.Column("key", sa.String(), primary_key=True),
        sa.Column("recovery", sa.JSON(), nullable=False),
        sa.Column("check_after", sa.DateTime(timezone=True), nullable=False),
    )
