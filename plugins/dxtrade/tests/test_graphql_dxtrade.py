"""Seed 004 end to end through GraphQL: a running gateway with the dxtrade connector, the
DXtrade sandbox behind it, and the sandbox's dxFeed callbacks reaching the gateway.

* create a user in CRM mode with ``dxFeedAccountId`` and an account as seed 004's body
  does (through ``options``), linked to a partner in the gateway store;
* deposit then withdraw (idempotency keys are DXtrade's client-generated ids);
* deactivate with subscription cancellation, the user's own login refused, reactivate
  with a new account (linked by the gateway);
* under each answer DXtrade might give where the vendor facts only guess (a repeated
  cash id, a stale ``If-Match``, a host without the disable route);
* an activation callback reaching a graphql-transport-ws subscriber.
"""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import Any

import httpx
from brokergraph_dxtrade.sandbox import CashIdRepeat, DxTradeSandbox

from gateway.testing import TestGateway

from .conftest import account_gid, receive, subscribe, trader_gid, unique, websocket

CREATE = """
mutation($input: CreateTraderInput!) { createTrader(input: $input) {
  trader { id externalId login email status }
  accounts { id externalId status isLive currency balance { amount currency }
    ... on DxTradeAccount { clearingCode accountCode accountType accountCashType
      categories { category value } } }
  steps { name succeeded reference message }
  errors { code message field }
} }"""

MONEY = """
mutation($input: MoneyMovementInput!) { %s(input: $input) {
  operation { externalId kind amount { amount currency } }
  replayed
  errors { code message }
} }"""

DEACTIVATE = """
mutation($input: DeactivateTraderInput!) { deactivateTrader(input: $input) {
  trader { status }
  accounts { externalId status }
  steps { name succeeded reference message }
  errors { code message }
} }"""

REACTIVATE = """
mutation($input: ReactivateTraderInput!) { reactivateTrader(input: $input) {
  trader { status }
  accounts { id externalId status ... on DxTradeAccount { accountCode accountType } }
  steps { name succeeded reference message }
  errors { code message }
} }"""

TRADER = """
query($id: ID!) { trader(id: $id) {
  status
  accounts { externalId status balance { amount } }
  marketDataSubscriptions { name active endsAt }
} }"""

ACCOUNT = """
query($id: ID!) { account(id: $id) {
  balance { amount currency } credit { amount } equity { amount }
  trader { externalId }
  ... on DxTradeAccount { clearingCode accountCode accountType categories { category value } }
} }"""

EVENTS = """
subscription($id: ID!) { marketDataSubscriptionEvents(traderId: $id) {
  traderId kind at subscription { name active endsAt }
} }"""

CATEGORIES = [{"category": "TRADE_TYPE", "value": "FUTURES"}]


async def user_login(
    gateway: TestGateway, sandbox: DxTradeSandbox, login: str, password: str
) -> httpx.Response:
    """The user's own login on dxsca-web (DxTradeXT gates it on dxFeed, seed 004 §2.2)."""
    async with httpx.AsyncClient(verify=sandbox.client_ssl_context(), timeout=60) as http:
        return await http.post(
            f"{sandbox.url}/dxsca-web/login",
            json={"username": login, "domain": "default", "password": password},
        )


async def create_crm_user(gateway: TestGateway, partner: str = "DEMO-001") -> dict[str, Any]:
    """Seed 004 §2.1's body, in CRM mode, through createTrader's options."""
    login = unique("prop-client")
    result = await gateway.query(
        CREATE,
        {
            "input": {
                "platform": "dxtrade",
                "partnerCode": partner,
                "email": "bob.smith@example.com",
                "password": "test",
                "currency": "USD",
                "isLive": False,
                "options": {
                    "mode": "CRM",
                    "dxFeedAccountId": str(uuid.uuid4()),
                    "login": login,
                    "accountCode": f"{login}-acc",
                    "accountType": "DEMO",
                    "accountCashType": "MARGIN",
                    "balance": 1000000,
                    "categories": CATEGORIES,
                },
            }
        },
    )
    payload: dict[str, Any] = result["data"]["createTrader"]
    assert payload["errors"] == [], payload
    return payload


async def balance(gateway: TestGateway, account_id: str) -> Decimal:
    await gateway.clear_cache()
    result = await gateway.query(ACCOUNT, {"id": account_gid(account_id)})
    return Decimal(result["data"]["account"]["balance"]["amount"])


async def test_seed_004_crm_user_lifecycle(
    dx_gateway: TestGateway, dx_sandbox: DxTradeSandbox, cash_id_repeat: CashIdRepeat
) -> None:
    gateway, sandbox = dx_gateway, dx_sandbox
    created = await create_crm_user(gateway)
    trader = created["trader"]
    login = trader["login"]
    trader_id = f"{login}@default"
    assert trader["externalId"] == trader_id
    assert trader["status"] == "ACTIVE"
    assert trader["email"] == "bob.smith@example.com"
    (account,) = created["accounts"]
    account_id = f"default:{login}-acc"
    assert account["externalId"] == account_id
    assert account["accountType"] == "DEMO"
    assert not account["isLive"]
    assert account["accountCashType"] == "MARGIN"
    assert account["categories"] == CATEGORIES
    assert Decimal(account["balance"]["amount"]) == 1000000
    assert account["balance"]["currency"] == "USD"
    assert [s["succeeded"] for s in created["steps"]] == [True]
    # The gateway recorded the links: the partner owns the trader and the account.
    links = await gateway.services.store.links_of_partner("DEMO-001", platform="dxtrade")
    linked = {(link.kind, link.external_id, link.trader_id) for link in links}
    assert ("trader", trader_id, None) in linked
    assert ("account", account_id, trader_id) in linked
    # What DXtrade holds: the seed-004 body as sent.
    client = sandbox.state.client("default", login)
    assert client.mode == "crm"
    assert client.dx_feed_account_id is not None

    # CRM mode with an empty dxFeed subscription set: the user may not log in yet.
    refused = await user_login(gateway, sandbox, login, "test")
    assert refused.status_code == 403
    assert refused.json()["errorCode"] == "NO_MARKET_DATA"
    sandbox.send_callback("added", login, subscriptions=[{"name": "CME Globex Top of Book"}])
    assert (await user_login(gateway, sandbox, login, "test")).status_code == 200

    # Deposit then withdraw; a retried key is replayed and moves nothing, whatever
    # DXtrade would do with a repeated cash id.
    key = f"dep-{uuid.uuid4()}"
    deposit = {"accountId": account_gid(account_id), "amount": "500.25", "idempotencyKey": key}
    first = (await gateway.query(MONEY % "deposit", {"input": deposit}))["data"]["deposit"]
    assert first["errors"] == []
    assert not first["replayed"]
    assert first["operation"]["kind"] == "DEPOSIT"
    assert first["operation"]["externalId"] == key
    again = (await gateway.query(MONEY % "deposit", {"input": deposit}))["data"]["deposit"]
    assert again["replayed"]
    assert again["operation"] == first["operation"]
    assert await balance(gateway, account_id) == Decimal("1000500.25")
    assert len(sandbox.state.applied(key)) == 1
    withdrawal = {
        "accountId": account_gid(account_id),
        "amount": "200.25",
        "idempotencyKey": f"wd-{uuid.uuid4()}",
    }
    out = (await gateway.query(MONEY % "withdraw", {"input": withdrawal}))["data"]["withdraw"]
    assert out["errors"] == []
    assert out["operation"]["kind"] == "WITHDRAWAL"
    assert out["operation"]["amount"] == {"amount": "200.25", "currency": "USD"}
    assert await balance(gateway, account_id) == Decimal("1000300.00")
    too_much = {**withdrawal, "amount": "5000000", "idempotencyKey": f"wd-{uuid.uuid4()}"}
    refused_wd = (await gateway.query(MONEY % "withdraw", {"input": too_much}))["data"]
    assert refused_wd["withdraw"]["errors"][0]["code"] == "INSUFFICIENT_FUNDS"
    assert await balance(gateway, account_id) == Decimal("1000300.00")

    # Deactivate with cancellation (seed 004 §2.3): every step reported, login refused.
    off = await gateway.query(
        DEACTIVATE,
        {"input": {"traderId": trader_gid(trader_id), "cancelMarketDataSubscriptions": True}},
    )
    payload = off["data"]["deactivateTrader"]
    assert payload["errors"] == []
    assert [(s["name"], s["succeeded"]) for s in payload["steps"]] == [
        ("disable user", True),
        ("terminate accounts", True),
        ("cancel market-data subscriptions", True),
    ]
    assert payload["trader"]["status"] == "DISABLED"
    assert payload["accounts"] == [{"externalId": account_id, "status": "TERMINATED"}]
    refused = await user_login(gateway, sandbox, login, "test")
    assert refused.status_code == 403
    assert refused.json()["errorCode"] == "USER_DISABLED"
    await gateway.clear_cache()
    state = (await gateway.query(TRADER, {"id": trader_gid(trader_id)}))["data"]["trader"]
    assert state["status"] == "DISABLED"
    assert state["marketDataSubscriptions"] == [
        {"name": "CME Globex Top of Book", "active": False, "endsAt": "2027-12-31T00:00:00Z"}
    ]

    # Reactivate (seed 004 §2.4): OFFLINE, then a NEW account, linked by the gateway.
    new_code = f"{login}-acc-2"
    on = await gateway.query(
        REACTIVATE,
        {
            "input": {
                "traderId": trader_gid(trader_id),
                "newAccount": {
                    "currency": "USD",
                    "isLive": False,
                    "options": {
                        "accountCode": new_code,
                        "accountType": "DEMO",
                        "accountCashType": "MARGIN",
                        "balance": 1000000,
                        "categories": CATEGORIES,
                    },
                },
            }
        },
    )
    payload = on["data"]["reactivateTrader"]
    assert payload["errors"] == []
    assert [(s["name"], s["succeeded"]) for s in payload["steps"]] == [
        ("set user OFFLINE", True),
        ("open new account", True),
    ]
    assert payload["trader"]["status"] == "ACTIVE"
    assert [a["accountCode"] for a in payload["accounts"]] == [new_code]
    assert sandbox.state.client("default", login).status == "OFFLINE"
    links = await gateway.services.store.links_of_partner("DEMO-001", kind="account")
    assert (f"default:{new_code}", trader_id) in {(k.external_id, k.trader_id) for k in links}
    await gateway.clear_cache()
    state = (await gateway.query(TRADER, {"id": trader_gid(trader_id)}))["data"]["trader"]
    assert {(a["externalId"], a["status"]) for a in state["accounts"]} == {
        (account_id, "TERMINATED"),
        (f"default:{new_code}", "FULL_TRADING"),
    }
    # Enabled again, but the cancelled subscriptions still gate the login (seed 004 §2.2)
    # until dxFeed activates them.
    refused = await user_login(gateway, sandbox, login, "test")
    assert refused.json()["errorCode"] == "NO_MARKET_DATA"
    sandbox.send_callback("activated", login)
    assert (await user_login(gateway, sandbox, login, "test")).status_code == 200
    # The gateway never saw the user's own password anywhere but the sandbox.
    await sandbox.wait_callbacks()


async def test_activation_callback_reaches_a_subscriber(
    dx_gateway: TestGateway, dx_sandbox: DxTradeSandbox
) -> None:
    gateway, sandbox = dx_gateway, dx_sandbox
    created = await create_crm_user(gateway)
    login = created["trader"]["login"]
    gid = trader_gid(f"{login}@default")
    sandbox.send_callback("added", login, subscriptions=[{"name": "CME Level 2"}])
    await sandbox.wait_callbacks()
    async with websocket(gateway, "manager") as socket:
        operation = await subscribe(socket, EVENTS, {"id": gid})
        await asyncio.sleep(0.2)  # let the stream attach before the callback
        delivery = sandbox.send_callback(
            "activated", login, subscriptions=[{"name": "CME Level 2", "endDate": "2027-06-30"}]
        )
        message = await receive(socket)
    assert message["type"] == "next", message
    assert message["id"] == operation
    event = message["payload"]["data"]["marketDataSubscriptionEvents"]
    assert event["traderId"] == gid
    assert event["kind"] == "ACTIVATED"
    assert event["subscription"] == {
        "name": "CME Level 2",
        "active": True,
        "endsAt": "2027-06-30T00:00:00Z",
    }
    await sandbox.wait_callbacks()
    (sent,) = [d for d in sandbox.callbacks if d.delivery_id == delivery]
    assert sent.status == "delivered"
    assert sent.attempts == [202]
    # The delivery is remembered: a redelivery would be a no-op.
    assert not await gateway.services.store.remember_delivery("dxfeed", delivery)


async def test_market_data_subscriptions_on_trader(dx_gateway: TestGateway) -> None:
    result = await dx_gateway.query(TRADER, {"id": trader_gid("alice@default")}, token="client")
    subscriptions = result["data"]["trader"]["marketDataSubscriptions"]
    assert {"name": "CME Globex Top of Book", "active": True} in [
        {k: s[k] for k in ("name", "active")} for s in subscriptions
    ]
    # Single feed: nothing to manage, no subscriptions.
    carol = await dx_gateway.query(TRADER, {"id": trader_gid("carol@default")})
    assert carol["data"]["trader"]["marketDataSubscriptions"] == []


async def test_another_partners_client_cannot_subscribe(dx_gateway: TestGateway) -> None:
    async with websocket(dx_gateway, "other_client") as socket:
        await subscribe(socket, EVENTS, {"id": trader_gid("alice@default")})
        message = await receive(socket)
    assert message["type"] == "error" or message["payload"].get("errors"), message
    errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
    assert errors[0]["extensions"]["code"] == "NOT_FOUND"


async def test_account_reads_through_the_gateway(
    dx_gateway: TestGateway, dx_sandbox: DxTradeSandbox
) -> None:
    gateway, sandbox = dx_gateway, dx_sandbox
    await gateway.clear_cache()
    result = await gateway.query(ACCOUNT, {"id": account_gid("default:alice-usd")}, token="client")
    account = result["data"]["account"]
    assert account["clearingCode"] == "default"
    assert account["accountCode"] == "alice-usd"
    assert account["accountType"] == "LIVE"
    assert Decimal(account["equity"]["amount"]) > 0
    # Reads are cached for the connector's TTL: a second query makes no upstream call.
    before = sandbox.calls["GET /dxsca-web/accounts/metrics"]
    await gateway.query(ACCOUNT, {"id": account_gid("default:alice-usd")}, token="client")
    assert sandbox.calls["GET /dxsca-web/accounts/metrics"] == before


async def test_create_trader_validates_options_before_any_call(
    dx_gateway: TestGateway, dx_sandbox: DxTradeSandbox
) -> None:
    gateway, sandbox = dx_gateway, dx_sandbox
    before = sum(sandbox.calls.values())
    cases = [
        ({"mode": "CRM"}, "dxFeedAccountId"),
        ({"mode": "SINGLE_FEED", "dxFeedAccountId": "abc"}, "dxFeedAccountId"),
        ({"mode": "PROP"}, "mode"),
        ({"accountType": "LIVE", "balance": 100}, "balance"),
        ({"colour": "blue"}, None),
        ({"categories": [{"category": "X"}]}, "categories"),
    ]
    for options, field in cases:
        result = await gateway.query(
            CREATE,
            {
                "input": {
                    "platform": "dxtrade",
                    "partnerCode": "DEMO-001",
                    "email": "x@example.com",
                    "currency": "USD",
                    "options": options,
                }
            },
        )
        errors = result["data"]["createTrader"]["errors"]
        assert errors, options
        assert errors[0]["code"] == "INVALID_INPUT", (options, errors)
        if field is not None:
            assert errors[0]["field"] == ["options", field], (options, errors)
    assert sum(sandbox.calls.values()) == before, "a refused input reached DXtrade"


async def test_refused_reactivation_step_is_reported(
    dx_gateway: TestGateway,
    dx_sandbox: DxTradeSandbox,
    disable_route: int | None,
    etag_checks: bool,
) -> None:
    gateway, sandbox = dx_gateway, dx_sandbox
    created = await create_crm_user(gateway)
    login = created["trader"]["login"]
    gid = trader_gid(f"{login}@default")
    off = await gateway.query(DEACTIVATE, {"input": {"traderId": gid}})
    assert [s["succeeded"] for s in off["data"]["deactivateTrader"]["steps"]] == [True, True]
    # The new account's code is taken by another user: DXtrade refuses that step.
    taken = {"currency": "USD", "isLive": True, "options": {"accountCode": "alice-usd"}}
    on = await gateway.query(REACTIVATE, {"input": {"traderId": gid, "newAccount": taken}})
    payload = on["data"]["reactivateTrader"]
    (error,) = payload["errors"]  # an incomplete flow is reported as a typed error too
    assert error["code"] == "UPSTREAM_ERROR" and "open new account" in error["message"]
    steps = payload["steps"]
    assert [(s["name"], s["succeeded"]) for s in steps] == [
        ("set user OFFLINE", True),
        ("open new account", False),
    ]
    assert "CONFLICT" in steps[1]["message"]
    assert payload["accounts"] == []
    assert sandbox.state.client("default", login).status == "OFFLINE"
