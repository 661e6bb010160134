"""The gateway store, run unchanged against SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import shutil
import sqlite3
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import StatementError

from gateway.errors import Conflict, IdempotencyConflict, InvalidInput, NotFound
from gateway.store import AuditEntry, IdempotencyState, Link, PartnerRecord, Store
from gateway.store._engine import CHECKPOINT_COMMITS, SqliteDatabase

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        # A nested directory also checks that open() creates it.
        return f"sqlite+aiosqlite:///{tmp_path / 'state' / 'brokergraph.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(store_url)
    yield opened
    await opened.close()


def _audit(operation: str, *, actor: str = "alice", at: datetime | None = None) -> AuditEntry:
    return AuditEntry(
        id=None,
        at=at or datetime.now(UTC),
        actor=actor,
        role="admin",
        operation=operation,
        target="partner:P1",
        outcome="ok",
        error_code=None,
        upstream_ref="ref-1",
        idempotency_key=None,
        details={"amount": "10.50", "nested": {"list": [1, 2]}},
    )


async def test_dialect_matches_backend(store: Store, store_url: str) -> None:
    assert store.dialect == ("sqlite" if store_url.startswith("sqlite") else "postgresql")


async def test_open_is_idempotent(store: Store, store_url: str) -> None:
    await store.upsert_partner("P1")
    again = await Store.open(store_url)
    try:
        assert [p.code for p in await again.get_partners(["P1"]) if p] == ["P1"]
    finally:
        await again.close()


# -- partners -------------------------------------------------------------------


async def test_upsert_partner_creates_then_updates_keeping_created_at(store: Store) -> None:
    before = datetime.now(UTC)
    created = await store.upsert_partner("P1", broker="acme", display_name="Alpha")
    assert created == PartnerRecord("P1", "acme", "Alpha", created.created_at)
    assert created.created_at.tzinfo is not None
    assert created.created_at.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= created.created_at <= datetime.now(UTC)

    renamed = await store.upsert_partner("P1", display_name="Alpha Ltd")
    assert renamed == PartnerRecord("P1", "acme", "Alpha Ltd", created.created_at)
    assert await store.get_partners(["P1"]) == [renamed]


async def test_get_partners_keeps_order_and_length(store: Store) -> None:
    for code in ("A", "B", "C"):
        await store.upsert_partner(code, broker="acme")
    got = await store.get_partners(["C", "missing", "A", "C"])
    assert [p.code if p else None for p in got] == ["C", None, "A", "C"]
    assert await store.get_partners([]) == []


async def test_get_partners_batches_large_requests(store: Store) -> None:
    await store.upsert_partner("P0600")
    codes = [f"P{i:04d}" for i in range(1200)]
    got = await store.get_partners(codes)
    assert len(got) == 1200
    assert [i for i, p in enumerate(got) if p is not None] == [600]


async def test_list_partners_pages_by_code_with_broker_filter(store: Store) -> None:
    for i in range(7):
        await store.upsert_partner(f"P{i}", broker="acme" if i % 2 == 0 else "globex")
    await store.upsert_partner("Q", broker=None)

    page, cursor = await store.list_partners(brokers=None, first=5, after=None)
    assert [p.code for p in page] == ["P0", "P1", "P2", "P3", "P4"]
    assert cursor == "P4"
    page, cursor = await store.list_partners(brokers=None, first=5, after=cursor)
    assert [p.code for p in page] == ["P5", "P6", "Q"]
    assert cursor is None

    seen: list[str] = []
    cursor = None
    while True:
        page, cursor = await store.list_partners(brokers={"acme"}, first=2, after=cursor)
        seen += [p.code for p in page]
        assert all(p.broker == "acme" for p in page)
        if cursor is None:
            break
    assert seen == ["P0", "P2", "P4", "P6"]

    both, cursor = await store.list_partners(brokers=["acme", "globex"], first=100, after=None)
    assert [p.code for p in both] == [f"P{i}" for i in range(7)]
    assert cursor is None
    assert await store.list_partners(brokers=[], first=10, after=None) == ([], None)
    # An exactly full last page has no next cursor.
    page, cursor = await store.list_partners(brokers={"acme"}, first=4, after=None)
    assert (len(page), cursor) == (4, None)


async def test_delete_partner_deletes_its_links(store: Store) -> None:
    await store.upsert_partner("P1")
    await store.upsert_partner("P2")
    await store.link("P1", "ctrader", "trader", "T1")
    await store.link("P2", "ctrader", "trader", "T2")

    assert await store.delete_partner("P1") is True
    assert await store.delete_partner("P1") is False
    assert [p.code if p else None for p in await store.get_partners(["P1", "P2"])] == [None, "P2"]
    assert await store.owners("ctrader", "trader", ["T1", "T2"]) == [None, "P2"]
    assert await store.links_of_partner("P1") == []
    # The freed platform object can go to another partner now.
    assert (await store.link("P2", "ctrader", "trader", "T1")).partner_code == "P2"


# -- links ----------------------------------------------------------------------


async def test_link_is_idempotent_and_records_trader(store: Store) -> None:
    await store.upsert_partner("P1")
    first = await store.link("P1", "dxtrade", "account", "A1")
    assert first == Link("P1", "dxtrade", "account", "A1", None, first.created_at)
    again = await store.link("P1", "dxtrade", "account", "A1")
    assert again == first
    with_trader = await store.link("P1", "dxtrade", "account", "A1", trader_id="T9")
    assert with_trader == Link("P1", "dxtrade", "account", "A1", "T9", first.created_at)
    assert await store.links_of_partner("P1") == [with_trader]


async def test_link_to_another_partner_conflicts(store: Store) -> None:
    await store.upsert_partner("P1")
    await store.upsert_partner("P2")
    await store.link("P1", "ctrader", "trader", "T1")
    with pytest.raises(Conflict) as caught:
        await store.link("P2", "ctrader", "trader", "T1")
    assert not isinstance(caught.value, IdempotencyConflict)
    assert "P1" not in caught.value.message
    assert await store.owners("ctrader", "trader", ["T1"]) == ["P1"]
    # The same id on another platform or of another kind is a different object.
    await store.link("P2", "mt5", "trader", "T1")
    await store.link("P2", "ctrader", "account", "T1")


async def test_concurrent_links_of_one_object_have_one_owner(store: Store) -> None:
    codes = [f"P{i}" for i in range(6)]
    for code in codes:
        await store.upsert_partner(code)
    results = await asyncio.gather(
        *(store.link(code, "ctrader", "trader", "T1") for code in codes), return_exceptions=True
    )
    winners = [r for r in results if isinstance(r, Link)]
    assert len(winners) == 1
    assert all(isinstance(r, Conflict) for r in results if not isinstance(r, Link))
    assert await store.owners("ctrader", "trader", ["T1"]) == [winners[0].partner_code]


async def test_link_validation(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.link("nobody", "ctrader", "trader", "T1")
    await store.upsert_partner("P1")
    with pytest.raises(InvalidInput):
        await store.link("P1", "ctrader", "user", "U1")
    assert await store.links_of_partner("P1") == []


async def test_unlink_and_filters(store: Store) -> None:
    await store.upsert_partner("P1")
    await store.link("P1", "ctrader", "trader", "T1")
    await store.link("P1", "ctrader", "account", "A1", trader_id="T1")
    await store.link("P1", "dxtrade", "account", "A2")

    assert [x.external_id for x in await store.links_of_partner("P1")] == ["A1", "T1", "A2"]
    assert [x.external_id for x in await store.links_of_partner("P1", platform="ctrader")] == [
        "A1",
        "T1",
    ]
    assert [x.external_id for x in await store.links_of_partner("P1", kind="account")] == [
        "A1",
        "A2",
    ]
    only = await store.links_of_partner("P1", platform="ctrader", kind="account")
    assert [(x.external_id, x.trader_id) for x in only] == [("A1", "T1")]

    assert await store.unlink("ctrader", "trader", "T1") is True
    assert await store.unlink("ctrader", "trader", "T1") is False
    assert [x.external_id for x in await store.links_of_partner("P1")] == ["A1", "A2"]


async def test_owners_is_batched_in_order(store: Store) -> None:
    await store.upsert_partner("P1")
    await store.upsert_partner("P2")
    await store.link("P1", "ctrader", "account", "A1")
    await store.link("P2", "ctrader", "account", "A2")
    await store.link("P2", "dxtrade", "account", "A3")
    owners = await store.owners("ctrader", "account", ["A2", "A3", "A1", "A2", "none"])
    assert owners == ["P2", None, "P1", "P2", None]
    assert await store.owners("ctrader", "trader", ["A1"]) == [None]
    assert await store.owners("ctrader", "account", []) == []
    many = [f"X{i}" for i in range(1100)] + ["A1"]
    assert (await store.owners("ctrader", "account", many))[-1] == "P1"


async def test_owner_linked_by_another_replica_is_read_from_the_database(
    store: Store, store_url: str
) -> None:
    """What memory misses is read from the database, one id as several."""
    await store.upsert_partner("P1")
    assert await store.owners("ctrader", "account", ["A9"]) == [None]
    other = await Store.open(store_url)  # another replica: this store hears no notice
    try:
        await other.link("P1", "ctrader", "account", "A9")
        await other.link("P1", "ctrader", "account", "A10")
    finally:
        await other.close()
    assert await store.owners("ctrader", "account", ["A9"]) == ["P1"]
    assert await store.owners("ctrader", "trader", ["A10"]) == [None]  # another kind
    assert await store.owners("dxtrade", "account", ["A10"]) == [None]  # another platform
    assert await store.owners("ctrader", "account", ["A10", "A11"]) == ["P1", None]


# -- idempotency ----------------------------------------------------------------


async def test_idempotency_claim_is_won_once_under_concurrency(store: Store) -> None:
    results = await asyncio.gather(
        *(store.begin_idempotent("P1", "key-1", "withdraw", "hash-a") for _ in range(20))
    )
    claimed = [record for won, record in results if won]
    assert len(claimed) == 1
    assert all(record.state is IdempotencyState.STARTED for _, record in results)
    assert {record.created_at for _, record in results} == {claimed[0].created_at}
    stored = await store.get_idempotent("P1", "key-1")
    assert stored == claimed[0]


async def test_idempotency_claim_then_replay(store: Store) -> None:
    won, record = await store.begin_idempotent("P1", "k", "deposit", "h1")
    assert won is True
    assert (record.scope, record.key, record.operation, record.request_hash) == (
        "P1",
        "k",
        "deposit",
        "h1",
    )
    assert (record.state, record.response, record.completed_at) == (
        IdempotencyState.STARTED,
        None,
        None,
    )
    won, again = await store.begin_idempotent("P1", "k", "deposit", "h1")
    assert (won, again) == (False, record)
    # Scopes are separate key spaces.
    assert (await store.begin_idempotent("P2", "k", "deposit", "h1"))[0] is True


async def test_idempotency_key_reused_for_another_request_conflicts(store: Store) -> None:
    await store.begin_idempotent("P1", "k", "deposit", "h1")
    with pytest.raises(IdempotencyConflict):
        await store.begin_idempotent("P1", "k", "deposit", "h2")
    with pytest.raises(IdempotencyConflict):
        await store.begin_idempotent("P1", "k", "withdraw", "h1")


async def test_complete_then_get_returns_response(store: Store) -> None:
    await store.begin_idempotent("P1", "k", "deposit", "h1")
    response = {"id": "D1", "amount": "10.00", "ok": True, "items": [1, {"a": None}]}
    await store.complete_idempotent("P1", "k", response)
    done = await store.get_idempotent("P1", "k")
    assert done is not None
    assert done.state is IdempotencyState.COMPLETED
    assert done.response == response
    assert done.completed_at is not None
    assert done.completed_at.utcoffset() == timedelta(0)
    assert done.completed_at >= done.created_at
    assert await store.begin_idempotent("P1", "k", "deposit", "h1") == (False, done)
    # A completed result is never overwritten, nor released.
    with pytest.raises(IdempotencyConflict):
        await store.complete_idempotent("P1", "k", {"id": "other"})
    await store.release_idempotent("P1", "k")
    assert await store.get_idempotent("P1", "k") == done


async def test_complete_without_claim_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.complete_idempotent("P1", "missing", {})
    assert await store.get_idempotent("P1", "missing") is None


async def test_release_allows_a_new_claim(store: Store) -> None:
    assert (await store.begin_idempotent("P1", "k", "deposit", "h1"))[0] is True
    await store.release_idempotent("P1", "k")
    assert await store.get_idempotent("P1", "k") is None
    # After a release even a different request may use the key.
    won, record = await store.begin_idempotent("P1", "k", "deposit", "h2")
    assert won is True
    assert record.request_hash == "h2"
    await store.release_idempotent("P1", "never-claimed")


# -- audit ----------------------------------------------------------------------


async def test_audit_append_and_list_newest_first(store: Store) -> None:
    base = datetime(2025, 1, 1, 12, tzinfo=UTC)
    first = await store.append_audit(_audit("deposit", at=base))
    second = await store.append_audit(_audit("withdraw", actor="bob", at=base + timedelta(1)))
    third = await store.append_audit(_audit("deposit", actor="bob", at=base + timedelta(2)))
    ids = [first.id, second.id, third.id]
    assert None not in ids
    assert len(set(ids)) == 3
    assert first == dataclasses.replace(_audit("deposit", at=base), id=first.id)

    assert await store.list_audit() == [third, second, first]
    assert await store.list_audit(limit=2) == [third, second]
    assert await store.list_audit(operation="deposit") == [third, first]
    assert await store.list_audit(actor="bob") == [third, second]
    assert await store.list_audit(operation="deposit", actor="alice") == [first]
    assert await store.list_audit(operation="nothing") == []


async def test_audit_keeps_utc_for_other_offsets(store: Store) -> None:
    local = datetime(2025, 6, 1, 18, 30, tzinfo=timezone(timedelta(hours=3)))
    await store.append_audit(_audit("x", at=local))
    (stored,) = await store.list_audit()
    assert stored.at == local
    assert stored.at.utcoffset() == timedelta(0)
    assert stored.at.hour == 15


async def test_json_columns_read_back_what_the_standard_library_would(store: Store) -> None:
    details: dict[Any, Any] = {
        1: "a key that is not a string",
        "big": 2**70,
        "nested": {"list": [1.5, None]},
    }
    await store.append_audit(dataclasses.replace(_audit("x"), details=details))
    (stored,) = await store.list_audit()
    assert stored.details == {
        "1": "a key that is not a string",
        "big": 2**70,
        "nested": {"list": [1.5, None]},
    }
    # What json.dumps refused is still refused (orjson alone would write a date).
    with pytest.raises(StatementError, match="not JSON serializable"):
        await store.append_audit(
            dataclasses.replace(_audit("y"), details={"at": datetime.now(UTC)})
        )
    assert len(await store.list_audit()) == 1


async def test_a_row_the_standard_library_wrote_with_nan_still_reads(tmp_path: Path) -> None:
    # SQLite only: PostgreSQL's json type never accepted NaN.
    path = tmp_path / "brokergraph.db"
    store = await Store.open(f"sqlite:///{path}")
    try:
        await store.append_audit(_audit("x"))
        with contextlib.closing(sqlite3.connect(path)) as raw:
            raw.execute("""UPDATE audit_log SET details = '{"ratio": NaN}'""")
            raw.commit()
        (stored,) = await store.list_audit()
        assert math.isnan(stored.details["ratio"])
    finally:
        await store.close()


async def test_naive_datetime_is_refused(store: Store) -> None:
    with pytest.raises(StatementError, match="naive datetime"):
        await store.append_audit(_audit("x", at=datetime(2025, 1, 1)))
    assert await store.list_audit() == []


async def test_audit_survives_reopen(store: Store, store_url: str) -> None:
    entry = await store.append_audit(_audit("deposit"))
    await store.upsert_partner("P1", broker="acme")
    await store.close()
    reopened = await Store.open(store_url)
    try:
        assert await reopened.list_audit() == [entry]
        later = await reopened.append_audit(_audit("withdraw"))
        assert isinstance(later.id, int)
        assert isinstance(entry.id, int)
        assert later.id > entry.id
        assert [p.broker if p else None for p in await reopened.get_partners(["P1"])] == ["acme"]
    finally:
        await reopened.close()


# -- webhook dedupe -------------------------------------------------------------


async def test_remember_delivery_first_time_only(store: Store) -> None:
    assert await store.remember_delivery("ctrader", "d1") is True
    assert await store.remember_delivery("ctrader", "d1") is False
    assert await store.remember_delivery("dxtrade", "d1") is True
    assert await store.remember_delivery("ctrader", "d2") is True


async def test_remember_delivery_concurrent(store: Store) -> None:
    results = await asyncio.gather(*(store.remember_delivery("qort", "d1") for _ in range(20)))
    assert sorted(results) == [False] * 19 + [True]


# -- flows ----------------------------------------------------------------------


async def test_flows_save_get_delete(store: Store) -> None:
    assert await store.get_flow("f1") is None
    await store.save_flow("f1", "onboard", {"step": "user", "user": {"id": 1}})
    assert await store.get_flow("f1") == {"step": "user", "user": {"id": 1}}
    await store.save_flow("f1", "onboard", {"step": "trader", "trader": "T1"})
    assert await store.get_flow("f1") == {"step": "trader", "trader": "T1"}
    await store.save_flow("f2", "onboard", {})
    await store.delete_flow("f1")
    assert await store.get_flow("f1") is None
    assert await store.get_flow("f2") == {}
    await store.delete_flow("f1")


async def test_flows_list_by_kind_and_prefix(store: Store) -> None:
    await store.save_flow("op:9001:2", "ledger", {"n": 2})
    await store.save_flow("op:9001:1", "ledger", {"n": 1})
    await store.save_flow("op:9002:1", "ledger", {"n": 3})
    await store.save_flow("op:9001:x", "other", {"n": 4})
    await store.save_flow("op_9001_1", "ledger", {"n": 5})  # "_" must not act as a wildcard
    assert await store.list_flows("ledger", prefix="op:9001:") == [
        ("op:9001:1", {"n": 1}),
        ("op:9001:2", {"n": 2}),
    ]
    assert len(await store.list_flows("ledger")) == 4
    assert len(await store.list_flows("ledger", limit=2)) == 2


# -- open -----------------------------------------------------------------------


async def test_url_for_display_masks_password(tmp_path: Path) -> None:
    sqlite = await Store.open(f"sqlite:///{tmp_path / 'a' / 'b' / 'x.db'}")
    try:
        assert sqlite.dialect == "sqlite"
        assert sqlite.url_for_display.startswith("sqlite+aiosqlite:///")
        assert (tmp_path / "a" / "b" / "x.db").exists()
    finally:
        await sqlite.close()
    await sqlite.close()  # closing twice is harmless


async def test_url_for_display_masks_postgres_password(postgres_url: str) -> None:
    # Trust auth ignores the password, so a real connection shows the masking.
    secret_url = postgres_url.replace("postgres@", "postgres:s3cr3t@", 1)
    assert "s3cr3t" in secret_url
    store = await Store.open(secret_url)
    try:
        assert "s3cr3t" not in store.url_for_display
        assert "postgres:***@" in store.url_for_display
        assert store.dialect == "postgresql"
    finally:
        await store.close()


async def test_close_lets_an_operation_in_flight_return_its_connection(store_url: str) -> None:
    # A connection returned after dispose() would be closed by the garbage collector
    # later, failing some unrelated test with a ResourceWarning.
    store = await Store.open(store_url)
    holding = asyncio.Event()

    async def transaction_in_flight() -> None:
        async with store._engine.begin() as conn:  # a transaction no public method pauses
            await conn.execute(select(1))
            holding.set()
            await asyncio.sleep(0.2)

    task = asyncio.create_task(transaction_in_flight())
    await holding.wait()
    await store.close()
    assert task.done()
    await task


def _audit_rows_in_the_database_file(path: Path, copy: Path) -> int:
    """The audit rows the database file holds without its WAL: what checkpoints copied."""
    shutil.copyfile(path, copy)
    with contextlib.closing(sqlite3.connect(copy)) as alone:
        count: int = alone.execute("SELECT count(*) FROM audit_log").fetchone()[0]
    return count


async def test_sqlite_checkpoints_run_on_the_stores_thread_not_in_commits(
    tmp_path: Path,
) -> None:
    path = tmp_path / "brokergraph.db"
    store = await Store.open(f"sqlite:///{path}")
    database = store._engine
    assert isinstance(database, SqliteDatabase)
    try:
        async with database.connect() as connection:
            assert await connection.scalar(text("PRAGMA wal_autocheckpoint")) == 0
        for _ in range(CHECKPOINT_COMMITS):
            await store.append_audit(_audit("x"))
        await wait_until(lambda: database.checkpoints == 1)  # due by the commits' count
        assert _audit_rows_in_the_database_file(path, tmp_path / "copy.db") == 100
        await store.append_audit(_audit("y"))
        await wait_until(lambda: database.checkpoints == 2)  # due by the time since
        assert _audit_rows_in_the_database_file(path, tmp_path / "copy.db") == 101
    finally:
        await store.close()


async def wait_until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(10):
        while not condition():  # noqa: ASYNC110 (the checkpointer sets no event: we observe)
            await asyncio.sleep(0.01)


async def test_unsupported_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="mysql"):
        await Store.open("mysql://u:p@localhost/db")
