"""A cTrader write whose answer is lost is OUTCOME_UNKNOWN, never "not delivered".

GraphQL over HTTP → gateway → cTrader connector → sandbox, real sockets.  The
sandbox's knobs lose an answer after applying the request (``drop_next``) or answer a
proxy's 502 (``fail_next``); a stopped sandbox refuses the connection.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from brokergraph_ctrader.sandbox import CTraderSandbox

from gateway.store import IdempotencyState
from gateway.testing import TestGateway

from .conftest import account_gid

MONEY = """
mutation($input: MoneyMovementInput!) {
  %s(input: $input) {
    operation { externalId }
    replayed
    errors { __typename code message field }
  }
}"""
LOGIN = "9000002"
CHANGE_BALANCE = "POST /v2/webserv/traders/{login}/changebalance"


async def _move(gateway: TestGateway, operation: str, amount: str, key: str) -> dict[str, Any]:
    variables = {
        "input": {"accountId": account_gid(LOGIN), "amount": amount, "idempotencyKey": key}
    }
    body = await gateway.query(MONEY % operation, variables)
    assert "errors" not in body, body
    payload: dict[str, Any] = body["data"][operation]
    return payload


def _balance(sandbox: CTraderSandbox) -> Decimal:
    """The vendor's own truth, not the gateway's (possibly cached) view."""
    trader = sandbox.state.traders[int(LOGIN)]
    return Decimal(trader.balance).scaleb(-trader.money_digits)


async def _last_audit(gateway: TestGateway, key: str) -> tuple[str, str | None]:
    for entry in await gateway.services.store.list_audit(limit=20, operation="withdraw"):
        if entry.idempotency_key == key:
            return entry.outcome, entry.error_code
    raise AssertionError(f"no audit row for {key}")


async def _claim(gateway: TestGateway, key: str) -> IdempotencyState | None:
    record = await gateway.services.store.get_idempotent(f"money:ctrader:{LOGIN}", key)
    return None if record is None else record.state


async def test_a_lost_answer_is_outcome_unknown_and_keeps_the_key(
    gateway: TestGateway, sandbox: CTraderSandbox
) -> None:
    await _move(gateway, "deposit", "50.00", str(uuid.uuid4()))  # funds, token warm
    before, moves = _balance(sandbox), sandbox.calls[CHANGE_BALANCE]
    key = str(uuid.uuid4())
    sandbox.drop_next(1, after_apply=True)
    lost = await _move(gateway, "withdraw", "7.00", key)
    (error,) = lost["errors"]
    assert error["code"] == "OUTCOME_UNKNOWN"
    assert "SAME idempotencyKey" in error["message"]
    assert lost["operation"] is None
    assert _balance(sandbox) == before - Decimal("7.00")  # the money did move
    assert await _last_audit(gateway, key) == ("unknown", "OUTCOME_UNKNOWN")
    assert await _claim(gateway, key) is IdempotencyState.STARTED

    # The same key never re-sends blindly: the claim is kept, nothing moves again.
    again = await _move(gateway, "withdraw", "7.00", key)
    assert [e["code"] for e in again["errors"]] == ["IDEMPOTENCY_CONFLICT"]
    assert sandbox.calls[CHANGE_BALANCE] == moves + 1
    assert _balance(sandbox) == before - Decimal("7.00")

    # A new key is not blocked, and it is a new withdrawal: what the CRM was told
    # ("unknown", retry with the SAME key) is what keeps it from debiting twice.
    other = await _move(gateway, "withdraw", "7.00", str(uuid.uuid4()))
    assert other["errors"] == []
    assert _balance(sandbox) == before - Decimal("14.00")


async def test_a_proxy_502_is_outcome_unknown_not_not_delivered(
    gateway: TestGateway, sandbox: CTraderSandbox
) -> None:
    await _move(gateway, "deposit", "1.00", str(uuid.uuid4()))  # token warm
    key = str(uuid.uuid4())
    sandbox.fail_next(1, 502)
    payload = await _move(gateway, "withdraw", "3.00", key)
    assert [e["code"] for e in payload["errors"]] == ["OUTCOME_UNKNOWN"]
    assert await _last_audit(gateway, key) == ("unknown", "OUTCOME_UNKNOWN")
    assert await _claim(gateway, key) is IdempotencyState.STARTED


async def test_a_refused_connection_is_not_delivered_and_frees_the_key(
    gateway: TestGateway, sandbox: CTraderSandbox
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
    assert await _last_audit(gateway, key) == ("error", "UPSTREAM_UNAVAILABLE")
    assert await _claim(gateway, key) is None  # released: a retry may send it
    done = await _move(gateway, "withdraw", "2.00", key)
    assert done["errors"] == [] and done["replayed"] is False
    assert _balance(sandbox) == before - Decimal("2.00")
