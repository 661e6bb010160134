"""The gateway store: partners, links, idempotency, audit, webhook dedupe, flows, API keys.

Every atomic decision (one owner per platform object, one claim per idempotency
key, one acceptance per webhook delivery) rests on a primary key: the store
tries the INSERT and treats IntegrityError as "someone got there first".  That
behaves the same on SQLite and PostgreSQL and needs no locking reads.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Collection, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    Engine,
    Row,
    bindparam,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.dml import Insert

from gateway.errors import Conflict, IdempotencyConflict, InvalidInput, NotFound
from gateway.events import EventLog

from ._audit_trail import read_audit_trail, read_transfer_ids
from ._directory import Directory, LinkKey
from ._engine import Database, Prepared, normalise_url, open_database
from ._migrate import prepare_schema
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
from ._tables import (
    api_keys,
    audit_log,
    deliveries,
    flows,
    idempotency,
    idempotency_recovery,
    links,
    partners,
    transfers,
)

# "identity": a platform identity a provisioning flow reuses or binds beyond the trader
# and accounts (cTrader's user by e-mail, a dxFeed account), ``external_id`` being
# "<identity kind>:<value>"; one partner owns it like any platform object.
_LINK_KINDS = frozenset({"trader", "account", "identity"})
# Keeps IN lists well under both backends' bound-parameter limits.
_BATCH = 500
# A row can vanish between a refused INSERT and the follow-up read (a concurrent
# delete); a few retries settle that race without looping forever.
_ATTEMPTS = 3
_API_KEY_ROLES = frozenset({"client", "manager", "admin"})
# 64 random bits of id: collisions are rare enough that a few retries settle them.
# gateway.auth parses keys expecting exactly this shape (16 lowercase hex digits).
_API_KEY_ID_BYTES = 8
# How long close() lets operations still running return their connection (a request
# cancelled at shutdown finishes its transaction first) before disposing anyway.
_CLOSE_GRACE_SECONDS = 10.0


def _now() -> datetime:
    return datetime.now(UTC)


def _chunks(values: Sequence[str]) -> Iterator[list[str]]:
    unique = list(dict.fromkeys(values))
    for start in range(0, len(unique), _BATCH):
        yield unique[start : start + _BATCH]


def _partner(row: Row[Any]) -> PartnerRecord:
    return PartnerRecord(row.code, row.broker, row.display_name, row.created_at)


def _link(row: Row[Any]) -> Link:
    return Link(
        row.partner_code, row.platform, row.kind, row.external_id, row.trader_id, row.created_at
    )


def _claim_of(row: Sequence[Any]) -> IdempotencyRecord:
    """A claim from its columns in the table's order (a prepared statement's row)."""
    scope, key, operation, request_hash, state, response, created_at, completed_at = row[:8]
    return IdempotencyRecord(
        scope=scope,
        key=key,
        operation=operation,
        request_hash=request_hash,
        state=IdempotencyState(state),
        response=response,
        created_at=created_at,
        completed_at=completed_at,
    )


def _idempotency(row: Row[Any]) -> IdempotencyRecord:
    return IdempotencyRecord(
        scope=row.scope,
        key=row.key,
        operation=row.operation,
        request_hash=row.request_hash,
        state=IdempotencyState(row.state),
        response=row.response,
        created_at=row.created_at,
        completed_at=row.completed_at,
    )


# -- statements of the hot path, built once -----------------------------------------
# A statement object caches its own cache key; one built per call makes SQLAlchemy
# recompute it (walking every column's type), which cost more than SQLite's own work.
# Bound names never equal a column name: SQLAlchemy reserves those in UPDATE ... SET.


def _claim_is(state: str | None = None) -> ColumnElement[bool]:
    where = (idempotency.c.scope == bindparam("b_scope")) & (
        idempotency.c.key == bindparam("b_key")
    )
    return where if state is None else where & (idempotency.c.state == state)


_NAMED = ("b_scope", "b_key")
_CLAIM_COLUMNS = tuple(column.name for column in idempotency.c)
_AUDIT_COLUMNS = tuple(column.name for column in audit_log.c if column.name != "id")
_FLOW_COLUMNS = ("flow_id", "kind", "state", "updated_at")

_INSERT_CLAIM = Prepared(insert(idempotency), _CLAIM_COLUMNS)
_DELETE_RECOVERY = Prepared(
    delete(idempotency_recovery).where(
        (idempotency_recovery.c.scope == bindparam("b_scope"))
        & (idempotency_recovery.c.key == bindparam("b_key"))
    ),
    _NAMED,
)
_COMPLETE_CLAIM = Prepared(
    update(idempotency)
    .where(_claim_is(IdempotencyState.STARTED.value))
    .values(
        state=IdempotencyState.COMPLETED.value,
        response=bindparam("b_response"),
        completed_at=bindparam("b_completed_at"),
    )
    # Whether it completed, not the row: the caller has the response it just gave.
    .returning(idempotency.c.key),
    (*_NAMED, "b_response", "b_completed_at"),
)
_SELECT_CLAIM = Prepared(select(idempotency).where(_claim_is()), _NAMED)
_RELEASE_CLAIM = Prepared(
    delete(idempotency).where(_claim_is(IdempotencyState.STARTED.value)), _NAMED
)
_INSERT_AUDIT = Prepared(insert(audit_log), _AUDIT_COLUMNS)
_INSERT_AUDIT_RETURNING_ID = Prepared(insert(audit_log).returning(audit_log.c.id), _AUDIT_COLUMNS)
_SELECT_FLOW = Prepared(
    select(flows.c.state).where(flows.c.flow_id == bindparam("b_flow_id")), ("b_flow_id",)
)
#: The owner of one object: what memory misses for a single account read (an admin's
#: read of an unlinked account asks on every request: built per request, the SELECT
#: was a fifth of the gateway's CPU in the side-by-side bench's cold rows).
_SELECT_OWNER = Prepared(
    select(links.c.partner_code).where(
        (links.c.platform == bindparam("b_platform"))
        & (links.c.kind == bindparam("b_kind"))
        & (links.c.external_id == bindparam("b_external_id"))
    ),
    ("b_platform", "b_kind", "b_external_id"),
)


def _upsert(keys: Sequence[Column[Any]], names: Sequence[str]) -> dict[str, Prepared]:
    """INSERT ... ON CONFLICT (``keys``) DO UPDATE the other ``names``, by dialect
    (SQLite and PostgreSQL spell it alike): one statement whether the row exists or
    not, so one transaction and no retry."""
    key_names = {key.name for key in keys}
    made: dict[str, Prepared] = {}
    for dialect, dialect_insert in (("sqlite", sqlite_insert), ("postgresql", postgresql_insert)):
        statement = dialect_insert(keys[0].table)
        made[dialect] = Prepared(
            statement.on_conflict_do_update(
                index_elements=list(keys),
                set_={n: statement.excluded[n] for n in names if n not in key_names},
            ),
            names,
        )
    return made


_SAVE_FLOW = _upsert([flows.c.flow_id], _FLOW_COLUMNS)
#: A claim's recovery, replacing one left by a released claim of the same key (a delete
#: and an insert were two statements on every keyed write).
_SAVE_RECOVERY = _upsert(
    [idempotency_recovery.c.scope, idempotency_recovery.c.key],
    ("scope", "key", "recovery", "check_after"),
)


def _link_of(key: LinkKey) -> ColumnElement[bool]:
    platform, kind, external_id = key
    return (
        (links.c.platform == platform)
        & (links.c.kind == kind)
        & (links.c.external_id == external_id)
    )


def _recovery_of(scope: str, key: str) -> ColumnElement[bool]:
    return (idempotency_recovery.c.scope == scope) & (idempotency_recovery.c.key == key)


def _api_key(row: Row[Any]) -> ApiKeyRecord:
    return ApiKeyRecord(
        key_id=row.key_id,
        name=row.name,
        role=row.role,
        partner_code=row.partner_code,
        brokers=tuple(row.brokers),
        secret_hash=row.secret_hash,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


def _audit(row: Row[Any]) -> AuditEntry:
    return AuditEntry(
        id=row.id,
        at=row.at,
        actor=row.actor,
        role=row.role,
        operation=row.operation,
        target=row.target,
        outcome=row.outcome,
        error_code=row.error_code,
        upstream_ref=row.upstream_ref,
        idempotency_key=row.idempotency_key,
        details=row.details,
    )


def _audit_values(entry: AuditEntry) -> Mapping[str, Any]:
    """The row of ``entry``; the database assigns the id.  (Not ``dataclasses.asdict``:
    it deep-copies ``details``, which the row only serialises.)"""
    return {column: getattr(entry, column) for column in _AUDIT_COLUMNS}


class _NotCompleted(Exception):
    """Rolls back a completion that found no STARTED claim to complete."""


class Store:
    """Async access to the gateway's own state; open with :meth:`Store.open`."""

    def __init__(self, database: Database) -> None:
        self._engine = database
        self._closed = False
        self._save_flow = _SAVE_FLOW[database.dialect.name]
        self._save_recovery = _SAVE_RECOVERY[database.dialect.name]
        self._directory = Directory(
            self._directory_from_db, self._partner_from_db, self._owner_from_db
        )

    @classmethod
    async def open(
        cls, url: str, *, pool_size: int = 5, max_overflow: int = 10, upgrade: bool = True
    ) -> Store:
        """Open the store at ``url``, its schema upgraded to this code's revision; with
        ``upgrade`` false a database behind it raises :class:`SchemaBehind` instead."""
        database = open_database(normalise_url(url), pool_size=pool_size, max_overflow=max_overflow)
        store = cls(database)
        try:
            await prepare_schema(database, upgrade=upgrade)
        except BaseException:
            await database.close(0)
            raise
        return store

    def share_changes(self, log: EventLog) -> None:
        """Serve partners and link owners from memory, kept exact across the replicas
        appending to ``log``.  A gateway's store does (its services call this); any other
        (a test's, a command's) reads the database, as it cannot hear the gateways."""
        self._directory.follow(log)

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self._directory.stop()
            await self._engine.close(_CLOSE_GRACE_SECONDS)

    async def ping(self) -> None:
        """A trivial query: raises when the database cannot be reached (readiness)."""
        await self._engine.ping()

    @property
    def sync_engine(self) -> Engine:
        """The engine whose events see every transaction of the store (to count them)."""
        return self._engine.sync_engine

    @property
    def url_for_display(self) -> str:
        return self._engine.url.render_as_string(hide_password=True)

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    async def _try_insert(
        self, statement: Insert, parameters: Mapping[str, Any] | None = None
    ) -> bool:
        """Run one INSERT in its own transaction; False when a constraint refused it.

        Its own transaction because PostgreSQL aborts a transaction after an error.
        """
        try:
            async with self._engine.begin() as conn:
                await conn.execute(statement, parameters)
        except IntegrityError:
            return False
        return True

    # -- partners ---------------------------------------------------------------

    async def upsert_partner(
        self, code: str, *, broker: str | None = None, display_name: str | None = None
    ) -> PartnerRecord:
        """Create the partner, or update it; a ``None`` argument keeps the stored value."""
        changes = {
            name: value
            for name, value in (("broker", broker), ("display_name", display_name))
            if value is not None
        }
        record: PartnerRecord | None = None
        for _ in range(_ATTEMPTS):
            if await self._try_insert(
                insert(partners).values(
                    code=code, broker=broker, display_name=display_name, created_at=_now()
                )
            ):
                break
            async with self._engine.begin() as conn:
                if changes:
                    await conn.execute(
                        update(partners).where(partners.c.code == code).values(**changes)
                    )
                row = (
                    await conn.execute(select(partners).where(partners.c.code == code))
                ).one_or_none()
            if row is not None:
                record = _partner(row)
                break
        if record is None:  # inserted now, or gone each time it was updated
            record = (await self._partners_from_db([code]))[0]
        if record is None:
            raise Conflict(f"partner {code!r} was deleted while being saved")
        await self._directory.partner_changed(code, record)
        return record

    def known_partner(self, code: str) -> tuple[bool, PartnerRecord | None]:
        """``(True, record)`` when memory holds the partner, without awaiting anything;
        otherwise ``(False, None)``: ask :meth:`get_partners`, which reads the database."""
        record = self._directory.partners.get(code) if self._directory.ready else None
        return record is not None, record

    def known_owner(self, platform: str, kind: str, external_id: str) -> tuple[bool, str | None]:
        """As :meth:`known_partner`, for the partner owning one object (ask :meth:`owners`)."""
        directory = self._directory
        owner = directory.owners.get((platform, kind, external_id)) if directory.ready else None
        return owner is not None, owner

    async def get_partners(self, codes: Sequence[str]) -> list[PartnerRecord | None]:
        """The partners, from memory where it holds them; the others from the database
        (another replica may have created one whose notice has not arrived yet)."""
        if not self._directory.ready:
            return await self._partners_from_db(codes)
        found = self._directory.partners_of(codes)
        missing = [code for code, record in zip(codes, found, strict=True) if record is None]
        if missing:
            since = self._directory.generation
            read = dict(zip(missing, await self._partners_from_db(missing), strict=True))
            found = [record or read[code] for code, record in zip(codes, found, strict=True)]
            self._directory.remember_partners((r for r in read.values() if r is not None), since)
        return found

    async def _partners_from_db(self, codes: Sequence[str]) -> list[PartnerRecord | None]:
        found: dict[str, PartnerRecord] = {}
        async with self._engine.connect() as conn:
            for chunk in _chunks(codes):
                rows = await conn.execute(select(partners).where(partners.c.code.in_(chunk)))
                found.update((row.code, _partner(row)) for row in rows)
        return [found.get(code) for code in codes]

    async def list_partners(
        self, *, brokers: Collection[str] | None, first: int, after: str | None
    ) -> tuple[list[PartnerRecord], str | None]:
        """One page ordered by code; the cursor is the last code of a non-final page."""
        if first < 0:
            raise ValueError("first must not be negative")
        query = select(partners).order_by(partners.c.code).limit(first + 1)
        if brokers is not None:
            query = query.where(partners.c.broker.in_(list(brokers)))
        if after is not None:
            query = query.where(partners.c.code > after)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        page = [_partner(row) for row in rows[:first]]
        if len(rows) <= first:
            return page, None
        return page, page[-1].code if page else after

    async def delete_partner(self, code: str) -> bool:
        async with self._engine.begin() as conn:
            await conn.execute(delete(links).where(links.c.partner_code == code))
            result = await conn.execute(delete(partners).where(partners.c.code == code))
        await self._directory.partner_changed(code, None)
        return result.rowcount > 0

    # -- the in-memory directory's reads ------------------------------------------

    async def _directory_from_db(self) -> tuple[dict[str, PartnerRecord], dict[LinkKey, str]]:
        owners = select(links.c.platform, links.c.kind, links.c.external_id, links.c.partner_code)
        async with self._engine.connect() as conn:
            found = {row.code: _partner(row) for row in await conn.execute(select(partners))}
            owned = {
                (row.platform, row.kind, row.external_id): row.partner_code
                for row in await conn.execute(owners)
            }
        return found, owned

    async def _partner_from_db(self, code: str) -> tuple[PartnerRecord | None, dict[LinkKey, str]]:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(select(partners).where(partners.c.code == code))
            ).one_or_none()
            owned = {
                (link.platform, link.kind, link.external_id): code
                for link in await conn.execute(
                    select(links.c.platform, links.c.kind, links.c.external_id).where(
                        links.c.partner_code == code
                    )
                )
            }
        return (None if row is None else _partner(row)), owned

    async def _owner_from_db(self, key: LinkKey) -> str | None:
        platform, kind, external_id = key
        named = {"b_platform": platform, "b_kind": kind, "b_external_id": external_id}
        async with self._engine.connect() as conn:
            found = await conn.run(_SELECT_OWNER, named)
        owner: str | None = found.rows[0][0] if found.rows else None
        return owner

    # -- links ------------------------------------------------------------------

    async def link(
        self,
        link_partner_code: str,
        platform: str,
        kind: str,
        external_id: str,
        *,
        trader_id: str | None = None,
    ) -> Link:
        """Link a platform object to a partner; repeating it is harmless.

        A repeat with a ``trader_id`` records that trader; linking the object to
        another partner raises ``Conflict``, and an unknown partner ``NotFound``.
        """
        link, _ = await self._put_link(link_partner_code, platform, kind, external_id, trader_id)
        return link

    async def claim(self, partner_code: str, platform: str, kind: str, external_id: str) -> bool:
        """:meth:`link`, telling whether this call made the link (True) or the partner
        held it already (False), so a caller can release only what it claimed."""
        _, created = await self._put_link(partner_code, platform, kind, external_id, None)
        return created

    async def _put_link(
        self,
        link_partner_code: str,
        platform: str,
        kind: str,
        external_id: str,
        trader_id: str | None,
    ) -> tuple[Link, bool]:
        if kind not in _LINK_KINDS:
            raise InvalidInput(f"link kind must be one of {sorted(_LINK_KINDS)}", field=["kind"])
        link_key = (platform, kind, external_id)
        key = _link_of(link_key)
        for _ in range(_ATTEMPTS):
            created = Link(link_partner_code, platform, kind, external_id, trader_id, _now())
            if await self._try_insert(insert(links).values(**dataclasses.asdict(created))):
                await self._directory.owner_changed(link_key, link_partner_code)
                return created, True
            async with self._engine.begin() as conn:
                row = (await conn.execute(select(links).where(key))).one_or_none()
                if row is None:
                    # Nothing holds the key, so the foreign key refused the insert,
                    # unless a concurrent unlink freed it: tell the two apart.
                    exists = await conn.scalar(
                        select(partners.c.code).where(partners.c.code == link_partner_code)
                    )
                    if exists is None:
                        raise NotFound(f"partner {link_partner_code!r} does not exist")
                    continue
                if row.partner_code != link_partner_code:
                    # The owner is not named: the caller may not be allowed to know it.
                    raise Conflict(
                        f"{platform} {kind} {external_id!r} is linked to another partner",
                        details={"platform": platform, "kind": kind, "externalId": external_id},
                    )
                if trader_id is None or row.trader_id == trader_id:
                    return _link(row), False
                await conn.execute(update(links).where(key).values(trader_id=trader_id))
                return dataclasses.replace(_link(row), trader_id=trader_id), False
        raise Conflict(f"{platform} {kind} {external_id!r} changed while being linked")

    async def unlink(self, platform: str, kind: str, external_id: str) -> bool:
        link_key = (platform, kind, external_id)
        async with self._engine.begin() as conn:
            result = await conn.execute(delete(links).where(_link_of(link_key)))
        await self._directory.owner_changed(link_key, None)
        return result.rowcount > 0

    async def links_of_partner(
        self, partner_code: str, *, platform: str | None = None, kind: str | None = None
    ) -> list[Link]:
        query = select(links).where(links.c.partner_code == partner_code)
        if platform is not None:
            query = query.where(links.c.platform == platform)
        if kind is not None:
            query = query.where(links.c.kind == kind)
        query = query.order_by(links.c.platform, links.c.kind, links.c.external_id)
        async with self._engine.connect() as conn:
            return [_link(row) for row in await conn.execute(query)]

    async def owners(
        self, platform: str, kind: str, external_ids: Sequence[str]
    ) -> list[str | None]:
        """The partner owning each object (None: not linked): from memory where it holds
        the object, else from the database (as :meth:`get_partners`)."""
        if not self._directory.ready:
            return await self._owners_from_db(platform, kind, external_ids)
        found = self._directory.owners_of(platform, kind, external_ids)
        missing = [i for i, owner in zip(external_ids, found, strict=True) if owner is None]
        if missing:
            since = self._directory.generation
            read = dict(
                zip(missing, await self._owners_from_db(platform, kind, missing), strict=True)
            )
            found = [owner or read[i] for i, owner in zip(external_ids, found, strict=True)]
            self._directory.remember_owners(
                (((platform, kind, i), owner) for i, owner in read.items() if owner is not None),
                since,
            )
        return found

    async def _owners_from_db(
        self, platform: str, kind: str, external_ids: Sequence[str]
    ) -> list[str | None]:
        if len(external_ids) == 1:
            return [await self._owner_from_db((platform, kind, external_ids[0]))]
        owner: dict[str, str] = {}
        async with self._engine.connect() as conn:
            for chunk in _chunks(external_ids):
                rows = await conn.execute(
                    select(links.c.external_id, links.c.partner_code).where(
                        (links.c.platform == platform)
                        & (links.c.kind == kind)
                        & links.c.external_id.in_(chunk)
                    )
                )
                owner.update((row.external_id, row.partner_code) for row in rows)
        return [owner.get(external_id) for external_id in external_ids]

    # -- idempotency ------------------------------------------------------------

    async def begin_idempotent(
        self,
        scope: str,
        key: str,
        operation: str,
        request_hash: str,
        *,
        recovery: Mapping[str, Any] | None = None,
    ) -> tuple[bool, IdempotencyRecord]:
        """Claim ``(scope, key)``: ``(True, record)`` for the one caller that inserted it.

        Everyone else gets ``(False, existing)``, which may still be STARTED (in
        flight); reusing the key for another request raises ``IdempotencyConflict``.
        ``recovery`` (JSON-safe) is kept with the claim, in the same transaction, until
        it completes or is released: what settles it if its outcome is lost.
        """
        for _ in range(_ATTEMPTS):
            claim = IdempotencyRecord(
                scope, key, operation, request_hash, IdempotencyState.STARTED, None, _now(), None
            )
            values = {column: getattr(claim, column) for column in _CLAIM_COLUMNS}
            values["state"] = claim.state.value
            if await self._try_claim(values, recovery):
                return True, claim
            existing = await self.get_idempotent(scope, key)
            if existing is None:
                continue  # released meanwhile: try to claim it again
            if existing.operation != operation or existing.request_hash != request_hash:
                raise IdempotencyConflict(
                    "this idempotency key was already used for a different request"
                )
            return False, existing
        raise IdempotencyConflict("this idempotency key is being claimed and released repeatedly")

    async def _try_claim(
        self, values: Mapping[str, Any], recovery: Mapping[str, Any] | None
    ) -> bool:
        """Insert a claim and its recovery together; False when the key is taken."""
        try:
            async with self._engine.begin() as conn:
                await conn.run(_INSERT_CLAIM, values)
                if recovery is not None:
                    await conn.run(
                        self._save_recovery,
                        {
                            "scope": values["scope"],
                            "key": values["key"],
                            "recovery": dict(recovery),
                            "check_after": values["created_at"],
                        },
                    )
        except IntegrityError:
            return False
        return True

    async def complete_idempotent(
        self,
        scope: str,
        key: str,
        response: dict[str, Any],
        *,
        audit: AuditEntry | None = None,
    ) -> None:
        """Record the response of a STARTED claim; a completed one is never overwritten.

        ``audit`` is appended in the same transaction: the claim completes with its
        audit row or not at all (when refused, neither is written).
        """
        named = {"b_scope": scope, "b_key": key}
        try:
            async with self._engine.begin() as conn:
                completed = await conn.run(
                    _COMPLETE_CLAIM, {**named, "b_response": response, "b_completed_at": _now()}
                )
                if not completed.rows:
                    raise _NotCompleted
                # Settled for good: nothing left to recover.
                await conn.run(_DELETE_RECOVERY, named)
                if audit is not None:
                    await conn.run(_INSERT_AUDIT, _audit_values(audit))
        except _NotCompleted:
            if await self.get_idempotent(scope, key) is None:
                raise NotFound("no idempotency claim exists for this key") from None
            raise IdempotencyConflict("this idempotency key was already completed") from None

    async def reclaim_idempotent(
        self, scope: str, key: str, older_than: datetime | None = None
    ) -> bool:
        """Take over a claim to send its request again; True for the one caller that did.

        A claim settled NOT_APPLIED is taken at any age; a STARTED one only when made
        before ``older_than`` (its owner crashed or timed out).  Taking it moves its
        clock, so it is young again for everyone else.
        """
        taken = idempotency.c.state == IdempotencyState.NOT_APPLIED.value
        if older_than is not None:
            taken = taken | (
                (idempotency.c.state == IdempotencyState.STARTED.value)
                & (idempotency.c.created_at < older_than)
            )
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(idempotency)
                .where((idempotency.c.scope == scope) & (idempotency.c.key == key) & taken)
                .values(state=IdempotencyState.STARTED.value, created_at=_now())
            )
        return bool(result.rowcount == 1)

    async def mark_not_applied(self, scope: str, key: str, older_than: datetime) -> bool:
        """Settle a STARTED claim made before ``older_than`` as never applied.

        Conditional like every settling step: False when it completed, was taken over
        (its clock moved) or released meanwhile.
        """
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(idempotency)
                .where(
                    (idempotency.c.scope == scope)
                    & (idempotency.c.key == key)
                    & (idempotency.c.state == IdempotencyState.STARTED.value)
                    & (idempotency.c.created_at < older_than)
                )
                .values(state=IdempotencyState.NOT_APPLIED.value)
            )
        return bool(result.rowcount == 1)

    async def release_idempotent(self, scope: str, key: str) -> None:
        named = {"b_scope": scope, "b_key": key}
        async with self._engine.begin() as conn:
            # Only a STARTED claim: a completed result must keep answering retries.
            released = await conn.run(_RELEASE_CLAIM, named)
            if released.rowcount:
                await conn.run(_DELETE_RECOVERY, named)

    async def unsettled_idempotent(
        self, *, claimed_before: datetime, limit: int
    ) -> list[UnsettledClaim]:
        """Up to ``limit`` STARTED claims made before ``claimed_before`` that have a
        recovery and are not held (``check_after`` passed), oldest first."""
        query = (
            select(idempotency, idempotency_recovery.c.recovery, idempotency_recovery.c.check_after)
            .join(
                idempotency_recovery,
                (idempotency_recovery.c.scope == idempotency.c.scope)
                & (idempotency_recovery.c.key == idempotency.c.key),
            )
            .where(
                (idempotency.c.state == IdempotencyState.STARTED.value)
                & (idempotency.c.created_at < claimed_before)
                & (idempotency_recovery.c.check_after <= _now())
            )
            .order_by(idempotency.c.created_at)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [UnsettledClaim(_idempotency(row), row.recovery, row.check_after) for row in rows]

    async def hold_unsettled(self, unsettled: UnsettledClaim, until: datetime) -> bool:
        """Hold a claim until ``until`` (no other replica takes it before): True for the
        one caller whose update found ``check_after`` still as it read it."""
        claim = unsettled.claim
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(idempotency_recovery)
                .where(
                    _recovery_of(claim.scope, claim.key)
                    & (idempotency_recovery.c.check_after == unsettled.check_after)
                )
                .values(check_after=until)
            )
        return bool(result.rowcount == 1)

    async def get_idempotent(self, scope: str, key: str) -> IdempotencyRecord | None:
        async with self._engine.connect() as conn:
            found = await conn.run(_SELECT_CLAIM, {"b_scope": scope, "b_key": key})
        return _claim_of(found.rows[0]) if found.rows else None

    # -- audit ------------------------------------------------------------------

    async def append_audit(self, entry: AuditEntry) -> AuditEntry:
        """Append ``entry``; the database assigns the id, any given one is ignored."""
        async with self._engine.begin() as conn:
            inserted = await conn.run(_INSERT_AUDIT_RETURNING_ID, _audit_values(entry))
        return dataclasses.replace(entry, id=inserted.rows[0][0])

    async def list_audit(
        self, *, limit: int = 100, operation: str | None = None, actor: str | None = None
    ) -> list[AuditEntry]:
        """Newest first; entries with the same time keep their append order reversed."""
        query = select(audit_log).order_by(audit_log.c.at.desc(), audit_log.c.id.desc())
        if operation is not None:
            query = query.where(audit_log.c.operation == operation)
        if actor is not None:
            query = query.where(audit_log.c.actor == actor)
        async with self._engine.connect() as conn:
            return [_audit(row) for row in await conn.execute(query.limit(limit))]

    async def audit_trail(
        self,
        *,
        targets: Collection[str],
        target_prefixes: Collection[str] = (),
        before: tuple[datetime, int] | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]:
        """Rows about ``targets`` (or ids with one of ``target_prefixes``), newest first,
        older than ``before``: see :mod:`._audit_trail`."""
        return await read_audit_trail(
            self._engine,
            targets=targets,
            target_prefixes=target_prefixes,
            before=before,
            limit=limit,
        )

    async def transfer_ids_of_partner(self, partner_code: str) -> list[str]:
        return await read_transfer_ids(self._engine, partner_code)

    # -- webhook dedupe ---------------------------------------------------------

    async def remember_delivery(self, source: str, delivery_id: str) -> bool:
        """True the first time a delivery is seen, False on every redelivery."""
        return await self._try_insert(
            insert(deliveries).values(source=source, delivery_id=delivery_id, received_at=_now())
        )

    # -- flows ------------------------------------------------------------------

    async def save_flow(self, flow_id: str, kind: str, state: dict[str, Any]) -> None:
        values = {"flow_id": flow_id, "kind": kind, "state": state, "updated_at": _now()}
        async with self._engine.begin() as conn:
            await conn.run(self._save_flow, values)

    async def get_flow(self, flow_id: str) -> dict[str, Any] | None:
        async with self._engine.connect() as conn:
            found = await conn.run(_SELECT_FLOW, {"b_flow_id": flow_id})
        state: dict[str, Any] | None = found.rows[0][0] if found.rows else None
        return state

    async def list_flows(
        self, kind: str, *, prefix: str = "", limit: int = 1000
    ) -> list[tuple[str, dict[str, Any]]]:
        """``(flow_id, state)`` of one kind whose id starts with ``prefix``, by id."""
        query = (
            select(flows.c.flow_id, flows.c.state)
            .where(flows.c.kind == kind, flows.c.flow_id.startswith(prefix, autoescape=True))
            .order_by(flows.c.flow_id)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [(row.flow_id, row.state) for row in rows]

    async def delete_flow(self, flow_id: str) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(delete(flows).where(flows.c.flow_id == flow_id))

    # -- transfer sagas -----------------------------------------------------------

    async def begin_transfer(
        self, transfer_id: str, partner_code: str, state: str, request: dict[str, Any]
    ) -> tuple[TransferRecord, bool]:
        """The saga under ``transfer_id``, and whether this call created it (in
        ``state``, no steps); an existing saga is returned as it is."""
        for _ in range(_ATTEMPTS):
            at = _now()
            values: dict[str, Any] = {
                "transfer_id": transfer_id,
                "partner_code": partner_code,
                "state": state,
                "request": request,
                "steps": [],
                "created_at": at,
                "updated_at": at,
            }
            if await self._try_insert(insert(transfers).values(**values)):
                return TransferRecord(**values), True
            existing = await self.get_transfer(transfer_id)
            if existing is not None:
                return existing, False
        raise Conflict(f"transfer {transfer_id} could not be claimed; retry")

    async def get_transfer(self, transfer_id: str) -> TransferRecord | None:
        query = select(transfers).where(transfers.c.transfer_id == transfer_id)
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).one_or_none()
        return None if row is None else TransferRecord(**row._asdict())

    async def advance_transfer(
        self,
        transfer_id: str,
        expected: Collection[str],
        state: str,
        steps: list[dict[str, Any]],
        audit: AuditEntry,
    ) -> bool:
        """Move the saga from one of the ``expected`` states to ``state`` with ``steps``,
        and append its ``audit`` row, in one transaction; False (nothing written) when
        it stands elsewhere (another request moved it first)."""
        statement = (
            update(transfers)
            .where(
                transfers.c.transfer_id == transfer_id,
                transfers.c.state.in_(sorted(expected)),
            )
            .values(state=state, steps=steps, updated_at=_now())
        )
        async with self._engine.begin() as conn:
            if (await conn.execute(statement)).rowcount != 1:
                return False
            await conn.execute(insert(audit_log).values(**_audit_values(audit)))
        return True

    async def waiting_transfers(
        self, states: Collection[str], *, updated_before: datetime, limit: int
    ) -> list[TransferRecord]:
        """Sagas in one of ``states`` not moved (nor held) since ``updated_before``,
        least recently moved first."""
        query = (
            select(transfers)
            .where(
                transfers.c.state.in_(sorted(states)),
                transfers.c.updated_at < updated_before,
            )
            .order_by(transfers.c.updated_at)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [TransferRecord(**row._asdict()) for row in rows]

    async def hold_transfer(self, record: TransferRecord, until: datetime) -> bool:
        """Hold a saga (its ``updated_at`` pushed to ``until``) so no other replica
        resumes it before: True for the one caller whose update found it as it read it."""
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(transfers)
                .where(
                    transfers.c.transfer_id == record.transfer_id,
                    transfers.c.state == record.state,
                    transfers.c.updated_at == record.updated_at,
                )
                .values(updated_at=until)
            )
        return bool(result.rowcount == 1)

    # -- API keys ---------------------------------------------------------------

    async def create_api_key(
        self,
        *,
        secret_hash: str,
        role: str,
        partner_code: str | None = None,
        brokers: Collection[str] = (),
        name: str | None = None,
    ) -> str:
        """Store a new key's hash and scope; return the fresh public ``key_id``.

        The store picks the id so its primary key settles uniqueness; hashing the
        secret (and checking the scope) is the caller's business, never the key.
        """
        if role not in _API_KEY_ROLES:
            raise InvalidInput(f"role must be one of {sorted(_API_KEY_ROLES)}", field=["role"])
        if isinstance(brokers, str):
            raise InvalidInput("brokers must be a list of broker codes", field=["brokers"])
        if not secret_hash:
            raise InvalidInput("secret_hash must not be empty", field=["secretHash"])
        for _ in range(_ATTEMPTS):
            key_id = secrets.token_hex(_API_KEY_ID_BYTES)
            if await self._try_insert(
                insert(api_keys).values(
                    key_id=key_id,
                    name=name,
                    role=role,
                    partner_code=partner_code,
                    brokers=sorted(brokers),
                    secret_hash=secret_hash,
                    created_at=_now(),
                    last_used_at=None,
                    revoked_at=None,
                )
            ):
                return key_id
        raise Conflict("could not pick an unused API key id")

    async def get_api_key(self, key_id: str) -> ApiKeyRecord | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(select(api_keys).where(api_keys.c.key_id == key_id))
            ).one_or_none()
        return None if row is None else _api_key(row)

    async def revoke_api_key(self, key_id: str) -> ApiKeyRecord | None:
        """Revoke the key (for good); ``None`` when no such key exists.

        Revoking twice keeps the first revocation time.
        """
        async with self._engine.begin() as conn:
            await conn.execute(
                update(api_keys)
                .where((api_keys.c.key_id == key_id) & api_keys.c.revoked_at.is_(None))
                .values(revoked_at=_now())
            )
            row = (
                await conn.execute(select(api_keys).where(api_keys.c.key_id == key_id))
            ).one_or_none()
        return None if row is None else _api_key(row)

    async def list_api_keys(self, *, include_revoked: bool = True) -> list[ApiKeyRecord]:
        """Every key, oldest first."""
        query = select(api_keys).order_by(api_keys.c.created_at, api_keys.c.key_id)
        if not include_revoked:
            query = query.where(api_keys.c.revoked_at.is_(None))
        async with self._engine.connect() as conn:
            return [_api_key(row) for row in await conn.execute(query)]

    async def mark_api_key_used(self, key_id: str) -> None:
        """Record that the key was just accepted (callers may do this less than every use)."""
        async with self._engine.begin() as conn:
            await conn.execute(
                update(api_keys).where(api_keys.c.key_id == key_id).values(last_used_at=_now())
            )
