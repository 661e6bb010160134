"""A CRM finds the movements it made by its own keys: a deposit's and a withdrawal's
``externalId`` is the idempotencyKey they were sent with, in their payload and in
``balanceOperations`` alike, with DXtrade's own transaction code beside it as
``platformId``.  GraphQL over HTTP → gateway → DXtrade sandbox, real sockets."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from brokergraph_dxtrade.sandbox import DxTradeSandbox

from gateway.testing import TestGateway

from .conftest import account_gid
from .test_graphql_dxtrade import create_crm_user

MONEY = """
mutation($input: MoneyMovementInput!) { %s(input: $input) {
  operation { externalId platformId kind } replayed errors { code message }
} }"""

OPERATIONS = """
query($id: ID!, $from: DateTime!, $to: DateTime!) { account(id: $id) {
  balanceOperations(from: $from, to: $to) {
    externalId platformId kind amount { amount currency } }
} }"""


async def _move(gateway: TestGateway, operation: str, account: str, key: str) -> dict[str, Any]:
    variables = {
        "input": {"accountId": account_gid(account), "amount": "10", "idempotencyKey": key}
    }
    payload: dict[str, Any] = (await gateway.query(MONEY % operation, variables))["data"][operation]
    assert payload["errors"] == [], payload
    return payload


async def test_balance_operations_carry_the_key_the_crm_sent(
    dx_gateway: TestGateway, dx_sandbox: DxTradeSandbox
) -> None:
    created = await create_crm_user(dx_gateway)
    account = created["accounts"][0]["externalId"]
    deposit_key, withdrawal_key = f"dep-{uuid.uuid4()}", f"wd-{uuid.uuid4()}"
    deposit = await _move(dx_gateway, "deposit", account, deposit_key)
    withdrawal = await _move(dx_gateway, "withdraw", account, withdrawal_key)
    assert deposit["operation"]["externalId"] == deposit_key
    assert withdrawal["operation"]["externalId"] == withdrawal_key

    await dx_gateway.clear_cache()
    now = datetime.now(UTC)
    period = {
        "from": (now - timedelta(days=1)).isoformat(),
        "to": (now + timedelta(days=1)).isoformat(),
    }
    result = await dx_gateway.query(OPERATIONS, {"id": account_gid(account), **period})
    assert "errors" not in result, result
    listed = result["data"]
    by_key = {op["externalId"]: op for op in listed["account"]["balanceOperations"]}
    assert by_key[deposit_key]["kind"] == "DEPOSIT"
    assert by_key[withdrawal_key]["kind"] == "WITHDRAWAL"
    # DXtrade's own id of each, the sandbox's transaction code, is kept beside it.
    codes = {t.code: t.transaction_code for t in dx_sandbox.state.transfers}
    assert by_key[deposit_key]["platformId"] == codes[deposit_key]
    assert by_key[withdrawal_key]["platformId"] == codes[withdrawal_key]
    assert codes[deposit_key] != deposit_key  # two ids, both shown
