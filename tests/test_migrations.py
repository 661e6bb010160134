"""The store's schema under Alembic, on SQLite and PostgreSQL: a past release's store is
upgraded with its data, one made by create_all before migrations is recognised, serve
refuses a store behind the code, and the revisions' head is exactly today's tables."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, insert, inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.config import load_settings
from gateway.store import (
    IdempotencyState,
    SchemaBehind,
    SchemaUnknown,
    Store,
    head_revision,
    history,
    read_store_schema,
    upgrade_store,
)
from gateway.store._migrate import LEGACY_SCHEMAS, MIGRATIONS, upgrade_schema
from gateway.store._tables import (
    api_keys,
    audit_log,
    idempotency,
    links,
    metadata,
    partners,
)

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]
V0_1_0 = "0001_v0_1_0"
BROKERGRAPH = [sys.executable, "-m", "gateway.cli"]
WHEN = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'brokergraph.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


async def _on(url: str, work: Any) -> Any:
    """``work(connection)`` in one committed transaction on a plain engine of ``url``."""
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            return await connection.run_sync(work)
    finally:
        await engine.dispose()


def _tables(connection: Connection) -> dict[str, frozenset[str]]:
    inspector = inspect(connection)
    return {
        name: frozenset(column["name"] for column in inspector.get_columns(name))
        for name in inspector.get_table_names()
    }


def _release_0_1_0_rows(connection: Connection) -> None:
    """What a 0.1.0 gateway wrote: a partner and its link, a completed write, its audit
    row and an API key."""
    connection.execute(
        insert(partners).values(code="P1", broker="b1", display_name="Ada", created_at=WHEN)
    )
    connection.execute(
        insert(links).values(
            platform="ctrader",
            kind="account",
            external_id="1001",
            partner_code="P1",
            trader_id="T1",
            created_at=WHEN,
        )
    )
    connection.execute(
        insert(idempotency).values(
            scope="P1",
            key="k1",
            operation="deposit",
            request_hash="h1",
            state="COMPLETED",
            response={"amount": "10.50"},
            created_at=WHEN,
            completed_at=WHEN,
        )
    )
    connection.execute(
        insert(audit_log).values(
            at=WHEN,
            actor="alice",
            role="admin",
            operation="deposit",
            outcome="ok",
            details={"amount": "10.50"},
        )
    )
    connection.execute(
        insert(api_keys).values(
            key_id="key1",
            role="manager",
            brokers=["b1"],
            secret_hash="hash",
            created_at=WHEN,
        )
    )


async def _assert_release_0_1_0_rows_kept(store: Store) -> None:
    [partner] = await store.get_partners(["P1"])
    assert partner is not None and partner.display_name == "Ada"
    assert await store.owners("ctrader", "account", ["1001"]) == ["P1"]
    record = await store.get_idempotent("P1", "k1")
    assert record is not None and record.state is IdempotencyState.COMPLETED
    assert record.response == {"amount": "10.50"}
    assert [entry.operation for entry in await store.list_audit()] == ["deposit"]
    key = await store.get_api_key("key1")
    assert key is not None and key.brokers == ("b1",)


def _version(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


# Indexes a revision after the create_all era (0003 on) added to a table of that era: a
# store made by create_all never had them.
_LATER_INDEXES = frozenset({"ix_audit_log_target_at_id"})


def _create_all(connection: Connection, revision: str) -> None:
    """The store a gateway at ``revision`` made with create_all: its tables as they are
    today (tests/test_migrations checks LEGACY_SCHEMAS against the revisions) without
    the indexes added since."""
    tables = [t for t in metadata.sorted_tables if t.name in LEGACY_SCHEMAS[revision]]
    metadata.create_all(connection, tables=tables)
    for table in tables:
        for index in table.indexes:
            if index.name in _LATER_INDEXES:
                index.drop(connection)


def _create_all_0_1_0(connection: Connection) -> None:
    _create_all(connection, V0_1_0)


async def test_the_head_is_exactly_todays_tables(store_url: str) -> None:
    """A table changed without a migration fails here (autogenerate's diff is empty)."""
    await upgrade_store(store_url)

    def diff(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    assert await _on(store_url, diff) == [], "write a revision in gateway/store/migrations"
    assert (await read_store_schema(store_url)).current == head_revision()


async def test_a_0_1_0_store_is_upgraded_with_its_data(store_url: str) -> None:
    await _on(store_url, lambda c: upgrade_schema(c, V0_1_0))
    await _on(store_url, _release_0_1_0_rows)
    assert "idempotency_recovery" not in await _on(store_url, _tables)

    store = await Store.open(store_url)
    try:
        await _assert_release_0_1_0_rows_kept(store)
        assert await store.unsettled_idempotent(claimed_before=WHEN, limit=10) == []
    finally:
        await store.close()
    assert await _on(store_url, _version) == head_revision()


async def test_serve_settings_refuse_a_store_behind_and_write_nothing(store_url: str) -> None:
    await _on(store_url, lambda c: upgrade_schema(c, V0_1_0))
    with pytest.raises(SchemaBehind, match=f"at revision {V0_1_0}.*`brokergraph db upgrade`"):
        await Store.open(store_url, upgrade=False)
    assert await _on(store_url, _version) == V0_1_0


async def test_an_empty_database_is_made_at_the_head_even_without_upgrades(
    store_url: str,
) -> None:
    """Nothing to lose: a first deployment's replicas start on it with upgrades off."""
    assert (await read_store_schema(store_url)).describe() == "empty (no store tables)"
    stores = await asyncio.gather(*(Store.open(store_url, upgrade=False) for _ in range(3)))
    for store in stores:
        await store.close()
    assert await _on(store_url, _version) == head_revision()


async def test_a_store_made_by_create_all_before_migrations_is_recognised(
    store_url: str,
) -> None:
    await _on(store_url, _create_all_0_1_0)
    await _on(store_url, _release_0_1_0_rows)
    state = await read_store_schema(store_url)
    assert (state.current, state.legacy) == (V0_1_0, True)
    with pytest.raises(SchemaBehind, match="recognised by its tables"):
        await Store.open(store_url, upgrade=False)
    assert "alembic_version" not in await _on(store_url, _tables)  # refusing wrote nothing

    before = await upgrade_store(store_url)
    assert (before.current, before.legacy) == (V0_1_0, True)
    assert await _on(store_url, _version) == head_revision()
    store = await Store.open(store_url, upgrade=False)
    try:
        await _assert_release_0_1_0_rows_kept(store)
    finally:
        await store.close()


async def test_the_last_create_all_store_is_recognised_then_upgraded(tmp_path: Path) -> None:
    """What the last gateway to use create_all made (0002) is known by its tables."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'made-by-create-all.db'}"
    last = "0002_idempotency_recovery"

    await _on(url, lambda c: _create_all(c, last))
    state = await read_store_schema(url)
    assert (state.current, state.legacy) == (last, True)
    assert await _on(url, _version) is None  # recognised, not written
    await upgrade_store(url)
    assert await _on(url, _version) == head_revision()


async def test_tables_matching_no_revision_are_left_untouched(store_url: str) -> None:
    def odd(connection: Connection) -> None:
        _create_all_0_1_0(connection)
        connection.execute(text("ALTER TABLE flows ADD COLUMN owner VARCHAR"))

    await _on(store_url, odd)
    before = await _on(store_url, _tables)
    for upgrade in (True, False):
        with pytest.raises(SchemaUnknown, match=r"flows has columns .*owner"):
            await Store.open(store_url, upgrade=upgrade)
    assert await _on(store_url, _tables) == before


async def test_a_store_upgraded_by_a_newer_version_is_refused(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'newer.db'}"
    await upgrade_store(url)
    await _on(url, lambda c: c.execute(text("UPDATE alembic_version SET version_num = '9999_x'")))
    with pytest.raises(SchemaUnknown, match="9999_x, which this brokergraph does not know"):
        await Store.open(url)


@pytest.mark.parametrize("revision", sorted(LEGACY_SCHEMAS))
async def test_the_recognised_schemas_are_the_revisions(tmp_path: Path, revision: str) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'r.db'}"
    await _on(url, lambda c: upgrade_schema(c, revision))
    tables = await _on(url, _tables)
    del tables["alembic_version"]
    assert tables == LEGACY_SCHEMAS[revision]


@pytest.mark.postgres
async def test_replicas_upgrading_together_run_the_migrations_once(postgres_url: str) -> None:
    befores = await asyncio.gather(*(upgrade_store(postgres_url) for _ in range(4)))
    assert sorted(str(b.current) for b in befores) == [head_revision()] * 3 + ["None"]
    assert await _on(postgres_url, _version) == head_revision()


def test_upgrade_at_start_defaults_to_yes_for_sqlite_only() -> None:
    assert load_settings(environ={}).store.upgrades_at_start
    postgres = {"url": "postgresql+asyncpg://brokergraph@db/brokergraph"}
    assert not load_settings(environ={}, overrides={"store": postgres}).store.upgrades_at_start
    forced = load_settings(
        environ={"BROKERGRAPH_STORE__UPGRADE_AT_START": "true"}, overrides={"store": postgres}
    )
    assert forced.store.upgrades_at_start
    assert not load_settings(
        environ={}, overrides={"store": {"upgrade_at_start": False}}
    ).store.upgrades_at_start


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROKERGRAPH_")}
    env["BROKERGRAPH_AUTH__JWT_SECRET"] = "x" * 40
    env["BROKERGRAPH_STORE__URL"] = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    env["BROKERGRAPH_STORE__UPGRADE_AT_START"] = "false"
    return subprocess.run(
        [*BROKERGRAPH, *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_serve_refuses_an_old_store_until_db_upgrade(tmp_path: Path) -> None:
    await _on(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}", lambda c: upgrade_schema(c, V0_1_0))

    served = await asyncio.to_thread(_cli, tmp_path, "serve", "--port", "0")
    assert served.returncode == 1
    assert "run `brokergraph db upgrade`" in served.stderr
    assert "Traceback" not in served.stderr
    current = await asyncio.to_thread(_cli, tmp_path, "db", "current")
    assert current.returncode == 1
    assert f"at revision {V0_1_0}; head is {head_revision()}" in current.stdout

    upgraded = await asyncio.to_thread(_cli, tmp_path, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"was at revision {V0_1_0}, now at {head_revision()}" in upgraded.stdout
    current = await asyncio.to_thread(_cli, tmp_path, "db", "current")
    assert current.returncode == 0
    assert f"at revision {head_revision()} (head)" in current.stdout
    listed = await asyncio.to_thread(_cli, tmp_path, "db", "history")
    assert listed.stdout.splitlines()[0].startswith(V0_1_0)
    assert listed.stdout.splitlines()[-1].endswith("(head)")


def test_the_revisions_are_packaged() -> None:
    """The wheel (and the image) carry the migrations: setuptools' package discovery
    (pyproject: include gateway*) takes folders with an __init__.py, and nothing else."""
    assert (MIGRATIONS / "__init__.py").is_file()
    assert (MIGRATIONS / "versions" / "__init__.py").is_file()
    assert len(history()) == len(list((MIGRATIONS / "versions").glob("0*.py")))
