"""A DXtrade cash transfer whose answer is lost is OUTCOME_UNKNOWN, and a retry with
the same key settles it by reading DXtrade's transfers, never by a blind re-send.

GraphQL over HTTP → gateway → DXtrade connector → sandbox, real sockets.  The
sandbox's knobs lose an answer after applying the request (``drop_next``) or answer a
proxy's 502 without applying it (``fail_next``).
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from brokergraph_dxtrade.sandbox import DxTradeSandbox

from gateway.store import IdempotencyState
from gateway.testing import TestGateway

from .conftest import account_gid
from .test_graphql_dxtrade import balance, create_crm_user

MONEY = """
mutation($input: MoneyMovementInput!) {
  %s(input: $input) {
    operation { externalId kind amount { amount currency } }
    replayed
    errors { __typename code message field }
  }
}"""


async def _move(
    gateway: TestGateway, operation: str, account: str, amount: str, key: str
) -> dict[str, Any]:
    variables = {
        "input": {"accountId": account_gid(account), "amount": amount, "idempotencyKey": key}
    }
    body = await gateway.query(MONEY % operation, variables)
    assert "errors" not in body, body
    payload: dict[str, Any] = body["data"][operation]
    return payload


async def _account(gateway: TestGateway) -> str:
    """A fresh CRM account, its currency read once (so the next request is the write)."""
    created = await create_crm_user(gateway)
    account: str = created["accounts"][0]["externalId"]
    done = await _move(gateway, "deposit", account, "100.00", f"dep-{uuid.uuid4()}")
    assert done["errors"] == []
    return account


def _sent(sandbox: DxTradeSandbox, key: str) -> int:
    """How many cash operations DXtrade holds under ``key``."""
    return len([op for op in sandbox.state.cash_ops if op[2] == key])


def _puts(sandbox: DxTradeSandbox) -> int:
    """Withdrawal PUTs that reached DXtrade (the sandbox would dedupe a repeat: count)."""
    return sum(n for k, n in sandbox.calls.items() if k.startswith("PUT ") and "withdrawal" in k)


async def _audit(gateway: TestGateway, key: str) -> list[tuple[str, str | None]]:
    rows = await gateway.services.store.list_audit(limit=50, operation="withdraw")
    return [(r.outcome, r.error_code) for r in reversed(rows) if r.idempotency_key == key]


async def test_a_lost_answer_is_unknown_then_settled_by_the_same_key(
    dx_gateway: TestGateway, dx_sandbox: DxTradeSandbox
) -> None:
    account = await _account(dx_gateway)
    before = await balance(dx_gateway, account)
    key = f"wd-{uuid.uuid4()}"
    puts = _puts(dx_sandbox)
    dx_sandbox.drop_next(1, after_apply=True)
    lost = await _move(dx_gateway, "withdraw", account, "40.00", key)
    assert [e["code"] for e in lost["errors"]] == ["OUTCOME_UNKNOWN"]  # not "not delivered"
    assert "SAME idempotencyKey" in lost["errors"][0]["message"]
    assert _sent(dx_sandbox, key) == 1  # the money moved
    claim = await dx_gateway.services.store.get_idempotent(f"money:dxtrade:{account}", key)
    assert claim is not None and claim.state is IdempotencyState.STARTED

    settled = await _move(dx_gateway, "withdraw", account, "40.00", key)
    assert settled["errors"] == []
    assert settled["replayed"] is True
    assert settled["operation"]["externalId"] == key
    assert settled["operation"]["kind"] == "WITHDRAWAL"
    assert settled["operation"]["amount"]["amount"] == "40.00"
    again = await _move(dx_gateway, "withdraw", account, "40.00", key)
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
    dx_gateway: TestGateway, dx_sandbox: DxTradeSandbox
) -> None:
    account = await _account(dx_gateway)
    before = await balance(dx_gateway, account)
    key = f"wd-{uuid.uuid4()}"
    puts = _puts(dx_sandbox)
    dx_sandbox.fail_next(1, 502)
    failed = await _move(dx_gateway, "withdraw", account, "5.00", key)
    assert [e["code"] for e in failed["errors"]] == ["OUTCOME_UNKNOWN"]
    # The transfer is absent, but a claim younger than the lease may still be in
    # flight: the retry reads, finds nothing, and refuses rather than re-send.
    retry = await _move(dx_gateway, "withdraw", account, "5.00", key)
    assert [e["code"] for e in retry["errors"]] == ["IDEMPOTENCY_CONFLICT"]
    assert _sent(dx_sandbox, key) == 0
    assert _puts(dx_sandbox) == puts + 1
    assert await balance(dx_gateway, account) == before
