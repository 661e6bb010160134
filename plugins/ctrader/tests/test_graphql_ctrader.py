"""End to end: GraphQL over HTTP → gateway → cTrader connector → sandbox (real sockets).

The "must show" list of issue 3: the seed-003 CRM flow (createTrader → deposit →
withdraw), the five analytics, typed errors with no upstream write on bad input, a
withdrawal beyond free funds moving nothing, idempotent retries, a flow stopped
midway and resumed, and the stated bound of 50 accounts with positions = 2
upstream calls.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from brokergraph_ctrader.connector._history import WINDOW, _window_starts
from brokergraph_ctrader.sandbox import CTraderSandbox
from brokergraph_ctrader.settings import CTraderSettings

from gateway.cache import MemoryCache
from gateway.testing import TestGateway

from .conftest import account_gid, delta, open_accounts, writes

CREATE_TRADER = """
mutation($input: CreateTraderInput!) {
  createTrader(input: $input) {
    trader { id externalId email }
    accounts { id externalId currency ... on CTraderAccount { login moneyDigits accessRights } }
    steps { name succeeded reference message }
    resumeToken
    errors { __typename code message field }
  }
}"""

MONEY = """
mutation($input: MoneyMovementInput!) {
  %s(input: $input) {
    operation { externalId kind amount { amount currency } }
    replayed
    errors { __typename code message field }
  }
}"""

ACCOUNT = """
query($id: ID!) {
  account(id: $id) {
    __typename externalId currency status group leverage
    balance { amount currency } equity { amount } credit { amount } bonus { amount }
    ... on CTraderAccount {
      login moneyDigits accessRights accountType brokerName
      copySubAccounts { login balance equity currency }
    }
  }
}"""

ANALYTICS = """
query($id: ID!, $from: DateTime!, $to: DateTime!) {
  account(id: $id) {
    analytics(from: $from, to: $to) {
      periodFrom periodTo
      realizedPnl { amount currency }
      mostTradedSymbols { symbol volume deals }
      openVolume
      copySubAccounts { accountId balance { amount currency } equity { amount } }
      wins losses winRatio
    }
  }
}"""

FROM, TO = "2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z"


def _money_input(account: str, amount: str, key: str | None = None) -> dict[str, Any]:
    return {
        "input": {
            "accountId": account_gid(account),
            "amount": amount,
            "idempotencyKey": key or str(uuid.uuid4()),
        }
    }


async def _move(
    gateway: TestGateway, operation: str, account: str, amount: str, key: str | None = None
) -> dict[str, Any]:
    body = await gateway.query(MONEY % operation, _money_input(account, amount, key))
    assert "errors" not in body, body
    payload: dict[str, Any] = body["data"][operation]
    return payload


async def _account(gateway: TestGateway, login: str) -> dict[str, Any]:
    await gateway.clear_cache()
    body = await gateway.query(ACCOUNT, {"id": account_gid(login)})
    assert "errors" not in body, body
    account: dict[str, Any] = body["data"]["account"]
    return account


async def _balance(gateway: TestGateway, login: str) -> Decimal:
    return Decimal((await _account(gateway, login))["balance"]["amount"])


async def test_seed_003_crm_flow(gateway: TestGateway) -> None:
    """createTrader (user → trader → link) → deposit → withdraw, all through GraphQL."""
    email = f"crm-{uuid.uuid4().hex[:8]}@example.com"
    body = await gateway.query(
        CREATE_TRADER,
        {
            "input": {
                "platform": "ctrader",
                "partnerCode": "DEMO-002",
                "email": email,
                "name": "Carla Client",
                "group": "Default",
                "currency": "USD",
                "leverage": "100",
            }
        },
    )
    payload = body["data"]["createTrader"]
    assert payload["errors"] == [], payload
    assert [(s["name"], s["succeeded"]) for s in payload["steps"]] == [
        ("create-user", True),
        ("create-trader", True),
        ("link-user", True),
    ]
    assert payload["resumeToken"] is None
    assert payload["trader"]["email"] == email
    (account,) = payload["accounts"]
    login = account["externalId"]
    assert account["login"] == login
    assert account["moneyDigits"] == 2
    assert account["accessRights"] == "FULL_ACCESS"
    # The gateway recorded the links to the partner.
    partner = await gateway.query(
        """{ businessPartner(code: "DEMO-002") {
              traders(platform: "ctrader") { externalId }
              accounts(platform: "ctrader") { externalId trader { externalId } } } }"""
    )
    record = partner["data"]["businessPartner"]
    assert payload["trader"]["externalId"] in {t["externalId"] for t in record["traders"]}
    mine = [a for a in record["accounts"] if a["externalId"] == login]
    assert mine
    assert mine[0]["trader"]["externalId"] == payload["trader"]["externalId"]

    deposit = await _move(gateway, "deposit", login, "250.75")
    assert deposit["errors"] == []
    assert deposit["replayed"] is False
    assert deposit["operation"]["kind"] == "DEPOSIT"
    assert deposit["operation"]["amount"] == {"amount": "250.75", "currency": "USD"}
    withdrawal = await _move(gateway, "withdraw", login, "100.25")
    assert withdrawal["errors"] == []
    assert withdrawal["operation"]["kind"] == "WITHDRAWAL"
    assert await _balance(gateway, login) == Decimal("150.50")
    operations = await gateway.query(
        """query($id: ID!) { account(id: $id) {
             balanceOperations(from: "2026-07-01T00:00:00Z", to: "2027-07-01T00:00:00Z") {
               externalId kind amount { amount } } } }""",
        {"id": account_gid(login)},
    )
    kinds = [o["kind"] for o in operations["data"]["account"]["balanceOperations"]]
    assert kinds == ["DEPOSIT", "WITHDRAWAL"]


def _truth(sandbox: CTraderSandbox, login: int) -> list[Any]:
    start, end = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)
    return [d for d in sandbox.state.deals if d.login == login and start <= d.closed_at < end]


async def test_all_five_analytics(gateway: TestGateway, sandbox: CTraderSandbox) -> None:
    body = await gateway.query(ANALYTICS, {"id": account_gid("9000001"), "from": FROM, "to": TO})
    assert "errors" not in body, body
    analytics = body["data"]["account"]["analytics"]
    truth = _truth(sandbox, 9000001)
    # a. realised P&L of the period (exact, in the deposit currency)
    assert analytics["realizedPnl"] == {
        "amount": str(sum((d.pnl for d in truth), Decimal(0))),
        "currency": "USD",
    }
    # b. most-traded symbols of the period
    symbols = {
        s["symbol"]: (Decimal(s["volume"]), s["deals"]) for s in analytics["mostTradedSymbols"]
    }
    for symbol, (volume, deals) in symbols.items():
        mine = [d for d in truth if d.symbol == symbol]
        assert (volume, deals) == (sum((d.volume for d in mine), Decimal(0)), len(mine))
    volumes = [Decimal(s["volume"]) for s in analytics["mostTradedSymbols"]]
    assert volumes == sorted(volumes, reverse=True)
    # c. total volume of the open positions
    state = sandbox.state
    expected = sum((p.volume for p in state.positions if p.login == 9000001), Decimal(0))
    assert Decimal(analytics["openVolume"]) == expected
    # d. balance and equity of the Copy sub-accounts
    subs = {s["accountId"]: s for s in analytics["copySubAccounts"]}
    assert set(subs) == {account_gid("9000005"), account_gid("9000006")}
    for login in ("9000005", "9000006"):
        balance = Decimal(state.traders[int(login)].balance).scaleb(-2)
        assert Decimal(subs[account_gid(login)]["balance"]["amount"]) == balance
        assert subs[account_gid(login)]["equity"] is not None
    # e. wins, losses and the ratio
    per_position: dict[int, Decimal] = defaultdict(Decimal)  # win/loss is per position
    for d in truth:
        per_position[d.position_id] += d.pnl
    wins = sum(1 for v in per_position.values() if v > 0)
    losses = sum(1 for v in per_position.values() if v < 0)
    assert (analytics["wins"], analytics["losses"]) == (wins, losses)
    exact = Decimal(wins) / Decimal(wins + losses)
    assert Decimal(analytics["winRatio"]) == exact.quantize(Decimal("0.0001"))


DEALS = """
query($id: ID!, $from: DateTime!, $to: DateTime!) {
  account(id: $id) {
    deals(from: $from, to: $to) { externalId executedAt realizedPnl { amount currency } }
  }
}"""


async def test_deals_are_read_in_two_day_windows_and_cached(
    gateway: TestGateway, sandbox: CTraderSandbox
) -> None:
    start, end = datetime(2026, 9, 3, tzinfo=UTC), datetime(2026, 9, 13, tzinfo=UTC)
    variables = {"id": account_gid("9000002"), "from": start.isoformat(), "to": end.isoformat()}
    await gateway.clear_cache()
    before = Counter(sandbox.calls)
    deals = (await gateway.data(DEALS, variables))["account"]["deals"]
    windows = delta(before, sandbox.calls)["GET /v2/webserv/closedPositions"]
    settings = CTraderSettings.from_section("ctrader", sandbox.connector_settings())
    lookback = settings.deals_lookback_days
    assert windows <= (lookback + 10) // 2 + 2, windows  # ≤ 2-day windows, nothing more
    truth = [d for d in sandbox.state.deals if d.login == 9000002 and start <= d.closed_at < end]
    assert truth, "the seeded history should have deals in the period"
    assert sorted(d["externalId"] for d in deals) == sorted(str(d.deal_id) for d in truth)
    assert len({d["externalId"] for d in deals}) == len(deals)  # deduplicated
    by_id = {str(d.deal_id): d for d in truth}
    for deal in deals:
        assert start <= datetime.fromisoformat(deal["executedAt"]) < end
        assert deal["realizedPnl"] is not None
        assert deal["realizedPnl"]["currency"] == "EUR"
        assert Decimal(deal["realizedPnl"]["amount"]) == by_id[deal["externalId"]].pnl
    before = Counter(sandbox.calls)
    again = (await gateway.data(DEALS, variables))["account"]["deals"]
    assert again == deals
    assert "GET /v2/webserv/closedPositions" not in delta(before, sandbox.calls)


async def test_a_minute_later_only_the_windows_that_can_still_change_are_read(
    gateway: TestGateway, sandbox: CTraderSandbox
) -> None:
    # Last week's windows: past, so each is final unless a position opened in it is open.
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    start = end - timedelta(days=6)
    variables = {"id": account_gid("9000002"), "from": start.isoformat(), "to": end.isoformat()}
    await gateway.clear_cache()
    before = Counter(sandbox.calls)
    deals = (await gateway.data(DEALS, variables))["account"]["deals"]
    cold = delta(before, sandbox.calls)["GET /v2/webserv/closedPositions"]
    # A minute later every 60 s entry is gone; the final windows are still cached.
    cache = gateway.services.cache
    assert isinstance(cache, MemoryCache)
    now = time.monotonic()
    short = [key for key, entry in cache._entries.items() if entry.expires_at - now <= 61]
    await cache.delete(*short)
    before = Counter(sandbox.calls)
    assert (await gateway.data(DEALS, variables))["account"]["deals"] == deals
    warm = delta(before, sandbox.calls)["GET /v2/webserv/closedPositions"]
    # Only windows that end within the last minute or hold an open position are re-read.
    opened = [p.opened_at for p in sandbox.state.positions if p.login == 9000002]
    lookback = CTraderSettings.from_section("ctrader", sandbox.connector_settings())
    starts = _window_starts(start - timedelta(days=lookback.deals_lookback_days), end)
    moving = [
        s
        for s in starts
        if s + WINDOW >= datetime.now(UTC) - timedelta(minutes=1)
        or any(s <= t < s + WINDOW for t in opened)
    ]
    assert cold == len(starts)
    assert warm == len(moving) < cold


async def test_ctrader_account_type(gateway: TestGateway) -> None:
    account = await _account(gateway, "9000001")
    assert account["__typename"] == "CTraderAccount"
    assert account["login"] == "9000001"
    assert account["moneyDigits"] == 2
    assert (account["accessRights"], account["accountType"]) == ("FULL_ACCESS", "HEDGED")
    assert account["brokerName"] == "DEMOBROKER"
    assert sorted(s["login"] for s in account["copySubAccounts"]) == ["9000005", "9000006"]
    btc = await _account(gateway, "9000004")
    assert btc["moneyDigits"] == 8
    assert len(btc["balance"]["amount"].split(".")[1]) == 8


async def test_bad_input_is_typed_and_never_written(
    gateway: TestGateway, sandbox: CTraderSandbox
) -> None:
    await gateway.query(ACCOUNT, {"id": account_gid("9000001")})  # token, caches warm
    before = Counter(sandbox.calls)
    cases = [
        ("deposit", "9000001", "-5", "INVALID_INPUT"),
        ("deposit", "9000001", "0", "INVALID_INPUT"),
        ("withdraw", "9000001", "1.005", "INVALID_INPUT"),  # USD takes 2 decimals
        ("changeCredit", "9000001", "0.001", "INVALID_INPUT"),
        ("deposit", "9999999", "10", "NOT_FOUND"),  # no such (linked) account
    ]
    for operation, login, amount, code in cases:
        body = await gateway.query(MONEY % operation, _money_input(login, amount))
        (error,) = body["data"][operation]["errors"]
        assert error["code"] == code, (operation, amount, error)
        assert body["data"][operation]["operation"] is None
    too_precise = await gateway.query(MONEY % "withdraw", _money_input("9000001", "1.005"))
    assert too_precise["data"]["withdraw"]["errors"][0]["field"] == ["amount"]
    group = await gateway.query(
        CREATE_TRADER,
        {
            "input": {
                "platform": "ctrader",
                "partnerCode": "DEMO-001",
                "email": "nogroup@example.com",
                "group": "NoSuchGroup",
            }
        },
    )
    (error,) = group["data"]["createTrader"]["errors"]
    assert (error["__typename"], error["code"], error["field"]) == (
        "InvalidInputError",
        "INVALID_INPUT",
        ["group"],
    )
    assert writes(delta(before, sandbox.calls)) == 0, delta(before, sandbox.calls)


async def test_withdrawal_beyond_free_funds_moves_nothing(gateway: TestGateway) -> None:
    before = await _balance(gateway, "9000003")
    body = await gateway.query(
        MONEY % "withdraw", _money_input("9000003", str(before + Decimal("1000000")))
    )
    payload = body["data"]["withdraw"]
    (error,) = payload["errors"]
    assert (error["__typename"], error["code"]) == ("InsufficientFundsError", "INSUFFICIENT_FUNDS")
    assert payload["operation"] is None
    assert await _balance(gateway, "9000003") == before


async def test_a_retry_with_the_same_key_moves_nothing(
    gateway: TestGateway, sandbox: CTraderSandbox
) -> None:
    before_balance = await _balance(gateway, "9000002")
    key = str(uuid.uuid4())
    before = Counter(sandbox.calls)
    first = await _move(gateway, "deposit", "9000002", "10.01", key)
    second = await _move(gateway, "deposit", "9000002", "10.01", key)
    assert (first["replayed"], second["replayed"]) == (False, True)
    assert second["operation"] == first["operation"]
    assert delta(before, sandbox.calls)["POST /v2/webserv/traders/{login}/changebalance"] == 1
    assert await _balance(gateway, "9000002") == before_balance + Decimal("10.01")


async def test_a_flow_stopped_at_the_link_resumes_without_duplicates(
    gateway: TestGateway, sandbox: CTraderSandbox
) -> None:
    email = f"midway-{uuid.uuid4().hex[:8]}@example.com"
    variables = {"input": {"platform": "ctrader", "partnerCode": "DEMO-001", "email": email}}
    await gateway.query(ACCOUNT, {"id": account_gid("9000001")})  # token and caches warm
    before = Counter(sandbox.calls)

    async def lose_the_link_answer() -> None:
        # Once create-trader has reached cTrader's app, the next request is the link;
        # its answer is lost after cTrader applied it (the knob acts after the latency).
        while sandbox.calls["POST /v2/webserv/traders"] == before["POST /v2/webserv/traders"]:  # noqa: ASYNC110
            await asyncio.sleep(0.002)
        sandbox.drop_next(1, after_apply=True)

    sandbox.latency_seconds = 0.3
    try:
        watcher = asyncio.create_task(lose_the_link_answer())
        first = (await gateway.query(CREATE_TRADER, variables))["data"]["createTrader"]
        await watcher
    finally:
        sandbox.latency_seconds = 0.0
    assert [(s["name"], s["succeeded"]) for s in first["steps"]] == [
        ("create-user", True),
        ("create-trader", True),
        ("link-user", False),
    ]
    assert first["resumeToken"]
    # Clear, not orphaned: what exists is returned and linked to the partner already.
    login = first["accounts"][0]["externalId"]
    owner = await gateway.query(
        "query($id: ID!) { account(id: $id) { partner { code } } }", {"id": account_gid(login)}
    )
    assert owner["data"]["account"]["partner"]["code"] == "DEMO-001"

    variables["input"]["resumeToken"] = first["resumeToken"]
    done = (await gateway.query(CREATE_TRADER, variables))["data"]["createTrader"]
    assert done["errors"] == []
    assert done["resumeToken"] is None
    assert all(s["succeeded"] for s in done["steps"])
    assert done["trader"]["externalId"] == first["trader"]["externalId"]
    assert [a["externalId"] for a in done["accounts"]] == [login]
    calls = delta(before, sandbox.calls)
    assert calls["POST /cid/ctid/create"] == 1
    assert calls["POST /v2/webserv/traders"] == 1
    assert calls["POST /cid/ctid/link"] == 2
    assert sandbox.state.links[int(login)].user_id == int(done["trader"]["externalId"])


async def test_update_account(gateway: TestGateway, sandbox: CTraderSandbox) -> None:
    mutation = """mutation($input: UpdateAccountInput!) { updateAccount(input: $input) {
        account { leverage status group ... on CTraderAccount { accessRights } }
        errors { code field } } }"""
    login = "9000003"
    body = await gateway.query(
        mutation,
        {"input": {"accountId": account_gid(login), "leverage": "50", "status": "CLOSE_ONLY"}},
    )
    payload = body["data"]["updateAccount"]
    assert payload["errors"] == [], payload
    assert payload["account"]["leverage"] == "50"
    assert payload["account"]["accessRights"] == "CLOSE_ONLY"
    before = Counter(sandbox.calls)
    bad = await gateway.query(
        mutation, {"input": {"accountId": account_gid(login), "group": "Imaginary"}}
    )
    assert bad["data"]["updateAccount"]["errors"] == [{"code": "INVALID_INPUT", "field": ["group"]}]
    assert writes(delta(before, sandbox.calls)) == 0
    restore = await gateway.query(
        mutation,
        {"input": {"accountId": account_gid(login), "leverage": "100", "status": "FULL_TRADING"}},
    )
    assert restore["data"]["updateAccount"]["errors"] == []


async def test_fifty_accounts_with_positions_cost_two_upstream_calls(
    gateway: TestGateway, sandbox: CTraderSandbox
) -> None:
    """The stated bound: 50 accounts + positions = 2 calls cold (4.3 + 4.12), 0 warm."""
    logins = await open_accounts(sandbox, 50)
    store = gateway.services.store
    await store.upsert_partner("BULK-001", broker="demo-broker", display_name="Bulk")
    for login in logins:
        await store.link("BULK-001", "ctrader", "account", login)
    query = """{ accounts(partnerCode: "BULK-001", first: 50) { totalCount edges { node {
        externalId balance { amount currency } positions { symbol volume } } } } }"""
    await gateway.query(ACCOUNT, {"id": account_gid("9000001")})  # the manager token
    await gateway.clear_cache()
    before = Counter(sandbox.calls)
    cold = await gateway.query(query)
    assert "errors" not in cold, cold
    edges = cold["data"]["accounts"]["edges"]
    assert len(edges) == 50
    assert sorted(e["node"]["externalId"] for e in edges) == sorted(logins)
    assert delta(before, sandbox.calls) == {
        "GET /v2/webserv/traders/": 1,
        "GET /v2/webserv/openPositions": 1,
    }
    before = Counter(sandbox.calls)
    warm = await gateway.query(query)
    assert warm == cold
    assert delta(before, sandbox.calls) == {}
