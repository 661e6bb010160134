"""Transfers between two accounts of one partner, as a saga over the money path.

GraphQL over HTTP → gateway → DXtrade connector → sandbox, real sockets.  The sandbox's
knobs refuse the deposit (the target account terminated just before it: a domain
error, nothing applied) or lose its answer after applying it (``after_apply``).  Each
test checks balances on the platform, the saga's state and its audit rows.
"""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

from brokergraph_dxtrade.sandbox import DxTradeSandbox
from brokergraph_dxtrade.sandbox.state import DxState

from gateway.testing import TestGateway

from .conftest import account_gid
from .test_graphql_dxtrade import balance, create_crm_user
from .test_reconciler import settling_gateway

TRANSFER = """
mutation($input: TransferFundsInput!) {
  transferFunds(input: $input) {
    transfer {
      id state amount { amount currency } fromAccountId toAccountId
      steps { step outcome errorCode idempotencyKey externalId }
    }
    replayed
    errors { __typename code message field }
  }
}"""

QUERY = """
query($id: ID!) { transfer(id: $id) { id state steps { step outcome } } }"""

DEPOSIT = """
mutation($input: MoneyMovementInput!) { deposit(input: $input) { errors { code } } }"""

DEPOSIT_ROUTE = "PUT /dxweb/rest/api/register/account/{clearingCode}/{accountCode}/deposit/{id}"


async def _funded_account(gateway: TestGateway, partner: str = "DEMO-001") -> str:
    """A fresh account of ``partner`` with a deposit on it (its currency read once)."""
    created = await create_crm_user(gateway, partner)
    account: str = created["accounts"][0]["externalId"]
    variables = {
        "input": {
            "accountId": account_gid(account),
            "amount": "100.00",
            "idempotencyKey": f"fund-{uuid.uuid4()}",
        }
    }
    body = await gateway.query(DEPOSIT, variables)
    assert body["data"]["deposit"]["errors"] == [], body
    return account


async def _transfer(
    gateway: TestGateway, source: str, target: str, amount: str, key: str
) -> dict[str, Any]:
    variables = {
        "input": {
            "fromAccountId": account_gid(source),
            "toAccountId": account_gid(target),
            "amount": amount,
            "idempotencyKey": key,
        }
    }
    body = await gateway.query(TRANSFER, variables)
    assert "errors" not in body, body
    payload: dict[str, Any] = body["data"]["transferFunds"]
    return payload


async def _states(gateway: TestGateway, key: str) -> list[tuple[str, str]]:
    """The saga's audited transitions, oldest first: (step, state)."""
    rows = await gateway.services.store.list_audit(limit=200, operation="transferFunds")
    return [
        (r.details["step"], r.details["state"])
        for r in reversed(rows)
        if r.idempotency_key == key and "state" in r.details
    ]


async def _step_audit(gateway: TestGateway, key: str) -> list[tuple[str, str, str]]:
    """The money writes' own audit rows for the saga's steps: (operation, key, outcome)."""
    rows = await gateway.services.store.list_audit(limit=400)
    return [
        (r.operation, r.idempotency_key, r.outcome)
        for r in reversed(rows)
        if r.operation in ("withdraw", "deposit")
        and r.idempotency_key is not None
        and r.idempotency_key.startswith(f"{key}:")
    ]


def _cash_puts(sandbox: DxTradeSandbox) -> int:
    return sum(
        n
        for k, n in sandbox.calls.items()
        if k.startswith("PUT ") and ("/deposit/" in k or "/withdrawal/" in k)
    )


def _terminate(sandbox: DxTradeSandbox, account_id: str) -> None:
    """Terminate ``account_id`` just before the next deposit reaches DXtrade."""

    def change(state: DxState) -> None:
        account = state.account_by_id(account_id)
        assert account is not None
        account.status = "TERMINATED"

    sandbox.before_next(DEPOSIT_ROUTE, change)


async def test_a_transfer_moves_the_money_once_and_audits_each_step(
    dx_gateway: TestGateway, dx_sandbox: DxTradeSandbox
) -> None:
    source, target = await _funded_account(dx_gateway), await _funded_account(dx_gateway)
    start = await balance(dx_gateway, source), await balance(dx_gateway, target)
    key = f"tr-{uuid.uuid4()}"
    puts = _cash_puts(dx_sandbox)

    done = await _transfer(dx_gateway, source, target, "30.00", key)

    assert done["errors"] == [] and done["replayed"] is False
    transfer = done["transfer"]
    assert transfer["state"] == "DEPOSITED"
    assert transfer["amount"] == {"amount": "30.00", "currency": "USD"}
    assert [(s["step"], s["outcome"]) for s in transfer["steps"]] == [
        ("WITHDRAW", "ok"),
        ("DEPOSIT", "ok"),
    ]
    assert all(s["externalId"] for s in transfer["steps"])
    assert _cash_puts(dx_sandbox) == puts + 2
    assert await balance(dx_gateway, source) == start[0] - Decimal("30.00")
    assert await balance(dx_gateway, target) == start[1] + Decimal("30.00")
    assert await _states(dx_gateway, key) == [("WITHDRAW", "WITHDRAWN"), ("DEPOSIT", "DEPOSITED")]
    assert await _step_audit(dx_gateway, key) == [
        ("withdraw", f"{key}:withdraw", "ok"),
        ("deposit", f"{key}:deposit", "ok"),
    ]
    read = await dx_gateway.query(QUERY, {"id": transfer["id"]})
    assert read["data"]["transfer"]["state"] == "DEPOSITED"


async def test_a_refused_deposit_is_compensated(
    dx_gateway: TestGateway, dx_sandbox: DxTradeSandbox
) -> None:
    source, target = await _funded_account(dx_gateway), await _funded_account(dx_gateway)
    start = await balance(dx_gateway, source), await balance(dx_gateway, target)
    key = f"tr-{uuid.uuid4()}"
    _terminate(dx_sandbox, target)

    done = await _transfer(dx_gateway, source, target, "25.00", key)

    assert done["errors"] == []
    transfer = done["transfer"]
    assert transfer["state"] == "COMPENSATED"
    steps = [(s["step"], s["outcome"]) for s in transfer["steps"]]
    assert steps == [("WITHDRAW", "ok"), ("DEPOSIT", "refused"), ("COMPENSATE", "ok")]
    assert await balance(dx_gateway, source) == start[0]
    assert await balance(dx_gateway, target) == start[1]
    assert await _states(dx_gateway, key) == [
        ("WITHDRAW", "WITHDRAWN"),
        ("DEPOSIT", "COMPENSATING"),
        ("COMPENSATE", "COMPENSATED"),
    ]
    assert await _step_audit(dx_gateway, key) == [
        ("withdraw", f"{key}:withdraw", "ok"),
        ("deposit", f"{key}:deposit", "error"),
        ("deposit", f"{key}:compensate", "ok"),
    ]
    # A retry returns the settled saga and sends nothing.
    puts = _cash_puts(dx_sandbox)
    again = await _transfer(dx_gateway, source, target, "25.00", key)
    assert again["replayed"] is True and again["transfer"]["state"] == "COMPENSATED"
    assert _cash_puts(dx_sandbox) == puts


async def test_a_double_submit_moves_the_money_once(
    dx_gateway: TestGateway, dx_sandbox: DxTradeSandbox
) -> None:
    source, target = await _funded_account(dx_gateway), await _funded_account(dx_gateway)
    start = await balance(dx_gateway, source), await balance(dx_gateway, target)
    key = f"tr-{uuid.uuid4()}"
    puts = _cash_puts(dx_sandbox)

    both = await asyncio.gather(
        *(_transfer(dx_gateway, source, target, "10.00", key) for _ in range(2))
    )
    again = await _transfer(dx_gateway, source, target, "10.00", key)

    assert sorted(p["replayed"] for p in both) == [False, True]
    assert again["replayed"] is True and again["transfer"]["state"] == "DEPOSITED"
    assert _cash_puts(dx_sandbox) == puts + 2
    assert await balance(dx_gateway, source) == start[0] - Decimal("10.00")
    assert await balance(dx_gateway, target) == start[1] + Decimal("10.00")
    assert await _states(dx_gateway, key) == [("WITHDRAW", "WITHDRAWN"), ("DEPOSIT", "DEPOSITED")]


async def test_an_unknown_deposit_waits_and_a_retry_resumes_it(
    dx_gateway: TestGateway, dx_sandbox: DxTradeSandbox
) -> None:
    source, target = await _funded_account(dx_gateway), await _funded_account(dx_gateway)
    start = await balance(dx_gateway, source), await balance(dx_gateway, target)
    key = f"tr-{uuid.uuid4()}"
    dx_sandbox.fail_next_call(DEPOSIT_ROUTE, 502, after_apply=True)

    lost = await _transfer(dx_gateway, source, target, "40.00", key)

    assert lost["errors"] == []
    assert lost["transfer"]["state"] == "DEPOSIT_UNKNOWN"
    assert [(s["step"], s["outcome"], s["errorCode"]) for s in lost["transfer"]["steps"]] == [
        ("WITHDRAW", "ok", None),
        ("DEPOSIT", "unknown", "OUTCOME_UNKNOWN"),
    ]
    # Never compensated blindly: the platform shows the deposit applied.
    assert await balance(dx_gateway, source) == start[0] - Decimal("40.00")
    assert await balance(dx_gateway, target) == start[1] + Decimal("40.00")
    puts = _cash_puts(dx_sandbox)

    resumed = await _transfer(dx_gateway, source, target, "40.00", key)

    assert resumed["replayed"] is True
    assert resumed["transfer"]["state"] == "DEPOSITED"
    assert _cash_puts(dx_sandbox) == puts  # settled by reading, not sent again
    assert await balance(dx_gateway, target) == start[1] + Decimal("40.00")
    assert await _states(dx_gateway, key) == [
        ("WITHDRAW", "WITHDRAWN"),
        ("DEPOSIT", "DEPOSIT_UNKNOWN"),
        ("DEPOSIT", "DEPOSITED"),
    ]


async def test_another_partners_account_is_not_found_before_any_call(
    dx_gateway: TestGateway, dx_sandbox: DxTradeSandbox
) -> None:
    source = await _funded_account(dx_gateway)
    foreign = await _funded_account(dx_gateway, "DEMO-002")
    calls = sum(dx_sandbox.calls.values())

    refused = await _transfer(dx_gateway, source, foreign, "5.00", f"tr-{uuid.uuid4()}")

    assert [(e["code"], e["field"]) for e in refused["errors"]] == [("NOT_FOUND", ["toAccountId"])]
    assert refused["transfer"] is None
    assert sum(dx_sandbox.calls.values()) == calls


async def test_a_refused_withdrawal_fails_the_transfer_and_moves_nothing(
    dx_gateway: TestGateway, dx_sandbox: DxTradeSandbox
) -> None:
    source, target = await _funded_account(dx_gateway), await _funded_account(dx_gateway)
    start = await balance(dx_gateway, source), await balance(dx_gateway, target)
    key = f"tr-{uuid.uuid4()}"
    puts = _cash_puts(dx_sandbox)

    failed = await _transfer(dx_gateway, source, target, str(start[0] + 1), key)

    assert failed["transfer"]["state"] == "FAILED"
    steps = failed["transfer"]["steps"]
    assert [(s["step"], s["outcome"], s["errorCode"]) for s in steps] == [
        ("WITHDRAW", "refused", "INSUFFICIENT_FUNDS")
    ]
    assert _cash_puts(dx_sandbox) == puts + 1  # the refused withdrawal, nothing else
    assert (await balance(dx_gateway, source), await balance(dx_gateway, target)) == start
    assert await _states(dx_gateway, key) == [("WITHDRAW", "FAILED")]


async def test_the_key_of_another_transfer_is_a_conflict(
    dx_gateway: TestGateway, dx_sandbox: DxTradeSandbox
) -> None:
    source, target = await _funded_account(dx_gateway), await _funded_account(dx_gateway)
    key = f"tr-{uuid.uuid4()}"
    first = await _transfer(dx_gateway, source, target, "1.00", key)
    assert first["transfer"]["state"] == "DEPOSITED"
    puts = _cash_puts(dx_sandbox)

    other = await _transfer(dx_gateway, source, target, "2.00", key)

    assert [e["code"] for e in other["errors"]] == ["IDEMPOTENCY_CONFLICT"]
    assert _cash_puts(dx_sandbox) == puts


async def test_accounts_in_two_currencies_are_refused_before_any_write(
    dx_gateway: TestGateway, dx_sandbox: DxTradeSandbox
) -> None:
    source, target = await _funded_account(dx_gateway), await _funded_account(dx_gateway)
    account = dx_sandbox.state.account_by_id(target)
    assert account is not None
    account.currency = "EUR"  # as if opened in EUR: the sandbox's CRM users are USD
    await dx_gateway.clear_cache()
    puts = _cash_puts(dx_sandbox)

    refused = await _transfer(dx_gateway, source, target, "5.00", f"tr-{uuid.uuid4()}")

    assert [(e["code"], e["field"]) for e in refused["errors"]] == [
        ("INVALID_INPUT", ["toAccountId"])
    ]
    assert _cash_puts(dx_sandbox) == puts


async def test_a_transfer_is_read_by_its_partner_only(dx_gateway: TestGateway) -> None:
    source, target = await _funded_account(dx_gateway), await _funded_account(dx_gateway)
    done = await _transfer(dx_gateway, source, target, "1.00", f"tr-{uuid.uuid4()}")
    transfer_id = done["transfer"]["id"]

    seen = {
        token: await dx_gateway.query(QUERY, {"id": transfer_id}, token=token)
        for token in ("admin", "manager", "client", "other_client")
    }

    for token in ("admin", "manager", "client"):  # DEMO-001's staff and its client
        assert seen[token]["data"]["transfer"]["id"] == transfer_id, seen[token]
    other = seen["other_client"]
    assert other["data"] is None
    assert other["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    # Moving money is staff work: a client's transfer is refused before any check.
    refused = await dx_gateway.query(
        TRANSFER,
        {
            "input": {
                "fromAccountId": account_gid(source),
                "toAccountId": account_gid(target),
                "amount": "1.00",
                "idempotencyKey": f"tr-{uuid.uuid4()}",
            }
        },
        token="client",
    )
    assert [e["code"] for e in refused["data"]["transferFunds"]["errors"]] == ["PERMISSION_DENIED"]


async def _audit_of_round(gateway: TestGateway, key: str) -> list[tuple[str, str, str]]:
    """The saga's transitions the reconciler made: (step, state, settled_by)."""
    rows = await gateway.services.store.list_audit(limit=200, operation="transferFunds")
    return [
        (r.details["step"], r.details["state"], r.details["settled_by"])
        for r in reversed(rows)
        if r.idempotency_key == key and "settled_by" in r.details
    ]


async def test_the_gateway_resumes_an_unknown_deposit_without_a_retry(
    dx_sandbox: DxTradeSandbox, dx_gateway: TestGateway, tmp_path: Path
) -> None:
    async with settling_gateway(dx_sandbox, dx_gateway, tmp_path) as gateway:
        source, target = await _funded_account(gateway), await _funded_account(gateway)
        start = await balance(gateway, source), await balance(gateway, target)
        key = f"tr-{uuid.uuid4()}"
        dx_sandbox.fail_next_call(DEPOSIT_ROUTE, 502, after_apply=True)
        lost = await _transfer(gateway, source, target, "40.00", key)
        assert lost["transfer"]["state"] == "DEPOSIT_UNKNOWN"
        puts = _cash_puts(dx_sandbox)

        done = await gateway.services.reconciler.reconcile_now()

        assert (done.settled, done.resumed) == (1, 1)  # the deposit's claim, then the saga
        saga = await gateway.query(QUERY, {"id": lost["transfer"]["id"]})
        assert saga["data"]["transfer"]["state"] == "DEPOSITED"
        assert _cash_puts(dx_sandbox) == puts  # settled by reading, nothing sent again
        assert await balance(gateway, source) == start[0] - Decimal("40.00")
        assert await balance(gateway, target) == start[1] + Decimal("40.00")
        assert await _states(gateway, key) == [
            ("WITHDRAW", "WITHDRAWN"),
            ("DEPOSIT", "DEPOSIT_UNKNOWN"),
            ("DEPOSIT", "DEPOSITED"),
        ]
        assert await _audit_of_round(gateway, key) == [("DEPOSIT", "DEPOSITED", "reconciler")]
        # A later round finds nothing waiting; a retry replays the finished saga.
        assert (await gateway.services.reconciler.reconcile_now()).resumed == 0
        replay = await _transfer(gateway, source, target, "40.00", key)
        assert (replay["replayed"], replay["transfer"]["state"]) == (True, "DEPOSITED")
        assert _cash_puts(dx_sandbox) == puts


async def test_a_round_leaves_a_refused_transfer_as_it_is(
    dx_sandbox: DxTradeSandbox, dx_gateway: TestGateway, tmp_path: Path
) -> None:
    async with settling_gateway(dx_sandbox, dx_gateway, tmp_path) as gateway:
        source, target = await _funded_account(gateway), await _funded_account(gateway)
        start = await balance(gateway, source), await balance(gateway, target)
        key = f"tr-{uuid.uuid4()}"
        failed = await _transfer(gateway, source, target, str(start[0] + 1), key)
        assert failed["transfer"]["state"] == "FAILED"
        puts = _cash_puts(dx_sandbox)

        done = await gateway.services.reconciler.reconcile_now()

        assert done.resumed == 0  # final: nothing to resume, nothing to compensate
        saga = await gateway.query(QUERY, {"id": failed["transfer"]["id"]})
        assert saga["data"]["transfer"]["state"] == "FAILED"
        assert _cash_puts(dx_sandbox) == puts
        assert (await balance(gateway, source), await balance(gateway, target)) == start
        assert await _states(gateway, key) == [("WITHDRAW", "FAILED")]


async def test_a_round_waits_while_the_steps_claim_is_unsettled(
    dx_sandbox: DxTradeSandbox, dx_gateway: TestGateway, tmp_path: Path
) -> None:
    """The saga's deposit is lost and the read that would settle it fails: the round
    leaves the saga to its claim (no retry answered "in flight", no conflict row), and
    once the claim is settled a later round moves the saga on."""
    async with settling_gateway(
        dx_sandbox,
        dx_gateway,
        tmp_path,
        limits={"idempotency_lease_seconds": 1},
        resilience={"read_retries": 0},  # one failure is the read's answer
    ) as gateway:
        reconciler = gateway.services.reconciler
        source, target = await _funded_account(gateway), await _funded_account(gateway)
        key = f"tr-{uuid.uuid4()}"
        dx_sandbox.fail_next_call(DEPOSIT_ROUTE, 502, after_apply=True)
        lost = await _transfer(gateway, source, target, "15.00", key)
        assert lost["transfer"]["state"] == "DEPOSIT_UNKNOWN"
        puts = _cash_puts(dx_sandbox)

        dx_sandbox.fail_next(1, 503)  # the settling read
        first = await reconciler.reconcile_now()
        second = await reconciler.reconcile_now()  # the claim is held: not read again yet

        assert (first.unknown, first.resumed, second.resumed) == (1, 0, 0)
        saga = await gateway.query(QUERY, {"id": lost["transfer"]["id"]})
        assert saga["data"]["transfer"]["state"] == "DEPOSIT_UNKNOWN"
        rows = await gateway.services.store.list_audit(limit=400)
        conflicts = [r for r in rows if r.error_code == "IDEMPOTENCY_CONFLICT"]
        assert conflicts == []
        assert _cash_puts(dx_sandbox) == puts

        async def moved_on() -> bool:  # once the claim's hold has passed
            await reconciler.reconcile_now()
            state = await gateway.query(QUERY, {"id": lost["transfer"]["id"]})
            return bool(state["data"]["transfer"]["state"] == "DEPOSITED")

        for _ in range(100):
            if await moved_on():
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the saga never moved on")
        assert _cash_puts(dx_sandbox) == puts  # settled by reading, nothing sent again
