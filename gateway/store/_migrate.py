"""The store's schema under Alembic: which revision a database is at, and upgrading it.

The revisions live in ``gateway/store/migrations`` inside the package and run on a
connection the store hands over (no ``alembic.ini``, no second URL): ``brokergraph db
upgrade`` and a start with ``[store] upgrade_at_start`` use the same code.

A database made by ``metadata.create_all`` before migrations existed has our tables but
no ``alembic_version``.  It is recognised by its tables and their columns
(:data:`LEGACY_SCHEMAS`) and stamped with the revision it matches before upgrading; one
that matches none is refused, naming the differences — never re-created or dropped.

On PostgreSQL the upgrade holds a transaction-level advisory lock, so replicas (or
Kubernetes init containers) upgrading together run it once; the DDL is transactional
there, so a failed upgrade leaves the database as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import Script, ScriptDirectory
from sqlalchemy import Connection, inspect, text
from sqlalchemy.exc import DBAPIError

from ._engine import Database, normalise_url, open_database

__all__ = [
    "LEGACY_SCHEMAS",
    "UPGRADE_COMMAND",
    "SchemaBehind",
    "SchemaState",
    "SchemaUnknown",
    "head_revision",
    "history",
    "prepare_schema",
    "read_schema",
    "read_store_schema",
    "upgrade_schema",
    "upgrade_store",
]

MIGRATIONS = Path(__file__).parent / "migrations"
UPGRADE_COMMAND = "brokergraph db upgrade"
_VERSION_TABLE = "alembic_version"  # Alembic's default, where a revision is recorded
# The ASCII of "bgMigrat" as a signed 64-bit key; the cluster's leases take keys hashed
# from credentials, so a collision is as likely as one between two of those.
_PG_LOCK_KEY = 0x62674D6967726174 - (1 << 63)

_V0_1_0 = {
    "partners": frozenset({"code", "broker", "display_name", "created_at"}),
    "links": frozenset(
        {"platform", "kind", "external_id", "partner_code", "trader_id", "created_at"}
    ),
    "idempotency_keys": frozenset(
        {
            "scope",
            "key",
            "operation",
            "request_hash",
            "state",
            "response",
            "created_at",
            "completed_at",
        }
    ),
    "audit_log": frozenset(
        {
            "id",
            "at",
            "actor",
            "role",
            "operation",
            "target",
            "outcome",
            "error_code",
            "upstream_ref",
            "idempotency_key",
            "details",
        }
    ),
    "webhook_deliveries": frozenset({"source", "delivery_id", "received_at"}),
    "flows": frozenset({"flow_id", "kind", "state", "updated_at"}),
    "api_keys": frozenset(
        {
            "key_id",
            "name",
            "role",
            "partner_code",
            "brokers",
            "secret_hash",
            "created_at",
            "last_used_at",
            "revoked_at",
        }
    ),
}
#: The tables (and their columns) ``create_all`` made before migrations existed, by the
#: revision each state equals.  Closed: every later schema comes from a migration and
#: carries its ``alembic_version``.  tests/test_migrations.py checks each against what
#: upgrading an empty database to that revision makes.
LEGACY_SCHEMAS: Mapping[str, Mapping[str, frozenset[str]]] = {
    "0001_v0_1_0": _V0_1_0,
    "0002_idempotency_recovery": {
        **_V0_1_0,
        "idempotency_recovery": frozenset({"scope", "key", "recovery", "check_after"}),
    },
}
_OURS = frozenset(table for schema in LEGACY_SCHEMAS.values() for table in schema)


class SchemaBehind(RuntimeError):
    """The database is at an older revision than the code, and may not be upgraded here."""


class SchemaUnknown(RuntimeError):
    """The database's schema is none this code knows: never touched."""


@dataclass(frozen=True, slots=True)
class SchemaState:
    #: The database's revision: its ``alembic_version``, or the one its tables match
    #: (``legacy``); ``None`` for a database holding none of the store's tables.
    current: str | None
    head: str
    legacy: bool = False

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head

    def describe(self) -> str:
        if self.current is None:
            return "empty (no store tables)"
        if self.legacy:
            return f"at revision {self.current} (recognised by its tables; made before migrations)"
        return f"at revision {self.current}"


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def head_revision() -> str:
    head = _scripts().get_current_head()
    if head is None:
        raise RuntimeError(f"no revisions in {MIGRATIONS}")
    return head


def history() -> list[Script]:
    """Every revision, oldest first."""
    return list(reversed(list(_scripts().walk_revisions())))


def _recognise(tables: Mapping[str, frozenset[str]]) -> str:
    for revision, schema in LEGACY_SCHEMAS.items():
        if tables == schema:
            return revision
    closest = max(LEGACY_SCHEMAS.values(), key=lambda schema: len(schema.keys() & tables.keys()))
    differences = [
        *(f"table {name} is missing" for name in sorted(closest.keys() - tables.keys())),
        *(f"table {name} is not ours" for name in sorted(tables.keys() - closest.keys())),
        *(
            f"{name} has columns {sorted(tables[name])}, expected {sorted(closest[name])}"
            for name in sorted(closest.keys() & tables.keys())
            if tables[name] != closest[name]
        ),
    ]
    raise SchemaUnknown(
        "the store's tables match no known revision and carry no alembic_version, so "
        f"nothing was changed: {'; '.join(differences)}"
    )


def read_schema(connection: Connection) -> SchemaState:
    """Where the database stands; reads only."""
    head = head_revision()
    inspector = inspect(connection)
    names = inspector.get_table_names()
    # Read directly: alembic's MigrationContext logs two INFO lines each time it is made.
    current = (
        connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
        if _VERSION_TABLE in names
        else None
    )
    if current is not None:
        if current not in {script.revision for script in _scripts().walk_revisions()}:
            raise SchemaUnknown(
                f"the store is at revision {current}, which this brokergraph does not know "
                "(a newer version upgraded it): run that version, or restore a backup"
            )
        return SchemaState(current, head)
    ours = {
        name: frozenset(column["name"] for column in inspector.get_columns(name))
        for name in names
        if name in _OURS
    }
    if not ours:
        return SchemaState(None, head)
    return SchemaState(_recognise(ours), head, legacy=True)


def upgrade_schema(connection: Connection, target: str = "head") -> SchemaState:
    """Upgrade to ``target`` (an older one only builds a past release's store, for
    tests) inside the caller's transaction; returns the state before."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
    before = read_schema(connection)
    if before.up_to_date and not before.legacy:
        return before
    config = _config(connection)
    if before.legacy:
        assert before.current is not None
        command.stamp(config, before.current)
    command.upgrade(config, target)
    return before


def _refuse_if_behind(connection: Connection) -> SchemaState:
    state = read_schema(connection)
    if state.current is None:
        # A new database holds nothing to back up or lose: made at the head, as the
        # first start of a deployment (and every replica starting with it) expects.
        return upgrade_schema(connection)
    if not state.up_to_date:
        raise SchemaBehind(
            f"the store is {state.describe()}, this brokergraph needs revision "
            f"{state.head}: back it up and run `{UPGRADE_COMMAND}` (or set "
            "[store] upgrade_at_start = true)"
        )
    return state


async def prepare_schema(database: Database, *, upgrade: bool) -> SchemaState:
    """At start: upgrade the database to the head, or (``upgrade`` false) refuse one
    behind that holds the store's tables (an empty one is made at the head either way).

    SQLite runs DDL outside the transaction, so two processes upgrading one file at
    once can collide on CREATE TABLE; the loser looks again once, as ``create_all``'s
    callers did.
    """
    work = upgrade_schema if upgrade else _refuse_if_behind
    try:
        async with database.begin() as connection:
            return await connection.run_sync(work)
    except DBAPIError:
        async with database.begin() as connection:
            return await connection.run_sync(work)


async def _on_store(url: str, work: Callable[[Connection], SchemaState]) -> SchemaState:
    database = open_database(normalise_url(url), pool_size=1, max_overflow=0)
    try:
        async with database.begin() as connection:
            return await connection.run_sync(work)
    finally:
        await database.close(0)


async def upgrade_store(url: str) -> SchemaState:
    """``brokergraph db upgrade``: the store at ``url`` upgraded; returns the state before."""
    return await _on_store(url, upgrade_schema)


async def read_store_schema(url: str) -> SchemaState:
    """``brokergraph db current``: where the store at ``url`` stands; reads only."""
    return await _on_store(url, read_schema)
