"""Reads of the audit log by what its rows are about: a partner's audit trail.

Kept apart from the store's write and hot-path code.  A row names what it touched in
``target``: a partner's code, or the global id of an account, trader, order or
transfer, as the mutation was given it.  A partner's trail is the rows whose target
is one of the partner's (``targets``, matched exactly), plus rows on its orders,
which cannot be listed beforehand: their ids start with their account's
(``target_prefixes``, matched as a prefix; the caller drops the few a prefix admits
that are not the partner's).  Newest first, by ``(at, id)``, a page at a time.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import ColumnElement, and_, or_, select

from ._engine import Database
from ._records import AuditEntry
from ._tables import audit_log, transfers

__all__ = ["read_audit_trail", "read_transfer_ids"]

# Keeps each IN list well under both backends' bound-parameter limits.
_BATCH = 500


async def read_audit_trail(
    database: Database,
    *,
    targets: Collection[str],
    target_prefixes: Collection[str] = (),
    before: tuple[datetime, int] | None = None,
    limit: int = 100,
) -> list[AuditEntry]:
    """At most ``limit`` rows about ``targets`` or ids starting with ``target_prefixes``,
    newest first (same time: last appended first), older than ``before`` (``(at, id)``
    of the last row of the previous page)."""
    exact = sorted(set(targets))
    about: list[ColumnElement[bool]] = [
        audit_log.c.target.in_(exact[i : i + _BATCH]) for i in range(0, len(exact), _BATCH)
    ]
    about += [audit_log.c.target.startswith(p, autoescape=True) for p in sorted(target_prefixes)]
    if not about:
        return []
    query = select(audit_log).where(or_(*about))
    if before is not None:
        at, row_id = before
        query = query.where(
            or_(audit_log.c.at < at, and_(audit_log.c.at == at, audit_log.c.id < row_id))
        )
    query = query.order_by(audit_log.c.at.desc(), audit_log.c.id.desc()).limit(limit)
    async with database.connect() as conn:
        return [AuditEntry(**row._asdict()) for row in await conn.execute(query)]


async def read_transfer_ids(database: Database, partner_code: str) -> list[str]:
    """The ids of the partner's transfer sagas (their transitions' audit target)."""
    query = select(transfers.c.transfer_id).where(transfers.c.partner_code == partner_code)
    async with database.connect() as conn:
        return [row.transfer_id for row in await conn.execute(query)]
