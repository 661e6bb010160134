"""instruments(accountId, symbols) on cTrader: WebServices' symbol list (6.1) gives a
symbol's name and asset class only, so every order rule reads null — never the
analytics' inferred lot sizes, which are not cTrader data."""

from __future__ import annotations

from typing import Any

from brokergraph_ctrader.sandbox import CTraderSandbox
from brokergraph_ctrader.sandbox.market import SYMBOLS

from gateway.testing import TestGateway
from plugins.ctrader.tests.conftest import account_gid

QUERY = """query($id: ID!, $symbols: [String!]) {
  instruments(accountId: $id, symbols: $symbols) {
    platform symbol kind description currency tickSize contractSize lotSize
    minQuantity maxQuantity quantityIncrement tradingStatus tradingHours { weekday }
  } }"""
LIST = "GET /v2/webserv/symbols"
RULES = (
    "description",
    "currency",
    "tickSize",
    "contractSize",
    "lotSize",
    "minQuantity",
    "maxQuantity",
    "quantityIncrement",
    "tradingStatus",
    "tradingHours",
)


async def ask(gateway: TestGateway, symbols: list[str] | None, token: str = "client") -> Any:
    return await gateway.query(QUERY, {"id": account_gid("9000001"), "symbols": symbols}, token)


async def test_symbols_answer_with_their_asset_class_and_no_made_up_rules(
    gateway: TestGateway, sandbox: CTraderSandbox
) -> None:
    result = await ask(gateway, None)
    assert "errors" not in result, result
    found = result["data"]["instruments"]
    assert [(i["symbol"], i["kind"]) for i in found] == sorted(
        (s.name, s.asset_class) for s in SYMBOLS
    )
    for instrument in found:
        assert instrument["platform"] == "ctrader"
        assert {rule: instrument[rule] for rule in RULES} == dict.fromkeys(RULES)

    lists = sandbox.calls[LIST]
    named = await ask(gateway, ["GBPUSD", "EURUSD"])
    assert [i["symbol"] for i in named["data"]["instruments"]] == ["GBPUSD", "EURUSD"]
    assert sandbox.calls[LIST] == lists, "the symbol list is read once per its TTL"


async def test_unknown_symbols_and_foreign_accounts(
    gateway: TestGateway, sandbox: CTraderSandbox
) -> None:
    result = await ask(gateway, ["EURUSD", "NOPE"])
    (error,) = result["errors"]
    assert error["extensions"]["code"] == "NOT_FOUND"
    assert error["extensions"]["details"]["symbols"] == ["NOPE"]
    before = sum(sandbox.calls.values())
    foreign = await ask(gateway, ["EURUSD"], token="other_client")
    assert foreign["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert sum(sandbox.calls.values()) == before, "refused before any call"
