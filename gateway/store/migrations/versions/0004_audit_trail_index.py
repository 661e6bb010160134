"""The audit trail's index: a partner's rows found by their target, newest first.

``auditTrail`` reads, for each of a partner's targets, its newest rows (``target = ?``
ordered by ``(at, id)``), and its accounts' orders by the prefix of their ids.  One
index on ``(target, at, id)`` serves both: an exact target is a backward range scan
that stops after a page; a prefix is a range of ``target`` in byte order.  SQLite
compares text byte by byte (its BINARY default); PostgreSQL's column compares under the
database's collation, so its index is ``text_pattern_ops``, ordered byte by byte (and
serving ``=`` too), which the prefix range uses through ``~>=~`` and ``~<~``.

The transfers' ``partner_code`` gets the index the trail's list of a partner's transfer
ids reads by.

Forward only: there is no downgrade (restore the backup taken before upgrading).

Revision ID: 0004_audit_trail_index
Revises: 0003_transfers
"""

from __future__ import annotations

from alembic import op

revision = "0004_audit_trail_index"
down_revision = "0003_transfers"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_audit_log_target_at_id",
        "audit_log",
        ["target", "at", "id"],
        postgresql_ops={"target": "text_pattern_ops"},
    )
    op.create_index("ix_transfers_partner_code", "transfers", ["partner_code"])
