"""Reads of the audit log by what its rows are about: a partner's audit trail.

Kept apart from the store's write and hot-path code.  A row names what it touched in
``target``: a partner's code, or the global id of an account, trader, order or
transfer, as the mutation was given it.  A partner's trail is the rows whose target
is one of the partner's (``targets``, matched exactly), plus rows on its orders,
which cannot be listed beforehand: their ids start with their account's
(``target_prefixes``, matched as a prefix; the caller drops the few a prefix admits
that are not the partner's).  Newest first, by ``(at, id)``, a page at a time.

Served by the index on ``(target, at, id)`` (revision 0004), one range scan per target
or prefix, each ordered and limited on its own, then merged: an ``OR`` of them would
have the database walk the whole log newest first instead.  A target's newest rows are
a backward scan of its entries that stops after a page; a prefix is the range of
targets from the prefix up to the next string in byte order (``[p, p')``, every string
starting with ``p`` and no other), read as byte order on both backends: SQLite's text
compares byte by byte (its BINARY default; its ``LIKE`` ignores case and so uses no
index), and PostgreSQL's index is ``text_pattern_ops``, whose byte-order operators
``~>=~`` / ``~<~`` the range is written with (``>=`` / ``<`` there would compare
under the database's collation).  No wildcard is involved, so a ``%`` or ``_`` in a
target is just a character.  Only ``(at, id)`` is read from the index; the page's rows
are fetched by id at the end.
"""

from __future__ import annotations

import functools
from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    String,
    bindparam,
    select,
    tuple_,
    union,
)

from ._engine import Database
from ._records import AuditEntry
from ._tables import audit_log, transfers

__all__ = ["prefix_end", "read_audit_trail", "read_transfer_ids", "trail_queries"]

# Range scans per statement: SQLite allows 500 terms in a compound SELECT; a partner
# with more targets (transfers add one each) is read in several statements, merged here.
_ARMS = 100
_MAX_CHAR = 0x10FFFF


def prefix_end(prefix: str) -> str | None:
    """The least string after every string that starts with ``prefix``, in code point
    (= UTF-8 byte) order: ``prefix`` with its last character moved on by one (dropping
    trailing U+10FFFF first); ``None`` when there is none (no upper bound)."""
    chars = list(prefix)
    while chars:
        following = ord(chars.pop()) + 1
        if 0xD800 <= following <= 0xDFFF:  # surrogates are no characters in UTF-8
            following = 0xE000
        if following <= _MAX_CHAR:
            return "".join(chars) + chr(following)
    return None


def _named(i: int) -> ColumnElement[bool]:
    """One target's rows: ``target = :t{i}``."""
    return audit_log.c.target == bindparam(f"t{i}", type_=String())


def _prefixed(dialect: str, i: int, bounded: bool) -> ColumnElement[bool]:
    """The rows of the targets from ``:p{i}`` up to ``:e{i}`` (when ``bounded``)."""
    column = audit_log.c.target
    start, end = bindparam(f"p{i}", type_=String()), bindparam(f"e{i}", type_=String())
    at_least: ColumnElement[bool]
    below: ColumnElement[bool]
    if dialect == "postgresql":
        # Byte order whatever the database's collation, as its index is ordered.
        at_least = column.op("~>=~", is_comparison=True)(start)
        below = column.op("~<~", is_comparison=True)(end)
    else:
        at_least, below = column >= start, column < end
    return at_least & below if bounded else at_least


@functools.lru_cache(maxsize=256)
def _statement(
    dialect: str, exact: int, prefixes: tuple[bool, ...], paged: bool
) -> Select[tuple[object, ...]]:
    """One statement of a trail's page for ``exact`` targets and ``prefixes`` (whether
    each has an upper bound), ``paged`` when rows older than a cursor are asked for.
    Built once per shape with named parameters: the build is SQLAlchemy's slowest part
    (tens of ms for a few dozen scans), its compiled form is cached by statement."""
    arms = [_named(i) for i in range(exact)]
    arms += [_prefixed(dialect, i, bounded) for i, bounded in enumerate(prefixes)]
    newest_first = (audit_log.c.at.desc(), audit_log.c.id.desc())
    limit = bindparam("limit", type_=Integer())
    scans = []
    for about in arms:
        scan = select(audit_log.c.at, audit_log.c.id).where(about)
        if paged:
            scan = scan.where(
                tuple_(audit_log.c.at, audit_log.c.id)
                < tuple_(
                    bindparam("before_at", type_=audit_log.c.at.type),
                    bindparam("before_id", type_=Integer()),
                )
            )
        ranged = scan.order_by(*newest_first).limit(limit).subquery()
        scans.append(select(ranged.c.at, ranged.c.id))
    # UNION, not UNION ALL: a row both named and under a prefix is one row, as before.
    merged = union(*scans).subquery()
    page = (
        select(merged.c.id).order_by(merged.c.at.desc(), merged.c.id.desc()).limit(limit)
    ).subquery()
    return select(audit_log).join(page, audit_log.c.id == page.c.id).order_by(*newest_first)


def trail_queries(
    dialect: str,
    *,
    targets: Collection[str],
    target_prefixes: Collection[str] = (),
    before: tuple[datetime, int] | None = None,
    limit: int = 100,
) -> list[tuple[Select[tuple[object, ...]], dict[str, Any]]]:
    """The statements :func:`read_audit_trail` runs on ``dialect``, with their
    parameters: each a page of the rows of up to ``_ARMS`` targets or prefixes (tests
    read their plans)."""
    scans = [(target, False) for target in sorted(set(targets))]
    scans += [(prefix, True) for prefix in sorted(set(target_prefixes))]
    queries = []
    for i in range(0, len(scans), _ARMS):
        batch = scans[i : i + _ARMS]
        exact = [target for target, is_prefix in batch if not is_prefix]
        prefixes = [(prefix, prefix_end(prefix)) for prefix, is_prefix in batch if is_prefix]
        params: dict[str, Any] = {"limit": limit}
        params |= {f"t{n}": target for n, target in enumerate(exact)}
        for n, (start, end) in enumerate(prefixes):
            params[f"p{n}"] = start
            if end is not None:
                params[f"e{n}"] = end
        if before is not None:
            params["before_at"], params["before_id"] = before
        shape = tuple(end is not None for _, end in prefixes)
        queries.append((_statement(dialect, len(exact), shape, before is not None), params))
    return queries


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
    queries = trail_queries(
        database.dialect.name,
        targets=targets,
        target_prefixes=target_prefixes,
        before=before,
        limit=limit,
    )
    found: dict[int | None, AuditEntry] = {}
    async with database.connect() as conn:
        for statement, params in queries:
            for row in await conn.execute(statement, params):
                found[row.id] = AuditEntry(**row._asdict())
    rows = list(found.values())
    if len(queries) > 1:  # each statement's page, merged (a row once)
        rows.sort(key=lambda entry: (entry.at, entry.id or 0), reverse=True)
    return rows[:limit]


async def read_transfer_ids(database: Database, partner_code: str) -> list[str]:
    """The ids of the partner's transfer sagas (their transitions' audit target)."""
    query = select(transfers.c.transfer_id).where(transfers.c.partner_code == partner_code)
    async with database.connect() as conn:
        return [row.transfer_id for row in await conn.execute(query)]
