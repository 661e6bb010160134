"""The composed schema: the committed SDL, introspection, federation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.cli import main
from gateway.graphql import build_schema
from gateway.graphql.ids import encode_id
from gateway.plugins import load_plugins

ROOT = Path(__file__).resolve().parent.parent


def test_committed_sdl_matches_the_default_install() -> None:
    expected = (ROOT / "schema" / "schema.graphql").read_text(encoding="utf-8")
    assert build_schema(load_plugins()).as_str() + "\n" == expected, (
        "schema/schema.graphql is stale: run `brokergraph schema --output schema/schema.graphql`"
    )


def test_schema_check_command_fails_on_a_stale_file(tmp_path: Path, capsys: Any) -> None:
    stale = tmp_path / "schema.graphql"
    stale.write_text("type Query { old: Int }\n")
    assert main(["schema", "--check", str(stale)]) == 1
    assert "out of date" in capsys.readouterr().out
    assert main(["schema", "--output", str(stale)]) == 0
    assert main(["schema", "--check", str(stale)]) == 0


REQUIRED_TYPES = {
    "BusinessPartner",
    "Trader",
    "Account",
    "Order",
    "Position",
    "Deal",
    "BalanceOperation",
    "MarketDataSubscription",
    "TaxCalculation",
    "ClientReport",
    "AccountAnalytics",
    "Money",
    "Decimal",
    "DateTime",
    "JSON",
    "Node",
    "PageInfo",
}
MUTATIONS = {
    "createBusinessPartner",
    "updateBusinessPartner",
    "deleteBusinessPartner",
    "enableTrading",
    "setTradingLeverage",
    "calculateTax",
    "requestClientReport",
    "createTrader",
    "openAccount",
    "updateAccount",
    "deactivateTrader",
    "reactivateTrader",
    "deposit",
    "withdraw",
    "changeCredit",
    "changeBonus",
    "placeOrder",
    "cancelOrder",
    "cancelOrders",
    "cancelOrdersForContract",
    "cancelAllOrders",
    "replaceOrder",
}
SUBSCRIPTIONS = {"orderEvents", "accountEvents", "marketDataSubscriptionEvents"}
QUERIES = {
    "node",
    "nodes",
    "me",
    "businessPartner",
    "businessPartners",
    "trader",
    "account",
    "accounts",
    "connectors",
}


async def test_introspection_shows_the_unified_schema(gateway: Any) -> None:
    status, body = await gateway.query(
        """{ __schema {
            types { name }
            queryType { fields { name } }
            mutationType { fields { name args { name } type { kind ofType { name } } } }
            subscriptionType { fields { name } }
        } }"""
    )
    assert status == 200, body
    schema = body["data"]["__schema"]
    assert {t["name"] for t in schema["types"]} >= REQUIRED_TYPES
    assert {f["name"] for f in schema["queryType"]["fields"]} >= QUERIES
    assert {f["name"] for f in schema["subscriptionType"]["fields"]} >= SUBSCRIPTIONS
    mutations = {f["name"]: f for f in schema["mutationType"]["fields"]}
    assert set(mutations) >= MUTATIONS
    for name in MUTATIONS:
        field = mutations[name]
        assert [a["name"] for a in field["args"]] == ["input"], name
        assert field["type"]["kind"] == "NON_NULL", name
        assert field["type"]["ofType"]["name"].endswith("Payload"), name


async def test_service_sdl_answers(gateway: Any) -> None:
    status, body = await gateway.query("{ _service { sdl } }")
    assert status == 200
    sdl = body["data"]["_service"]["sdl"]
    assert '@key(fields: "id")' in sdl and "type BusinessPartner" in sdl


async def test_entities_resolve_for_the_four_keyed_types(gateway: Any) -> None:
    partner = encode_id("BusinessPartner", "DEMO-001")
    trader = encode_id("Trader", "toy", "T1")
    account = encode_id("Account", "toy", "1001")
    order = encode_id("Order", "toy", "1001", "O1")
    status, body = await gateway.query(
        """query($r: [_Any!]!) { _entities(representations: $r) {
            __typename
            ... on BusinessPartner { code }
            ... on Trader { externalId }
            ... on Account { externalId }
            ... on Order { externalId }
        } }""",
        {
            "r": [
                {"__typename": "BusinessPartner", "id": partner},
                {"__typename": "Trader", "id": trader},
                {"__typename": "ToyAccount", "id": account},
                {"__typename": "Order", "id": order},
            ]
        },
    )
    assert status == 200, body
    entities = body["data"]["_entities"]
    assert entities[0] == {"__typename": "BusinessPartner", "code": "DEMO-001"}
    assert entities[1] == {"__typename": "Trader", "externalId": "T1"}
    assert entities[2] == {"__typename": "ToyAccount", "externalId": "1001"}
    assert entities[3] == {"__typename": "Order", "externalId": "O1"}


async def test_entities_respect_the_viewer(gateway: Any) -> None:
    other = encode_id("BusinessPartner", "OTHER-001")
    status, body = await gateway.query(
        """query($r: [_Any!]!) { _entities(representations: $r) {
            ... on BusinessPartner { code } } }""",
        {"r": [{"__typename": "BusinessPartner", "id": other}]},
        token="client",
    )
    assert body["data"]["_entities"] == [None]
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
