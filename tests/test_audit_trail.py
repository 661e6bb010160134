"""``auditTrail``: a partner's audited writes, newest first, staff only, paged by cursor.

A gateway of its own (toy platform over a real socket, a fresh store), so the log holds
only what these tests write: money moved through the one write path, and rows appended
through the store for order ids (which the toy's write path makes too, but whose
neighbouring-account case needs an id crafted to share the prefix).
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from sqlalchemy import insert
from sqlalchemy import text as text_clause
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import CreateIndex
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.sql.expression import Executable

from gateway.auth import Role
from gateway.graphql.audit import _order_prefix
from gateway.graphql.ids import encode_id
from gateway.store import AuditEntry, Store, upgrade_store
from gateway.store._audit_trail import prefix_end, trail_queries
from gateway.store._tables import audit_log
from tests.gateway_fixtures import GatewayUnderTest, open_gateway
from tests.services import POSTGRES_ADMIN_DSN, _unavailable
from tests.toy.sandbox import ToySandbox

TRAIL = """query($code: String!, $first: Int!, $after: String) {
  auditTrail(partnerCode: $code, first: $first, after: $after) {
    edges { cursor node { at actor role action targetId targetType targetExternalId outcome
      errorCode upstreamRef idempotencyKey amount settledBy } }
    pageInfo { hasNextPage endCursor }
  } }"""
MOVE = """mutation($input: MoneyMovementInput!) {
  deposit(input: $input) { replayed errors { code } }
}"""
WITHDRAW = """mutation($input: MoneyMovementInput!) {
  withdraw(input: $input) { replayed errors { code } }
}"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gw(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[GatewayUnderTest]:
    async with (
        ToySandbox() as sandbox,
        open_gateway(sandbox, tmp_path_factory.mktemp("audit")) as running,
    ):
        yield running


async def trail(
    gw: GatewayUnderTest, code: str, first: int, after: str | None = None, token: str = "manager"
) -> dict[str, Any]:
    status, body = await gw.query(TRAIL, {"code": code, "first": first, "after": after}, token)
    assert status == 200, body
    result: dict[str, Any] = body
    return result


async def move(gw: GatewayUnderTest, mutation: str, account: str, amount: str, key: str) -> None:
    variables = {
        "input": {"accountId": gw.account_id(account), "amount": amount, "idempotencyKey": key}
    }
    _, body = await gw.query(mutation, variables, "manager")
    assert "errors" not in body, body


@pytest.mark.asyncio(loop_scope="module")
async def test_a_partners_writes_newest_first_a_page_at_a_time(gw: GatewayUnderTest) -> None:
    first_key, second_key = f"d-{uuid.uuid4()}", f"w-{uuid.uuid4()}"
    await move(gw, MOVE, "1001", "12.50", first_key)
    await move(gw, MOVE, "1001", "12.50", first_key)  # a double click: replayed
    await move(gw, MOVE, "2001", "7.00", f"o-{uuid.uuid4()}")  # DEMO-002's: not in the trail
    await move(gw, WITHDRAW, "1002", "3.25", second_key)

    page = (await trail(gw, "DEMO-001", 2))["data"]["auditTrail"]
    nodes = [edge["node"] for edge in page["edges"]]
    assert [(n["action"], n["outcome"], n["amount"], n["idempotencyKey"]) for n in nodes] == [
        ("withdraw", "OK", "3.25", second_key),
        ("deposit", "REPLAYED", "12.50", first_key),
    ]
    assert nodes[0]["targetId"] == gw.account_id("1002")
    assert (nodes[0]["targetType"], nodes[0]["targetExternalId"]) == ("Account", "1002")
    assert (nodes[0]["actor"], nodes[0]["role"]) == ("test-manager", "manager")
    assert nodes[0]["at"] >= nodes[1]["at"]
    assert page["pageInfo"]["hasNextPage"] is True

    rest = (await trail(gw, "DEMO-001", 10, page["pageInfo"]["endCursor"]))["data"]["auditTrail"]
    later = [edge["node"] for edge in rest["edges"]]
    assert [(n["action"], n["outcome"], n["idempotencyKey"]) for n in later] == [
        ("deposit", "OK", first_key)
    ]
    assert later[0]["upstreamRef"]  # the toy's operation id
    assert rest["pageInfo"] == {"hasNextPage": False, "endCursor": None}

    other = (await trail(gw, "DEMO-002", 10))["data"]["auditTrail"]["edges"]
    assert [(e["node"]["action"], e["node"]["amount"]) for e in other] == [("deposit", "7.00")]


@pytest.mark.asyncio(loop_scope="module")
async def test_orders_of_its_accounts_count_and_a_neighbours_do_not(gw: GatewayUnderTest) -> None:
    """An order id starts like its account's.  Only whole 3-byte groups of an id encode
    to a fixed text, so an account "77" of DEMO-001's has its orders' prefix shared by
    account "778"'s: that order must not show in DEMO-001's trail."""
    store = gw.services.store
    await store.link("DEMO-001", "toy", "account", "77", trader_id="T1")

    def row(target: str, operation: str) -> AuditEntry:
        return AuditEntry(
            id=None,
            at=datetime.now(UTC),
            actor="test-manager",
            role="manager",
            operation=operation,
            target=target,
            outcome="unknown",
            error_code="OUTCOME_UNKNOWN",
            upstream_ref=None,
            idempotency_key=None,
            details={},
        )

    ours = encode_id("Order", "toy", "77", "ord-1")
    neighbours = encode_id("Order", "toy", "778", "ord-2")
    assert neighbours.startswith(_order_prefix("toy", "77"))  # the case the filter must drop
    await store.append_audit(row(ours, "cancelOrder"))
    await store.append_audit(row(neighbours, "replaceOrder"))
    await store.append_audit(row("DEMO-001", "updateBusinessPartner"))

    nodes = [e["node"] for e in (await trail(gw, "DEMO-001", 2))["data"]["auditTrail"]["edges"]]
    assert [(n["action"], n["targetType"], n["targetExternalId"]) for n in nodes] == [
        ("updateBusinessPartner", "BusinessPartner", "DEMO-001"),
        ("cancelOrder", "Order", "ord-1"),
    ]
    assert nodes[0]["targetId"] == encode_id("BusinessPartner", "DEMO-001")
    assert nodes[1]["outcome"] == "UNKNOWN"


@pytest.mark.asyncio(loop_scope="module")
async def test_clients_and_other_brokers_managers_read_nothing(gw: GatewayUnderTest) -> None:
    await move(gw, MOVE, "1001", "1.00", f"d-{uuid.uuid4()}")
    for token in ("client", "other_client"):
        body = await trail(gw, "DEMO-001", 5, token=token)
        assert body["data"] is None
        assert [e["extensions"]["code"] for e in body["errors"]] == ["PERMISSION_DENIED"]

    other = gw.services.authenticator.issue(
        subject="other-manager", role=Role.MANAGER, brokers=["other-broker"], ttl_seconds=600
    )
    body = await trail(gw, "DEMO-001", 5, token=other)
    assert body["data"] is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["NOT_FOUND"]
    # Its own broker's partner it may read (nothing written there yet), and an admin all.
    assert (await trail(gw, "OTHER-001", 5, token=other))["data"]["auditTrail"]["edges"] == []
    admin = (await trail(gw, "DEMO-001", 1, token="admin"))["data"]["auditTrail"]["edges"]
    assert admin[0]["node"]["action"] == "deposit"


@pytest.mark.asyncio(loop_scope="module")
async def test_a_bad_page_size_or_cursor_is_invalid_input(gw: GatewayUnderTest) -> None:
    for first, after in ((0, None), (10_000, None), (5, "not-a-cursor"), (5, encode_id("x", "y"))):
        body = await trail(gw, "DEMO-001", first, after)
        assert [e["extensions"]["code"] for e in body["errors"]] == ["INVALID_INPUT"], body


# -- the store's read: byte-for-byte matching and index-served plans, on both backends --

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]
WHEN = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest_asyncio.fixture(params=BACKENDS)
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A store at the head.  PostgreSQL's database compares text under ICU's en-US
    collation, where "ab%_c1" sorts between "Ab%_c" and "Ab%_d": a prefix read as a
    range under the database's collation would take it for an "Ab%_c" row."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}"
        await upgrade_store(url)
        yield url
        return
    name = f"brokergraph_test_{secrets.token_hex(6)}"
    try:
        admin = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=5)
    except (OSError, asyncpg.PostgresError) as error:
        _unavailable("PostgreSQL", error)
        raise
    try:
        await admin.execute(
            f"CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8' "
            "LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"
        )
    finally:
        await admin.close()
    base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    url = f"{base}/{name}"
    try:
        await upgrade_store(url)
        yield url
    finally:
        admin = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=5)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


def _audit_row(target: str | None, at: datetime) -> dict[str, Any]:
    return {
        "at": at,
        "actor": "test",
        "role": "admin",
        "operation": "deposit",
        "target": target,
        "outcome": "ok",
        "error_code": None,
        "upstream_ref": None,
        "idempotency_key": None,
        "details": {},
    }


async def _write(url: str, rows: list[dict[str, Any]], analyze: bool = False) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            for i in range(0, len(rows), 2_000):
                await conn.execute(insert(audit_log), rows[i : i + 2_000])
        if analyze:  # statistics, and on PostgreSQL the visibility map autovacuum keeps
            async with engine.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                postgres = engine.dialect.name == "postgresql"
                await conn.exec_driver_sql("VACUUM ANALYZE audit_log" if postgres else "ANALYZE")
    finally:
        await engine.dispose()


async def _every_page(
    store: Store, targets: set[str], prefixes: set[str], size: int
) -> list[AuditEntry]:
    """The whole trail read a page of ``size`` at a time, each after the last's row."""
    read: list[AuditEntry] = []
    before = None
    while True:
        page = await store.audit_trail(
            targets=targets, target_prefixes=prefixes, before=before, limit=size
        )
        assert len(page) <= size
        read += page
        if len(page) < size:
            return read
        before = (page[-1].at, page[-1].id or 0)


def _expected(rows: list[AuditEntry], targets: set[str], prefixes: set[str]) -> list[int]:
    """What the trail is: rows named exactly or starting with a prefix (Python's
    ``startswith``: case and every character count), newest first."""
    about = [
        row
        for row in rows
        if row.target is not None
        and (row.target in targets or any(row.target.startswith(p) for p in prefixes))
    ]
    about.sort(key=lambda row: (row.at, row.id or 0), reverse=True)
    return [row.id or 0 for row in about]


MATCHING = ["Ab%_c", "Ab%_c1", "Ab%_cZ", "Ab%_c%", "Ab%_c_x", "Ab%_c\U0010ffff", "Ab%_c9é"]
NOT_MATCHING = [
    "ab%_c1",  # case: SQLite's LIKE would take it, and en-US sorts it inside the range
    "AB%_C1",
    "Ab%_C",
    "AbXYc1",  # what "Ab%_c%" as a LIKE pattern would match
    "Ab%Xc1",
    "Ab\\%_c1",
    "Ab%_",
    "Ab%_b\U0010ffff",
    "Ab%_d",
    "Ab%_d0",
    "Ab%`c",
    "",
]


async def test_a_prefix_or_target_with_wildcards_and_case_matches_byte_for_byte(
    store_url: str,
) -> None:
    exact = {"P_1%x", "Ab%_c9é"}  # the second is also under the prefix: one row, not two
    near_exact = ["p_1%x", "P_1%", "P_1%x ", "PX1%x", "P_1%X"]
    targets: list[str | None] = [*MATCHING, *NOT_MATCHING, "P_1%x", *near_exact, None]
    # Three rounds, some rows sharing a time (the id decides), written out of order.
    rows = [
        _audit_row(target, WHEN + timedelta(seconds=(n * 7) % 5))
        for n, target in enumerate(targets * 3)
    ]
    await _write(store_url, rows)
    store = await Store.open(store_url)
    try:
        everything = await store.list_audit(limit=1_000)
        want = _expected(everything, exact, {"Ab%_c"})
        assert len(want) == 3 * (len(MATCHING) + 1)
        for size in (1, 4, 100):
            read = await _every_page(store, exact, {"Ab%_c"}, size)
            assert [row.id for row in read] == want
        only_exact = await store.audit_trail(targets={"P_1%x"}, limit=100)
        assert [row.target for row in only_exact] == ["P_1%x"] * 3
        # Any text is a prefix: none at all (every target), and a last character of
        # U+10FFFF (whose range has no next character to end at).
        all_rows = await store.audit_trail(targets=(), target_prefixes={""}, limit=1_000)
        assert [row.id for row in all_rows] == _expected(everything, set(), {""})
        top = await store.audit_trail(targets=(), target_prefixes={"Ab%_c\U0010ffff"})
        assert [row.target for row in top] == ["Ab%_c\U0010ffff"] * 3
    finally:
        await store.close()


async def test_more_targets_than_one_statement_holds_are_merged(store_url: str) -> None:
    many = {f"T{n:04d}" for n in range(250)}  # three statements of range scans
    rows = [_audit_row(f"T{n % 300:04d}", WHEN + timedelta(seconds=n // 3)) for n in range(1_200)]
    await _write(store_url, rows)
    assert len(trail_queries("sqlite", targets=many, target_prefixes={"T02"})) == 3
    store = await Store.open(store_url)
    try:
        everything = await store.list_audit(limit=2_000)
        want = _expected(everything, many, {"T02"})  # T02xx both named and prefixed
        for size in (7, 500):
            read = await _every_page(store, many, {"T02"}, size)
            assert [row.id for row in read] == want
    finally:
        await store.close()


class _Explain(Executable, ClauseElement):
    """``EXPLAIN`` (SQLite: ``EXPLAIN QUERY PLAN``) of a statement, its parameters bound
    as when it runs."""

    inherit_cache = False

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement


@compiles(_Explain)
def _compile_explain(element: _Explain, compiler: SQLCompiler, **kw: Any) -> str:
    head = "EXPLAIN QUERY PLAN " if compiler.dialect.name == "sqlite" else "EXPLAIN "
    return head + compiler.process(element.statement, **kw)


async def test_each_target_and_prefix_is_an_index_range_scan(store_url: str) -> None:
    """A log of many partners' rows: the trail of one reads only the index's ranges of
    its targets (and rows by primary key), never the table or the time index."""
    accounts = [encode_id("Account", "toy", str(1000 + n)) for n in range(400)]
    rows = []
    for n in range(12_000):
        account = 1000 + (n * 7919) % 400
        target = (
            encode_id("Order", "toy", str(account), f"o{n}") if n % 2 else accounts[account - 1000]
        )
        rows.append(_audit_row(target, WHEN + timedelta(seconds=n)))
    await _write(store_url, rows, analyze=True)
    targets = {"DEMO-001", *accounts[:3]}
    prefixes = {_order_prefix("toy", str(1000 + n)) for n in range(3)}
    dialect = "sqlite" if store_url.startswith("sqlite") else "postgresql"
    engine = create_async_engine(store_url)
    try:
        for before in (None, (WHEN + timedelta(seconds=6_000), 6_000)):
            [(statement, params)] = trail_queries(
                dialect, targets=targets, target_prefixes=prefixes, before=before, limit=51
            )
            async with engine.connect() as conn:
                plan = [str(row[-1]) for row in await conn.execute(_Explain(statement), params)]
            text = "\n".join(plan)
            if dialect == "sqlite":
                on_log = [line for line in plan if " audit_log " in f"{line} "]
                ranges = [line for line in on_log if "ix_audit_log_target_at_id" in line]
                assert len(ranges) == len(targets) + len(prefixes), text
                assert all(
                    line.startswith("SEARCH audit_log USING COVERING INDEX") for line in ranges
                ), text
                assert sum("(target=?" in line for line in ranges) == len(targets), text
                assert sum("(target>? AND target<?)" in line for line in ranges) == 3, text
                assert [line for line in on_log if line not in ranges] == [
                    "SEARCH audit_log USING INTEGER PRIMARY KEY (rowid=?)"
                ], text
            else:
                # An index (only) scan, or a bitmap of its entries: the index either way.
                ranges = [line for line in plan if "ix_audit_log_target_at_id" in line]
                assert len(ranges) == len(targets) + len(prefixes), text
                conditions = [
                    line.strip() for line in plan if "Index Cond:" in line and "target" in line
                ]
                assert len(conditions) == len(ranges), text
                assert sum("~>=~" in line and "~<~" in line for line in conditions) == 3, text
                assert sum(" = '" in line for line in conditions) == len(targets), text
                others = [
                    line.strip()
                    for line in plan
                    if " on audit_log" in line
                    and line not in ranges
                    and "Bitmap Heap Scan" not in line
                ]
                assert len(others) == 1 and "using audit_log_pkey" in others[0], text
                assert "ix_audit_log_at_id" not in text, text
                assert "Seq Scan" not in text, text
        if dialect == "postgresql":
            # Byte order, as the migration made it and the tables declare it (the
            # autogenerate comparison of tests/test_migrations.py ignores operator classes).
            async with engine.connect() as conn:
                made = await conn.scalar(
                    text_clause("SELECT indexdef FROM pg_indexes WHERE indexname = :name"),
                    {"name": "ix_audit_log_target_at_id"},
                )
            assert made == (
                "CREATE INDEX ix_audit_log_target_at_id ON public.audit_log "
                "USING btree (target text_pattern_ops, at, id)"
            )
            [declared] = [i for i in audit_log.indexes if i.name == "ix_audit_log_target_at_id"]
            assert str(CreateIndex(declared).compile(dialect=engine.dialect)) == (
                "CREATE INDEX ix_audit_log_target_at_id ON audit_log "
                "(target text_pattern_ops, at, id)"
            )
    finally:
        await engine.dispose()
    store = await Store.open(store_url)
    try:  # and what they find is the trail
        everything = await store.list_audit(limit=20_000)
        want = _expected(everything, targets, prefixes)
        assert [row.id for row in await _every_page(store, targets, prefixes, 51)] == want
    finally:
        await store.close()


def test_a_prefix_ends_before_the_next_string_in_code_point_order() -> None:
    assert prefix_end("Ab%_c") == "Ab%_d"
    assert prefix_end("a\U0010ffff") == "b"
    assert prefix_end("\U0010ffff\U0010ffff") is None
    assert prefix_end("") is None
    assert prefix_end("x\ud7ff") == "x\ue000"  # past the surrogates, which UTF-8 lacks
    for prefix in ("Ab%_c", "a\U0010ffff", "x\ud7ff", "é"):
        end = prefix_end(prefix)
        assert end is not None and prefix < end
        assert all(s < end for s in (prefix, prefix + "\U0010ffff" * 3))
        assert not end.startswith(prefix)
