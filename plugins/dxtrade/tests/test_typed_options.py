"""Seed 004's account ``type`` and ``status`` on create, through createTrader's options
(end to end against the DXtrade sandbox): they reach DXtrade as given, where before
they were refused as unknown options; values DXtrade does not have, and the final
statuses an account could never trade in, are refused before any call."""

from __future__ import annotations

import uuid
from typing import Any

from brokergraph_dxtrade.sandbox import DxTradeSandbox

from gateway.testing import TestGateway

CREATE = """
mutation($input: CreateTraderInput!) { createTrader(input: $input) {
  accounts { externalId status ... on DxTradeAccount { accountType categories { category value } } }
  errors { code message field }
} }"""


def _input(options: dict[str, Any]) -> dict[str, Any]:
    login = f"typed-{uuid.uuid4().hex[:8]}"
    return {
        "input": {
            "platform": "dxtrade",
            "partnerCode": "DEMO-001",
            "email": f"{login}@example.com",
            "currency": "USD",
            "isLive": False,
            "options": {"login": login, **options},
        }
    }


async def test_seed_004_account_type_status_and_categories_reach_dxtrade(
    dx_gateway: TestGateway, dx_sandbox: DxTradeSandbox
) -> None:
    categories = [{"category": "TRADE_TYPE", "value": "FUTURES"}]
    options = {"type": "CLIENT", "status": "CLOSE_ONLY", "categories": categories}
    result = await dx_gateway.query(CREATE, _input(options))
    payload = result["data"]["createTrader"]
    assert payload["errors"] == [], payload
    (account,) = payload["accounts"]
    assert account["categories"] == categories
    assert account["status"] == "CLOSE_ONLY"
    clearing, code = account["externalId"].split(":", 1)
    made = dx_sandbox.state.account(clearing, code)
    assert (made.type, made.status, made.categories) == ("CLIENT", "CLOSE_ONLY", categories)

    result = await dx_gateway.query(CREATE, _input({"type": "OFFSET"}))
    (account,) = result["data"]["createTrader"]["accounts"]
    made = dx_sandbox.state.account(*account["externalId"].split(":", 1))
    assert (made.type, made.status) == ("OFFSET", "FULL_TRADING")  # status: the default


async def test_unknown_or_final_values_are_refused_before_any_call(
    dx_gateway: TestGateway, dx_sandbox: DxTradeSandbox
) -> None:
    before = sum(dx_sandbox.calls.values())
    for options, field in (
        ({"type": "BROKER"}, "type"),
        ({"type": 1}, "type"),
        ({"status": "TERMINATED"}, "status"),
        ({"status": "EXPIRED"}, "status"),
        ({"status": "ONLINE"}, "status"),  # the user's status, not the account's
    ):
        result = await dx_gateway.query(CREATE, _input(options))
        errors = result["data"]["createTrader"]["errors"]
        assert [(e["code"], e["field"]) for e in errors] == [
            ("INVALID_INPUT", ["options", field])
        ], options
    assert sum(dx_sandbox.calls.values()) == before, "a refused input reached DXtrade"
