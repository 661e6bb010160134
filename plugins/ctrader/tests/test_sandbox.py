"""The cTrader WebServices sandbox over real HTTP: wire format, rules, seed and knobs.

One sandbox serves the module; every test starts from ``reset()`` (seed state,
constructor knobs, empty counters).
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import re
import time
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
import pytest_asyncio
from brokergraph_ctrader.reporting import decode_snapshot
from brokergraph_ctrader.sandbox import CTraderSandbox
from brokergraph_ctrader.sandbox.market import BY_NAME, rate
from brokergraph_ctrader.sandbox.state import State

from gateway.contract.sandbox import DemoLink, sandbox_certificate

JSON = {"Accept": "application/json"}
WEBSERV = "/v2/webserv"
OPEN_HEADER = (
    "login,positionId,openTimestamp,entryPrice,direction,volume,symbol,commission,swap,"
    "bookType,stake,spreadBetting,usedMargin"
)
CLOSED_HEADER = (
    "login,positionId,dealId,openTimestamp,closeTimestamp,entryPrice,closePrice,direction,"
    "volume,symbol,commission,swap,pnl,depositConversionRate,usdConversionRate,bookType,"
    "stake,spreadBetting"
)
WIRE_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}")
SEEDED = {9000001, 9000002, 9000003, 9000004, 9000005, 9000006, 9000007}
FIRST_DEPOSIT = {9000001: 1000000, 9000002: 500000, 9000003: 250000, 9000004: 50000000}


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def wire_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def from_ms(ms: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)


def error_code(response: httpx.Response) -> str:
    code: str = response.json()["error"]["errorCode"]
    return code


def new_trader(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "accessRights": "FULL_ACCESS",
        "accountType": "HEDGED",
        "balance": 0,
        "brokerName": "DEMOBROKER",
        "depositCurrency": "USD",
        "groupName": "Default",
        "hashedPassword": md5("secret-1"),
        "leverageInCents": 10000,
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


class Api:
    """A manager's calls: ``?token=`` on every request, JSON asked for."""

    def __init__(self, http: httpx.AsyncClient, token: str) -> None:
        self.http, self.token = http, token

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
    ) -> httpx.Response:
        return await self.http.request(
            method,
            path,
            params={"token": self.token, **(params or {})},
            json=json,
            content=content,
            headers=JSON if headers is None else headers,
        )

    async def trader(self, login: int) -> dict[str, Any]:
        response = await self.call("GET", f"{WEBSERV}/traders/{login}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def create(self, **changes: Any) -> dict[str, Any]:
        response = await self.call("POST", f"{WEBSERV}/traders", json=new_trader(**changes))
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def balance(self, login: int, kind: str, precise: Any, **extra: Any) -> httpx.Response:
        body = {"login": login, "type": kind, "preciseAmount": precise, **extra}
        return await self.call("POST", f"{WEBSERV}/traders/{login}/changebalance", json=body)

    async def grid(self, path: str, **params: Any) -> list[dict[str, str]]:
        response = await self.call("GET", f"{WEBSERV}/{path}", params=params)
        assert response.status_code == 200, response.text
        return list(csv.DictReader(io.StringIO(response.text)))


async def get_token(http: httpx.AsyncClient, login: int, password: str) -> str:
    body = {"login": login, "hashedPassword": md5(password)}
    response = await http.post(f"{WEBSERV}/managers/token", json=body, headers=JSON)
    assert response.status_code == 200, response.text
    token: str = response.json()["webservToken"]
    return token


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def sandbox() -> AsyncIterator[CTraderSandbox]:
    async with CTraderSandbox() as box:
        yield box


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def http(sandbox: CTraderSandbox) -> AsyncIterator[httpx.AsyncClient]:
    verify = sandbox.client_ssl_context()
    async with httpx.AsyncClient(base_url=sandbox.url, timeout=30, verify=verify) as client:
        yield client


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def tokens(http: httpx.AsyncClient) -> dict[int, str]:
    return {
        30017: await get_token(http, 30017, "manager-pass"),
        30018: await get_token(http, 30018, "limited-pass"),
    }


@pytest.fixture(autouse=True)
def fresh(sandbox: CTraderSandbox, tokens: dict[int, str]) -> None:
    sandbox.reset()


@pytest.fixture
def api(http: httpx.AsyncClient, tokens: dict[int, str]) -> Api:
    return Api(http, tokens[30017])


@pytest.fixture
def limited(http: httpx.AsyncClient, tokens: dict[int, str]) -> Api:
    return Api(http, tokens[30018])


# --------------------------------------------------------------------------- contract


def test_settings_and_demo_links(sandbox: CTraderSandbox) -> None:
    assert sandbox.name == "ctrader"
    assert sandbox.url.startswith("https://127.0.0.1:")
    assert sandbox.connector_settings() == {
        "url": sandbox.url,
        "login": 30017,
        "password": "manager-pass",
        "broker_name": "DEMOBROKER",
        "environment": "demo",
        "ca_file": str(sandbox_certificate().ca_file),
    }
    assert list(sandbox.demo_links()) == [
        DemoLink("DEMO-001", "trader", "1001"),
        DemoLink("DEMO-001", "account", "9000001", trader_id="1001"),
        DemoLink("DEMO-001", "account", "9000002", trader_id="1001"),
        DemoLink("DEMO-002", "trader", "1002"),
        DemoLink("DEMO-002", "account", "9000003", trader_id="1002"),
        DemoLink("OTHER-001", "trader", "1003"),
        DemoLink("OTHER-001", "account", "9000004", trader_id="1003"),
    ]


# --------------------------------------------------------------------------- auth


async def test_token_flow(http: httpx.AsyncClient, tokens: dict[int, str]) -> None:
    token = await get_token(http, 30017, "manager-pass")
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", token)
    assert token == tokens[30017] != tokens[30018]  # deterministic per (login, hash)
    url = f"{WEBSERV}/managers/token"
    for body in (
        {"login": 30017, "hashedPassword": md5("wrong-pass")},
        {"login": 39999, "hashedPassword": md5("manager-pass")},
    ):
        refused = await http.post(url, json=body, headers=JSON)
        assert refused.status_code == 403
        assert error_code(refused) == "NOT_ENOUGH_RIGHTS"
    missing = await http.post(url, json={"login": 30017}, headers=JSON)
    assert (missing.status_code, error_code(missing)) == (400, "INVALID_REQUEST")

    path = f"{WEBSERV}/traders/9000001"
    ok = await http.get(path, params={"token": token}, headers=JSON)
    assert ok.status_code == 200
    assert ok.json()["login"] == 9000001
    for params, headers in (
        ({}, JSON),  # no token
        ({"token": "1dd4ef40-c5b3-61c0-0689-b1b40c97fadc"}, JSON),  # unknown token
        ({}, {**JSON, "Authorization": f"Bearer {token}"}),  # only in the query string
    ):
        refused = await http.get(path, params=params, headers=headers)
        assert refused.status_code == 403
        assert error_code(refused) == "NOT_ENOUGH_RIGHTS"


async def test_ip_allow_list(sandbox: CTraderSandbox, http: httpx.AsyncClient, api: Api) -> None:
    sandbox.allowed_ips = ("10.20.30.40",)
    body = {"login": 30017, "hashedPassword": md5("manager-pass")}
    refused = await http.post(f"{WEBSERV}/managers/token", json=body, headers=JSON)
    assert (refused.status_code, error_code(refused)) == (403, "NOT_ENOUGH_RIGHTS")
    refused = await api.call("GET", f"{WEBSERV}/traders/9000001")
    assert (refused.status_code, error_code(refused)) == (403, "NOT_ENOUGH_RIGHTS")
    sandbox.allowed_ips = ("10.20.30.40", "127.0.0.1")
    assert (await api.call("GET", f"{WEBSERV}/traders/9000001")).status_code == 200


async def test_limited_manager_sees_only_its_groups_and_brokers(
    api: Api, limited: Api, sandbox: CTraderSandbox
) -> None:
    # 30018: group Pro only, OTHERBROKER disabled.
    before = await api.trader(9000001)
    for login in (9000001, 9000003, 9000005, 9000007):
        refused = await limited.call("GET", f"{WEBSERV}/traders/{login}")
        assert (refused.status_code, error_code(refused)) == (403, "NOT_ENOUGH_RIGHTS")
    assert (await limited.trader(9000002))["groupName"] == "Pro"
    missing = await limited.call("GET", f"{WEBSERV}/traders/9999999")
    assert (missing.status_code, error_code(missing)) == (404, "TRADER_NOT_FOUND")

    hidden = await api.create(groupName="Pro", brokerName="OTHERBROKER")
    refused = await limited.call("GET", f"{WEBSERV}/traders/{hidden['login']}")
    assert refused.status_code == 403

    window = {"from": "2026-01-01T00:00:00.000", "to": "2027-01-01T00:00:00.000"}
    listed = await limited.call("GET", f"{WEBSERV}/traders/", params=window)
    assert {t["login"] for t in listed.json()["trader"]} == {9000002, 9000004}
    everything = await api.call("GET", f"{WEBSERV}/traders/", params=window)
    assert {t["login"] for t in everything.json()["trader"]} == SEEDED | {hidden["login"]}

    assert {r["login"] for r in await limited.grid("openPositions")} == {"9000002", "9000004"}
    refused = await limited.call("GET", f"{WEBSERV}/openPositions", params={"login": 9000001})
    assert refused.status_code == 403
    groups = await limited.call("GET", f"{WEBSERV}/tradergroups")
    assert [g["name"] for g in groups.json()["traderGroup"]] == ["Pro"]

    refused = await limited.call("POST", f"{WEBSERV}/traders", json=new_trader())
    assert (refused.status_code, error_code(refused)) == (403, "NOT_ENOUGH_RIGHTS")
    refused = await limited.balance(9000001, "DEPOSIT", 10)
    assert (refused.status_code, error_code(refused)) == (403, "NOT_ENOUGH_RIGHTS")
    moved = await limited.call("PATCH", f"{WEBSERV}/traders/9000002", json={"groupName": "Default"})
    assert moved.status_code == 403  # would leave the manager's groups
    assert await api.trader(9000001) == before


async def test_rate_limit_on_non_get_per_token(
    sandbox: CTraderSandbox, api: Api, limited: Api
) -> None:
    sandbox.rate_limit_per_hour = 2
    for _ in range(2):
        assert (await api.balance(9000005, "DEPOSIT", 1)).status_code == 200
    refused = await api.balance(9000005, "DEPOSIT", 1)
    assert (refused.status_code, error_code(refused)) == (429, "REQUEST_FREQUENCY_EXCEEDED")
    assert (await api.trader(9000005))["balance"] == 250000 + 200  # GETs are not limited
    assert (await limited.balance(9000002, "DEPOSIT", 1)).status_code == 200  # per token


# --------------------------------------------------------------------------- formats


async def test_json_or_xml_by_accept_header(api: Api) -> None:
    as_json = await api.call("GET", f"{WEBSERV}/traders/9000001")
    assert as_json.headers["content-type"].startswith("application/json")
    loose = await api.call(
        "GET", f"{WEBSERV}/traders/9000001", headers={"Accept": "text/html, application/json;q=0.9"}
    )
    assert loose.json() == as_json.json()

    as_xml = await api.call("GET", f"{WEBSERV}/traders/9000001", headers={})
    assert as_xml.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(as_xml.content)
    assert root.tag == "trader"
    assert root.findtext("login") == "9000001"
    assert root.findtext("balance") == str(as_json.json()["balance"])
    assert root.findtext("swapFree") == "false"
    assert root.findtext("contactDetails/introducingBroker1") == "DEMO-001"

    missing = await api.call("GET", f"{WEBSERV}/traders/9999999", headers={"Accept": "*/*"})
    assert missing.status_code == 404
    error = ET.fromstring(missing.content)
    assert (error.tag, error.findtext("errorCode")) == ("error", "TRADER_NOT_FOUND")

    window = {"from": "2026-01-01T00:00:00.000", "to": "2027-01-01T00:00:00.000"}
    listed = ET.fromstring((await api.call("GET", f"{WEBSERV}/traders/", params=window,
                                            headers={})).content)  # fmt: skip
    assert listed.tag == "traders"
    assert len(listed.findall("trader")) == 7
    assert listed.findtext("hasMore") == "false"

    subs = ET.fromstring(
        (await api.call("GET", f"{WEBSERV}/traders/9000001/subaccounts", headers={})).content
    )
    assert [e.text for e in subs.findall("subAccountLogins/login")] == ["9000005", "9000006"]

    token = await api.http.post(
        f"{WEBSERV}/managers/token", json={"login": 30017, "hashedPassword": md5("manager-pass")}
    )
    assert ET.fromstring(token.content).findtext("webservToken") == api.token


async def test_xml_request_body(api: Api) -> None:
    body = (
        b"<changeBalance><login>9000005</login><preciseAmount>1.25</preciseAmount>"
        b"<type>DEPOSIT</type><externalId>x-1</externalId></changeBalance>"
    )
    response = await api.call(
        "POST",
        f"{WEBSERV}/traders/9000005/changebalance",
        content=body,
        headers={"Content-Type": "application/xml"},
    )
    assert response.status_code == 200, response.text
    root = ET.fromstring(response.content)
    assert root.tag == "balanceHistory"
    assert int(root.findtext("balanceHistoryId") or 0) > 0
    assert (await api.trader(9000005))["balance"] == 250125
    broken = await api.call(
        "POST",
        f"{WEBSERV}/traders/9000005/changebalance",
        content=b"<changeBalance><login>",
        headers={"Content-Type": "application/xml", **JSON},
    )
    assert (broken.status_code, error_code(broken)) == (400, "INVALID_REQUEST")


# --------------------------------------------------------------------------- cTID


async def test_create_user_is_idempotent_by_email(api: Api) -> None:
    body = {
        "email": "new.client@example.com",
        "brokerName": "DEMOBROKER",
        "preferredLanguage": "de",
    }
    first = await api.call("POST", "/cid/ctid/create", json=body, headers={})
    assert first.status_code == 200
    assert first.headers["content-type"].startswith("application/json")  # /cid is JSON only
    user = first.json()
    assert user["userId"] == 1004
    assert user["nickname"] == "ctid1004"
    assert user["email"] == "new.client@example.com"
    assert user["preferredLanguage"] == "DE"
    assert user["status"] == "CTID_NEW"
    assert isinstance(user["utcCreateTimestamp"], int)
    again = await api.call(
        "POST", "/cid/ctid/create", json={**body, "email": "New.Client@example.com"}
    )
    assert again.json() == {"userId": 1004}
    seeded = await api.call("POST", "/cid/ctid/create", json={"email": "anna.novak@demo.example"})
    assert seeded.json() == {"userId": 1001}

    for bad, code in (
        ({"brokerName": "DEMOBROKER"}, "INVALID_REQUEST"),
        ({"email": "not-an-email"}, "INVALID_REQUEST"),
        ({"email": "x@example.com", "brokerName": "NOBROKER"}, "CH_PLANT_INVALID"),
    ):
        refused = await api.call("POST", "/cid/ctid/create", json=bad)
        assert (refused.status_code, error_code(refused)) == (400, code)
    as_xml = await api.call(
        "POST",
        "/cid/ctid/create",
        content=b"<user><email>x@example.com</email></user>",
        headers={"Content-Type": "application/xml"},
    )
    assert as_xml.status_code == 400
    assert as_xml.json()["error"]["errorCode"] == "INVALID_REQUEST"


async def test_create_trader_then_link(api: Api) -> None:
    trader = await api.create(balance="00", depositCurrency="EUR")
    login = trader["login"]
    assert login == 9000008
    assert trader["totalMarginCalculationType"] == "MAX"
    assert (trader["moneyDigits"], trader["balance"], trader["equity"]) == (2, 0, 0)
    assert trader["registrationTimestamp"] == trader["lastUpdateTimestamp"]
    assert trader["contactDetails"] == {}

    link = {
        "traderLogin": login,
        "traderPasswordHash": md5("not-the-password"),
        "userId": 1002,
        "brokerName": "DEMOBROKER",
        "environmentName": "demo",
        "returnAccountDetails": True,
    }
    wrong = await api.call("POST", "/cid/ctid/link", json=link)
    assert (wrong.status_code, error_code(wrong)) == (400, "WRONG_PASSWORD")
    for bad, code in (
        ({"brokerName": "NOBROKER"}, "CH_PLANT_INVALID"),
        ({"traderLogin": 9999999}, "TRADER_NOT_FOUND"),
        ({"environmentName": "live"}, "INVALID_REQUEST"),
    ):
        refused = await api.call("POST", "/cid/ctid/link", json={**link, **bad})
        assert error_code(refused) == code
    linked = await api.call(
        "POST", "/cid/ctid/link", json={**link, "traderPasswordHash": md5("secret-1")}
    )
    assert linked.status_code == 200
    assert linked.json() == {"ctidTraderAccountId": 40000005}
    again = await api.call(
        "POST", "/cid/ctid/link", json={**link, "traderPasswordHash": md5("secret-1")}
    )
    assert (again.status_code, error_code(again)) == (400, "TRADER_ALREADY_LINKED")
    seeded = await api.call(
        "POST",
        "/cid/ctid/link",
        json={**link, "traderLogin": 9000001, "traderPasswordHash": md5("trader-pass-9000001")},
    )
    assert error_code(seeded) == "TRADER_ALREADY_LINKED"

    quiet = await api.create()
    silent = await api.call(
        "POST",
        "/cid/ctid/link",
        json={
            **link,
            "traderLogin": quiet["login"],
            "traderPasswordHash": md5("secret-1"),
            "returnAccountDetails": False,
        },
    )
    assert (silent.status_code, silent.content) == (200, b"")


@pytest.mark.parametrize(
    ("currency", "digits"), [("USD", 2), ("EUR", 2), ("GBP", 2), ("BTC", 8), ("ETH", 8)]
)
async def test_money_digits_by_currency(api: Api, currency: str, digits: int) -> None:
    trader = await api.create(depositCurrency=currency, balance=10**digits)
    assert trader["moneyDigits"] == digits
    assert trader["balance"] == trader["equity"] == trader["freeMargin"] == 10**digits


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"accessRights": None}, "INVALID_REQUEST"),
        ({"accountType": None}, "INVALID_REQUEST"),
        ({"balance": None}, "INVALID_REQUEST"),
        ({"brokerName": None}, "INVALID_REQUEST"),
        ({"depositCurrency": None}, "INVALID_REQUEST"),
        ({"groupName": None}, "INVALID_REQUEST"),
        ({"hashedPassword": None}, "INVALID_REQUEST"),
        ({"leverageInCents": None}, "INVALID_REQUEST"),
        ({"accessRights": "EVERYTHING"}, "INVALID_REQUEST"),
        ({"totalMarginCalculationType": "MIN"}, "INVALID_REQUEST"),
        ({"hashedPassword": "plain-text"}, "INVALID_REQUEST"),
        ({"leverageInCents": "a lot"}, "INVALID_REQUEST"),
        ({"balance": -1}, "INVALID_REQUEST"),
        ({"depositCurrency": "XYZ"}, "INVALID_REQUEST"),
        ({"groupName": "Gold"}, "TRADER_GROUP_NOT_FOUND"),
        ({"brokerName": "NOBROKER"}, "CH_BROKER_NOT_FOUND"),
    ],
)
async def test_create_trader_validation(api: Api, changes: dict[str, Any], code: str) -> None:
    refused = await api.call("POST", f"{WEBSERV}/traders", json=new_trader(**changes))
    assert (refused.status_code, error_code(refused)) == (400, code)
    missing = await api.call("GET", f"{WEBSERV}/traders/9000008")
    assert missing.status_code == 404  # nothing was created


# --------------------------------------------------------------------------- traders


async def test_list_pages_backwards_with_has_more(sandbox: CTraderSandbox, api: Api) -> None:
    sandbox.list_chunk_size = 2
    start, end = "2026-01-01T00:00:00.000", "2027-01-01T00:00:00.000"
    to = end
    seen: list[int] = []
    pages = []
    while True:
        response = await api.call("GET", f"{WEBSERV}/traders/", params={"from": start, "to": to})
        assert response.status_code == 200
        page = response.json()
        pages.append(page["hasMore"])
        seen += [t["login"] for t in page["trader"]]
        if not page["hasMore"]:
            break
        to = wire_time(from_ms(min(t["registrationTimestamp"] for t in page["trader"])))
    assert pages == [True, True, True, False]
    assert seen == sorted(SEEDED, reverse=True)  # newest first, each once

    no_slash = await api.call(
        "GET", f"{WEBSERV}/traders", params={"from": start, "to": "2026-04-02T00:00:00.000"}
    )
    assert [t["login"] for t in no_slash.json()["trader"]] == [9000002, 9000001]
    pro = await api.call(
        "GET", f"{WEBSERV}/traders/", params={"from": start, "to": end, "groupId": 2}
    )
    assert {t["login"] for t in pro.json()["trader"]} == {9000002, 9000004}
    narrow = await api.call(
        "GET",
        f"{WEBSERV}/traders/",
        params={"from": "2026-04-01T09:00:00.000", "to": "2026-04-01T09:05:00.000"},
    )
    assert [t["login"] for t in narrow.json()["trader"]] == [9000001]  # from <= t < to
    some = await api.call(
        "GET", f"{WEBSERV}/traders/", params={"from": start, "to": end, "fields": "login,balance"}
    )
    assert all(set(t) == {"login", "balance"} for t in some.json()["trader"])
    for params, code in (
        ({"to": end}, "INVALID_REQUEST"),
        ({"from": start}, "INVALID_REQUEST"),
        ({"from": "2026-01-01T00:00:00Z", "to": end}, "INVALID_REQUEST"),
        ({"from": end, "to": start}, "INVALID_REQUEST"),
        ({"from": start, "to": end, "groupId": 99}, "TRADER_GROUP_NOT_FOUND"),
    ):
        refused = await api.call("GET", f"{WEBSERV}/traders/", params=params)
        assert (refused.status_code, error_code(refused)) == (400, code)


async def test_put_resets_omitted_fields_and_patch_keeps_them(api: Api) -> None:
    rich = {
        "name": "Rita",
        "lastName": "Rich",
        "description": "VIP",
        "swapFree": True,
        "sendOwnStatement": True,
        "maxLeverage": 50000,
        "totalMarginCalculationType": "SUM",
        "contactDetails": {"email": "rita@example.com", "city": "Limassol", "countryId": 196},
        "balance": 10000,
    }
    login = (await api.create(**rich))["login"]
    path = f"{WEBSERV}/traders/{login}"

    patched = await api.call(
        "PATCH", path, json={"leverageInCents": 5000, "contactDetails": {"city": "Paphos"}}
    )
    assert (patched.status_code, patched.content) == (204, b"")
    after = await api.trader(login)
    assert after["leverageInCents"] == 5000
    assert (after["name"], after["description"], after["swapFree"]) == ("Rita", "VIP", True)
    assert after["totalMarginCalculationType"] == "SUM"
    assert after["contactDetails"] == {
        "email": "rita@example.com",
        "city": "Paphos",
        "countryId": 196,
    }
    refused = await api.call("PATCH", path, json={"groupName": None})
    assert error_code(refused) == "INVALID_REQUEST"

    full = new_trader(leverageInCents=20000, name="Rita", hashedPassword=None, balance=None)
    replaced = await api.call("PUT", path, json=full)
    assert (replaced.status_code, replaced.content) == (204, b"")
    after = await api.trader(login)
    assert after["leverageInCents"] == 20000
    assert after["name"] == "Rita"
    for gone in ("lastName", "description", "maxLeverage"):
        assert gone not in after
    assert (after["swapFree"], after["sendOwnStatement"]) == (False, False)
    assert after["totalMarginCalculationType"] == "MAX"
    assert after["contactDetails"] == {}
    assert after["balance"] == 10000  # PUT never moves money
    assert after["lastUpdateTimestamp"] > after["registrationTimestamp"]

    incomplete = await api.call("PUT", path, json={"name": "Only"})
    assert (incomplete.status_code, error_code(incomplete)) == (400, "INVALID_REQUEST")
    currency = await api.call("PATCH", path, json={"depositCurrency": "EUR"})
    assert error_code(currency) == "INVALID_REQUEST"  # the account holds money


async def test_delete_trader(api: Api) -> None:
    login = (await api.create())["login"]
    path = f"{WEBSERV}/traders/{login}"
    deleted = await api.call("DELETE", path)
    assert (deleted.status_code, deleted.content) == (204, b"")
    for method in ("GET", "DELETE"):
        gone = await api.call(method, path)
        assert (gone.status_code, error_code(gone)) == (404, "TRADER_NOT_FOUND")
    assert (await api.call("DELETE", f"{WEBSERV}/traders/9000003")).status_code == 204
    assert await api.grid("openPositions", login=9000001)
    assert (
        await api.call("GET", f"{WEBSERV}/openPositions", params={"login": 9000003})
    ).status_code == 404


async def test_password_change_and_check(api: Api) -> None:
    path = f"{WEBSERV}/traders/9000007"
    changed = await api.call(
        "POST", f"{path}/changepassword", json={"login": 9000007, "hashedPassword": md5("new-pw")}
    )
    assert changed.status_code == 204
    right = await api.call("POST", f"{path}/checkpassword", json={"hashedPassword": md5("new-pw")})
    assert right.status_code == 204
    old = md5("trader-pass-9000007")
    wrong = await api.call("POST", f"{path}/checkpassword", json={"hashedPassword": old})
    assert (wrong.status_code, error_code(wrong)) == (400, "WRONG_PASSWORD")


# --------------------------------------------------------------------------- money


async def test_changebalance_four_types_move_exact_scaled_integers(api: Api) -> None:
    before = await api.trader(9000005)
    assert (before["balance"], before["nonWithdrawableBonus"]) == (250000, 0)
    ids = []
    for kind, amount in (
        ("DEPOSIT", 123.45),
        ("WITHDRAW", "23.45"),
        ("DEPOSIT_NONWITHDRAWABLE_BONUS", 50),
        ("WITHDRAW_NONWITHDRAWABLE_BONUS", "20.5"),
    ):
        response = await api.balance(9000005, kind, amount, comment="c", externalNote="n")
        assert response.status_code == 200, response.text
        assert set(response.json()) == {"balanceHistoryId"}
        ids.append(response.json()["balanceHistoryId"])
    assert ids == list(range(ids[0], ids[0] + 4))
    after = await api.trader(9000005)
    assert after["balance"] == 250000 + 12345 - 2345
    assert after["nonWithdrawableBonus"] == 5000 - 2050
    assert after["equity"] == after["balance"] + after["nonWithdrawableBonus"]
    assert after["freeMargin"] == after["equity"] - after["usedMargin"]
    assert after["cashEquity"] == after["balance"]
    assert after["maxEquityDaily"] >= after["equity"] >= after["minEquityDaily"]
    assert after["lastUpdateTimestamp"] > before["lastUpdateTimestamp"]


async def test_changebalance_crypto_precision(api: Api) -> None:
    before = (await api.trader(9000004))["balance"]
    assert (await api.balance(9000004, "DEPOSIT", 0.00000001)).status_code == 200
    assert (await api.balance(9000004, "DEPOSIT", "0.12345678")).status_code == 200
    assert (await api.trader(9000004))["balance"] == before + 1 + 12345678
    refused = await api.balance(9000004, "DEPOSIT", "0.000000001")
    assert error_code(refused) == "CHANGE_BALANCE_BAD_AMOUNT"


@pytest.mark.parametrize("amount", [0, -5, "-0.01", "12.345", "abc", None, True, "NaN", "Infinity"])
async def test_changebalance_bad_amounts(api: Api, amount: Any) -> None:
    for kind in ("DEPOSIT", "WITHDRAW"):
        refused = await api.balance(9000005, kind, amount)
        assert (refused.status_code, error_code(refused)) == (400, "CHANGE_BALANCE_BAD_AMOUNT")
    assert (await api.trader(9000005))["balance"] == 250000


async def test_changebalance_bad_type_or_login(api: Api) -> None:
    refused = await api.balance(9000005, "BONUS", 1)
    assert (refused.status_code, error_code(refused)) == (400, "INVALID_REQUEST")
    other = await api.call(
        "POST",
        f"{WEBSERV}/traders/9000005/changebalance",
        json={"login": 9000006, "type": "DEPOSIT", "preciseAmount": 1},
    )
    assert error_code(other) == "INVALID_REQUEST"
    missing = await api.balance(9999999, "DEPOSIT", 1)
    assert (missing.status_code, error_code(missing)) == (404, "TRADER_NOT_FOUND")


async def test_not_enough_money_moves_nothing(api: Api) -> None:
    refused = await api.balance(9000005, "WITHDRAW", "2500.01")
    assert (refused.status_code, error_code(refused)) == (400, "NOT_ENOUGH_MONEY")
    refused = await api.balance(9000003, "WITHDRAW_NONWITHDRAWABLE_BONUS", "100.01")
    assert error_code(refused) == "NOT_ENOUGH_MONEY"
    busy = await api.trader(9000003)  # credit 100.00 and open positions
    everything = (busy["balance"] + busy["nonWithdrawableBonus"]) / 100
    assert error_code(await api.balance(9000003, "WITHDRAW", everything)) == "NOT_ENOUGH_MONEY"
    # What stays once the open positions are counted: no credit, no open profit.
    free = min(busy["balance"], busy["cashEquity"] - busy["usedMargin"])
    assert free < min(busy["balance"], busy["freeMargin"])  # the credit would cover more
    too_much = await api.balance(9000003, "WITHDRAW", f"{(free + 1) / 100:.2f}")
    assert error_code(too_much) == "NOT_ENOUGH_MONEY"
    assert await api.trader(9000003) == busy
    assert (await api.balance(9000003, "WITHDRAW", f"{free / 100:.2f}")).status_code == 200
    assert (await api.balance(9000005, "WITHDRAW", "2500")).status_code == 200
    assert (await api.trader(9000005))["balance"] == 0


async def test_external_id_makes_a_retry_safe(api: Api) -> None:
    first = await api.balance(9000005, "DEPOSIT", 10, externalId="bank-1")
    retry = await api.balance(9000005, "DEPOSIT", 10, externalId="bank-1")
    assert retry.status_code == 200
    assert retry.json() == first.json()
    assert (await api.trader(9000005))["balance"] == 251000  # moved once
    other_login = await api.balance(9000006, "DEPOSIT", 10, externalId="bank-1")
    assert other_login.json() != first.json()
    assert (await api.trader(9000006))["balance"] == 121000
    plain = [await api.balance(9000005, "DEPOSIT", 1) for _ in range(2)]
    assert plain[0].json() != plain[1].json()  # no externalId, no dedupe


async def test_legacy_amount_is_ignored(api: Api) -> None:
    response = await api.balance(9000005, "DEPOSIT", 1.5, amount=999999)
    assert response.status_code == 200
    assert (await api.trader(9000005))["balance"] == 250150


async def test_changebonus(api: Api) -> None:
    path = f"{WEBSERV}/traders/9000002/changebonus"
    before = await api.trader(9000002)
    assert before["bonus"] == 2500
    deposit = await api.call("POST", path, json={"type": "DEPOSIT", "preciseAmount": "10.10"})
    assert deposit.status_code == 200
    assert set(deposit.json()) == {"bonusHistoryId"}
    withdraw = await api.call("POST", path, json={"type": "WITHDRAW", "preciseAmount": 5})
    assert withdraw.json()["bonusHistoryId"] == deposit.json()["bonusHistoryId"] + 1
    after = await api.trader(9000002)
    assert after["bonus"] == 2500 + 1010 - 500
    assert (after["balance"], after["equity"]) == (before["balance"], before["equity"])
    for body, code in (
        ({"type": "WITHDRAW", "preciseAmount": 100}, "NOT_ENOUGH_MONEY"),
        ({"type": "DEPOSIT", "preciseAmount": 0}, "CHANGE_BALANCE_BAD_AMOUNT"),
        ({"type": "DEPOSIT_NONWITHDRAWABLE_BONUS", "preciseAmount": 1}, "INVALID_REQUEST"),
    ):
        refused = await api.call("POST", path, json=body)
        assert (refused.status_code, error_code(refused)) == (400, code)
    assert (await api.trader(9000002))["bonus"] == after["bonus"]


# --------------------------------------------------------------------------- reads


async def test_subaccounts_with_totals(api: Api) -> None:
    response = await api.call("GET", f"{WEBSERV}/traders/9000001/subaccounts")
    assert response.json() == {
        "subAccountLogins": {"login": [9000005, 9000006]},
        "totalSubAccountsBalance": 370000,
        "totalSubAccountsEquity": 370000,
    }
    await api.balance(9000005, "DEPOSIT", 10)
    await api.balance(9000006, "DEPOSIT_NONWITHDRAWABLE_BONUS", 5)
    response = await api.call("GET", f"{WEBSERV}/traders/9000001/subaccounts")
    assert response.json()["totalSubAccountsBalance"] == 371000
    assert response.json()["totalSubAccountsEquity"] == 371500
    none = await api.call("GET", f"{WEBSERV}/traders/9000002/subaccounts")
    assert none.json() == {
        "subAccountLogins": {"login": []},
        "totalSubAccountsBalance": 0,
        "totalSubAccountsEquity": 0,
    }


async def test_groups_symbols_and_deposit_assets(api: Api) -> None:
    groups = (await api.call("GET", f"{WEBSERV}/tradergroups")).json()["traderGroup"]
    assert [(g["id"], g["name"]) for g in groups] == [(1, "Default"), (2, "Pro"), (3, "Copy")]
    assert all(g["description"] for g in groups)
    symbols = (await api.call("GET", f"{WEBSERV}/symbols")).json()["symbol"]
    assert [s["name"] for s in symbols] == [
        "EURUSD",
        "GBPUSD",
        "USDJPY",
        "XAUUSD",
        "BTCUSD",
        "US500",
    ]
    assert set(symbols[0]) == {
        "name", "id", "description", "assetClass", "category", "quotesEnabled", "showInCtrader",
    }  # fmt: skip
    assets = (await api.call("GET", f"{WEBSERV}/depositAssets")).json()
    assert assets == {"depositAsset": ["USD", "EUR", "GBP", "CHF", "BTC", "ETH"]}


async def test_open_positions_csv(api: Api) -> None:
    response = await api.call("GET", f"{WEBSERV}/openPositions")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")  # even though JSON was asked
    assert response.text.splitlines()[0] == OPEN_HEADER
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert Counter(r["login"] for r in rows) == {
        "9000001": 3, "9000002": 2, "9000003": 3, "9000004": 2,
    }  # fmt: skip
    for row in rows:
        assert WIRE_TIME.fullmatch(row["openTimestamp"])
        assert row["direction"] in ("BUY", "SELL")
        assert row["bookType"] in ("BOOK_A", "BOOK_B")
        assert row["spreadBetting"] == "false"
        assert row["symbol"] in BY_NAME
        assert Decimal(row["volume"]) > 0
        assert Decimal(row["usedMargin"]) > 0
    one = await api.grid("openPositions", login=9000001)
    assert [r["positionId"] for r in one] == [
        r["positionId"] for r in rows if r["login"] == "9000001"
    ]
    bad = await api.call("GET", f"{WEBSERV}/openPositions", params={"login": "abc"})
    assert (bad.status_code, error_code(bad)) == (400, "INVALID_REQUEST")


async def test_equity_is_balance_plus_credit_plus_unrealised(api: Api) -> None:
    rows = await api.grid("openPositions")
    for login in (9000001, 9000002, 9000003, 9000004):
        trader = await api.trader(login)
        scale = Decimal(10) ** trader["moneyDigits"]
        unrealised = Decimal(0)
        margin = Decimal(0)
        for row in (r for r in rows if r["login"] == str(login)):
            symbol = BY_NAME[row["symbol"]]
            side = 1 if row["direction"] == "BUY" else -1
            move = (symbol.mark - Decimal(row["entryPrice"])) * Decimal(row["volume"]) * side
            unrealised += move * rate(symbol.quote, trader["depositCurrency"])
            margin += Decimal(row["usedMargin"])
        assert trader["usedMargin"] == margin * scale
        expected = trader["balance"] + trader["nonWithdrawableBonus"] + round(unrealised * scale)
        assert trader["equity"] == expected
        assert trader["freeMargin"] == trader["equity"] - trader["usedMargin"]
        assert trader["cashEquity"] == trader["equity"] - trader["nonWithdrawableBonus"]
        assert unrealised != 0


async def test_closed_positions_csv_window(api: Api) -> None:
    start, end = "2026-06-01T00:00:00.000", "2026-06-03T00:00:00.000"
    response = await api.call(
        "GET", f"{WEBSERV}/closedPositions", params={"from": start, "to": end}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.text.splitlines()[0] == CLOSED_HEADER
    for params in (
        {"from": start, "to": "2026-06-03T00:00:00.001"},  # > 2 days
        {"from": start},
        {"to": end},
        {"from": end, "to": start},
        {"from": "01/06/2026", "to": end},
    ):
        refused = await api.call("GET", f"{WEBSERV}/closedPositions", params=params)
        assert (refused.status_code, error_code(refused)) == (400, "INVALID_REQUEST")
    refused = await api.call(
        "GET", f"{WEBSERV}/closedPositions", params={"from": start, "to": end, "login": 9999999}
    )
    assert error_code(refused) == "TRADER_NOT_FOUND"


async def test_seeded_history_adds_up(api: Api) -> None:
    """Every closing deal, window by window: the balances are first deposit + sum of pnl."""
    moment = datetime(2026, 4, 29, tzinfo=UTC)
    rows: list[dict[str, str]] = []
    while moment < datetime(2026, 11, 17, tzinfo=UTC):
        later = moment + timedelta(days=2)
        window = await api.grid(
            "closedPositions", **{"from": wire_time(moment), "to": wire_time(later)}
        )
        for row in window:
            opened = datetime.fromisoformat(row["openTimestamp"]).replace(tzinfo=UTC)
            assert moment <= opened < later  # filtered on the position's creation time
        rows += window
        moment = later
    assert len({r["dealId"] for r in rows}) == len(rows) == 239
    assert any(r["closeTimestamp"] > r["openTimestamp"][:10] + "T23:59:59.999" for r in rows)
    by_login: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        by_login[row["login"]].append(row)
    assert set(by_login) == {"9000001", "9000002", "9000003", "9000004"}
    for login, deals in by_login.items():
        trader = await api.trader(int(login))
        scale = Decimal(10) ** trader["moneyDigits"]
        pnl = [Decimal(d["pnl"]) for d in deals]
        assert trader["balance"] == FIRST_DEPOSIT[int(login)] + sum(pnl) * scale
        assert any(p > 0 for p in pnl)
        assert any(p < 0 for p in pnl)
        assert len({d["symbol"] for d in deals}) >= 5
        assert len(deals) >= 40
        assert len({d["positionId"] for d in deals}) < len(deals)  # some closed in two deals
        assert min(d["openTimestamp"] for d in deals) >= "2026-05-01T00:00:00.000"
        assert max(d["closeTimestamp"] for d in deals) < "2026-11-15T00:00:00.000"
    one = await api.grid("closedPositions", **{"from": "2026-07-01T00:00:00.000",
                                                "to": "2026-07-03T00:00:00.000",
                                                "login": 9000001})  # fmt: skip
    assert {r["login"] for r in one} <= {"9000001"}


def test_seed_is_deterministic() -> None:
    def clock() -> datetime:
        return datetime(2026, 11, 20, tzinfo=UTC)

    first, second, other = State(3, clock), State(3, clock), State(4, clock)
    assert first.deals == second.deals
    assert first.positions == second.positions
    assert [t.balance for t in first.traders.values()] == [
        t.balance for t in second.traders.values()
    ]
    assert first.deals != other.deals


def test_fixed_now_stamps_new_objects() -> None:
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    box = CTraderSandbox(now=now)
    manager = box.state.managers[30017]
    first = box.state.create_trader(manager, new_trader())
    second = box.state.create_trader(manager, new_trader())
    stamp = int((now - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1000)
    assert first.registration_ms == stamp
    assert second.registration_ms == stamp + 1  # never two with one timestamp


# --------------------------------------------------------------------------- knobs


async def test_fail_next(sandbox: CTraderSandbox, api: Api) -> None:
    sandbox.fail_next(2, 500)
    for _ in range(2):
        failed = await api.call("GET", f"{WEBSERV}/traders/9000001")
        assert (failed.status_code, error_code(failed)) == (500, "UNKNOWN_ERROR")
    assert (await api.call("GET", f"{WEBSERV}/traders/9000001")).status_code == 200
    sandbox.fail_next(1)
    failed = await api.balance(9000005, "DEPOSIT", 1)
    assert (failed.status_code, error_code(failed)) == (503, "UNKNOWN_ERROR")
    assert (await api.trader(9000005))["balance"] == 250000


async def test_latency(sandbox: CTraderSandbox, api: Api) -> None:
    sandbox.latency_seconds = 0.25
    started = time.monotonic()
    assert (await api.call("GET", f"{WEBSERV}/symbols")).status_code == 200
    assert time.monotonic() - started >= 0.25


async def test_calls_counter_and_reset(sandbox: CTraderSandbox, api: Api) -> None:
    await api.trader(9000001)
    await api.trader(9000002)
    await api.call("GET", f"{WEBSERV}/traders/9999999")
    await api.grid("openPositions")
    await api.balance(9000005, "DEPOSIT", 1)
    await api.create()
    await api.call("GET", f"{WEBSERV}/traders", params={"from": "2026-01-01T00:00:00"})
    await api.call("POST", "/cid/ctid/create", json={"email": "z@example.com"})
    assert sandbox.calls == Counter(
        {
            "GET /v2/webserv/traders/{login}": 3,
            "GET /v2/webserv/openPositions": 1,
            "POST /v2/webserv/traders/{login}/changebalance": 1,
            "POST /v2/webserv/traders": 1,
            "GET /v2/webserv/traders/": 1,
            "POST /cid/ctid/create": 1,
        }
    )
    sandbox.latency_seconds = 1.0
    sandbox.rate_limit_per_hour = 0
    sandbox.reset()
    assert not sandbox.calls
    assert (sandbox.latency_seconds, sandbox.rate_limit_per_hour) == (0.0, 1000)
    assert (await api.trader(9000005))["balance"] == 250000
    assert (await api.call("GET", f"{WEBSERV}/traders/9000008")).status_code == 404


# --------------------------------------------------------------------------- step 9b rules


class _AnyMs:
    """Equal to any positive epoch-ms timestamp."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, int) and other > 0


ANY_MS: Any = _AnyMs()


async def test_reused_external_id_with_another_request_is_refused(
    sandbox: CTraderSandbox, api: Api
) -> None:
    first = await api.balance(9000005, "DEPOSIT", 10, externalId="bank-2")
    assert first.status_code == 200
    for other in (("DEPOSIT", 11), ("WITHDRAW", 10)):
        refused = await api.balance(9000005, *other, externalId="bank-2")
        assert (refused.status_code, error_code(refused)) == (400, "INVALID_REQUEST")
    assert (await api.trader(9000005))["balance"] == 251000

    # The looser reading, a knob: the first operation's id, nothing moved.
    sandbox.refuse_reused_external_ids = False
    silent = await api.balance(9000005, "DEPOSIT", 11, externalId="bank-2")
    assert silent.json() == first.json()
    assert (await api.trader(9000005))["balance"] == 251000


async def test_without_external_id_dedupe_a_repeat_moves_money_again(
    sandbox: CTraderSandbox, api: Api
) -> None:
    sandbox.dedupe_external_ids = False
    responses = [await api.balance(9000005, "DEPOSIT", 10, externalId="bank-3") for _ in range(2)]
    assert [r.status_code for r in responses] == [200, 200]
    assert responses[0].json() != responses[1].json()
    assert (await api.trader(9000005))["balance"] == 252000
    other = await api.balance(9000005, "WITHDRAW", 5, externalId="bank-3")
    assert other.status_code == 200  # a note only: nothing is compared
    sandbox.reset()
    assert sandbox.dedupe_external_ids and sandbox.refuse_reused_external_ids
    assert not CTraderSandbox(dedupe_external_ids=False).dedupe_external_ids


async def test_withdrawal_with_losing_positions_cannot_use_the_credit(api: Api) -> None:
    busy = await api.trader(9000003)  # credit 100.00, open positions at a loss
    assert busy["nonWithdrawableBonus"] > 0 and busy["cashEquity"] < busy["balance"]
    assert busy["freeMargin"] > busy["balance"]  # the credit covers the whole balance...
    whole = await api.balance(9000003, "WITHDRAW", f"{busy['balance'] / 100:.2f}")
    assert error_code(whole) == "NOT_ENOUGH_MONEY"  # ...but is not paid out
    assert await api.trader(9000003) == busy


async def test_revoked_tokens_are_refused_until_a_new_login(
    sandbox: CTraderSandbox, http: httpx.AsyncClient
) -> None:
    old = await get_token(http, 30017, "manager-pass")
    limited = await get_token(http, 30018, "limited-pass")
    sandbox.revoke_tokens(30017)
    refused = await Api(http, old).call("GET", f"{WEBSERV}/tradergroups")
    assert (refused.status_code, error_code(refused)) == (403, "NOT_ENOUGH_RIGHTS")
    assert (await Api(http, limited).call("GET", f"{WEBSERV}/tradergroups")).status_code == 200
    new = await get_token(http, 30017, "manager-pass")
    assert new != old
    assert (await Api(http, new).call("GET", f"{WEBSERV}/tradergroups")).status_code == 200
    sandbox.revoke_tokens()  # every manager
    for token in (new, limited):
        assert (await Api(http, token).call("GET", f"{WEBSERV}/symbols")).status_code == 403


async def test_manager_password_change_kills_its_tokens(
    sandbox: CTraderSandbox, http: httpx.AsyncClient
) -> None:
    old = await get_token(http, 30017, "manager-pass")
    sandbox.change_manager_password(30017, "rotated-pass")
    assert (await Api(http, old).call("GET", f"{WEBSERV}/symbols")).status_code == 403
    body = {"login": 30017, "hashedPassword": md5("manager-pass")}
    stale = await http.post(f"{WEBSERV}/managers/token", json=body, headers=JSON)
    assert (stale.status_code, error_code(stale)) == (403, "NOT_ENOUGH_RIGHTS")
    new = await get_token(http, 30017, "rotated-pass")
    assert (await Api(http, new).call("GET", f"{WEBSERV}/symbols")).status_code == 200
    sandbox.reset()
    assert (await Api(http, old).call("GET", f"{WEBSERV}/symbols")).status_code == 200


async def test_list_filters_on_last_deal_time_and_open_positions(
    sandbox: CTraderSandbox, api: Api
) -> None:
    window = {"from": "2020-01-01T00:00:00.000", "to": "2030-01-01T00:00:00.000"}

    async def logins(**filters: str) -> set[int]:
        response = await api.call("GET", f"{WEBSERV}/traders/", params={**window, **filters})
        assert response.status_code == 200, response.text
        return {t["login"] for t in response.json()["trader"]}

    alone = await api.call(
        "GET", f"{WEBSERV}/traders/", params={**window, "lastDealFrom": "2026-11-14T00:00:00.000"}
    )
    assert (alone.status_code, error_code(alone)) == (400, "INVALID_REQUEST")
    start, end = datetime(2026, 11, 13, tzinfo=UTC), datetime(2026, 11, 15, tzinfo=UTC)
    expected = {
        login
        for login in SEEDED
        if (at := sandbox.state.last_deal_at(login)) is not None and start <= at < end
    }
    assert expected and expected != SEEDED  # the filter does filter
    assert await logins(lastDealFrom=wire_time(start), lastDealTo=wire_time(end)) == expected
    holding = {9000001, 9000002, 9000003, 9000004}
    assert await logins(hasOpenPositions="true") == holding
    assert await logins(hasOpenPositions="false") == SEEDED - holding
    bad = await api.call("GET", f"{WEBSERV}/traders/", params={**window, "hasOpenPositions": "1"})
    assert error_code(bad) == "INVALID_REQUEST"


async def test_trader_attributes_upsert_list_delete(api: Api, limited: Api) -> None:
    base = f"{WEBSERV}/attributes/traders"
    items = [
        {"id": 9000001, "attributes": [{"name": "kyc", "value": "passed"}]},
        {"id": 9000002, "attributes": [{"name": "KYC-level", "value": "2"}]},
    ]
    done = await api.call("POST", base, json={"items": items})
    assert (done.status_code, done.json()) == (200, {})
    listed = (await api.call("POST", f"{base}/list", json={})).json()
    assert [i["id"] for i in listed["items"]] == [9000001, 9000002]
    assert listed["nextCursor"] is None
    assert listed["items"][0]["attributes"] == [{"name": "kyc", "value": "passed"}]
    assert listed["items"][0]["lastUpdateTimestamp"] > 0
    page = (await api.call("POST", f"{base}/list", json={"pageSize": 1})).json()
    assert ([i["id"] for i in page["items"]], page["nextCursor"]) == ([9000001], 1)
    named = await api.call("POST", f"{base}/list", json={"ids": [9000002], "nameFilter": "kyc"})
    assert [i["id"] for i in named.json()["items"]] == [9000002]  # case-insensitive
    mixed = await api.call("POST", f"{base}/list", json={"ids": [9000001], "pageSize": 5})
    assert error_code(mixed) == "INVALID_REQUEST"  # paging only without ids
    # The limited manager sees group Pro only: 9000001 (Default) is dropped silently.
    theirs = await limited.call("POST", f"{base}/list", json={})
    assert [i["id"] for i in theirs.json()["items"]] == [9000002]
    dropped = await limited.call(
        "POST", base, json={"items": [{"id": 9000001, "attributes": [{"name": "x", "value": "y"}]}]}
    )
    assert (dropped.status_code, error_code(dropped)) == (403, "NOT_ENOUGH_RIGHTS")
    too_long = [{"id": 9000001, "attributes": [{"name": "n" * 65, "value": "v"}]}]
    assert error_code(await api.call("POST", base, json={"items": too_long})) == "INVALID_REQUEST"
    empty_value = [{"id": 9000001, "attributes": [{"name": "n", "value": ""}]}]
    refused = await api.call("POST", base, json={"items": empty_value})
    assert error_code(refused) == "INVALID_REQUEST"
    gone = await api.call("POST", f"{base}/delete", json={"ids": [9000001, 9000002]})
    assert (gone.status_code, gone.json()) == (200, {})
    assert (await api.call("POST", f"{base}/list", json={})).json()["items"] == []


async def test_group_and_manager_attributes(api: Api, limited: Api) -> None:
    groups = f"{WEBSERV}/attributes/tradergroups"
    pair = [{"name": "tier", "value": "gold"}, {"name": "desk", "value": "A"}]
    assert (
        await api.call("POST", groups, json={"items": [{"id": 2, "attributes": pair}]})
    ).json() == {}
    no_ids = await api.call("POST", f"{groups}/list", json={})
    assert error_code(no_ids) == "INVALID_REQUEST"  # group lists need ids
    one = await api.call("POST", f"{groups}/delete", json={"ids": [2], "names": ["desk"]})
    assert one.status_code == 200
    listed = (await limited.call("POST", f"{groups}/list", json={"ids": [1, 2]})).json()
    assert listed["items"] == [
        {"id": 2, "attributes": [{"name": "tier", "value": "gold"}], "lastUpdateTimestamp": ANY_MS}
    ]
    managers = f"{WEBSERV}/attributes/managers"
    mine = [{"id": 30017, "attributes": [{"name": "desk", "value": "EU"}]}]
    assert (await api.call("POST", managers, json={"items": mine})).status_code == 200
    other = await limited.call("POST", f"{managers}/list", json={"ids": [30017, 30018]})
    assert other.json()["items"] == []  # a regular manager reads its own only
    assert error_code(await api.call("POST", f"{WEBSERV}/attributes/users/list", json={})) == (
        "INVALID_REQUEST"
    )


async def test_white_label_move(api: Api, limited: Api) -> None:
    move = "/cid/ctid/changeCtidTraderAccount"
    body = {"traderLogin": 9000002, "brokerName": "OTHERBROKER", "environmentName": "demo"}
    assert (await limited.call("POST", move, json=body)).status_code == 403  # broker disabled
    assert (await limited.call("GET", f"{WEBSERV}/traders/9000002")).status_code == 200
    done = await api.call("POST", move, json=body)
    assert (done.status_code, done.content) == (200, b"")
    assert (await api.trader(9000002))["brokerName"] == "OTHERBROKER"
    assert (await limited.call("GET", f"{WEBSERV}/traders/9000002")).status_code == 403
    for changes, code in (
        ({"brokerName": "NOBROKER"}, "CH_PLANT_INVALID"),
        ({"traderLogin": 9999999}, "TRADER_NOT_FOUND"),
        ({"environmentName": "live"}, "INVALID_REQUEST"),
    ):
        assert error_code(await api.call("POST", move, json={**body, **changes})) == code
    linked = await api.call(
        "POST",
        "/cid/ctid/link",
        json={
            "traderLogin": 9000002,
            "traderPasswordHash": md5("trader-pass-9000002"),
            "userId": 1001,
            "brokerName": "DEMOBROKER",
            "environmentName": "demo",
        },
    )
    assert error_code(linked) == "NOT_ENOUGH_RIGHTS"  # DEMOBROKER no longer has the trader


async def test_reporting_history_snapshots(
    sandbox: CTraderSandbox, http: httpx.AsyncClient, api: Api
) -> None:
    before = int(time.time() * 1000) - 1
    assert (
        await api.balance(9000005, "DEPOSIT", "1.25", externalId="ref-1", comment="c")
    ).status_code == 200
    bonus = await api.call(
        "POST", f"{WEBSERV}/traders/9000005/changebonus",
        json={"type": "DEPOSIT", "preciseAmount": 2, "externalId": "ref-2"},
    )  # fmt: skip
    assert bonus.status_code == 200
    window = {
        "login": "9000005",
        "fromTimestamp": str(before),
        "toTimestamp": str(before + 3_600_000),
    }
    balance = await http.get("/repo/balanceHistory", params=window)  # no token
    assert balance.headers["content-type"] == "application/x-protobuf"
    (entry,) = decode_snapshot(balance.content)
    assert (entry.operation_type, entry.delta, entry.money_digits) == ("DEPOSIT", 125, 2)
    assert (entry.external_id, entry.comment, entry.login) == ("ref-1", "c", 9000005)
    (bonus_entry,) = decode_snapshot((await http.get("/repo/bonusHistory", params=window)).content)
    assert (bonus_entry.external_id, bonus_entry.delta) == ("ref-2", 200)
    earlier = {**window, "toTimestamp": str(before)}
    assert decode_snapshot((await http.get("/repo/balanceHistory", params=earlier)).content) == []
    assert (await http.get("/repo/balanceHistory", params={"login": "9000005"})).status_code == 400
    sandbox.allowed_ips = ("10.0.0.1",)
    assert (await http.get("/repo/balanceHistory", params=window)).status_code == 403


async def test_fail_next_after_apply(sandbox: CTraderSandbox, api: Api) -> None:
    sandbox.fail_next_after_apply(1, 502)
    lost = await api.balance(9000005, "DEPOSIT", 10)
    assert (lost.status_code, error_code(lost)) == (502, "UNKNOWN_ERROR")
    assert (await api.trader(9000005))["balance"] == 251000  # applied all the same
    assert sandbox.calls["POST /v2/webserv/traders/{login}/changebalance"] == 1


async def test_reporting_serves_two_snapshots_at_once(
    sandbox: CTraderSandbox, http: httpx.AsyncClient
) -> None:
    sandbox.snapshot_seconds = 0.5  # long enough for three requests to overlap
    window = {"login": "9000005", "fromTimestamp": "0", "toTimestamp": "1"}
    answers = await asyncio.gather(
        *(http.get("/repo/balanceHistory", params=window, headers=JSON) for _ in range(3))
    )
    assert sorted(a.status_code for a in answers) == [200, 200, 429]
    refused = next(a for a in answers if a.status_code == 429)
    assert error_code(refused) == "REQUEST_FREQUENCY_EXCEEDED"
    sandbox.reset()
    assert sandbox.snapshot_seconds == 0.0
