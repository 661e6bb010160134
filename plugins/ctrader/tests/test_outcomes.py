"""A cTrader money write whose answer is lost is OUTCOME_UNKNOWN, and a retry with the
same key settles it by READING cTrader, never by a blind re-send — whether cTrader
deduplicates a repeated ``externalId`` (the sandbox's [I] default) or not (the
alternative the vendor does not rule out): every test runs under both.

GraphQL over HTTP → gateway → cTrader connector → sandbox, real sockets.  The
sandbox loses an answer after applying the request (``drop_next(after_apply=True)``),
applies it and then answers a proxy's 502 (``fail_next_after_apply``), or answers a
502 without applying it (``fail_next``); a stopped sandbox refuses the connection.
The settling read is the Reporting API's balance-history snapshot (``find_movement``).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import brokergraph_ctrader.plugin
import pytest
import pytest_asyncio
from brokergraph_ctrader.sandbox import CTraderSandbox

from gateway.store import IdempotencyState
from gateway.testing import TestGateway, open_test_gateway

from .conftest import account_gid, seed_links

MONEY = """
mutation($input: MoneyMovementInput!) {
  %s(input: $input) {
    operation { externalId platformId kind amount { amount currency } }
    replayed
    errors { __typename code message field }
  }
}"""
LOGIN = "9000002"
CHANGE_BALANCE = "POST /v2/webserv/traders/{login}/changebalance"
SNAPSHOT = "GET /repo/balanceHistory"


@pytest.fixture(params=[True, False], ids=["dedupe-on", "dedupe-off"])
def dedupe(request: pytest.FixtureRequest, sandbox: CTraderSandbox) -> Iterator[bool]:
    """Run the test with cTrader deduplicating a repeated externalId, and without."""
    value: bool = request.param
    sandbox.dedupe_external_ids = value
    yield value
    sandbox.dedupe_external_ids = True


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def lease_over(
    sandbox: CTraderSandbox, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[TestGateway]:
    """A gateway whose claims are at once older than the lease (0 s): a retry may
    re-send — but only what the settling read proved absent."""
    directory = tmp_path_factory.mktemp("ctrader-lease-over")
    async with open_test_gateway(
        brokergraph_ctrader.plugin, [sandbox], directory, limits={"idempotency_lease_seconds": 0}
    ) as running:
        await seed_links(running.services.store, sandbox)
        yield running


async def _move(
    gateway: TestGateway, operation: str, amount: str, key: str, login: str = LOGIN
) -> dict[str, Any]:
    variables = {
        "input": {"accountId": account_gid(login), "amount": amount, "idempotencyKey": key}
    }
    body = await gateway.query(MONEY % operation, variables)
    assert "errors" not in body, body
    payload: dict[str, Any] = body["data"][operation]
    return payload


def _balance(sandbox: CTraderSandbox) -> Decimal:
    """The vendor's own truth, not the gateway's (possibly cached) view."""
    trader = sandbox.state.traders[int(LOGIN)]
    return Decimal(trader.balance).scaleb(-trader.money_digits)


def _applied(sandbox: CTraderSandbox, key: str) -> int:
    """How many balance operations cTrader holds under ``key`` (the money that moved)."""
    return len([e for e in sandbox.state.balance_history if e.external_id == key])


async def _audit(gateway: TestGateway, key: str) -> list[tuple[str, str | None]]:
    rows = await gateway.services.store.list_audit(limit=50, operation="withdraw")
    return [(r.outcome, r.error_code) for r in reversed(rows) if r.idempotency_key == key]


async def _claim(gateway: TestGateway, key: str) -> IdempotencyState | None:
    record = await gateway.services.store.get_idempotent(f"money:ctrader:{LOGIN}", key)
    return None if record is None else record.state


async def test_a_lost_answer_is_settled_by_reading_never_resent(
    gateway: TestGateway, sandbox: CTraderSandbox, dedupe: bool
) -> None:
    await _move(gateway, "deposit", "50.00", str(uuid.uuid4()))  # funds, token warm
    before, moves, reads = _balance(sandbox), sandbox.calls[CHANGE_BALANCE], sandbox.calls[SNAPSHOT]
    key = str(uuid.uuid4())
    sandbox.drop_next(1, after_apply=True)
    lost = await _move(gateway, "withdraw", "7.00", key)
    (error,) = lost["errors"]
    assert error["code"] == "OUTCOME_UNKNOWN"
    assert "SAME idempotencyKey" in error["message"]
    assert lost["operation"] is None
    assert _applied(sandbox, key) == 1  # the money did move
    assert await _claim(gateway, key) is IdempotencyState.STARTED

    settled = await _move(gateway, "withdraw", "7.00", key)
    assert settled["errors"] == [] and settled["replayed"] is True
    operation = settled["operation"]
    assert operation["kind"] == "WITHDRAWAL"
    assert operation["amount"] == {"amount": "7.00", "currency": "EUR"}
    (entry,) = [e for e in sandbox.state.balance_history if e.external_id == key]
    assert operation["externalId"] == key
    assert operation["platformId"] == str(entry.id)  # the id cTrader's lost answer carried
    again = await _move(gateway, "withdraw", "7.00", key)
    assert again["replayed"] is True and again["operation"] == operation
    assert sandbox.calls[CHANGE_BALANCE] == moves + 1  # settled by reading, never re-sent
    assert sandbox.calls[SNAPSHOT] == reads + 1  # one read; the replay reads nothing
    assert _applied(sandbox, key) == 1
    assert _balance(sandbox) == before - Decimal("7.00")
    assert await _audit(gateway, key) == [
        ("unknown", "OUTCOME_UNKNOWN"),
        ("replayed", None),
        ("replayed", None),
    ]
    # A NEW key is a new withdrawal: what the CRM was told ("retry with the SAME key")
    # is what keeps it from debiting twice.
    other = await _move(gateway, "withdraw", "7.00", str(uuid.uuid4()))
    assert other["errors"] == []
    assert _balance(sandbox) == before - Decimal("14.00")


async def test_a_502_after_cTrader_applied_is_settled_by_reading(
    gateway: TestGateway, sandbox: CTraderSandbox, dedupe: bool
) -> None:
    await _move(gateway, "deposit", "5.00", str(uuid.uuid4()))  # token warm
    before, moves = _balance(sandbox), sandbox.calls[CHANGE_BALANCE]
    key = str(uuid.uuid4())
    sandbox.fail_next_after_apply(1, 502)
    failed = await _move(gateway, "withdraw", "3.00", key)
    assert [e["code"] for e in failed["errors"]] == ["OUTCOME_UNKNOWN"]
    assert _applied(sandbox, key) == 1
    settled = await _move(gateway, "withdraw", "3.00", key)
    assert settled["errors"] == [] and settled["replayed"] is True
    assert settled["operation"]["amount"]["amount"] == "3.00"
    assert sandbox.calls[CHANGE_BALANCE] == moves + 1
    assert _applied(sandbox, key) == 1
    assert _balance(sandbox) == before - Decimal("3.00")


async def test_a_502_before_apply_is_not_resent_while_the_claim_is_young(
    gateway: TestGateway, sandbox: CTraderSandbox, dedupe: bool
) -> None:
    await _move(gateway, "deposit", "1.00", str(uuid.uuid4()))  # token warm
    before, moves = _balance(sandbox), sandbox.calls[CHANGE_BALANCE]
    key = str(uuid.uuid4())
    sandbox.fail_next(1, 502)
    failed = await _move(gateway, "withdraw", "3.00", key)
    assert [e["code"] for e in failed["errors"]] == ["OUTCOME_UNKNOWN"]
    assert await _audit(gateway, key) == [("unknown", "OUTCOME_UNKNOWN")]
    # cTrader holds nothing under the key, but a claim younger than the lease may
    # still be in flight: the retry reads, finds nothing, and refuses to re-send.
    retry = await _move(gateway, "withdraw", "3.00", key)
    assert [e["code"] for e in retry["errors"]] == ["IDEMPOTENCY_CONFLICT"]
    assert await _claim(gateway, key) is IdempotencyState.STARTED
    assert sandbox.calls[CHANGE_BALANCE] == moves  # the 502 never reached cTrader's app
    assert _applied(sandbox, key) == 0
    assert _balance(sandbox) == before


async def test_past_the_lease_a_write_read_absent_is_sent_once(
    lease_over: TestGateway, sandbox: CTraderSandbox, dedupe: bool
) -> None:
    await _move(lease_over, "deposit", "1.00", str(uuid.uuid4()))  # token warm
    before, moves = _balance(sandbox), sandbox.calls[CHANGE_BALANCE]
    key = str(uuid.uuid4())
    sandbox.drop_next(1)  # lost before cTrader's app: nothing applied
    lost = await _move(lease_over, "withdraw", "2.00", key)
    assert [e["code"] for e in lost["errors"]] == ["OUTCOME_UNKNOWN"]
    assert _applied(sandbox, key) == 0
    resent = await _move(lease_over, "withdraw", "2.00", key)
    assert resent["errors"] == [] and resent["replayed"] is False  # read absent: sent
    assert _applied(sandbox, key) == 1
    # Past the lease again, but the read now finds it: replayed, not sent a third time.
    again = await _move(lease_over, "withdraw", "2.00", key)
    assert again["replayed"] is True and again["operation"] == resent["operation"]
    assert sandbox.calls[CHANGE_BALANCE] == moves + 1
    assert _applied(sandbox, key) == 1
    assert _balance(sandbox) == before - Decimal("2.00")


async def test_past_the_lease_a_lost_write_that_applied_is_not_resent(
    lease_over: TestGateway, sandbox: CTraderSandbox, dedupe: bool
) -> None:
    await _move(lease_over, "deposit", "1.00", str(uuid.uuid4()))  # token warm
    before, moves = _balance(sandbox), sandbox.calls[CHANGE_BALANCE]
    key = str(uuid.uuid4())
    sandbox.drop_next(1, after_apply=True)
    lost = await _move(lease_over, "withdraw", "2.00", key)
    assert [e["code"] for e in lost["errors"]] == ["OUTCOME_UNKNOWN"]
    settled = await _move(lease_over, "withdraw", "2.00", key)
    assert settled["errors"] == [] and settled["replayed"] is True
    assert sandbox.calls[CHANGE_BALANCE] == moves + 1
    assert _applied(sandbox, key) == 1
    assert _balance(sandbox) == before - Decimal("2.00")


async def test_a_failed_settling_read_leaves_the_outcome_unknown(
    lease_over: TestGateway, sandbox: CTraderSandbox, dedupe: bool
) -> None:
    await _move(lease_over, "deposit", "1.00", str(uuid.uuid4()))  # token warm
    before, moves = _balance(sandbox), sandbox.calls[CHANGE_BALANCE]
    key = str(uuid.uuid4())
    sandbox.drop_next(1)  # nothing applied...
    await _move(lease_over, "withdraw", "2.00", key)
    allowed = sandbox.allowed_ips
    sandbox.allowed_ips = ("10.0.0.1",)  # ...but the Reporting API refuses the read
    try:
        unread = await _move(lease_over, "withdraw", "2.00", key)
    finally:
        sandbox.allowed_ips = allowed
    # A read that failed proves nothing: no re-send even past the lease.
    assert [e["code"] for e in unread["errors"]] == ["OUTCOME_UNKNOWN"]
    assert sandbox.calls[CHANGE_BALANCE] == moves
    assert _balance(sandbox) == before
    resent = await _move(lease_over, "withdraw", "2.00", key)
    assert resent["errors"] == [] and _applied(sandbox, key) == 1


async def test_a_refused_connection_is_not_delivered_and_frees_the_key(
    gateway: TestGateway, sandbox: CTraderSandbox, dedupe: bool
) -> None:
    await _move(gateway, "deposit", "1.00", str(uuid.uuid4()))  # token warm
    before = _balance(sandbox)
    port = int(sandbox.url.rsplit(":", 1)[1].split("/")[0])
    key = str(uuid.uuid4())
    await sandbox.stop()
    try:
        payload = await _move(gateway, "withdraw", "2.00", key)
    finally:
        await sandbox.start(port=port)
    assert [e["code"] for e in payload["errors"]] == ["UPSTREAM_UNAVAILABLE"]
    assert await _audit(gateway, key) == [("error", "UPSTREAM_UNAVAILABLE")]
    assert await _claim(gateway, key) is None  # released: a retry may send it
    done = await _move(gateway, "withdraw", "2.00", key)
    assert done["errors"] == [] and done["replayed"] is False
    assert _applied(sandbox, key) == 1
    assert _balance(sandbox) == before - Decimal("2.00")
