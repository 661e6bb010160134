"""The transfer sagas' table: one state machine per transfer between two accounts.

Forward only: there is no downgrade (restore the backup taken before upgrading).

Revision ID: 0003_transfers
Revises: 0002_idempotency_recovery
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_transfers"
down_revision = "0002_idempotency_recovery"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "transfers",
        sa.Column("transfer_id", sa.String(), primary_key=True),
        sa.Column("partner_code", sa.String(), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
