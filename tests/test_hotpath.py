"""The hot path's store work: what a write and a read cost in transactions and
statements (counted with engine event hooks, never timed), and the in-memory partners
and link owners staying exact — in one process and across replicas sharing PostgreSQL
and Redis."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from gateway.errors import IdempotencyConflict
from gateway.events import create_event_log
from gateway.store import AuditEntry, Store
from tests.gateway_fixtures import GatewayUnderTest, account_gid

PLACE = """mutation($input: PlaceOrderInput!) { placeOrder(input: $input) {
  order { externalId } errors { code } } }"""
BALANCE = "query($id: ID!) { account(id: $id) { balance { amount } } }"
ROOT = Path(__file__).resolve().parents[1]
#: How long a replica may take to hear another's change (a bound, not a measurement).
PROPAGATION_SECONDS = 10.0


class Transactions:
    """The store's statements, grouped by the transaction that committed them."""

    def __init__(self) -> None:
        self.committed: list[list[str]] = []
        self.open: list[str] = []
        self.statements: list[str] = []

    def on_statement(self, *args: Any) -> None:
        statement = str(args[2]).split()
        text = " ".join(statement[:4]).upper()
        self.statements.append(text)
        self.open.append(text)

    def on_commit(self, _connection: Any) -> None:
        self.committed.append(self.open)
        self.open = []

    def on_rollback(self, _connection: Any) -> None:
        self.open = []


@contextlib.contextmanager
def counted(store: Store) -> Iterator[Transactions]:
    seen = Transactions()
    hooks: list[tuple[str, Callable[..., None]]] = [
        ("before_cursor_execute", seen.on_statement),
        ("commit", seen.on_commit),
        ("rollback", seen.on_rollback),
    ]
    for name, hook in hooks:
        event.listen(store.sync_engine, name, hook)
    try:
        yield seen
    finally:
        for name, hook in hooks:
            event.remove(store.sync_engine, name, hook)


def _touches(transaction: list[str], table: str) -> bool:
    return any(table.upper() in statement for statement in transaction)


async def _place(gateway: GatewayUnderTest, key: str) -> dict[str, Any]:
    variables = {
        "input": {
            "accountId": account_gid("1001"),
            "symbol": "EURUSD",
            "side": "BUY",
            "type": "MARKET",
            "quantity": "1",
            "idempotencyKey": key,
        }
    }
    status, body = await gateway.query(PLACE, variables, token="client")
    assert status == 200, body
    payload: dict[str, Any] = body["data"]["placeOrder"]
    return payload


async def test_a_placed_order_commits_its_claim_then_its_result_with_its_audit_row(
    gateway: GatewayUnderTest,
) -> None:
    store = gateway.services.store
    key = f"hot-{uuid.uuid4().hex}"
    with counted(store) as seen:
        payload = await _place(gateway, key)
    assert payload["errors"] == []
    core = [t for t in seen.committed if _touches(t, "idempotency") or _touches(t, "audit_log")]
    # Two transactions: the claim (durable before the platform is called), then the
    # completion and the audit row together.
    assert len(core) == 2
    claim, completion = core
    assert _touches(claim, "INSERT INTO idempotency") and not _touches(claim, "audit_log")
    assert _touches(completion, "UPDATE idempotency")
    assert _touches(completion, "INSERT INTO audit_log")
    # The completion reads nothing back, and nobody asked the database who owns the account.
    assert not any(s.startswith("SELECT") for s in completion)
    assert not any("LINKS" in s or "PARTNERS" in s for s in seen.statements)
    # Both are durable: the claim completed, its audit row written.
    (entry,) = [e for e in await store.list_audit(limit=50) if e.idempotency_key == key]
    assert (entry.operation, entry.outcome) == ("placeOrder", "ok")


async def test_a_replayed_order_writes_nothing_but_its_audit_row(
    gateway: GatewayUnderTest,
) -> None:
    key = f"hot-{uuid.uuid4().hex}"
    first = await _place(gateway, key)
    with counted(gateway.services.store) as seen:
        again = await _place(gateway, key)
    assert again == first
    writes = [t for t in seen.committed if any(not s.startswith("SELECT") for s in t)]
    assert len(writes) == 1 and _touches(writes[0], "INSERT INTO audit_log")
    outcomes = [
        e.outcome
        for e in await gateway.services.store.list_audit(limit=50)
        if e.idempotency_key == key
    ]
    assert outcomes == ["replayed", "ok"]


async def test_an_account_read_asks_the_database_nothing(gateway: GatewayUnderTest) -> None:
    await gateway.query(BALANCE, {"id": account_gid("1001")}, token="client")  # warm
    with counted(gateway.services.store) as seen:
        status, body = await gateway.query(BALANCE, {"id": account_gid("1001")}, token="client")
    assert status == 200 and body["data"]["account"]["balance"] is not None, body
    assert seen.statements == []


async def test_an_unlinked_account_is_not_found_at_once(gateway: GatewayUnderTest) -> None:
    store = gateway.services.store
    await store.upsert_partner("HOT-P", broker="demo-broker")
    await store.link("HOT-P", "toy", "account", "2001-hot")
    assert await store.owners("toy", "account", ["2001-hot"]) == ["HOT-P"]
    await store.unlink("toy", "account", "2001-hot")
    assert await store.owners("toy", "account", ["2001-hot"]) == [None]
    await store.link("HOT-P", "toy", "account", "2001-hot")
    assert await store.delete_partner("HOT-P")
    assert await store.owners("toy", "account", ["2001-hot"]) == [None]
    assert await store.get_partners(["HOT-P"]) == [None]


async def test_the_completion_and_its_audit_row_commit_or_fail_together(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
    try:
        await store.begin_idempotent("S", "k-00000001", "deposit", "h")
        entry = AuditEntry(
            id=None,
            at=datetime.now(UTC),
            actor="a",
            role="admin",
            operation="deposit",
            target=None,
            outcome="ok",
            error_code=None,
            upstream_ref=None,
            idempotency_key="k-00000001",
            details={},
        )
        await store.complete_idempotent("S", "k-00000001", {"value": 1}, audit=entry)
        with pytest.raises(IdempotencyConflict):
            await store.complete_idempotent("S", "k-00000001", {"value": 2}, audit=entry)
        audited = await store.list_audit(limit=10)
        assert [e.idempotency_key for e in audited] == ["k-00000001"]  # not twice
    finally:
        await store.close()


@contextlib.asynccontextmanager
async def replica(dsn: str, redis_url: str, namespace: str) -> AsyncIterator[Store]:
    """One replica's store, sharing its changes through the cluster's Redis event log."""
    log = create_event_log(redis_url, secret=b"hot-path-secret-0123456789", namespace=namespace)
    store = await Store.open(dsn)
    store.share_changes(log)
    try:
        yield store
    finally:
        await store.close()
        await log.close()


async def _until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    try:
        async with asyncio.timeout(PROPAGATION_SECONDS):
            while not await condition():  # noqa: ASYNC110 (another replica: no event here)
                await asyncio.sleep(0.02)
    except TimeoutError:
        pytest.fail(f"the other replica never saw {what}")


async def _loaded(code: str, *stores: Store) -> bool:
    """Whether each store serves ``code`` (an existing partner) from its loaded copy."""
    for store in stores:
        await store.get_partners([code])
    return all(store.known_partner(code)[0] for store in stores)


@pytest.mark.postgres
async def test_a_store_that_hears_no_gateway_reads_the_database(
    gateway: GatewayUnderTest, tmp_path: Path, postgres_url: str
) -> None:
    # A test's or a command's store, beside running replicas: it cannot hear their
    # changes, so it keeps no copy that they could make stale.
    standalone = await Store.open(postgres_url)
    other = await Store.open(postgres_url)
    try:
        await other.upsert_partner("HOT-S", broker="demo-broker")
        assert (await standalone.get_partners(["HOT-S"]))[0] is not None
        assert await other.delete_partner("HOT-S")
        assert await standalone.get_partners(["HOT-S"]) == [None]
        assert standalone.known_partner("HOT-S") == (False, None)
    finally:
        await standalone.close()
        await other.close()


@pytest.mark.postgres
@pytest.mark.redis
async def test_replicas_see_each_others_links_and_partners(
    postgres_url: str, redis_url: str
) -> None:
    namespace = f"t{uuid.uuid4().hex[:8]}:events:"
    async with (
        replica(postgres_url, redis_url, namespace) as a,
        replica(postgres_url, redis_url, namespace) as b,
    ):
        code = f"P-{uuid.uuid4().hex[:8]}"
        account = f"acc-{uuid.uuid4().hex[:8]}"
        await a.upsert_partner(f"{code}-seed")
        await _until(lambda: _loaded(f"{code}-seed", a, b), "its own copy loaded")
        # What one creates, the other finds at once: a miss in memory asks the database.
        record = await a.upsert_partner(code, broker="b1")
        assert await b.get_partners([code]) == [record]
        await a.link(code, "toy", "account", account)
        assert await b.owners("toy", "account", [account]) == [code]

        async def b_sees_owner() -> bool:
            return await b.owners("toy", "account", [account]) == [code]

        await b.upsert_partner(code, broker="b2")  # the other way round

        async def a_sees_update() -> bool:
            found = (await a.get_partners([code]))[0]
            return found is not None and found.broker == "b2"

        await _until(a_sees_update, "the partner's update")
        await a.unlink("toy", "account", account)

        async def b_sees_unlink() -> bool:
            return await b.owners("toy", "account", [account]) == [None]

        await _until(b_sees_unlink, "the unlink")
        await a.link(code, "toy", "account", account)
        await _until(b_sees_owner, "the link again")
        assert await b.delete_partner(code)

        async def a_sees_deletion() -> bool:
            return (await a.get_partners([code])) == [None] and await a.owners(
                "toy", "account", [account]
            ) == [None]

        await _until(a_sees_deletion, "the deletion with its links")


# The store's hot statements run on SQLite's own cursor when nothing listens to the
# engine's statement events, through SQLAlchemy otherwise.  Within this test process a
# tracing test may have left a listener on every engine, so the comparison runs in a
# fresh interpreter: one store with no listener (the driver's cursor), one with a
# listener (SQLAlchemy), the same writes to both, and what each reads back.
_BOTH_ROADS = r"""
import asyncio, json, sys
from datetime import UTC, datetime
from sqlalchemy import Engine, event
from sqlalchemy.exc import StatementError
from gateway.store import AuditEntry, Store

AT = datetime(2026, 1, 2, 3, 4, 5, 6789, tzinfo=UTC)

def entry(key):
    return AuditEntry(None, AT, "alice", "admin", "deposit", None, "ok", None, "ref", key,
                      {"amount": "1.50", "nested": {"list": [1, None, "\u00e9"]}})

def claim(record):
    aware = record.created_at.utcoffset() is not None and (
        record.completed_at is None or record.completed_at.utcoffset() is not None)
    return [record.scope, record.key, record.operation, record.request_hash,
            record.state.value, record.response, aware, record.completed_at is None]

async def exercise(store):
    seen = {}
    claimed, first = await store.begin_idempotent("S", "k-1", "deposit", "h", recovery={"p": "toy"})
    again, existing = await store.begin_idempotent("S", "k-1", "deposit", "h")
    seen["claims"] = [claimed, again, claim(first), claim(existing)]
    await store.complete_idempotent("S", "k-1", {"value": {"id": "1", "no": None}},
                                    audit=entry("k-1"))
    seen["read"] = claim(await store.get_idempotent("S", "k-1"))
    await store.begin_idempotent("S", "k-2", "deposit", "h")
    await store.release_idempotent("S", "k-2")
    seen["released"] = await store.get_idempotent("S", "k-2") is None
    appended = await store.append_audit(entry(None))
    seen["appended"] = appended.id
    seen["audit"] = [[e.id, e.at.isoformat(), e.idempotency_key, e.details]
                     for e in await store.list_audit(limit=10)]
    await store.save_flow("f-1", "kind", {"a": [1, 2], "b": None})
    await store.save_flow("f-1", "kind", {"a": "again"})
    seen["flow"] = [await store.get_flow("f-1"), await store.get_flow("missing")]
    try:
        await store.append_audit(AuditEntry(None, datetime(2026, 1, 1), "a", "b", "c", None,
                                            "ok", None, None, None, {}))
    except StatementError as error:
        seen["naive"] = "naive datetime" in str(error)
    return seen

async def main(directory):
    fast = await Store.open(f"sqlite+aiosqlite:///{directory}/fast.db")
    slow = await Store.open(f"sqlite+aiosqlite:///{directory}/slow.db")
    statements = []
    event.listen(slow.sync_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    try:
        road = not Engine._has_events and not fast.sync_engine._has_events
        print(json.dumps({"fast_road": road, "fast": await exercise(fast),
                          "slow": await exercise(slow), "slow_statements": len(statements)}))
    finally:
        await fast.close()
        await slow.close()

asyncio.run(main(sys.argv[1]))
"""


async def test_the_drivers_cursor_writes_and_reads_what_sqlalchemy_does(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _BOTH_ROADS,
        str(tmp_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    result = json.loads(out)
    assert result["fast_road"]  # nothing listened: the hot statements took the cursor
    assert result["slow_statements"] > 0  # a listener: they went through SQLAlchemy
    assert result["fast"] == result["slow"]
    fast = result["fast"]
    assert fast["claims"][:2] == [True, False] and fast["read"][4] == "COMPLETED"
    assert fast["read"][5] == {"value": {"id": "1", "no": None}} and fast["read"][6]
    assert fast["released"] and fast["naive"]
    assert fast["flow"] == [{"a": "again"}, None]
    assert [row[2] for row in fast["audit"]] == [None, "k-1"]  # newest first
    assert fast["audit"][0][3] == {"amount": "1.50", "nested": {"list": [1, None, "é"]}}
