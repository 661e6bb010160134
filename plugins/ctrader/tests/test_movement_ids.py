"""A CRM finds the movements it made by its own keys: a deposit's and a withdrawal's
``externalId`` is the idempotencyKey they were sent with (cTrader's ``externalId``),
in their payload and in ``balanceOperations`` alike, with cTrader's balanceHistoryId
beside it as ``platformId``.  GraphQL over HTTP → gateway → sandbox, real sockets."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from brokergraph_ctrader.sandbox import CTraderSandbox

from gateway.testing import TestGateway

from .conftest import account_gid

LOGIN = "9000002"
MONEY = """
mutation($input: MoneyMovementInput!) { %s(input: $input) {
  operation { externalId platformId kind } replayed errors { code message }
} }"""
OPERATIONS = """
query($id: ID!, $from: DateTime!, $to: DateTime!) { account(id: $id) {
  balanceOperations(from: $from, to: $to) { externalId platformId kind }
} }"""


async def _move(gateway: TestGateway, operation: str, key: str) -> dict[str, Any]:
    variables = {"input": {"accountId": account_gid(LOGIN), "amount": "3", "idempotencyKey": key}}
    body = await gateway.query(MONEY % operation, variables)
    payload: dict[str, Any] = body["data"][operation]
    assert payload["errors"] == [], payload
    return payload


async def test_balance_operations_carry_the_key_the_crm_sent(
    gateway: TestGateway, sandbox: CTraderSandbox
) -> None:
    deposit_key, withdrawal_key = f"dep-{uuid.uuid4()}", f"wd-{uuid.uuid4()}"
    deposit = await _move(gateway, "deposit", deposit_key)
    withdrawal = await _move(gateway, "withdraw", withdrawal_key)
    history = {e.external_id: str(e.id) for e in sandbox.state.balance_history}
    assert deposit["operation"] == {
        "externalId": deposit_key,
        "platformId": history[deposit_key],
        "kind": "DEPOSIT",
    }
    assert withdrawal["operation"]["externalId"] == withdrawal_key
    assert withdrawal["operation"]["platformId"] == history[withdrawal_key]

    await gateway.clear_cache()
    now = datetime.now(UTC)
    period = {
        "from": (now - timedelta(days=1)).isoformat(),
        "to": (now + timedelta(days=1)).isoformat(),
    }
    body = await gateway.query(OPERATIONS, {"id": account_gid(LOGIN), **period})
    assert "errors" not in body, body
    listed = {op["externalId"]: op for op in body["data"]["account"]["balanceOperations"]}
    assert listed[deposit_key] == deposit["operation"]
    assert listed[withdrawal_key] == withdrawal["operation"]
