"""What the background reconciler relies on in the store, on SQLite and PostgreSQL.

A claim keeps its recovery (what settles it without its client) until it completes
or is released; the reconciler lists claims left STARTED past a grace; two replicas
(two stores on one database) cannot both hold a claim; a claim is marked NOT_APPLIED
only when old enough, and the same request then takes it over and sends.  The
reconciler itself, end to end against a platform, is tested with the DXtrade sandbox
(plugins/dxtrade/tests/test_reconciler.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.config import ConfigError, load_settings
from gateway.errors import IdempotencyConflict
from gateway.idempotency import request_fingerprint, run_once
from gateway.reconciler import Recovery
from gateway.store import IdempotencyState, Store

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]
SCOPE, KEY = "money:acme:1", "key-00000001"
REQUEST = {"account_id": "1", "amount": "5.00"}
RECOVERY = Recovery("acme", "1", "find_movement", "QWNjb3VudDoxCg==", "alice", "admin", REQUEST)
LATER = timedelta(hours=1)


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'reconciler.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(store_url)
    yield opened
    await opened.close()


def _later() -> datetime:
    return datetime.now(UTC) + LATER


async def _claim(store: Store, key: str = KEY) -> None:
    fingerprint = request_fingerprint("withdraw", REQUEST)
    won, _ = await store.begin_idempotent(
        SCOPE, key, "withdraw", fingerprint, recovery=RECOVERY.to_json()
    )
    assert won


async def test_a_claim_keeps_its_recovery_until_it_completes(store: Store) -> None:
    await _claim(store)
    await store.begin_idempotent(SCOPE, "no-recovery", "withdraw", "h")  # an order: no finder
    assert (
        await store.unsettled_idempotent(claimed_before=datetime.now(UTC) - LATER, limit=10) == []
    )
    (unsettled,) = await store.unsettled_idempotent(claimed_before=_later(), limit=10)
    assert (unsettled.claim.key, unsettled.claim.state) == (KEY, IdempotencyState.STARTED)
    assert Recovery.from_json(unsettled.recovery) == RECOVERY
    await store.complete_idempotent(SCOPE, KEY, {"value": {"id": "T1"}})
    assert await store.unsettled_idempotent(claimed_before=_later(), limit=10) == []
    # Claimed again after a release, a key gets the new request's recovery.
    await _claim(store, "released-1")
    await store.release_idempotent(SCOPE, "released-1")
    await _claim(store, "released-1")
    assert [
        u.claim.key for u in await store.unsettled_idempotent(claimed_before=_later(), limit=10)
    ] == ["released-1"]


async def test_one_of_two_replicas_holds_a_claim(store: Store, store_url: str) -> None:
    await _claim(store)
    other = await Store.open(store_url)  # another replica on the same database
    try:
        seen = [
            (await replica.unsettled_idempotent(claimed_before=_later(), limit=10))[0]
            for replica in (store, other)
        ]
        held = await asyncio.gather(
            store.hold_unsettled(seen[0], _later()), other.hold_unsettled(seen[1], _later())
        )
        assert sorted(held) == [False, True]
        # Held: no replica lists it until the hold passes.
        for replica in (store, other):
            assert await replica.unsettled_idempotent(claimed_before=_later(), limit=10) == []
    finally:
        await other.close()


async def test_a_hold_that_passed_lets_the_claim_be_taken_again(store: Store) -> None:
    await _claim(store)
    (first,) = await store.unsettled_idempotent(claimed_before=_later(), limit=10)
    assert await store.hold_unsettled(first, datetime.now(UTC))  # a hold already over
    (again,) = await store.unsettled_idempotent(claimed_before=_later(), limit=10)
    assert again.check_after > first.check_after
    assert not await store.hold_unsettled(first, _later())  # read before the last hold
    assert await store.hold_unsettled(again, _later())


async def test_a_young_claim_is_never_marked_not_applied(store: Store) -> None:
    await _claim(store)
    assert not await store.mark_not_applied(SCOPE, KEY, datetime.now(UTC) - LATER)
    assert not await store.reclaim_idempotent(SCOPE, KEY)  # STARTED: not taken without age
    assert await store.mark_not_applied(SCOPE, KEY, _later())
    record = await store.get_idempotent(SCOPE, KEY)
    assert record is not None and record.state is IdempotencyState.NOT_APPLIED
    assert not await store.mark_not_applied(SCOPE, KEY, _later())  # settled once
    # No longer STARTED: the reconciler lists it no more.
    assert await store.unsettled_idempotent(claimed_before=_later(), limit=10) == []


async def test_the_same_request_sends_a_claim_marked_not_applied(store: Store) -> None:
    sent: list[str] = []

    async def withdraw() -> dict[str, str]:
        sent.append(KEY)
        return {"id": KEY}

    async def run(request: dict[str, Any]) -> Any:
        return await run_once(
            store, scope=SCOPE, key=KEY, operation="withdraw", request=request, call=withdraw
        )

    await _claim(store)
    assert await store.mark_not_applied(SCOPE, KEY, _later())
    with pytest.raises(IdempotencyConflict):  # another request under the key: refused
        await run({**REQUEST, "amount": "6.00"})
    assert sent == []
    first = await run(REQUEST)
    assert (first.value, first.replayed, sent) == ({"id": KEY}, False, [KEY])
    replay = await run(REQUEST)
    assert (replay.value, replay.replayed, sent) == ({"id": KEY}, True, [KEY])


async def test_concurrent_retries_send_a_not_applied_claim_once(store: Store) -> None:
    sent: list[str] = []

    async def withdraw() -> dict[str, str]:
        sent.append(KEY)
        await asyncio.sleep(0)  # let the other retry meet the claim in flight
        return {"id": KEY}

    await _claim(store)
    assert await store.mark_not_applied(SCOPE, KEY, _later())
    outcomes = await asyncio.gather(
        *(
            run_once(
                store, scope=SCOPE, key=KEY, operation="withdraw", request=REQUEST, call=withdraw
            )
            for _ in range(5)
        ),
        return_exceptions=True,
    )
    assert sent == [KEY]
    assert any(not isinstance(o, BaseException) and not o.replayed for o in outcomes)
    assert all(
        isinstance(o, IdempotencyConflict) or not isinstance(o, BaseException) for o in outcomes
    )


async def test_a_store_made_before_the_recovery_table_gains_it(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    await (await Store.open(url)).close()
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        # What 0.1.0's create_all made: no recovery (nor later) table, no migration record.
        await conn.execute(text("DROP TABLE transfers"))
        await conn.execute(text("DROP INDEX ix_audit_log_target_at_id"))
        await conn.execute(text("DROP TABLE idempotency_recovery"))
        await conn.execute(text("DROP TABLE alembic_version"))
    await engine.dispose()
    store = await Store.open(url)
    try:
        await _claim(store)
        assert len(await store.unsettled_idempotent(claimed_before=_later(), limit=10)) == 1
    finally:
        await store.close()


def test_reconciler_settings() -> None:
    settings = load_settings(environ={})
    assert (settings.reconciler.interval_seconds, settings.reconciler.grace_seconds) == (30, 30)
    settings = load_settings(
        environ={"BROKERGRAPH_RECONCILER__INTERVAL_SECONDS": "0"},
        overrides={"reconciler": {"grace_seconds": 5}},
    )
    assert (settings.reconciler.interval_seconds, settings.reconciler.grace_seconds) == (0, 5)
    for bad in ({"interval_seconds": -1}, {"grace_seconds": "soon"}, {"batch": 10}):
        with pytest.raises(ConfigError, match="reconciler"):
            load_settings(environ={}, overrides={"reconciler": bad})
