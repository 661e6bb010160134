"""The connector under each answer DXtrade might give where the vendor facts only guess.

Every test takes one of the parametrised rule fixtures (``cash_id_repeat``,
``etag_checks``, ``disable_route``; see conftest) and runs once per alternative, the
connector against the session's sandbox over real sockets, each with its own store:

* a repeated cash id (replayed, 409, or applied again): a key moves money once; an
  unknown outcome is settled by reading DXtrade's transfers, re-sent only when the
  read proves it absent and the attempt is old enough not to be in flight;
* a stale ``If-Match`` (412, or overwritten): a status change lands and keeps what
  another writer changed meanwhile;
* the seed-004 disable route (served, or 404/405/400): deactivation ends the same;
* LOGIN_ON_BEHALF (verified): the connector never needs it.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from brokergraph_dxtrade.connector import DxTradeConnector
from brokergraph_dxtrade.connector._base import SETTLE_READ_LIMIT
from brokergraph_dxtrade.sandbox import LOGIN_ON_BEHALF, CashIdRepeat, DxTradeSandbox
from brokergraph_dxtrade.sandbox.state import DxState

from gateway.contract import (
    Capability,
    Conflict,
    DeactivateTraderRequest,
    IdempotencyConflict,
    InsufficientFunds,
    MoneyMovement,
    ReactivateTraderRequest,
    UpstreamError,
    UpstreamRejected,
)
from gateway.testing import open_connector

from .conftest import ruled, unique

#: The connector's timeout here: it re-sends an unknown attempt three of them later.
TIMEOUT_SECONDS = 0.3
STALE_SECONDS = TIMEOUT_SECONDS * 3 + 0.3
ONE_USD = {"currency": "USD", "amount": Decimal(1)}
TRANSFERS_ROUTE = "GET /dxsca-web/accounts/{account}/transfers"
USER_ROUTE = "PUT /dxweb/rest/api/register/client/{domain}/{login}"
DISABLE_ROUTE = (
    "POST /dxweb/rest/api/register/client/{domain}/{login}/disable-user-and-terminate-accounts"
)


@pytest_asyncio.fixture(loop_scope="session")
async def connector(dx_sandbox: DxTradeSandbox, tmp_path: Path) -> AsyncIterator[DxTradeConnector]:
    settings = {**dx_sandbox.connector_settings(), "timeout_seconds": TIMEOUT_SECONDS}
    async with open_connector(DxTradeConnector, settings, tmp_path) as made:
        yield made


def new_user(sandbox: DxTradeSandbox, balance: str = "1000") -> tuple[str, str]:
    """A fresh user with one USD account, straight in DXtrade's state: (trader, account)."""
    login = unique("rules")
    sandbox.state.create_client(
        {
            "login": login,
            "password": "pw",
            "accounts": [
                {"accountCode": f"{login}-usd", "currency": "USD", "balance": Decimal(balance)}
            ],
        }
    )
    return f"{login}@default", f"default:{login}-usd"


def movement(account: str, key: str, amount: str = "25.50") -> MoneyMovement:
    return MoneyMovement(account_id=account, amount=Decimal(amount), idempotency_key=key)


def balance_of(sandbox: DxTradeSandbox, account: str) -> Decimal:
    clearing, _, code = account.partition(":")
    return sandbox.state.account(clearing, code).balance


def cash_calls(sandbox: DxTradeSandbox, since: int) -> list[str]:
    """Cash PUTs and transfer reads since ``since`` (an index into ``requests``), in
    arrival order, as "PUT" / "READ"."""
    seen = list(sandbox.requests)[since:]
    return [
        "PUT" if r.startswith("PUT ") else "READ"
        for r in seen
        if (r.startswith("PUT ") and ("/deposit/" in r or "/withdrawal/" in r))
        or r.endswith("/transfers")
    ]


# -- a repeated cash id ----------------------------------------------------------------------


async def test_a_repeated_key_moves_money_once(
    connector: DxTradeConnector, dx_sandbox: DxTradeSandbox, cash_id_repeat: CashIdRepeat
) -> None:
    _, account = new_user(dx_sandbox)
    key = f"dep-{uuid.uuid4()}"
    first = await connector.deposit(movement(account, key))
    mark = len(dx_sandbox.requests)
    second = await connector.deposit(movement(account, key))
    assert second.id == first.id == key
    assert second.amount == first.amount and second.at == first.at
    assert cash_calls(dx_sandbox, mark) == []  # answered from the key's record, no PUT
    with pytest.raises(Conflict):  # the same key for another amount: refused, no call
        await connector.deposit(movement(account, key, amount="1.00"))
    with pytest.raises(Conflict):  # ... or for a withdrawal
        await connector.withdraw(movement(account, key))
    assert cash_calls(dx_sandbox, mark) == []
    assert len(dx_sandbox.state.applied(key)) == 1
    assert balance_of(dx_sandbox, account) == Decimal("1025.50")


async def test_a_lost_answer_is_settled_by_reading_not_by_a_resend(
    connector: DxTradeConnector, dx_sandbox: DxTradeSandbox, cash_id_repeat: CashIdRepeat
) -> None:
    _, account = new_user(dx_sandbox)
    await connector.deposit(movement(account, f"warm-{uuid.uuid4()}", "1"))  # session, currency
    key = f"wd-{uuid.uuid4()}"
    dx_sandbox.drop_next(1, after_apply=True)  # DXtrade debits, the answer is lost
    with pytest.raises(UpstreamError) as lost:
        await connector.withdraw(movement(account, key))
    assert lost.value.details.get("outcome") == "UNKNOWN"
    mark = len(dx_sandbox.requests)
    settled = await connector.withdraw(movement(account, key))
    assert settled.id == settled.external_id == key
    assert settled.amount.amount == Decimal("25.50")
    assert cash_calls(dx_sandbox, mark) == ["READ"]
    await asyncio.sleep(STALE_SECONDS)  # even once stale: the record answers, no PUT
    assert (await connector.withdraw(movement(account, key))).id == key
    assert cash_calls(dx_sandbox, mark) == ["READ"]
    assert len(dx_sandbox.state.applied(key)) == 1
    assert balance_of(dx_sandbox, account) == Decimal("1001") - Decimal("25.50")


async def test_an_unknown_absent_transfer_is_resent_once_it_is_stale(
    connector: DxTradeConnector, dx_sandbox: DxTradeSandbox, cash_id_repeat: CashIdRepeat
) -> None:
    _, account = new_user(dx_sandbox)
    await connector.deposit(movement(account, f"warm-{uuid.uuid4()}", "1"))
    key = f"wd-{uuid.uuid4()}"
    dx_sandbox.fail_next(1, 502)  # a proxy's 502: nothing applied, but who knows
    with pytest.raises(UpstreamError):
        await connector.withdraw(movement(account, key))
    mark = len(dx_sandbox.requests)
    with pytest.raises(IdempotencyConflict):  # absent, but it may still be in flight
        await connector.withdraw(movement(account, key))
    assert cash_calls(dx_sandbox, mark) == ["READ"]
    await asyncio.sleep(STALE_SECONDS)
    sent = await connector.withdraw(movement(account, key))
    assert sent.id == key
    assert cash_calls(dx_sandbox, mark) == ["READ", "READ", "PUT"]  # read absent, then sent
    await connector.withdraw(movement(account, key))
    assert cash_calls(dx_sandbox, mark) == ["READ", "READ", "PUT"]
    assert len(dx_sandbox.state.applied(key)) == 1
    assert balance_of(dx_sandbox, account) == Decimal("1001") - Decimal("25.50")


async def test_a_refused_withdrawal_is_sent_again_with_its_key(
    connector: DxTradeConnector, dx_sandbox: DxTradeSandbox, cash_id_repeat: CashIdRepeat
) -> None:
    _, account = new_user(dx_sandbox, balance="10")
    key = f"wd-{uuid.uuid4()}"
    with pytest.raises(InsufficientFunds):  # refused: nothing moved, nothing to settle
        await connector.withdraw(movement(account, key, "20"))
    await connector.deposit(movement(account, f"dep-{uuid.uuid4()}", "15"))
    done = await connector.withdraw(movement(account, key, "20"))
    assert done.id == key
    assert len(dx_sandbox.state.applied(key)) == 1
    assert balance_of(dx_sandbox, account) == Decimal("5")


async def test_a_failed_settling_read_never_resends(
    connector: DxTradeConnector, dx_sandbox: DxTradeSandbox, cash_id_repeat: CashIdRepeat
) -> None:
    """The read that would prove a transfer absent fails (or answers a shape we do not
    know): the outcome stays unknown and nothing is sent."""
    _, account = new_user(dx_sandbox)
    await connector.deposit(movement(account, f"warm-{uuid.uuid4()}", "1"))
    key = f"wd-{uuid.uuid4()}"
    dx_sandbox.fail_next(1, 502)
    with pytest.raises(UpstreamError):
        await connector.withdraw(movement(account, key))
    await asyncio.sleep(STALE_SECONDS)
    mark = len(dx_sandbox.requests)
    dx_sandbox.fail_next_call(TRANSFERS_ROUTE, 502)
    with pytest.raises(UpstreamError):
        await connector.withdraw(movement(account, key))
    assert cash_calls(dx_sandbox, mark) == ["READ"]
    assert dx_sandbox.state.applied(key) == []
    await connector.withdraw(movement(account, key))  # the read works again: absent, sent
    assert cash_calls(dx_sandbox, mark) == ["READ", "READ", "PUT"]
    assert len(dx_sandbox.state.applied(key)) == 1


async def test_a_paged_transfers_read_does_not_hide_a_lost_transfer(
    connector: DxTradeConnector, dx_sandbox: DxTradeSandbox, cash_id_repeat: CashIdRepeat
) -> None:
    """A host paging the transfers read (two, oldest first, when no ``limit`` is given)
    would hide the newest transfer: the settling read asks for its own page size."""
    with ruled(dx_sandbox, transfers_page_size=2):
        _, account = new_user(dx_sandbox)  # its initial deposit: one transfer
        await connector.deposit(movement(account, f"warm-{uuid.uuid4()}", "1"))  # two
        key = f"wd-{uuid.uuid4()}"
        dx_sandbox.drop_next(1, after_apply=True)  # the third, its answer lost
        with pytest.raises(UpstreamError):
            await connector.withdraw(movement(account, key))
        await asyncio.sleep(STALE_SECONDS)
        mark = len(dx_sandbox.requests)
        assert (await connector.withdraw(movement(account, key))).id == key
        assert cash_calls(dx_sandbox, mark) == ["READ"]
        assert len(dx_sandbox.state.applied(key)) == 1


async def test_a_full_page_of_transfers_proves_no_absence(
    connector: DxTradeConnector, dx_sandbox: DxTradeSandbox
) -> None:
    """When the settling read comes back full, more may exist: nothing is re-sent."""
    _, account = new_user(dx_sandbox)
    await connector.deposit(movement(account, f"warm-{uuid.uuid4()}", "1"))
    key = f"wd-{uuid.uuid4()}"
    dx_sandbox.fail_next(1, 502)  # nothing applied, the outcome unknown
    with pytest.raises(UpstreamError):
        await connector.withdraw(movement(account, key))
    clearing, _, code = account.partition(":")
    for n in range(SETTLE_READ_LIMIT):  # another writer's transfers meanwhile
        dx_sandbox.state.cash("deposit", clearing, code, f"other-{n}", ONE_USD)
    await asyncio.sleep(STALE_SECONDS)
    mark = len(dx_sandbox.requests)
    with pytest.raises(UpstreamError, match="cannot be proven"):
        await connector.withdraw(movement(account, key))
    assert cash_calls(dx_sandbox, mark) == ["READ"]
    assert dx_sandbox.state.applied(key) == []


# -- a stale If-Match ------------------------------------------------------------------------


def rename(login: str) -> Callable[[DxState], None]:
    """Another writer (a back-office user) renames ``login`` between our read and write."""

    def change(state: DxState) -> None:
        state.update_client("default", login, {"fullName": "Renamed Elsewhere"}, None)

    return change


async def test_status_changes_keep_a_concurrent_update(
    dx_sandbox: DxTradeSandbox, tmp_path: Path, etag_checks: bool
) -> None:
    trader, account = new_user(dx_sandbox)
    login = trader.partition("@")[0]
    settings = {**dx_sandbox.connector_settings(), "use_disable_route": False}
    async with open_connector(DxTradeConnector, settings, tmp_path) as two_step:
        before = dx_sandbox.calls[USER_ROUTE]
        dx_sandbox.before_next(USER_ROUTE, rename(login))
        off = await two_step.deactivate_trader(DeactivateTraderRequest(trader_id=trader))
        assert [(s.name, s.succeeded) for s in off.steps] == [
            ("disable user", True),
            ("terminate accounts", True),
        ]
        # 412: re-read and sent again; overwritten: one PUT.  Either way our PUT
        # carries only the status, so the other writer's change stays.
        assert dx_sandbox.calls[USER_ROUTE] - before == (2 if etag_checks else 1)
        client = dx_sandbox.state.client("default", login)
        assert client.status == "DISABLED"
        assert client.full_name == "Renamed Elsewhere"
        dx_sandbox.before_next(USER_ROUTE, rename(login))
        on = await two_step.reactivate_trader(ReactivateTraderRequest(trader_id=trader))
        assert [(s.name, s.succeeded) for s in on.steps] == [
            ("set user OFFLINE", True),
            ("open new account", True),
        ]
        assert client.status == "OFFLINE"
        assert dx_sandbox.state.account("default", account.partition(":")[2]).terminal


# -- an ended session -------------------------------------------------------------------------


def logins(sandbox: DxTradeSandbox) -> int:
    return sum(n for route, n in sandbox.calls.items() if route.endswith("/login"))


async def test_an_ended_session_logs_in_again_once(
    connector: DxTradeConnector, dx_sandbox: DxTradeSandbox, expired_session_status: int
) -> None:
    """DXtrade ended the connector's sessions (a restart, a logout): whether it then
    answers 401 or 403, the refused call is repeated after one fresh login."""
    _, account = new_user(dx_sandbox)
    await connector.deposit(movement(account, f"warm-{uuid.uuid4()}", "1"))
    (await connector.get_accounts([account]))[0]  # both surfaces' sessions open
    dx_sandbox.sessions.clear()
    before = logins(dx_sandbox)
    key = f"dep-{uuid.uuid4()}"
    assert (await connector.deposit(movement(account, key))).id == key
    (found,) = await connector.get_accounts([account])
    assert found is not None and found.balance is not None
    assert found.balance.amount == Decimal("1026.50")
    assert logins(dx_sandbox) == before + 2  # one per surface
    assert len(dx_sandbox.state.applied(key)) == 1


async def test_a_missing_permission_costs_one_login_then_is_refused(
    connector: DxTradeConnector, dx_sandbox: DxTradeSandbox
) -> None:
    """A 403 that is a real refusal: one fresh login (it might have been an ended
    session), the same refusal, UPSTREAM_REJECTED, nothing applied."""
    _, account = new_user(dx_sandbox)
    await connector.deposit(movement(account, f"warm-{uuid.uuid4()}", "1"))
    permissions = dx_sandbox.state.permissions[("default", "crm-admin")]
    permissions.discard("REGISTER")
    try:
        before = logins(dx_sandbox)
        key = f"dep-{uuid.uuid4()}"
        with pytest.raises(UpstreamRejected):
            await connector.deposit(movement(account, key))
        assert logins(dx_sandbox) == before + 1
        assert dx_sandbox.state.applied(key) == []
    finally:
        permissions.add("REGISTER")


# -- the disable route -----------------------------------------------------------------------


@pytest.mark.parametrize("cancel", [False, True], ids=["keep-feed", "cancel-feed"])
async def test_deactivation_ends_the_same_with_or_without_the_route(
    connector: DxTradeConnector,
    dx_sandbox: DxTradeSandbox,
    disable_route: int | None,
    cancel: bool,
) -> None:
    trader, account = new_user(dx_sandbox)
    login = trader.partition("@")[0]
    before = dx_sandbox.calls[DISABLE_ROUTE]
    result = await connector.deactivate_trader(
        DeactivateTraderRequest(trader_id=trader, cancel_market_data_subscriptions=cancel)
    )
    steps = [(s.name, s.succeeded) for s in result.steps]
    assert steps[:2] == [("disable user", True), ("terminate accounts", True)]
    if cancel:
        # A single-feed user has no dxFeed account: nothing to cancel, when the route
        # does it; without the route the connector cannot, and says so.
        assert steps[2] == ("cancel market-data subscriptions", disable_route is None)
        if disable_route is not None:
            assert "dxFeed" in (result.steps[2].message or "")
    else:
        assert len(steps) == 2
    assert dx_sandbox.calls[DISABLE_ROUTE] - before == 1  # tried once, then the steps
    assert dx_sandbox.state.client("default", login).status == "DISABLED"
    assert dx_sandbox.state.account("default", account.partition(":")[2]).status == "TERMINATED"


@pytest.mark.parametrize("applied", [False, True], ids=["not-applied", "applied"])
async def test_an_unknown_deactivation_is_read_back_not_redone(
    connector: DxTradeConnector, dx_sandbox: DxTradeSandbox, applied: bool
) -> None:
    """A 5xx from the route may or may not have applied it: the effects are read back
    and reported as they are, and the documented steps are not sent on top."""
    trader, account = new_user(dx_sandbox)
    login = trader.partition("@")[0]
    dx_sandbox.fail_next_call(DISABLE_ROUTE, 502, after_apply=applied)
    puts = dx_sandbox.calls[USER_ROUTE]
    result = await connector.deactivate_trader(DeactivateTraderRequest(trader_id=trader))
    assert [(s.name, s.succeeded) for s in result.steps] == [
        ("disable user", applied),
        ("terminate accounts", applied),
    ]
    assert dx_sandbox.calls[USER_ROUTE] == puts
    client = dx_sandbox.state.client("default", login)
    assert client.status == ("DISABLED" if applied else "ONLINE")
    assert dx_sandbox.state.account("default", account.partition(":")[2]).terminal is applied


# -- the trading API: the product only reads the order history -----------------------------


async def test_deals_are_the_executions_of_the_order_history(
    connector: DxTradeConnector, dx_sandbox: DxTradeSandbox
) -> None:
    """get_deals reads ``GET /accounts/{account}/orders/history`` (B5) with
    ``in-status=COMPLETED`` and the completion window: one deal per execution."""
    route = "GET /dxsca-web/accounts/{account}/orders/history"
    before = dx_sandbox.calls[route]
    march = (datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 4, 1, tzinfo=UTC))
    deals = await connector.get_deals("default:alice-usd", *march)
    assert dx_sandbox.calls[route] == before + 1
    assert [(d.symbol, d.side.value, d.volume, d.price, d.position_id) for d in deals] == [
        ("EUR/USD", "BUY", Decimal(100000), Decimal("1.08000"), "alice-p-1"),
        ("XAU/USD", "SELL", Decimal(10), Decimal("2350.00"), "alice-p-2"),
    ]
    assert {d.executed_at for d in deals} == {datetime(2024, 3, 4, 10, 15, tzinfo=UTC)}
    # The window is the completion time's: the orders of March are not in February.
    february = (datetime(2024, 2, 1, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC))
    assert await connector.get_deals("default:alice-usd", *february) == []


def test_the_product_places_no_dxtrade_orders() -> None:
    """Order placement (B5: POST/PUT/DELETE .../orders) is not used: the connector reads
    orders (ORDER_READS, the day's blotter with its fills) but declares no routing, and
    the sandbox serves only the order reads."""
    assert Capability.ORDER_ROUTING not in DxTradeConnector.capabilities
    assert Capability.ORDER_READS in DxTradeConnector.capabilities
    writes = [
        f"{api.method} {api.path}"
        for api in DxTradeSandbox._table()
        if api.path.startswith("/dxsca-web/accounts") and api.method != "GET"
    ]
    assert writes == []


# -- LOGIN_ON_BEHALF -------------------------------------------------------------------------


async def test_the_connector_never_logs_in_on_behalf(
    connector: DxTradeConnector, dx_sandbox: DxTradeSandbox
) -> None:
    """DXtrade needs LOGIN_ON_BEHALF to open a session as another user (B2, verified):
    the connector works as its own service account, which lacks it here, for reads,
    money and provisioning alike."""
    assert LOGIN_ON_BEHALF not in dx_sandbox.state.permissions[("default", "crm-admin")]
    trader, account = new_user(dx_sandbox)
    attempts = len(dx_sandbox.state.on_behalf_logins)
    await connector.deposit(movement(account, f"dep-{uuid.uuid4()}"))
    (found,) = await connector.get_accounts([account])
    assert found is not None and found.balance is not None
    assert found.balance.amount == Decimal("1025.50")
    await connector.deactivate_trader(DeactivateTraderRequest(trader_id=trader))
    assert len(dx_sandbox.state.on_behalf_logins) == attempts


async def test_login_on_behalf_needs_the_permission(
    dx_sandbox: DxTradeSandbox,
) -> None:
    """The sandbox's side of the rule: a caller opens a session as another user (no
    password, its own Authorization) only with LOGIN_ON_BEHALF."""
    ca_file = dx_sandbox.connector_settings().get("ca_file")  # trust what the connector does
    verify = ssl.create_default_context(cafile=ca_file) if ca_file else True
    async with httpx.AsyncClient(verify=verify, timeout=10) as http:
        await _on_behalf_logins(http, dx_sandbox)


async def _on_behalf_logins(http: httpx.AsyncClient, dx_sandbox: DxTradeSandbox) -> None:
    trader, account = new_user(dx_sandbox)
    login = trader.partition("@")[0]
    on_behalf = {"username": login, "domain": "default"}
    crm = {"Authorization": "Basic " + base64.b64encode(b"crm-admin@default:crm-pass").decode()}
    url = dx_sandbox.url
    for surface, code in (("dxweb/rest", 403), ("dxsca-web", LOGIN_ON_BEHALF)):
        refused = await http.post(f"{url}/{surface}/login", json=on_behalf, headers=crm)
        assert refused.status_code == 403
        assert refused.json()["errorCode"] == code
    assert dx_sandbox.state.on_behalf_logins[-1] == ("crm-admin@default", trader, False)
    other, _ = new_user(dx_sandbox)  # a trader may not act for another either
    own = {"Authorization": "Basic " + base64.b64encode(f"{other}:pw".encode()).decode()}
    mine = await http.post(f"{url}/dxsca-web/login", json=on_behalf, headers=own)
    assert mine.status_code == 403
    dx_sandbox.grant(LOGIN_ON_BEHALF)
    try:
        allowed = await http.post(f"{url}/dxsca-web/login", json=on_behalf, headers=crm)
        assert allowed.status_code == 200
        token = {"Authorization": f"DXAPI {allowed.json()['sessionToken']}"}
        metrics = await http.get(f"{url}/dxsca-web/accounts/metrics", headers=token)
        assert [m["account"] for m in metrics.json()["metrics"]] == [account]  # the user's
        dx_sandbox.state.client("default", login).status = "DISABLED"
        disabled = await http.post(f"{url}/dxsca-web/login", json=on_behalf, headers=crm)
        assert disabled.json()["errorCode"] == "USER_DISABLED"
    finally:
        dx_sandbox.state.permissions[("default", "crm-admin")].discard(LOGIN_ON_BEHALF)


# -- a service account that sees no user's accounts on dxsca-web -----------------------------


@pytest_asyncio.fixture(loop_scope="session")
async def on_behalf(dx_sandbox: DxTradeSandbox, tmp_path: Path) -> AsyncIterator[DxTradeConnector]:
    """A connector reading dxsca-web on behalf of each account's user."""
    settings = {
        **dx_sandbox.connector_settings(),
        "timeout_seconds": TIMEOUT_SECONDS,
        "read_on_behalf": True,
    }
    (tmp_path / "behalf").mkdir()
    async with open_connector(DxTradeConnector, settings, tmp_path / "behalf") as made:
        yield made


async def test_a_blind_service_account_reads_on_behalf_of_each_user(
    connector: DxTradeConnector, on_behalf: DxTradeConnector, dx_sandbox: DxTradeSandbox
) -> None:
    with ruled(dx_sandbox, crm_sees_all_accounts=False):
        dx_sandbox.grant(LOGIN_ON_BEHALF)
        try:
            attempts = len(dx_sandbox.state.on_behalf_logins)
            trader, account = new_user(dx_sandbox)  # an owner neither connector has seen
            (blind,) = await connector.get_accounts([account])
            assert blind is not None and blind.equity is None  # no live money as the CRM
            await on_behalf.deposit(movement(account, f"dep-{uuid.uuid4()}"))
            (seen,) = await on_behalf.get_accounts([account])
            assert seen is not None and seen.equity is not None
            assert seen.equity.amount == Decimal("1025.50")
            alice = "default:alice-usd"
            positions = await on_behalf.get_positions([alice, account])
            assert [len(p) for p in positions] == [2, 0]
            march = (datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 4, 1, tzinfo=UTC))
            assert len(await on_behalf.get_deals(alice, *march)) == 2
            # A lost withdrawal is settled by reading its transfer on the user's behalf.
            key = f"wd-{uuid.uuid4()}"
            dx_sandbox.drop_next(1, after_apply=True)
            with pytest.raises(UpstreamError):
                await on_behalf.withdraw(movement(account, key, "5"))
            mark = len(dx_sandbox.requests)
            assert (await on_behalf.withdraw(movement(account, key, "5"))).id == key
            assert cash_calls(dx_sandbox, mark) == ["READ"]
            assert len(dx_sandbox.state.applied(key)) == 1
            # One session per user, reused by every read.
            logins = dx_sandbox.state.on_behalf_logins[attempts:]
            assert sorted(logins) == [
                ("crm-admin@default", "alice@default", True),
                ("crm-admin@default", trader, True),
            ]
        finally:
            dx_sandbox.state.permissions[("default", "crm-admin")].discard(LOGIN_ON_BEHALF)


async def test_reading_on_behalf_without_the_permission_says_which(
    on_behalf: DxTradeConnector, dx_sandbox: DxTradeSandbox
) -> None:
    with ruled(dx_sandbox, crm_sees_all_accounts=False):
        _, account = new_user(dx_sandbox)
        with pytest.raises(UpstreamRejected, match="LOGIN_ON_BEHALF"):
            await on_behalf.get_accounts([account])
        assert dx_sandbox.state.on_behalf_logins[-1][2] is False
