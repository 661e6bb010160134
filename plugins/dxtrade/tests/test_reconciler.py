"""The gateway settles a DXtrade withdrawal whose answer was lost by itself, with no
client retry: its reconciler reads DXtrade's transfers for the key and completes the
claim (found), marks it not applied (provably absent past the lease), or leaves it
unknown (the read failed).  It never sends a write.

GraphQL over HTTP → gateway → DXtrade connector → sandbox, real sockets.  Each test
runs a gateway of its own (its own store, reconciler settings) on the session's
sandbox, whose knobs lose an answer after applying the request (``drop_next``) or
fail a request without applying it (``fail_next``).  Rounds come when a test asks
(``reconcile_now``), except in the first test, where they run in the background.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import brokergraph_dxtrade.plugin
from brokergraph_dxtrade.sandbox import DxTradeSandbox

from gateway.store import AuditEntry, IdempotencyState
from gateway.testing import TestGateway, open_test_gateway

from .conftest import account_gid
from .test_graphql_dxtrade import ACCOUNT, balance
from .test_outcomes import fresh_account, move_money

#: Long enough that no round comes unless the test asks for one (``reconcile_now``).
MANUAL = {"interval_seconds": 3600, "grace_seconds": 0}
WAIT = 10.0


@asynccontextmanager
async def settling_gateway(
    sandbox: DxTradeSandbox,
    session_gateway: TestGateway,
    directory: Path,
    reconciler: Mapping[str, Any] = MANUAL,
    **sections: Mapping[str, Any],
) -> AsyncIterator[TestGateway]:
    """A gateway of its own (its own store) on the session's sandbox, with ``reconciler``
    settings; the sandbox's callbacks go back to the session's gateway afterwards."""
    try:
        async with open_test_gateway(
            brokergraph_dxtrade.plugin, [sandbox], directory, reconciler=reconciler, **sections
        ) as gateway:
            yield gateway
    finally:
        sandbox.attach_gateway(session_gateway.url)


def _puts(sandbox: DxTradeSandbox) -> int:
    """Withdrawal PUTs that reached DXtrade."""
    return sum(n for k, n in sandbox.calls.items() if k.startswith("PUT ") and "withdrawal" in k)


def _reads(sandbox: DxTradeSandbox) -> int:
    """Reads of an account's transfers (what settles a withdrawal) that reached DXtrade."""
    return sum(n for k, n in sandbox.calls.items() if k.startswith("GET ") and "transfers" in k)


async def _claim(gateway: TestGateway, account: str, key: str) -> IdempotencyState | None:
    record = await gateway.services.store.get_idempotent(f"money:dxtrade:{account}", key)
    return None if record is None else record.state


async def _settlements(gateway: TestGateway, key: str) -> list[AuditEntry]:
    rows = await gateway.services.store.list_audit(limit=50, operation="withdraw")
    return [r for r in reversed(rows) if r.idempotency_key == key and r.actor == "test-admin"]


async def _until(condition: Callable[[], Awaitable[bool]]) -> None:
    """Wait (polling) until ``condition`` holds, failing after WAIT seconds."""
    async with asyncio.timeout(WAIT):
        while not await condition():  # noqa: ASYNC110 (a store's state: no event to wait on)
            await asyncio.sleep(0.05)


async def test_the_gateway_settles_a_lost_withdrawal_without_a_retry(
    dx_sandbox: DxTradeSandbox, dx_gateway: TestGateway, tmp_path: Path
) -> None:
    # A grace longer than the write takes: a round never reads a write still in flight.
    fast = {"interval_seconds": 0.2, "grace_seconds": 1}
    async with settling_gateway(dx_sandbox, dx_gateway, tmp_path, fast) as gateway:
        assert gateway.services.reconciler.running  # started with the gateway
        account = await fresh_account(gateway)
        before = await balance(gateway, account)
        key = f"wd-{uuid.uuid4()}"
        puts, reads = _puts(dx_sandbox), _reads(dx_sandbox)
        dx_sandbox.drop_next(1, after_apply=True)
        lost = await move_money(gateway, "withdraw", account, "40.00", key)
        assert [e["code"] for e in lost["errors"]] == ["OUTCOME_UNKNOWN"]

        async def settled() -> bool:
            return await _claim(gateway, account, key) is IdempotencyState.COMPLETED

        await _until(settled)  # nobody retries: the background rounds settle it
        rows = await _settlements(gateway, key)
        assert [(r.outcome, r.error_code) for r in rows] == [
            ("unknown", "OUTCOME_UNKNOWN"),
            ("settled", None),
        ]
        settlement = rows[1]
        assert settlement.upstream_ref == key
        assert settlement.target == account_gid(account)
        assert settlement.details["settled_by"] == "reconciler"
        assert settlement.details["request"]["amount"] == "40.00"
        assert settlement.details["found"]["kind"] == "WITHDRAWAL"
        assert settlement.details["found"]["amount"]["amount"] == "40.00"
        assert _reads(dx_sandbox) == reads + 1  # settled by one read

        rounds = gateway.services.reconciler.rounds

        async def two_more_rounds() -> bool:
            return gateway.services.reconciler.rounds >= rounds + 2

        await _until(two_more_rounds)
        assert _reads(dx_sandbox) == reads + 1  # a settled claim is never read again
        retry = await move_money(gateway, "withdraw", account, "40.00", key)
        assert retry["errors"] == [] and retry["replayed"] is True
        assert retry["operation"]["externalId"] == key
        assert retry["operation"]["amount"]["amount"] == "40.00"
        assert _puts(dx_sandbox) == puts + 1  # the retry replays: zero further writes
        assert await balance(gateway, account) == before - Decimal("40.00")


async def test_an_absent_withdrawal_is_not_applied_and_the_same_request_sends_it(
    dx_sandbox: DxTradeSandbox, dx_gateway: TestGateway, tmp_path: Path
) -> None:
    # The connector re-sends a transfer it found absent only 3 timeouts after the
    # attempt: within the gateway's lease here, so the lease decides.
    async with settling_gateway(
        dx_sandbox,
        dx_gateway,
        tmp_path,
        limits={"idempotency_lease_seconds": 4},
        connector_settings={"dxtrade": {"timeout_seconds": 1.0}},
    ) as gateway:
        reconciler = gateway.services.reconciler
        account = await fresh_account(gateway)
        before = await balance(gateway, account)
        key = f"wd-{uuid.uuid4()}"
        puts, reads = _puts(dx_sandbox), _reads(dx_sandbox)
        dx_sandbox.fail_next(1, 502)  # answered by a proxy, never applied
        failed = await move_money(gateway, "withdraw", account, "5.00", key)
        assert [e["code"] for e in failed["errors"]] == ["OUTCOME_UNKNOWN"]

        young = await reconciler.reconcile_now()
        # Absent, but younger than the lease: it may still be on its way.
        assert (young.unknown, young.not_applied) == (1, 0)
        assert await _claim(gateway, account, key) is IdempotencyState.STARTED
        assert (await reconciler.reconcile_now()).unknown == 0  # held: not read again yet

        async def marked() -> bool:
            return (await reconciler.reconcile_now()).not_applied == 1

        await _until(marked)
        assert _reads(dx_sandbox) == reads + 2  # the young read and the deciding one
        assert await _claim(gateway, account, key) is IdempotencyState.NOT_APPLIED
        assert _puts(dx_sandbox) == puts + 1  # nothing re-sent
        assert await balance(gateway, account) == before  # nothing moved
        rows = await _settlements(gateway, key)
        assert [(r.outcome, r.error_code) for r in rows] == [
            ("unknown", "OUTCOME_UNKNOWN"),
            ("not_applied", None),
        ]
        assert rows[1].upstream_ref is None and rows[1].details["found"] is None

        other = await move_money(gateway, "withdraw", account, "6.00", key)  # not the same request
        assert [e["code"] for e in other["errors"]] == ["IDEMPOTENCY_CONFLICT"]
        sent = await move_money(gateway, "withdraw", account, "5.00", key)
        assert sent["errors"] == [] and sent["replayed"] is False
        assert _puts(dx_sandbox) == puts + 2
        again = await move_money(gateway, "withdraw", account, "5.00", key)
        assert again["replayed"] is True and _puts(dx_sandbox) == puts + 2
        assert await balance(gateway, account) == before - Decimal("5.00")


async def test_a_failed_read_leaves_the_outcome_unknown(
    dx_sandbox: DxTradeSandbox, dx_gateway: TestGateway, tmp_path: Path
) -> None:
    async with settling_gateway(
        dx_sandbox,
        dx_gateway,
        tmp_path,
        limits={"idempotency_lease_seconds": 1},
        resilience={"read_retries": 0},  # one failure is the read's answer
    ) as gateway:
        reconciler = gateway.services.reconciler
        account = await fresh_account(gateway)
        before = await balance(gateway, account)
        key = f"wd-{uuid.uuid4()}"
        puts, reads = _puts(dx_sandbox), _reads(dx_sandbox)
        dx_sandbox.drop_next(1, after_apply=True)
        lost = await move_money(gateway, "withdraw", account, "7.00", key)
        assert [e["code"] for e in lost["errors"]] == ["OUTCOME_UNKNOWN"]

        dx_sandbox.fail_next(1, 503)
        failed = await reconciler.reconcile_now()
        assert (failed.unknown, failed.settled, failed.not_applied) == (1, 0, 0)
        assert _reads(dx_sandbox) == reads + 1
        # Never "not applied" on a failed read (the money moved), and no settlement row.
        assert await _claim(gateway, account, key) is IdempotencyState.STARTED
        rows = await _settlements(gateway, key)
        assert [r.outcome for r in rows] == ["unknown"]

        async def settled() -> bool:  # once its hold has passed, a later round reads again
            return (await reconciler.reconcile_now()).settled == 1

        await _until(settled)
        assert _reads(dx_sandbox) == reads + 2
        assert [r.outcome for r in await _settlements(gateway, key)] == ["unknown", "settled"]
        retry = await move_money(gateway, "withdraw", account, "7.00", key)
        assert retry["replayed"] is True and retry["operation"]["externalId"] == key
        assert _puts(dx_sandbox) == puts + 1
        assert await balance(gateway, account) == before - Decimal("7.00")


async def test_two_replicas_settle_a_claim_once(
    dx_sandbox: DxTradeSandbox, dx_gateway: TestGateway, tmp_path: Path
) -> None:
    async with (
        settling_gateway(dx_sandbox, dx_gateway, tmp_path) as first,
        settling_gateway(dx_sandbox, dx_gateway, tmp_path) as second,  # the same store
    ):
        account = await fresh_account(first)
        key = f"wd-{uuid.uuid4()}"
        reads = _reads(dx_sandbox)
        dx_sandbox.drop_next(1, after_apply=True)
        lost = await move_money(first, "withdraw", account, "3.00", key)
        assert [e["code"] for e in lost["errors"]] == ["OUTCOME_UNKNOWN"]
        rounds = await asyncio.gather(
            first.services.reconciler.reconcile_now(), second.services.reconciler.reconcile_now()
        )
        # The other found it held, or settled, or lost the race to hold it (skipped).
        assert sorted(r.settled for r in rounds) == [0, 1]
        assert sum(r.unknown + r.not_applied for r in rounds) == 0
        assert _reads(dx_sandbox) == reads + 1  # one replica read it
        assert [r.outcome for r in await _settlements(second, key)] == ["unknown", "settled"]


async def test_a_write_of_unknown_outcome_drops_the_accounts_cached_reads(
    dx_sandbox: DxTradeSandbox, dx_gateway: TestGateway, tmp_path: Path
) -> None:
    """The money may have moved: a balance cached before the write is not served after."""
    async with settling_gateway(dx_sandbox, dx_gateway, tmp_path) as gateway:
        account = await fresh_account(gateway)
        before = await balance(gateway, account)  # now cached
        dx_sandbox.drop_next(1, after_apply=True)
        lost = await move_money(gateway, "withdraw", account, "40.00", f"wd-{uuid.uuid4()}")
        assert [e["code"] for e in lost["errors"]] == ["OUTCOME_UNKNOWN"]
        # No clear_cache here: the write path itself must have dropped the cached balance.
        result = await gateway.query(ACCOUNT, {"id": account_gid(account)})
        assert Decimal(result["data"]["account"]["balance"]["amount"]) == before - Decimal("40")
