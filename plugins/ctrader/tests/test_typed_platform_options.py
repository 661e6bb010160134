"""cTrader's typed provisioning options (``createTrader(input: {…, ctrader: {…}})`` and
``openAccount`` with ``ctrader``), end to end through GraphQL against the sandbox: what
they say reaches the trader cTrader stores; a bad value is INVALID_INPUT on
``ctrader.<key>`` with no write; the JSON ``options`` keep working."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

from brokergraph_ctrader.sandbox import CTraderSandbox

from gateway.testing import TestGateway

from .conftest import delta, writes

CREATE = """
mutation($input: CreateTraderInput!) {
  createTrader(input: $input) {
    trader { id }
    accounts {
      externalId ... on CTraderAccount { accessRights accountType swapFree introducingBrokers }
    }
    errors { code field }
  }
}"""

OPEN = """
mutation($input: OpenAccountInput!) {
  openAccount(input: $input) { account { externalId } errors { code field } }
}"""


def _create(**fields: Any) -> dict[str, Any]:
    email = f"typed-{uuid.uuid4().hex[:8]}@example.com"
    return {"input": {"platform": "ctrader", "partnerCode": "DEMO-002", "email": email, **fields}}


async def test_typed_options_reach_the_trader_ctrader_stores(
    gateway: TestGateway, sandbox: CTraderSandbox
) -> None:
    typed = {
        "accessRights": "NO_TRADING",  # the KYC pattern (A4.2): create, then allow trading
        "accountType": "NETTED",
        "totalMarginCalculationType": "SUM",
        "swapFree": True,
        "introducingBroker1": "IB-42",
        "preferredLanguage": "DE",
    }
    data = await gateway.data(CREATE, _create(ctrader=typed))
    payload = data["createTrader"]
    assert payload["errors"] == [], payload
    (account,) = payload["accounts"]
    assert (account["accessRights"], account["accountType"], account["swapFree"]) == (
        "NO_TRADING",
        "NETTED",
        True,
    )
    trader = sandbox.state.traders[int(account["externalId"])]
    assert (trader.access_rights, trader.account_type, trader.total_margin_calculation_type) == (
        "NO_TRADING",
        "NETTED",
        "SUM",
    )
    assert trader.swap_free is True
    assert trader.contact_details["introducingBroker1"] == "IB-42"

    opened = await gateway.data(
        OPEN,
        {
            "input": {
                "traderId": payload["trader"]["id"],
                "currency": "USD",
                "ctrader": {"accountType": "SPREAD_BETTING", "accessRights": "CLOSE_ONLY"},
            }
        },
    )
    assert opened["openAccount"]["errors"] == [], opened
    second = sandbox.state.traders[int(opened["openAccount"]["account"]["externalId"])]
    assert (second.account_type, second.access_rights) == ("SPREAD_BETTING", "CLOSE_ONLY")


async def test_bad_typed_options_are_refused_before_any_write(
    gateway: TestGateway, sandbox: CTraderSandbox
) -> None:
    before = Counter(sandbox.calls)
    data = await gateway.data(CREATE, _create(ctrader={"introducingBroker1": " IB-42"}))
    assert data["createTrader"]["errors"] == [
        {"code": "INVALID_INPUT", "field": ["ctrader", "introducingBroker1"]}
    ]
    data = await gateway.data(
        CREATE, _create(ctrader={"swapFree": True}, options={"swapFree": True})
    )
    assert data["createTrader"]["errors"] == [{"code": "INVALID_INPUT", "field": ["options"]}]
    data = await gateway.data(CREATE, _create(platform="dxtrade", ctrader={"swapFree": True}))
    assert data["createTrader"]["errors"] == [{"code": "INVALID_INPUT", "field": ["ctrader"]}]
    refused = await gateway.query(CREATE, _create(ctrader={"accountType": "HEDGING"}))
    assert refused["data"] is None
    assert refused["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
    assert writes(delta(before, sandbox.calls)) == 0
