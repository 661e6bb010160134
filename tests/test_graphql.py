"""The unified schema against the toy platform, end to end over real sockets."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import Any

from gateway.graphql.ids import encode_id

ACCOUNT = encode_id("Account", "toy", "1001")
OTHER_ACCOUNT = encode_id("Account", "toy", "3001")

MONEY = """mutation($input: MoneyMovementInput!) {
  %s(input: $input) {
    replayed
    operation { externalId kind amount { amount currency } }
    errors { __typename code message field }
  }
}"""

BALANCE = "query($id: ID!) { account(id: $id) { balance { amount currency } } }"


def key() -> str:
    return f"test-{uuid.uuid4()}"


async def balance(gateway: Any, account: str = ACCOUNT) -> Decimal:
    # The account read is cached for the connector's TTL; a mutation invalidates it.
    status, body = await gateway.query(BALANCE, {"id": account})
    assert status == 200, body
    return Decimal(body["data"]["account"]["balance"]["amount"])


async def test_partner_accounts_with_money_as_decimal_strings(gateway: Any) -> None:
    status, body = await gateway.query(
        """{ businessPartner(code: "DEMO-001") {
            code broker
            accounts { __typename externalId currency balance { amount currency }
                       positions { symbol volume } }
            traders { externalId }
        } }"""
    )
    assert status == 200, body
    partner = body["data"]["businessPartner"]
    assert partner["broker"] == "demo-broker"
    accounts = {a["externalId"]: a for a in partner["accounts"]}
    assert set(accounts) == {"1001", "1002"}
    assert accounts["1001"]["__typename"] == "ToyAccount"
    assert isinstance(accounts["1001"]["balance"]["amount"], str)
    Decimal(accounts["1001"]["balance"]["amount"])
    assert [t["externalId"] for t in partner["traders"]] == ["T1"]


async def test_reads_are_batched_per_platform(gateway: Any) -> None:
    sandbox = gateway.sandbox
    await gateway.services.cache.delete_prefix("")
    before = dict(sandbox.calls)
    status, body = await gateway.query(
        """{ a: businessPartner(code: "DEMO-001") { accounts { positions { symbol } } }
             b: businessPartner(code: "DEMO-002") { accounts { positions { symbol } } } }"""
    )
    assert status == 200, body
    made = {k: v - before.get(k, 0) for k, v in sandbox.calls.items() if v != before.get(k, 0)}
    # three accounts over two partners: one accounts call and one positions call in all
    assert sum(made.values()) == 2, made


async def test_client_sees_only_their_partner(gateway: Any) -> None:
    status, body = await gateway.query(
        "query($id: ID!) { account(id: $id) { externalId } }", {"id": OTHER_ACCOUNT}, token="client"
    )
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    status, body = await gateway.query(
        "query($id: ID!) { node(id: $id) { id } }",
        {"id": encode_id("BusinessPartner", "OTHER-001")},
        token="client",
    )
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    status, body = await gateway.query(
        "{ businessPartners { edges { node { code } } } me { code } }", token="client"
    )
    assert [e["node"]["code"] for e in body["data"]["businessPartners"]["edges"]] == ["DEMO-001"]
    assert body["data"]["me"]["code"] == "DEMO-001"


async def test_manager_sees_only_their_brokers(gateway: Any) -> None:
    status, body = await gateway.query(
        "{ businessPartners { edges { node { code } } } }", token="manager"
    )
    codes = [e["node"]["code"] for e in body["data"]["businessPartners"]["edges"]]
    assert codes == ["DEMO-001", "DEMO-002"]


async def test_deposit_then_withdraw_moves_exact_amounts(gateway: Any) -> None:
    start = await balance(gateway)
    status, body = await gateway.query(
        MONEY % "deposit",
        {"input": {"accountId": ACCOUNT, "amount": "100.05", "idempotencyKey": key()}},
    )
    assert status == 200, body
    payload = body["data"]["deposit"]
    assert payload["errors"] == [] and payload["replayed"] is False
    assert payload["operation"]["amount"]["amount"] == "100.05"
    assert await balance(gateway) == start + Decimal("100.05")
    status, body = await gateway.query(
        MONEY % "withdraw",
        {"input": {"accountId": ACCOUNT, "amount": "0.05", "idempotencyKey": key()}},
    )
    assert body["data"]["withdraw"]["errors"] == []
    assert await balance(gateway) == start + Decimal("100")


async def test_a_retry_with_the_same_key_replays_and_moves_nothing(gateway: Any) -> None:
    start = await balance(gateway)
    variables = {"input": {"accountId": ACCOUNT, "amount": "10", "idempotencyKey": key()}}
    first = (await gateway.query(MONEY % "deposit", variables))[1]["data"]["deposit"]
    again = (await gateway.query(MONEY % "deposit", variables))[1]["data"]["deposit"]
    assert again["replayed"] is True
    assert again["operation"] == first["operation"]
    assert await balance(gateway) == start + Decimal(10)


async def test_concurrent_identical_requests_move_money_once(gateway: Any) -> None:
    start = await balance(gateway)
    variables = {"input": {"accountId": ACCOUNT, "amount": "7", "idempotencyKey": key()}}
    results = await asyncio.gather(*(gateway.query(MONEY % "deposit", variables) for _ in range(6)))
    payloads = [body["data"]["deposit"] for _, body in results]
    moved = [p for p in payloads if p["operation"] and not p["replayed"]]
    assert len(moved) == 1
    for payload in payloads:
        assert payload["operation"] or payload["errors"][0]["code"] == "IDEMPOTENCY_CONFLICT"
    assert await balance(gateway) == start + Decimal(7)


async def test_same_key_with_another_amount_is_a_conflict(gateway: Any) -> None:
    k = key()
    await gateway.query(
        MONEY % "deposit", {"input": {"accountId": ACCOUNT, "amount": "1", "idempotencyKey": k}}
    )
    _, body = await gateway.query(
        MONEY % "deposit", {"input": {"accountId": ACCOUNT, "amount": "2", "idempotencyKey": k}}
    )
    assert body["data"]["deposit"]["errors"][0]["code"] == "IDEMPOTENCY_CONFLICT"


async def test_withdrawal_over_free_funds_is_typed_and_moves_nothing(gateway: Any) -> None:
    start = await balance(gateway)
    _, body = await gateway.query(
        MONEY % "withdraw",
        {"input": {"accountId": ACCOUNT, "amount": str(start + 1), "idempotencyKey": key()}},
    )
    error = body["data"]["withdraw"]["errors"][0]
    assert error["__typename"] == "InsufficientFundsError" and error["code"] == "INSUFFICIENT_FUNDS"
    assert await balance(gateway) == start


async def test_bad_input_is_typed_and_makes_no_upstream_call(gateway: Any) -> None:
    sandbox = gateway.sandbox
    cases = [
        ({"amount": "0"}, "INVALID_INPUT", ["amount"]),
        ({"amount": "-5"}, "INVALID_INPUT", ["amount"]),
        ({"amount": "1.123456789"}, "INVALID_INPUT", ["amount"]),
        ({"idempotencyKey": "short"}, "INVALID_INPUT", ["idempotencyKey"]),
        ({"accountId": "not-an-id"}, "INVALID_INPUT", ["accountId"]),
        ({"accountId": encode_id("Account", "toy", "9999")}, "NOT_FOUND", None),
        ({"accountId": encode_id("Account", "nowhere", "1")}, "NOT_FOUND", None),
    ]
    for override, code, field in cases:
        before = sum(sandbox.calls.values())
        variables = {
            "input": {"accountId": ACCOUNT, "amount": "5", "idempotencyKey": key(), **override}
        }
        _, body = await gateway.query(MONEY % "deposit", variables)
        error = body["data"]["deposit"]["errors"][0]
        assert error["code"] == code, (override, error)
        if field:
            assert error["field"] == field
        assert sum(sandbox.calls.values()) == before, override


async def test_float_amounts_are_refused_at_the_scalar(gateway: Any) -> None:
    _, body = await gateway.query(
        MONEY % "deposit", {"input": {"accountId": ACCOUNT, "amount": 1.1, "idempotencyKey": key()}}
    )
    assert body["data"] is None
    assert "strings" in body["errors"][0]["message"]


async def test_clients_cannot_move_money(gateway: Any) -> None:
    _, body = await gateway.query(
        MONEY % "deposit",
        {"input": {"accountId": ACCOUNT, "amount": "5", "idempotencyKey": key()}},
        token="client",
    )
    assert body["data"]["deposit"]["errors"][0]["code"] == "PERMISSION_DENIED"


async def test_missing_capability_is_a_typed_error_not_a_crash(gateway: Any) -> None:
    _, body = await gateway.query(
        'mutation { enableTrading(input: {partnerCode: "DEMO-001"}) '
        "{ errors { __typename code ... on CapabilityNotSupportedError { capability } } } }"
    )
    error = body["data"]["enableTrading"]["errors"][0]
    assert error == {
        "__typename": "CapabilityNotSupportedError",
        "code": "CAPABILITY_NOT_SUPPORTED",
        "capability": "TRADING_ACCESS",
    }
    _, body = await gateway.query('{ businessPartner(code: "DEMO-001") { code reports { id } } }')
    # the rest of the partner still answers; only the unsupported field is null
    assert body["data"]["businessPartner"] == {"code": "DEMO-001", "reports": None}
    assert body["errors"][0]["extensions"]["code"] == "CAPABILITY_NOT_SUPPORTED"
    assert body["errors"][0]["path"] == ["businessPartner", "reports"]


async def test_connectors_lists_capabilities_and_health(gateway: Any) -> None:
    _, body = await gateway.query(
        "{ connectors { name version capabilities configured health { status } } }"
    )
    (toy,) = body["data"]["connectors"]
    assert toy["name"] == "toy" and toy["configured"] is True
    assert toy["health"]["status"] == "UP"
    assert "FUNDING" in toy["capabilities"] and "TAX" not in toy["capabilities"]


async def test_every_mutation_is_audited_without_secrets(gateway: Any) -> None:
    k = key()
    await gateway.query(
        MONEY % "deposit", {"input": {"accountId": ACCOUNT, "amount": "3", "idempotencyKey": k}}
    )
    await gateway.query(
        """mutation { createTrader(input: {platform: "toy", partnerCode: "DEMO-002",
            email: "new@example.com", password: "Secret-Pass-1"}) { errors { code } } }"""
    )
    entries = await gateway.services.store.list_audit(limit=10)
    deposit = next(e for e in entries if e.idempotency_key == k)
    assert deposit.operation == "deposit" and deposit.outcome == "ok"
    assert deposit.actor == "test-admin" and deposit.upstream_ref
    trader = next(e for e in entries if e.operation == "createTrader")
    assert "Secret-Pass-1" not in repr(trader.details)


CREATE_PARTNER = """mutation($input: CreateBusinessPartnerInput!) {
  createBusinessPartner(input: $input) { businessPartner { code name broker } errors { code } } }"""


async def test_partners_are_created_in_the_store_without_a_back_office(gateway: Any) -> None:
    code = f"NEW-{uuid.uuid4().hex[:8]}"
    _, body = await gateway.query(
        CREATE_PARTNER,
        {"input": {"code": code, "name": "New Client", "broker": "demo-broker"}},
        token="manager",
    )
    payload = body["data"]["createBusinessPartner"]
    assert payload["errors"] == []
    assert payload["businessPartner"] == {
        "code": code,
        "name": "New Client",
        "broker": "demo-broker",
    }
    _, body = await gateway.query(
        CREATE_PARTNER,
        {"input": {"code": f"{code}-X", "name": "Elsewhere", "broker": "other-broker"}},
        token="manager",
    )
    assert body["data"]["createBusinessPartner"]["errors"] == [{"code": "PERMISSION_DENIED"}]
    _, body = await gateway.query(
        CREATE_PARTNER, {"input": {"code": "X-1", "name": "Me"}}, token="client"
    )
    assert body["data"]["createBusinessPartner"]["errors"] == [{"code": "PERMISSION_DENIED"}]
