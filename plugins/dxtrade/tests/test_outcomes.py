"""A DXtrade cash transfer whose answer is lost is OUTCOME_UNKNOWN, and a retry with
the same key settles it by reading DXtrade's transfers, never by a blind re-send.

GraphQL over HTTP → gateway → DXtrade connector → sandbox, real sockets.  The
sandbox's knobs lose an answer after applying the request (``drop_next``) or answer a
proxy's 502 without applying it (``fail_next``).  What DXtrade does with a repeated
cash id is only inferred, so every test runs under each alternative
(``cash_id_repeat``: the first record replayed, a 409, or the money moved again):
no money moves twice under any of them.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import brokergraph_dxtrade.plugin
import pytest
import pytest_asyncio
from brokergraph_dxtrade.sandbox import CASH_ID_REPEATS, CashIdRepeat, DxTradeSandbox

from gateway.store import IdempotencyState
from gateway.testing import TestGateway, open_test_gateway

from .conftest import account_gid, ruled
from .test_graphql_dxtrade import balance, create_crm_user

MONEY = """
mutation($input: MoneyMovementInput!) {
  %s(input: $input) {
    operation { externalId kind amount { amount currency } }
    replayed
    errors { __typename code message field }
  }
}"""


async def move_money(
    gateway: TestGateway, operation: str, account: str, amount: str, key: str
) -> dict[str, Any]:
    variables = {
        "input": {"accountId": account_gid(account), "amount": amount, "idempotencyKey": key}
    }
    body = await gateway.query(MONEY % operation, variables)
    assert "errors" not in body, body
    payload: dict[str, Any] = body["data"][operation]
    return payload


async def fresh_account(gateway: TestGateway) -> str:
    """A fresh CRM account, its currency read once (so the next request is the write)."""
    created = await create_crm_user(gateway)
    account: str = created["accounts"][0]["externalId"]
    done = await move_money(gateway, "deposit", account, "100.00", f"dep-{uuid.uuid4()}")
    assert done["errors"] == []
    return account


def _sent(sandbox: DxTradeSandbox, key: str) -> int:
    """How many times money moved under ``key`` (a repeat moves it again when the
    sandbox does not dedupe)."""
    return len(sandbox.state.applied(key))


def _puts(sandbox: DxTradeSandbox) -> int:
    """Withdrawal PUTs that reached DXtrade, whatever the sandbox made of them."""
    return sum(n for k, n in sandbox.calls.items() if k.startswith("PUT ") and "withdrawal" in k)


async def _audit(gateway: TestGateway, key: str) -> list[tuple[str, str | None]]:
    rows = await gateway.services.store.list_audit(limit=50, operation="withdraw")
    return [(r.outcome, r.error_code) for r in reversed(rows) if r.idempotency_key == key]


async def test_a_lost_answer_is_unknown_then_settled_by_the_same_key(
    dx_gateway: TestGateway, dx_sandbox: DxTradeSandbox, cash_id_repeat: CashIdRepeat
) -> None:
    account = await fresh_account(dx_gateway)
    before = await balance(dx_gateway, account)
    key = f"wd-{uuid.uuid4()}"
    puts = _puts(dx_sandbox)
    dx_sandbox.drop_next(1, after_apply=True)
    lost = await move_money(dx_gateway, "withdraw", account, "40.00", key)
    assert [e["code"] for e in lost["errors"]] == ["OUTCOME_UNKNOWN"]  # not "not delivered"
    assert "SAME idempotencyKey" in lost["errors"][0]["message"]
    assert _sent(dx_sandbox, key) == 1  # the money moved
    claim = await dx_gateway.services.store.get_idempotent(f"money:dxtrade:{account}", key)
    assert claim is not None and claim.state is IdempotencyState.STARTED

    settled = await move_money(dx_gateway, "withdraw", account, "40.00", key)
    assert settled["errors"] == []
    assert settled["replayed"] is True
    assert settled["operation"]["externalId"] == key
    assert settled["operation"]["kind"] == "WITHDRAWAL"
    assert settled["operation"]["amount"]["amount"] == "40.00"
    again = await move_money(dx_gateway, "withdraw", account, "40.00", key)
    assert again["replayed"] is True and again["operation"] == settled["operation"]
    assert _sent(dx_sandbox, key) == 1
    assert _puts(dx_sandbox) == puts + 1  # settled by reading, never sent twice
    assert await balance(dx_gateway, account) == before - Decimal("40.00")
    assert await _audit(dx_gateway, key) == [
        ("unknown", "OUTCOME_UNKNOWN"),
        ("replayed", None),
        ("replayed", None),
    ]


async def test_a_502_is_unknown_and_a_young_claim_is_not_resent(
    dx_gateway: TestGateway, dx_sandbox: DxTradeSandbox, cash_id_repeat: CashIdRepeat
) -> None:
    account = await fresh_account(dx_gateway)
    before = await balance(dx_gateway, account)
    key = f"wd-{uuid.uuid4()}"
    puts = _puts(dx_sandbox)
    dx_sandbox.fail_next(1, 502)
    failed = await move_money(dx_gateway, "withdraw", account, "5.00", key)
    assert [e["code"] for e in failed["errors"]] == ["OUTCOME_UNKNOWN"]
    # The transfer is absent, but a claim younger than the lease may still be in
    # flight: the retry reads, finds nothing, and refuses rather than re-send.
    retry = await move_money(dx_gateway, "withdraw", account, "5.00", key)
    assert [e["code"] for e in retry["errors"]] == ["IDEMPOTENCY_CONFLICT"]
    assert _sent(dx_sandbox, key) == 0
    assert _puts(dx_sandbox) == puts + 1
    assert await balance(dx_gateway, account) == before


# -- once the claim has gone stale: re-sent only when the read proves it absent -------------

#: The gateway's lease on a claim, and the connector's timeout (it re-sends an unknown
#: attempt only three timeouts after it), both short so a test can outwait them.
LEASE_SECONDS = 1
TIMEOUT_SECONDS = 0.3


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def short_lease(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[TestGateway, DxTradeSandbox]]:
    """A gateway whose claims go stale after a second, on its own sandbox (the session
    sandbox's callbacks keep going to the session gateway)."""
    async with (
        DxTradeSandbox() as sandbox,
        open_test_gateway(
            brokergraph_dxtrade.plugin,
            [sandbox],
            tmp_path_factory.mktemp("dx-lease"),
            connector_settings={"dxtrade": {"timeout_seconds": TIMEOUT_SECONDS}},
            limits={"idempotency_lease_seconds": LEASE_SECONDS},
        ) as gateway,
    ):
        yield gateway, sandbox


async def _stale() -> None:
    """Outwait the gateway's lease and the connector's re-send delay."""
    await asyncio.sleep(max(LEASE_SECONDS, TIMEOUT_SECONDS * 3) + 0.3)


def _after(sandbox: DxTradeSandbox, marker: int) -> list[str]:
    """The withdrawal PUTs and transfer reads since ``marker`` (an index into ``requests``),
    in arrival order, as "PUT" / "READ"."""
    seen = list(sandbox.requests)[marker:]
    kinds = {"PUT": "withdrawal", "READ": "transfers"}
    return [k for r in seen for k, part in kinds.items() if part in r]


@pytest.mark.parametrize("repeat", CASH_ID_REPEATS)
async def test_a_stale_unknown_withdrawal_is_read_absent_then_sent_once(
    short_lease: tuple[TestGateway, DxTradeSandbox], repeat: CashIdRepeat
) -> None:
    gateway, sandbox = short_lease
    with ruled(sandbox, cash_id_repeat=repeat):
        account = await fresh_account(gateway)
        before = await balance(gateway, account)
        key = f"wd-{uuid.uuid4()}"
        sandbox.fail_next(1, 502)  # a proxy's 502: nothing applied, the outcome unknown
        failed = await move_money(gateway, "withdraw", account, "7.00", key)
        assert [e["code"] for e in failed["errors"]] == ["OUTCOME_UNKNOWN"]
        await _stale()
        marker = len(sandbox.requests)
        sent = await move_money(gateway, "withdraw", account, "7.00", key)
        assert sent["errors"] == [] and sent["replayed"] is False
        # Read (absent) before the one re-send, never a blind PUT.
        calls = _after(sandbox, marker)
        assert calls.count("PUT") == 1 and "READ" in calls[: calls.index("PUT")]
        again = await move_money(gateway, "withdraw", account, "7.00", key)
        assert again["replayed"] is True and again["operation"] == sent["operation"]
        assert _sent(sandbox, key) == 1
        assert await balance(gateway, account) == before - Decimal("7.00")


@pytest.mark.parametrize("repeat", CASH_ID_REPEATS)
async def test_a_stale_lost_answer_is_found_by_reading_and_never_resent(
    short_lease: tuple[TestGateway, DxTradeSandbox], repeat: CashIdRepeat
) -> None:
    gateway, sandbox = short_lease
    with ruled(sandbox, cash_id_repeat=repeat):
        account = await fresh_account(gateway)
        before = await balance(gateway, account)
        key = f"wd-{uuid.uuid4()}"
        sandbox.drop_next(1, after_apply=True)  # applied, then the answer is lost
        lost = await move_money(gateway, "withdraw", account, "3.00", key)
        assert [e["code"] for e in lost["errors"]] == ["OUTCOME_UNKNOWN"]
        await _stale()  # stale: the gateway may re-drive, yet reads first
        marker = len(sandbox.requests)
        settled = await move_money(gateway, "withdraw", account, "3.00", key)
        assert settled["errors"] == [] and settled["replayed"] is True
        assert settled["operation"]["externalId"] == key
        assert _after(sandbox, marker) == ["READ"]
        assert _sent(sandbox, key) == 1
        assert await balance(gateway, account) == before - Decimal("3.00")
