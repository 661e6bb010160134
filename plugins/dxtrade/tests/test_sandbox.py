"""The DXtrade sandbox over real sockets: dxweb admin API, dxsca-web reads, dxFeed callbacks."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
import uvicorn
from brokergraph_dxtrade.sandbox import DEFAULT_WEBHOOK_SECRET, WEBHOOK_PATH, DxTradeSandbox
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.contract.sandbox import sandbox_certificate

ADMIN = {"username": "crm-admin", "domain": "default", "password": "crm-pass"}
ALICE_FEED = "6ddbec14-dd36-4358-adbb-80421d044ba3"
REG = "/dxweb/rest/api/register"

# seed 004 §2.1 (both mode fields; each test keeps the one its mode needs)
SEED_004_CLIENT: dict[str, Any] = {
    "domain": "default",
    "login": "prop-client",
    "accounts": [
        {
            "clearingCode": "default",
            "accountCode": "prop-client-acc",
            "type": "CLIENT",
            "status": "FULL_TRADING",
            "accountCashType": "MARGIN",
            "accountType": "DEMO",
            "currency": "USD",
            "balance": 1000000,
            "categories": [{"category": "TRADE_TYPE", "value": "FUTURES"}],
        }
    ],
    "email": "bob.smith@gmail.com",
    "dxFeedAccountId": "6ddbec14-dd36-4358-adbb-80421d044ba3",
    "type": "CLIENT",
    "status": "ONLINE",
    "password": "test",
}
# seed 004 §2.4
SEED_004_NEW_ACCOUNT: dict[str, Any] = {
    "clearingCode": "default",
    "accountCode": "client-2-acc-code",
    "type": "CLIENT",
    "status": "FULL_TRADING",
    "accountCashType": "MARGIN",
    "accountType": "DEMO",
    "currency": "USD",
    "balance": 1000000,
    "categories": [{"category": "TRADE_TYPE", "value": "FUTURES"}],
}


class Receiver:
    """A tiny gateway stand-in that records dxFeed callbacks and checks their signatures."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.received: list[dict[str, Any]] = []
        self.statuses: list[int] = []  # answers to give first, then 200
        self.arrived = asyncio.Event()
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.url = ""

    async def _hook(self, request: Request) -> Response:
        raw = await request.body()
        timestamp = request.headers["x-dxfeed-timestamp"]
        expected = hmac.new(
            self.secret.encode(), f"{timestamp}.".encode() + raw, hashlib.sha256
        ).hexdigest()
        self.received.append(
            {
                "delivery": request.headers["x-dxfeed-delivery"],
                "valid": hmac.compare_digest(
                    request.headers["x-dxfeed-signature"], f"sha256={expected}"
                ),
                "raw": raw,
                "json": await request.json(),
            }
        )
        self.arrived.set()
        status = self.statuses.pop(0) if self.statuses else 200
        return JSONResponse({"ok": status < 300}, status_code=status)

    async def start(self) -> None:
        app = Starlette(routes=[Route(WEBHOOK_PATH, self._hook, methods=["POST"])])
        config = uvicorn.Config(app, port=0, lifespan="off", log_config=None, access_log=False)
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        for _ in range(1000):  # bounded: 10 s
            if self._server.started:
                break
            await asyncio.sleep(0.01)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        assert self._server is not None
        assert self._task is not None
        self._server.should_exit = True
        await self._task

    def reset(self) -> None:
        self.received.clear()
        self.statuses.clear()
        self.arrived.clear()


@pytest.fixture(scope="module")
async def sandbox() -> AsyncIterator[DxTradeSandbox]:
    box = DxTradeSandbox(reads_per_second=1000)
    await box.start()
    box.callback_retry_delays = (0.02, 0.02, 0.02)
    yield box
    await box.stop()


@pytest.fixture(scope="module")
async def receiver() -> AsyncIterator[Receiver]:
    hook = Receiver(DEFAULT_WEBHOOK_SECRET)
    await hook.start()
    yield hook
    await hook.stop()


@pytest.fixture(autouse=True)
def _fresh(sandbox: DxTradeSandbox, receiver: Receiver) -> None:
    sandbox.reset()
    receiver.reset()


@pytest.fixture
async def http(sandbox: DxTradeSandbox) -> AsyncIterator[httpx.AsyncClient]:
    verify = sandbox.client_ssl_context()
    async with httpx.AsyncClient(base_url=sandbox.url, timeout=10, verify=verify) as client:
        yield client


async def login(http: httpx.AsyncClient, surface: str = "dxweb/rest", **creds: str) -> str:
    response = await http.post(f"/{surface}/login", json=creds or ADMIN)
    assert response.status_code == 200, response.text
    return str(response.json()["sessionToken"])


def dxapi(token: str) -> dict[str, str]:
    return {"Authorization": f"DXAPI {token}"}


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def admin(http: httpx.AsyncClient) -> dict[str, str]:
    return dxapi(await login(http))


def user_creds(login_: str) -> dict[str, str]:
    return {"username": login_, "domain": "default", "password": f"{login_}-pass"}


def dec(value: Any) -> Decimal:
    return Decimal(str(value))


# -- authentication ------------------------------------------------------------------------


async def test_login_gives_a_token_both_surfaces_accept(http: httpx.AsyncClient) -> None:
    response = await http.post("/dxweb/rest/login", json=ADMIN)
    assert response.status_code == 200
    assert response.json()["timeout"] == 1_800_000
    token = response.json()["sessionToken"]
    assert (await http.get(f"{REG}/client/default/alice", headers=dxapi(token))).status_code == 200
    metrics = await http.get("/dxsca-web/accounts/metrics", headers=dxapi(token))
    assert metrics.status_code == 200
    sca_token = await login(http, "dxsca-web")
    assert (await http.get(f"{REG}/account", headers=dxapi(sca_token))).status_code == 200


async def test_bad_credentials_and_tokens_are_401_in_each_surface_format(
    http: httpx.AsyncClient,
) -> None:
    bad = await http.post("/dxweb/rest/login", json={**ADMIN, "password": "nope"})
    assert bad.status_code == 401
    body = bad.json()
    assert body["errorCode"] == 401
    assert body["errorMessage"]
    assert body["errorId"]
    unknown = await http.get(f"{REG}/client/default/alice", headers=dxapi("not-a-token"))
    assert unknown.status_code == 401
    assert unknown.json()["errorCode"] == 401
    sca = await http.get("/dxsca-web/accounts/metrics", headers=dxapi("not-a-token"))
    assert sca.status_code == 401
    assert sca.json()["errorCode"] == "UNAUTHORIZED"
    assert sca.json()["description"]
    missing = await http.get(f"{REG}/client/default/alice")
    assert missing.status_code == 401


async def test_session_expires_and_ping_extends_it() -> None:
    box = DxTradeSandbox(session_timeout_ms=1000)
    await box.start()
    try:
        verify = box.client_ssl_context()
        async with httpx.AsyncClient(base_url=box.url, timeout=10, verify=verify) as http:
            response = await http.post("/dxsca-web/login", json=ADMIN)
            assert response.json()["timeout"] == 1000
            token = response.json()["sessionToken"]
            await asyncio.sleep(0.6)
            ping = await http.post("/dxsca-web/ping", headers=dxapi(token))
            assert ping.status_code == 200
            assert ping.json() == {"sessionToken": token, "timeout": 1000}
            await asyncio.sleep(0.6)  # 1.2 s after login, 0.6 s after the ping
            alive = await http.get("/dxsca-web/users", headers=dxapi(token))
            assert alive.status_code == 200
            await asyncio.sleep(1.1)
            expired = await http.get("/dxsca-web/users", headers=dxapi(token))
            assert expired.status_code == 401
            web = await http.post("/dxweb/rest/ping", headers=dxapi(token))
            assert web.status_code == 401
            assert web.json()["errorCode"] == 401
    finally:
        await box.stop()


async def test_http_basic_login_at_domain(http: httpx.AsyncClient) -> None:
    ok = await http.get(f"{REG}/client/default/bob", headers=basic("crm-admin@default", "crm-pass"))
    assert ok.status_code == 200
    assert ok.json()["login"] == "bob"
    wrong = await http.get(f"{REG}/client/default/bob", headers=basic("crm-admin@default", "x"))
    assert wrong.status_code == 401
    user = basic("carol@default", "carol-pass")
    assert (await http.get(f"{REG}/client/default/bob", headers=user)).status_code == 403
    own = await http.get("/dxsca-web/accounts/default%3Acarol-usd/metrics", headers=user)
    assert own.status_code == 200
    assert own.json()["metrics"][0]["account"] == "default:carol-usd"


async def test_logout_user_by_login_ends_that_users_sessions(http: httpx.AsyncClient) -> None:
    carol = await login(http, "dxsca-web", **user_creds("carol"))
    assert (await http.get("/dxsca-web/users", headers=dxapi(carol))).status_code == 200
    response = await http.post(
        "/dxweb/rest/logoutUserByLogin",
        content="login=carol&domain=default",
        headers={**await admin(http), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    assert response.text.startswith("1 ")
    assert (await http.get("/dxsca-web/users", headers=dxapi(carol))).status_code == 401


# -- users ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["single", "xt", "crm"])
async def test_create_client_with_the_seed_004_body_in_each_mode(
    http: httpx.AsyncClient, mode: str
) -> None:
    body = dict(SEED_004_CLIENT)
    if mode == "crm":  # seed 004's id is alice's seeded dxFeed account: use a fresh one
        body["dxFeedAccountId"] = "0b7d3c1e-2f4a-4e5b-9c6d-7e8f90a1b2c3"
    else:
        del body["dxFeedAccountId"]
    if mode == "single":
        del body["email"]
    headers = await admin(http)
    created = await http.post(f"{REG}/client", json=body, headers=headers)
    assert created.status_code == 200, created.text
    assert created.headers["etag"]
    client = created.json()
    assert client["status"] == "ONLINE"
    assert "password" not in client
    assert client["dxFeedAccountId"] == (body.get("dxFeedAccountId"))
    [account] = client["accounts"]
    assert account["accountCode"] == "prop-client-acc"
    assert dec(account["balance"]) == 1000000
    assert account["categories"] == [{"category": "TRADE_TYPE", "value": "FUTURES"}]
    read = await http.get(f"{REG}/client/default/prop-client", headers=headers)
    assert read.json() == client
    assert read.headers["etag"] == created.headers["etag"]
    again = await http.post(f"{REG}/client", json=body, headers=headers)
    assert again.status_code == 409
    assert again.json()["errorCode"] == 409

    user = {"username": "prop-client", "domain": "default", "password": "test"}
    first = await http.post("/dxsca-web/login", json=user)
    if mode == "crm":  # the CRM's fresh dxFeed account has no active subscription yet
        assert first.status_code == 403
        assert first.json()["errorCode"] == "NO_MARKET_DATA"
    else:
        assert first.status_code == 200
    linked = (await http.get(f"{REG}/client/default/prop-client", headers=headers)).json()
    # DxTradeXT mode: the dxFeed account is created at the user's first login.
    assert (linked["dxFeedAccountId"] is not None) == (mode != "single")


async def test_update_client_with_etag_and_if_match(http: httpx.AsyncClient) -> None:
    headers = await admin(http)
    etag = (await http.get(f"{REG}/client/default/alice", headers=headers)).headers["etag"]
    updated = await http.put(
        f"{REG}/client/default/alice",
        json={"fullName": "Alice A. Anders", "status": "OFFLINE"},
        headers={**headers, "If-Match": etag},
    )
    assert updated.status_code == 200
    assert updated.json()["fullName"] == "Alice A. Anders"
    assert updated.json()["status"] == "OFFLINE"
    assert updated.headers["etag"] != etag
    stale = await http.put(
        f"{REG}/client/default/alice",
        json={"status": "ONLINE"},
        headers={**headers, "If-Match": etag},
    )
    assert stale.status_code == 412
    assert stale.json()["errorCode"] == 412
    unconditional = await http.put(
        f"{REG}/client/default/alice", json={"status": "ONLINE"}, headers=headers
    )
    assert unconditional.status_code == 200
    assert unconditional.json()["status"] == "ONLINE"
    bad = await http.put(f"{REG}/client/default/alice", json={"status": "X"}, headers=headers)
    assert bad.status_code == 400
    nobody = await http.put(f"{REG}/client/default/nobody", json={}, headers=headers)
    assert nobody.status_code == 404


async def test_add_account_and_duplicate_account_code(http: httpx.AsyncClient) -> None:
    headers = await admin(http)
    new = {**SEED_004_NEW_ACCOUNT, "accountCode": "alice-eur", "currency": "EUR", "balance": 0}
    added = await http.post(f"{REG}/client/default/alice/account", json=new, headers=headers)
    assert added.status_code == 200
    assert added.json()["status"] == "FULL_TRADING"
    again = await http.post(f"{REG}/client/default/alice/account", json=new, headers=headers)
    assert again.status_code == 409
    taken = {**new, "accountCode": "bob-usd"}
    clash = await http.post(f"{REG}/client/default/alice/account", json=taken, headers=headers)
    assert clash.status_code == 409
    client = (await http.get(f"{REG}/client/default/alice", headers=headers)).json()
    assert [a["accountCode"] for a in client["accounts"]] == ["alice-usd", "alice-eur"]


async def test_account_statuses_and_terminal_states(http: httpx.AsyncClient) -> None:
    headers = await admin(http)
    url = f"{REG}/account/default/carol-usd"
    for status in ("CLOSE_ONLY", "NO_TRADING", "FULL_TRADING", "EXPIRED"):
        response = await http.put(url, json={"status": status}, headers=headers)
        assert response.status_code == 200
        assert response.json()["status"] == status
    back = await http.put(url, json={"status": "FULL_TRADING"}, headers=headers)
    assert back.status_code == 409
    assert (await http.put(url, json={"status": "TERMINATED"}, headers=headers)).status_code == 409
    assert (await http.put(url, json={"credit": 10}, headers=headers)).status_code == 409
    bogus = await http.put(f"{REG}/account/default/bob-usd", json={"status": "X"}, headers=headers)
    assert bogus.status_code == 400
    assert (await http.get(url, headers=headers)).json()["status"] == "EXPIRED"


# -- money ----------------------------------------------------------------------------------


async def test_deposit_then_withdrawal_keyed_by_client_ids(http: httpx.AsyncClient) -> None:
    headers = await admin(http)
    account = f"{REG}/account/default/alice-usd"
    deposit = {"currency": "USD", "amount": 500.25, "description": "card top-up"}
    first = await http.put(f"{account}/deposit/dep-1", json=deposit, headers=headers)
    assert first.status_code == 200, first.text
    assert first.json()["id"] == "dep-1"
    assert dec(first.json()["amount"]) == Decimal("500.25")
    repeat = await http.put(f"{account}/deposit/dep-1", json=deposit, headers=headers)
    assert repeat.status_code == 200
    assert repeat.json() == first.json()
    assert dec((await http.get(account, headers=headers)).json()["balance"]) == Decimal("25500.25")
    changed = {**deposit, "amount": 501}
    conflict = await http.put(f"{account}/deposit/dep-1", json=changed, headers=headers)
    assert conflict.status_code == 409
    assert conflict.json()["errorCode"] == 409

    withdrawal = {"currency": "USD", "amount": 200, "description": "payout"}
    taken = await http.put(f"{account}/withdrawal/wd-1", json=withdrawal, headers=headers)
    assert taken.status_code == 200
    again = await http.put(f"{account}/withdrawal/wd-1", json=withdrawal, headers=headers)
    assert again.json() == taken.json()
    assert dec((await http.get(account, headers=headers)).json()["balance"]) == Decimal("25300.25")
    too_much = {"currency": "USD", "amount": 1_000_000, "description": "all of it"}
    refused = await http.put(f"{account}/withdrawal/wd-2", json=too_much, headers=headers)
    assert refused.status_code == 422
    assert refused.json()["errorCode"] == 30005
    euros = {"currency": "EUR", "amount": 5, "description": None}
    assert (
        await http.put(f"{account}/deposit/d-3", json=euros, headers=headers)
    ).status_code == 400
    zero = {"currency": "USD", "amount": 0}
    assert (await http.put(f"{account}/deposit/d-4", json=zero, headers=headers)).status_code == 400
    assert dec((await http.get(account, headers=headers)).json()["balance"]) == Decimal("25300.25")

    # The admin cash operations show as dxsca-web cash transfers, once each.
    transfers = (
        await http.get("/dxsca-web/accounts/default%3Aalice-usd/transfers", headers=headers)
    ).json()["transfers"]
    ours = {t["transferCode"]: t["cashTransactions"][0] for t in transfers}
    assert [t["transferCode"] for t in transfers].count("dep-1") == 1
    assert ours["dep-1"]["type"] == "DEPOSIT"
    assert dec(ours["dep-1"]["value"]) == Decimal("500.25")
    assert ours["wd-1"]["type"] == "WITHDRAWAL"
    assert dec(ours["wd-1"]["value"]) == -200
    assert "wd-2" not in ours
    assert len(transfers) == 5


async def test_signed_adjustments_and_credit(http: httpx.AsyncClient) -> None:
    headers = await admin(http)
    account = f"{REG}/account/default/bob-usd"
    minus = {"currency": "USD", "amount": -100, "description": "fee"}
    plus = {"currency": "USD", "amount": 40.5, "description": "rebate"}
    assert (await http.put(f"{account}/adjustment/a-1", json=minus, headers=headers)).is_success
    assert (await http.put(f"{account}/adjustment/a-2", json=plus, headers=headers)).is_success
    huge = {"currency": "USD", "amount": -999_999, "description": "x"}
    refused = await http.put(f"{account}/adjustment/a-3", json=huge, headers=headers)
    assert refused.status_code == 422
    assert refused.json()["errorCode"] == 30005
    credit = await http.put(account, json={"credit": 1500}, headers=headers)
    assert credit.status_code == 200
    assert dec(credit.json()["credit"]) == 1500
    assert dec(credit.json()["balance"]) == Decimal("9940.5")
    negative = await http.put(account, json={"credit": -1}, headers=headers)
    assert negative.status_code == 400
    [metrics] = (
        await http.get("/dxsca-web/accounts/default%3Abob-usd/metrics", headers=headers)
    ).json()["metrics"]
    assert dec(metrics["credit"]) == 1500
    assert dec(metrics["openPL"]) == 150
    assert dec(metrics["equity"]) == Decimal("9940.5") + 150 + 1500
    kinds = await http.get(
        "/dxsca-web/accounts/transfers",
        params={"accounts": "default:bob-usd", "of-type": "ADJUSTMENT"},
        headers=headers,
    )
    values = [dec(t["cashTransactions"][0]["value"]) for t in kinds.json()["transfers"]]
    assert values == [-100, Decimal("40.5")]


# -- deactivation and reactivation ------------------------------------------------------------


async def test_disable_user_and_terminate_accounts_cancels_dxfeed_with_a_signed_callback(
    sandbox: DxTradeSandbox, receiver: Receiver, http: httpx.AsyncClient
) -> None:
    sandbox.attach_gateway(receiver.url)
    headers = await admin(http)
    alice = await login(http, "dxsca-web", **user_creds("alice"))
    response = await http.post(
        f"{REG}/client/default/alice/disable-user-and-terminate-accounts",
        json={"cancelDxFeedSubscriptions": True},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "DISABLED"
    assert {a["status"] for a in response.json()["accounts"]} == {"TERMINATED"}
    feed = await http.get(
        f"/dxfeed/accounts/{ALICE_FEED}/subscriptions",
        headers={"Authorization": f"Bearer {DEFAULT_WEBHOOK_SECRET}"},
    )
    assert feed.json()["subscriptions"] == [
        {"name": "CME Globex Top of Book", "endDate": "2027-01-31", "active": False}
    ]
    await asyncio.wait_for(receiver.arrived.wait(), 10)
    [callback] = receiver.received
    assert callback["valid"]
    payload = callback["json"]
    assert payload["type"] == "subscription.deactivated"
    assert payload["deliveryId"] == callback["delivery"]
    assert (payload["login"], payload["domain"]) == ("alice", "default")
    assert payload["dxFeedAccountId"] == ALICE_FEED
    assert [s["active"] for s in payload["subscriptions"]] == [False]
    await sandbox.wait_callbacks(5)
    assert sandbox.delivered_callbacks[0].delivery_id == payload["deliveryId"]
    # The user's session is gone and a new login is refused.
    assert (await http.get("/dxsca-web/users", headers=dxapi(alice))).status_code == 401
    refused = await http.post("/dxsca-web/login", json=user_creds("alice"))
    assert refused.status_code == 403
    assert refused.json()["errorCode"] == "USER_DISABLED"
    cash = {"currency": "USD", "amount": 1, "description": None}
    deposit = await http.put(
        f"{REG}/account/default/alice-usd/deposit/late", json=cash, headers=headers
    )
    assert deposit.status_code == 409


async def test_two_step_disable_without_cancelling_subscriptions(
    sandbox: DxTradeSandbox, receiver: Receiver, http: httpx.AsyncClient
) -> None:
    sandbox.attach_gateway(receiver.url)
    headers = await admin(http)
    disabled = await http.put(
        f"{REG}/client/default/alice", json={"status": "DISABLED"}, headers=headers
    )
    assert disabled.status_code == 200
    bulk = await http.put(
        f"{REG}/account",
        json=[{"clearingCode": "default", "accountCode": "alice-usd", "status": "TERMINATED"}],
        headers=headers,
    )
    assert bulk.status_code == 200
    assert bulk.json()[0]["status"] == "TERMINATED"
    assert (await http.post("/dxsca-web/login", json=user_creds("alice"))).status_code == 403
    await sandbox.wait_callbacks(5)
    assert sandbox.callbacks == []
    assert receiver.received == []


async def test_reactivation_is_status_offline_then_a_new_account(http: httpx.AsyncClient) -> None:
    headers = await admin(http)
    client = f"{REG}/client/default/carol"
    await http.post(f"{client}/disable-user-and-terminate-accounts", json={}, headers=headers)
    early = await http.post(f"{client}/account", json=SEED_004_NEW_ACCOUNT, headers=headers)
    assert early.status_code == 409
    online = await http.put(client, json={"status": "ONLINE"}, headers=headers)
    assert online.status_code == 409
    offline = await http.put(client, json={"status": "OFFLINE"}, headers=headers)
    assert offline.status_code == 200
    assert offline.json()["status"] == "OFFLINE"
    added = await http.post(f"{client}/account", json=SEED_004_NEW_ACCOUNT, headers=headers)
    assert added.status_code == 200
    accounts = {
        a["accountCode"]: a["status"]
        for a in (await http.get(client, headers=headers)).json()["accounts"]
    }
    assert accounts == {"carol-usd": "TERMINATED", "client-2-acc-code": "FULL_TRADING"}
    assert (await http.post("/dxsca-web/login", json=user_creds("carol"))).status_code == 200


# -- dxsca-web reads ------------------------------------------------------------------------


async def test_reads_single_and_batched(http: httpx.AsyncClient) -> None:
    headers = await admin(http)
    single = await http.get("/dxsca-web/accounts/default%3Aalice-usd/metrics", headers=headers)
    [m] = single.json()["metrics"]
    assert m["account"] == "default:alice-usd"
    assert (dec(m["balance"]), dec(m["openPL"]), dec(m["credit"])) == (
        Decimal(25000),
        Decimal(600),
        Decimal(0),
    )
    assert dec(m["equity"]) == 25600
    assert dec(m["margin"]) == 3340
    assert (m["openPositionsCount"], m["openOrdersCount"]) == (2, 2)
    batch = await http.get(
        "/dxsca-web/accounts/metrics",
        params={"accounts": "default:alice-usd,default:bob-usd,default:ghost"},
        headers=headers,
    )
    assert [x["account"] for x in batch.json()["metrics"]] == [
        "default:alice-usd",
        "default:bob-usd",
    ]
    positions = await http.get(
        "/dxsca-web/accounts/positions",
        params={"accounts": "default:alice-usd,default:bob-usd"},
        headers=headers,
    )
    codes = [p["positionCode"] for p in positions.json()["positions"]]
    assert codes == ["alice-p-1", "alice-p-2", "bob-p-1", "bob-p-2"]
    orders = await http.get("/dxsca-web/accounts/default%3Abob-usd/orders", headers=headers)
    [order] = orders.json()["orders"]
    assert (order["orderCode"], order["type"], order["status"]) == ("bob-o-1", "LIMIT", "WORKING")
    assert dec(order["legs"][0]["price"]) == Decimal("1.28")
    transfers = await http.get(
        "/dxsca-web/accounts/transfers", params={"accounts": "default:carol-usd"}, headers=headers
    )
    kinds = [t["cashTransactions"][0]["type"] for t in transfers.json()["transfers"]]
    assert kinds == ["DEPOSIT", "FINANCING", "ADJUSTMENT"]
    missing = await http.get("/dxsca-web/accounts/default%3Aghost/metrics", headers=headers)
    assert missing.status_code == 404
    assert missing.json()["errorCode"] == "NOT_FOUND"


async def test_users_see_their_own_accounts_only(http: httpx.AsyncClient) -> None:
    headers = await admin(http)
    everyone = (await http.get("/dxsca-web/users", headers=headers)).json()["userDetails"]
    assert [u["username"] for u in everyone] == ["alice@default", "bob@default", "carol@default"]
    carol = dxapi(await login(http, "dxsca-web", **user_creds("carol")))
    [me] = (await http.get("/dxsca-web/users", headers=carol)).json()["userDetails"]
    assert [a["account"] for a in me["accounts"]] == ["default:carol-usd"]
    other = await http.get("/dxsca-web/accounts/default%3Aalice-usd/metrics", headers=carol)
    assert other.status_code == 404
    mine = await http.get("/dxsca-web/accounts/metrics", headers=carol)
    assert [x["account"] for x in mine.json()["metrics"]] == ["default:carol-usd"]
    one = await http.get("/dxsca-web/users/alice%40default", headers=headers)
    assert one.json()["userDetails"][0]["dxFeedAccountId"] == ALICE_FEED


async def test_reads_are_rate_limited_per_session() -> None:
    box = DxTradeSandbox(reads_per_second=2)
    await box.start()
    try:
        verify = box.client_ssl_context()
        async with httpx.AsyncClient(base_url=box.url, timeout=10, verify=verify) as http:
            first, second = dxapi(await login(http)), dxapi(await login(http))
            statuses = [
                (await http.get("/dxsca-web/accounts/metrics", headers=first)).status_code
                for _ in range(4)
            ]
            assert statuses[:2] == [200, 200]
            assert 429 in statuses[2:]
            limited = await http.get("/dxsca-web/accounts/metrics", headers=first)
            assert limited.json()["errorCode"] == "TOO_MANY_REQUESTS"
            other = await http.get("/dxsca-web/accounts/metrics", headers=second)
            assert other.status_code == 200  # the budget is per session
            await asyncio.sleep(1.1)
            assert (await http.get("/dxsca-web/users", headers=first)).status_code == 200
    finally:
        await box.stop()


# -- dxFeed login gating and callbacks ----------------------------------------------------------


async def test_xt_login_is_gated_on_active_subscriptions(
    sandbox: DxTradeSandbox, receiver: Receiver, http: httpx.AsyncClient
) -> None:
    sandbox.attach_gateway(receiver.url)
    # bob (DxTradeXT mode): the first login creates his dxFeed account, which has no
    # subscription yet, so the next login is refused until one is added.
    assert (await http.post("/dxsca-web/login", json=user_creds("bob"))).status_code == 200
    refused = await http.post("/dxsca-web/login", json=user_creds("bob"))
    assert refused.status_code == 403
    assert refused.json()["errorCode"] == "NO_MARKET_DATA"
    delivery = sandbox.send_callback(
        "subscription.added", "bob", subscriptions=[{"name": "CME Globex Top of Book"}]
    )
    assert (await http.post("/dxsca-web/login", json=user_creds("bob"))).status_code == 200
    # alice (CRM mode): deactivating her only subscription logs her out and gates her login.
    alice = await login(http, "dxsca-web", **user_creds("alice"))
    sandbox.send_callback("deactivated", "alice")
    assert (await http.get("/dxsca-web/users", headers=dxapi(alice))).status_code == 401
    assert (await http.post("/dxsca-web/login", json=user_creds("alice"))).status_code == 403
    sandbox.send_callback("activated", "alice")
    assert (await http.post("/dxsca-web/login", json=user_creds("alice"))).status_code == 200
    # carol is single-feed: never gated.
    assert (await http.post("/dxsca-web/login", json=user_creds("carol"))).status_code == 200
    await sandbox.wait_callbacks(5)
    got = [(r["json"]["type"], r["json"]["login"]) for r in receiver.received]
    assert got == [
        ("subscription.added", "bob"),
        ("subscription.deactivated", "alice"),
        ("subscription.activated", "alice"),
    ]
    assert receiver.received[0]["delivery"] == delivery
    assert all(r["valid"] for r in receiver.received)
    with pytest.raises(ValueError, match="single-feed"):
        sandbox.send_callback("added", "carol")


async def test_callbacks_are_retried_with_the_same_delivery_id(
    sandbox: DxTradeSandbox, receiver: Receiver
) -> None:
    sandbox.attach_gateway(receiver.url)
    receiver.statuses = [500, 503]
    delivery_id = sandbox.send_callback("removed", "alice")
    await sandbox.wait_callbacks(5)
    assert [r["delivery"] for r in receiver.received] == [delivery_id] * 3
    assert len({r["raw"] for r in receiver.received}) == 1
    assert all(r["valid"] for r in receiver.received)
    [delivery] = sandbox.callbacks
    assert (delivery.status, delivery.attempts) == ("delivered", [500, 503, 200])
    assert receiver.received[0]["json"]["subscriptions"] == [
        {"name": "CME Globex Top of Book", "endDate": "2027-01-31", "active": False}
    ]

    receiver.reset()
    receiver.statuses = [500] * 10
    failed_id = sandbox.send_callback("added", "alice")
    await sandbox.wait_callbacks(5)
    assert [r["delivery"] for r in receiver.received] == [failed_id] * 4  # 1 + 3 retries
    assert sandbox.callbacks[-1].status == "failed"


async def test_callbacks_can_be_switched_off(sandbox: DxTradeSandbox, receiver: Receiver) -> None:
    sandbox.attach_gateway(receiver.url)
    sandbox.callbacks_enabled = False
    sandbox.send_callback("deactivated", "alice")
    await sandbox.wait_callbacks(5)
    assert receiver.received == []
    assert sandbox.callbacks[0].status == "skipped"


# -- knobs ------------------------------------------------------------------------------------


async def test_fail_next_latency_and_call_counts(
    sandbox: DxTradeSandbox, http: httpx.AsyncClient
) -> None:
    headers = await admin(http)
    sandbox.fail_next(2, status=502)
    first = await http.get(f"{REG}/client/default/alice", headers=headers)
    assert first.status_code == 502
    assert first.json()["errorCode"] == 502
    second = await http.get("/dxsca-web/accounts/metrics", headers=headers)
    assert second.status_code == 502
    assert second.json()["errorCode"] == "SERVICE_UNAVAILABLE"
    assert (await http.get(f"{REG}/client/default/alice", headers=headers)).status_code == 200
    sandbox.latency_seconds = 0.2
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert (await http.get(f"{REG}/account/default/bob-usd", headers=headers)).status_code == 200
    assert loop.time() - started >= 0.2
    assert sandbox.calls["GET /dxweb/rest/api/register/client/{domain}/{login}"] == 2
    assert sandbox.calls["POST /dxweb/rest/login"] == 1
    assert sandbox.calls["GET /dxsca-web/accounts/metrics"] == 1


def test_contract_settings_and_demo_links(sandbox: DxTradeSandbox) -> None:
    settings = sandbox.connector_settings()
    assert settings == {
        "url": sandbox.url,
        "username": "crm-admin",
        "domain": "default",
        "password": "crm-pass",
        "webhook_secret": DEFAULT_WEBHOOK_SECRET,
        "clearing_code": "default",
        "ca_file": str(sandbox_certificate().ca_file),
    }
    links = {
        (link.partner_code, link.kind, link.external_id, link.trader_id)
        for link in sandbox.demo_links()
    }
    assert ("DEMO-001", "account", "default:alice-usd", "alice@default") in links
    assert ("OTHER-001", "trader", "carol@default", None) in links
    assert len(links) == 6
