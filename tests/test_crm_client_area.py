"""What a broker's CRM and client area need across platforms, end to end.

One gateway with the QORT (partner directory), cTrader and DXtrade connectors, each
against its sandbox over real sockets, seeded with the demo partners and links.
Faults come from the sandboxes' knobs (QORT held by another application, QORT down).
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import brokergraph_ctrader.plugin
import brokergraph_dxtrade.plugin
import brokergraph_qort.plugin
import httpx
import pytest
import pytest_asyncio
from brokergraph_ctrader.sandbox import CTraderSandbox
from brokergraph_dxtrade.sandbox import DxTradeSandbox
from brokergraph_qort.sandbox import QortSandbox

from gateway.graphql.ids import encode_id
from gateway.testing import TestGateway, open_test_gateway

BUSY_COOLDOWN_SECONDS = 0.2
QORT_BREAKER_RESET_SECONDS = 0.3


@dataclass(frozen=True)
class World:
    gw: TestGateway
    qort: QortSandbox
    ctrader: CTraderSandbox
    dxtrade: DxTradeSandbox

    async def forget_cache(self) -> None:
        """Drop cached reads, so the next read asks the platforms."""
        await self.gw.services.cache.delete_prefix("")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async with (
        QortSandbox(report_delay_seconds=0.1) as qort,
        CTraderSandbox() as ctrader,
        DxTradeSandbox() as dxtrade,
        open_test_gateway(
            [brokergraph_qort.plugin, brokergraph_ctrader.plugin, brokergraph_dxtrade.plugin],
            [qort, ctrader, dxtrade],
            tmp_path_factory.mktemp("crm"),
            connector_settings={"qort": {"busy_cooldown_seconds": BUSY_COOLDOWN_SECONDS}},
            # QORT's breaker opens while it is down: closed again soon after it is back.
            resilience={"qort": {"breaker_reset_seconds": QORT_BREAKER_RESET_SECONDS}},
        ) as gw,
    ):
        yield World(gw, qort, ctrader, dxtrade)


def error_codes(body: dict[str, Any]) -> dict[tuple[str | int, ...], str]:
    """The body's errors by path."""
    return {tuple(e["path"]): e["extensions"]["code"] for e in body.get("errors", [])}


async def qort_soap(sandbox: QortSandbox, operation: str, body: str) -> httpx.Response:
    """Another application speaking SOAP to QORT by hand (not through our client)."""
    envelope = (
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:q="urn:brokergraph:qort:v1"><soap:Body>'
        f"<q:{operation}Request>{body}</q:{operation}Request></soap:Body></soap:Envelope>"
    )
    async with httpx.AsyncClient(verify=sandbox.client_ssl_context()) as http:
        return await http.post(
            f"{sandbox.url}/qort",
            content=envelope.encode(),
            headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": operation},
        )


# --------------------------------------------------------------------------- item 3

ME = """{ me {
  code name broker email taxId kind attributes
  accounts { platform externalId }
  traders { platform externalId }
} }"""


def _partner_from_the_store(body: dict[str, Any], code: str) -> None:
    """``me`` answered from the store: links kept, directory fields null with an error."""
    me = body["data"]["me"]
    assert me is not None, body
    assert (me["code"], me["broker"]) == (code, "demo-broker")
    assert me["name"], "the store's display name stands in"
    for directory_field in ("email", "taxId", "kind", "attributes"):
        assert me[directory_field] is None
    ctrader = [a["externalId"] for a in me["accounts"] if a and a["platform"] == "ctrader"]
    assert sorted(ctrader) == ["9000001", "9000002"]
    assert any(a and a["platform"] == "dxtrade" for a in me["accounts"])
    assert {t["platform"] for t in me["traders"] if t} >= {"ctrader", "dxtrade"}


async def test_a_partner_answers_from_the_store_while_qort_is_held_or_down(world: World) -> None:
    await world.forget_cache()
    world.qort.force_expire_tokens()  # the gateway's session ends; another tool gets in first
    login = await qort_soap(
        world.qort,
        "Login",
        "<q:Login>backoffice</q:Login><q:Password>bo-pass</q:Password>"
        "<q:AppName>backoffice-tool</q:AppName>",
    )
    token = re.search(rb"<(?:\w+:)?Token>([^<]+)<", login.content)
    assert token is not None, login.text
    try:
        busy = await world.gw.query(ME, token="client")
    finally:
        logout = f"<q:Token>{token.group(1).decode()}</q:Token>"
        assert (await qort_soap(world.qort, "Logout", logout)).status_code == 200
    _partner_from_the_store(busy, "DEMO-001")
    codes = error_codes(busy)
    for directory_field in ("email", "taxId", "kind", "attributes"):
        assert codes[("me", directory_field)] == "UPSTREAM_BUSY"

    await world.forget_cache()
    port = urlsplit(world.qort.url).port
    assert port is not None
    await world.qort.stop()  # QORT is down: nothing listens on its port
    try:
        down = await world.gw.query(ME, token="client")
    finally:
        await world.qort.start(port=port)
    _partner_from_the_store(down, "DEMO-001")
    assert error_codes(down)[("me", "email")] == "UPSTREAM_UNAVAILABLE"
    await qort_answers_again(world)


async def qort_answers_again(world: World) -> None:
    """Wait (bounded) until QORT's breaker lets reads through again."""
    for _ in range(50):
        body = await world.gw.query("{ me { email } }", token="client")
        if "errors" not in body:
            return
        await asyncio.sleep(QORT_BREAKER_RESET_SECONDS / 2)
    raise AssertionError(f"QORT did not come back: {body}")


# --------------------------------------------------------------------------- item 4, 9b

CREATE_TRADER = """
mutation($input: CreateTraderInput!) {
  createTrader(input: $input) {
    trader { externalId accounts { externalId } }
    accounts { externalId }
    errors { code message }
  }
}"""
TWO_CREATE_TRADERS = """
mutation($input: CreateTraderInput!, $again: CreateTraderInput!) {
  first: createTrader(input: $input) {
    trader { externalId accounts { externalId } } accounts { externalId } errors { code }
  }
  second: createTrader(input: $again) {
    trader { externalId accounts { externalId } } accounts { externalId } errors { code }
  }
}"""
TRADER_ACCOUNTS = "query($id: ID!) { trader(id: $id) { accounts { externalId } } }"


def ctrader_trader(email: str, key: str | None = None) -> dict[str, Any]:
    """A cTrader createTrader; a second account for one cTID is meant, so it needs its
    own idempotencyKey (the same request again without one is refused: a double submit)."""
    fields: dict[str, Any] = {"platform": "ctrader", "partnerCode": "DEMO-001", "email": email}
    if key is not None:
        fields["idempotencyKey"] = key
    return {"input": fields}


def logins(accounts: list[dict[str, Any]]) -> list[str]:
    return sorted(a["externalId"] for a in accounts)


async def test_a_second_account_of_a_ctrader_user_shows_at_once(world: World) -> None:
    email = f"second-{uuid.uuid4().hex[:8]}@example.com"
    first = (await world.gw.data(CREATE_TRADER, ctrader_trader(email)))["createTrader"]
    assert first["errors"] == []
    (one,) = logins(first["accounts"])
    assert logins(first["trader"]["accounts"]) == [one]  # read now: cached for 60 s

    again = ctrader_trader(email, key=str(uuid.uuid4()))
    second = (await world.gw.data(CREATE_TRADER, again))["createTrader"]
    assert second["errors"] == []
    assert second["trader"]["externalId"] == first["trader"]["externalId"], "the same user"
    (two,) = logins(second["accounts"])
    assert two != one
    assert logins(second["trader"]["accounts"]) == sorted([one, two]), "the payload reads fresh"
    trader_id = encode_id("Trader", "ctrader", first["trader"]["externalId"])
    later = await world.gw.data(TRADER_ACCOUNTS, {"id": trader_id})
    assert logins(later["trader"]["accounts"]) == sorted([one, two])


OPEN_ACCOUNT = """
mutation($input: OpenAccountInput!) {
  openAccount(input: $input) { account { externalId } errors { code message } }
}"""


async def test_an_account_opened_for_a_trader_shows_at_once(world: World) -> None:
    email = f"open-{uuid.uuid4().hex[:8]}@example.com"
    first = (await world.gw.data(CREATE_TRADER, ctrader_trader(email)))["createTrader"]
    (one,) = logins(first["trader"]["accounts"])  # read now: cached for 60 s
    trader_id = encode_id("Trader", "ctrader", first["trader"]["externalId"])
    opened = await world.gw.data(
        OPEN_ACCOUNT, {"input": {"traderId": trader_id, "currency": "USD"}}
    )
    assert opened["openAccount"]["errors"] == []
    two = opened["openAccount"]["account"]["externalId"]
    later = await world.gw.data(TRADER_ACCOUNTS, {"id": trader_id})
    assert logins(later["trader"]["accounts"]) == sorted([one, two])


async def test_each_mutation_of_a_request_reads_its_own_fresh_state(world: World) -> None:
    email = f"twice-{uuid.uuid4().hex[:8]}@example.com"
    again = ctrader_trader(email, key=str(uuid.uuid4()))["input"]
    data = await world.gw.data(TWO_CREATE_TRADERS, {**ctrader_trader(email), "again": again})
    first, second = data["first"], data["second"]
    assert first["errors"] == second["errors"] == []
    (one,) = logins(first["accounts"])
    (two,) = logins(second["accounts"])
    assert logins(first["trader"]["accounts"]) == [one]
    assert logins(second["trader"]["accounts"]) == sorted([one, two])


# --------------------------------------------------------------------------- item 7

CREATE_PARTNER = """
mutation($input: CreateBusinessPartnerInput!) {
  createBusinessPartner(input: $input) { businessPartner { code } errors { code message } }
}"""
DELETE_PARTNER = """
mutation($code: String!) {
  deleteBusinessPartner(input: {code: $code}) {
    deletedCode errors { __typename code message }
  }
}"""
MONEY = """
mutation($input: MoneyMovementInput!) {
  %s(input: $input) { operation { amount { amount currency } } errors { code message } }
}"""


async def move(world: World, operation: str, account: str, amount: str) -> dict[str, Any]:
    variables = {
        "input": {
            "accountId": encode_id("Account", "ctrader", account),
            "amount": amount,
            "idempotencyKey": str(uuid.uuid4()),
        }
    }
    result: dict[str, Any] = (await world.gw.data(MONEY % operation, variables))[operation]
    return result


async def test_a_partner_whose_accounts_hold_money_is_not_deleted(world: World) -> None:
    code = f"DEL-{uuid.uuid4().hex[:6].upper()}"
    partner = {"code": code, "name": "Leaving Client", "broker": "demo-broker"}
    created = await world.gw.data(CREATE_PARTNER, {"input": partner})
    assert created["createBusinessPartner"]["errors"] == []
    trader = await world.gw.data(
        CREATE_TRADER,
        {"input": {"platform": "ctrader", "partnerCode": code, "email": f"{code}@example.com"}},
    )
    (login,) = logins(trader["createTrader"]["accounts"])
    assert (await move(world, "deposit", login, "100.00"))["errors"] == []

    refused = (await world.gw.data(DELETE_PARTNER, {"code": code}))["deleteBusinessPartner"]
    assert refused["deletedCode"] is None
    (error,) = refused["errors"]
    assert (error["__typename"], error["code"]) == ("ConflictError", "CONFLICT")
    assert f"ctrader account {login}" in error["message"]
    assert "100.00 USD" in error["message"]
    # Nothing was deleted: the partner and its link stay, so the money can still leave.
    assert await world.gw.services.store.owners("ctrader", "account", [login]) == [code]
    assert (await move(world, "withdraw", login, "100.00"))["errors"] == []

    deleted = (await world.gw.data(DELETE_PARTNER, {"code": code}))["deleteBusinessPartner"]
    assert deleted == {"deletedCode": code, "errors": []}


# --------------------------------------------------------------------------- item 5

REQUEST_REPORT = """
mutation($input: RequestClientReportInput!) {
  requestClientReport(input: $input) {
    report { id } reports { id partnerCode status } errors { code message field }
  }
}"""
YEAR_2024 = {
    "partnerCode": "DEMO-001",
    "format": "CSV",
    "periodFrom": "2024-01-01T00:00:00Z",
    "periodTo": "2025-01-01T00:00:00Z",
}


async def downloaded(world: World, report_id: str) -> str:
    """The CSV of a report, once QORT has made it (bounded wait)."""
    headers = {"Authorization": f"Bearer {world.gw.tokens['client']}"}
    for _ in range(100):
        response = await world.gw.http.get(f"{world.gw.url}/reports/{report_id}", headers=headers)
        if response.status_code == 200:
            return response.text
        assert response.status_code == 409, response.text  # not READY yet
        await asyncio.sleep(0.05)
    raise AssertionError(f"report {report_id} never became READY")


def trades(csv_text: str) -> list[str]:
    return sorted(line.split(",")[0] for line in csv_text.splitlines()[1:])


async def test_a_client_report_covers_every_sub_account_or_the_one_asked_for(
    world: World,
) -> None:
    # DEMO-001 holds RUB (DEMO-001-01) and USD (DEMO-001-02) sub-accounts; both traded in 2024.
    every = await world.gw.data(REQUEST_REPORT, {"input": YEAR_2024}, token="client")
    payload = every["requestClientReport"]
    assert payload["errors"] == []
    assert len(payload["reports"]) == 2
    assert payload["report"]["id"] == payload["reports"][0]["id"]
    contents = [await downloaded(world, r["id"]) for r in payload["reports"]]
    assert sorted(t for c in contents for t in trades(c)) == ["T-10001", "T-10002", "T-10004"]

    usd = encode_id("Account", "qort", "DEMO-001-02")
    one = await world.gw.data(
        REQUEST_REPORT, {"input": {**YEAR_2024, "accountId": usd}}, token="client"
    )
    (report,) = one["requestClientReport"]["reports"]
    assert trades(await downloaded(world, report["id"])) == ["T-10004"]

    # Another partner's sub-account is not found, and QORT is not asked.
    before = world.qort.calls["RequestClientReport"]
    foreign = encode_id("Account", "qort", "OTHER-001-01")
    refused = await world.gw.data(
        REQUEST_REPORT, {"input": {**YEAR_2024, "accountId": foreign}}, token="client"
    )
    (error,) = refused["requestClientReport"]["errors"]
    assert (error["code"], error["field"]) == ("NOT_FOUND", ["accountId"])
    assert world.qort.calls["RequestClientReport"] == before


# --------------------------------------------------------------------------- item 8

CREATE_LIVE = """
mutation($input: CreateTraderInput!) {
  createTrader(input: $input) {
    trader { externalId email } accounts { externalId isLive } errors { code message field }
  }
}"""


async def test_ctrader_honours_is_live_or_refuses_it(world: World) -> None:
    # The sandbox is cTrader's demo environment: a live account cannot be made there.
    email = f"live-{uuid.uuid4().hex[:8]}@example.com"
    writes = sum(n for call, n in world.ctrader.calls.items() if not call.startswith("GET "))
    live = {"platform": "ctrader", "partnerCode": "DEMO-001", "email": email, "isLive": True}
    refused = (await world.gw.data(CREATE_LIVE, {"input": live}))["createTrader"]
    (error,) = refused["errors"]
    assert (error["code"], error["field"]) == ("INVALID_INPUT", ["isLive"])
    assert "demo" in error["message"]
    assert refused["trader"] is None
    after = sum(n for call, n in world.ctrader.calls.items() if not call.startswith("GET "))
    assert after == writes, "nothing was created"

    demo = (await world.gw.data(CREATE_LIVE, {"input": {**live, "isLive": False}}))["createTrader"]
    assert demo["errors"] == []
    assert [a["isLive"] for a in demo["accounts"]] == [False]
    # Omitted: the environment the connector serves, and the account says which.
    email = f"default-{uuid.uuid4().hex[:8]}@example.com"
    omitted = {"platform": "ctrader", "partnerCode": "DEMO-001", "email": email}
    default = (await world.gw.data(CREATE_LIVE, {"input": omitted}))["createTrader"]
    assert default["errors"] == []
    assert [a["isLive"] for a in default["accounts"]] == [False]


async def test_dxtrade_keeps_the_email_as_seed_004_says(world: World) -> None:
    # Seed 004 §2.1: "In DxTradeXT mode - only user email should be specified".
    email = f"bob-{uuid.uuid4().hex[:8]}@example.com"
    only_email = {"platform": "dxtrade", "partnerCode": "DEMO-001", "email": email}
    created = (await world.gw.data(CREATE_LIVE, {"input": only_email}))["createTrader"]
    assert created["errors"] == []
    assert created["trader"]["email"] == email
    login, _, domain = created["trader"]["externalId"].partition("@")
    user = world.dxtrade.state.client(domain, login)
    assert (user.email, user.mode) == (email, "xt")

    # Single feed keeps no email on DXtrade: refused, naming the email, before any call.
    users = len(world.dxtrade.state.clients)
    single = {**only_email, "email": f"x{email}", "options": {"mode": "SINGLE_FEED"}}
    refused = (await world.gw.data(CREATE_LIVE, {"input": single}))["createTrader"]
    (error,) = refused["errors"]
    assert (error["code"], error["field"]) == ("INVALID_INPUT", ["email"])
    assert len(world.dxtrade.state.clients) == users


# --------------------------------------------------------------------------- item 9a

CREATE_WITH_STEPS = """
mutation($input: CreateTraderInput!) {
  createTrader(input: $input) {
    steps { name succeeded code message }
    resumeToken
    errors { __typename code message }
  }
}"""


async def test_a_stopped_create_trader_step_carries_the_real_code(world: World) -> None:
    sandbox = world.ctrader
    created = sandbox.calls["POST /v2/webserv/traders"]

    async def refuse_the_link() -> None:
        # Latency holds every request, so the knob is set before link-user arrives.
        while sandbox.calls["POST /v2/webserv/traders"] == created:  # noqa: ASYNC110
            await asyncio.sleep(0.002)
        sandbox.fail_next(1, 429)

    sandbox.latency_seconds = 0.2
    watcher = asyncio.get_running_loop().create_task(refuse_the_link())
    try:
        email = f"stopped-{uuid.uuid4().hex[:8]}@example.com"
        payload = (await world.gw.data(CREATE_WITH_STEPS, ctrader_trader(email)))["createTrader"]
    finally:
        sandbox.latency_seconds = 0.0
        watcher.cancel()
    assert [(s["name"], s["succeeded"], s["code"]) for s in payload["steps"]] == [
        ("create-user", True, None),
        ("create-trader", True, None),
        ("link-user", False, "RATE_LIMITED"),
    ]
    (error,) = payload["errors"]
    assert (error["__typename"], error["code"]) == ("RateLimitedError", "RATE_LIMITED")
    assert "link-user" in error["message"]
    assert payload["resumeToken"], "what was made is linked and the flow resumable"


# --------------------------------------------------------------------------- item 9c, 9d

MONEY_FIELDS = ("balance", "equity", "credit", "margin", "freeMargin")
_MONEY_SELECTION = " ".join(f"{f} {{ amount currency }}" for f in MONEY_FIELDS)
BALANCES = (
    '{ businessPartner(code: "DEMO-001") { accounts { platform externalId currency '
    + _MONEY_SELECTION
    + " } } }"
)


async def test_money_has_the_currencys_minor_units_on_every_platform(world: World) -> None:
    await world.forget_cache()
    accounts = (await world.gw.data(BALANCES))["businessPartner"]["accounts"]
    by_platform: dict[str, list[str]] = {}
    for account in accounts:
        for money in (account[f] for f in MONEY_FIELDS if account[f] is not None):
            assert money["currency"] == account["currency"]
            by_platform.setdefault(account["platform"], []).append(money["amount"])
    assert {"ctrader", "dxtrade"} <= set(by_platform), by_platform
    for platform, amounts in by_platform.items():
        for amount in amounts:
            # USD, EUR, RUB…: two decimals ("25000.00", not DXtrade's "25000.0").
            assert re.fullmatch(r"-?\d+\.\d{2}", amount), (platform, amount)
