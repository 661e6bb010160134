"""instruments(accountId, symbols) on DXtrade: dxsca-web's account-scoped instrument
query through the gateway's read road, checked against the sandbox's own catalogue."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from brokergraph_dxtrade.sandbox import DxTradeSandbox
from brokergraph_dxtrade.sandbox.instruments import INSTRUMENTS

from gateway.testing import TestGateway
from plugins.dxtrade.tests.conftest import account_gid

QUERY = """query($id: ID!, $symbols: [String!]) {
  instruments(accountId: $id, symbols: $symbols) {
    platform symbol description kind currency tickSize contractSize lotSize
    minQuantity maxQuantity quantityIncrement tradingStatus
    tradingHours { weekday time event }
  } }"""
READ = "GET /dxsca-web/accounts/{account}/instruments/query"
ALICE = account_gid("default:alice-usd")


async def ask(gateway: TestGateway, symbols: list[str] | None, token: str = "client") -> Any:
    return await gateway.query(QUERY, {"id": ALICE, "symbols": symbols}, token=token)


def error_of(result: dict[str, Any]) -> dict[str, Any]:
    (error,) = result["errors"]
    assert result["data"] is None
    extensions: dict[str, Any] = error["extensions"]
    return extensions


async def test_named_instruments_answer_the_platforms_specification(
    dx_gateway: TestGateway, dx_sandbox: DxTradeSandbox
) -> None:
    await dx_gateway.clear_cache()
    calls = dx_sandbox.calls[READ]
    result = await ask(dx_gateway, ["US500", "EUR/USD"])
    assert "errors" not in result, result
    found = result["data"]["instruments"]
    assert [i["symbol"] for i in found] == ["US500", "EUR/USD"], "in the order asked"
    assert dx_sandbox.calls[READ] == calls + 1, "one dxsca-web read for both"
    for instrument in found:
        spec = INSTRUMENTS[instrument["symbol"]]
        assert instrument["platform"] == "dxtrade"
        assert (instrument["description"], instrument["kind"], instrument["currency"]) == (
            spec.description,
            spec.type,
            spec.currency,
        )
        numbers = {
            "tickSize": spec.price_increment,
            "contractSize": spec.multiplier,
            "lotSize": spec.lot_size,
            "minQuantity": spec.min_order_size,
            "maxQuantity": spec.max_order_size,
            "quantityIncrement": spec.quantity_increment,
        }
        assert {k: Decimal(instrument[k]) for k in numbers} == numbers
        assert instrument["tradingStatus"] == "FULL"  # alice-usd is FULL_TRADING
        hours = [(h["weekday"], h["time"], h["event"]) for h in instrument["tradingHours"]]
        assert hours == [(d, t, k.removeprefix("SESSION_")) for d, t, k in spec.hours]

    # The same question again is answered from the cache (the connector's TTL).
    again = await ask(dx_gateway, ["US500", "EUR/USD"])
    assert again["data"]["instruments"] == found
    assert dx_sandbox.calls[READ] == calls + 1


async def test_all_instruments_come_by_symbol(
    dx_gateway: TestGateway, dx_sandbox: DxTradeSandbox
) -> None:
    result = await ask(dx_gateway, None)
    assert "errors" not in result, result
    assert [i["symbol"] for i in result["data"]["instruments"]] == sorted(INSTRUMENTS)


async def test_an_unknown_symbol_is_not_found_by_name(
    dx_gateway: TestGateway, dx_sandbox: DxTradeSandbox
) -> None:
    result = await ask(dx_gateway, ["EUR/USD", "NOPE/USD"])
    error = error_of(result)
    assert (error["code"], error["field"]) == ("NOT_FOUND", ["symbols"])
    assert error["details"]["symbols"] == ["NOPE/USD"]


async def test_bad_symbols_and_foreign_accounts_make_no_upstream_call(
    dx_gateway: TestGateway, dx_sandbox: DxTradeSandbox
) -> None:
    await dx_gateway.clear_cache()
    calls = dx_sandbox.calls[READ]
    for symbols, field in (
        ([], ["symbols"]),
        ([""], ["symbols", "0"]),
        (["EUR/USD", " GBP/USD"], ["symbols", "1"]),
        (["x" * 65], ["symbols", "0"]),
        (["EUR/USD\n"], ["symbols", "0"]),
        ([f"S{i}" for i in range(101)], ["symbols"]),
    ):
        error = error_of(await ask(dx_gateway, symbols))
        assert (error["code"], error["field"]) == ("INVALID_INPUT", field), symbols
    # Another partner's client: the account does not exist for them, whatever they ask.
    asked: list[list[str] | None] = [["EUR/USD"], [""], None]
    for wanted in asked:
        error = error_of(await ask(dx_gateway, wanted, token="other_client"))
        assert error["code"] == "NOT_FOUND", wanted
    assert dx_sandbox.calls[READ] == calls
