"""Seed 003's "asset classes, symbol categories and/or symbols frequently opened", and
the partner-level view in one reporting currency, checked against an independent
computation from the sandbox's own REST reads (6.1 symbols, 4.2 trader, 4.12 open
positions, 4.13 closing deals in 2-day windows), plus the upstream calls: the symbol
list is read once per TTL for every account, not once per account."""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import httpx
import pytest
from brokergraph_ctrader.client import md5_hex
from brokergraph_ctrader.sandbox import CTraderSandbox

from gateway.auth import Role
from gateway.testing import TestGateway

from .conftest import account_gid, delta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
WINDOW = timedelta(days=2)
LOOKBACK = timedelta(days=90)  # the connector's default deals_lookback_days
PLACES = Decimal("1e-10")
SYMBOLS = "GET /v2/webserv/symbols"
START, END = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)
LEVELS = ("SYMBOL", "CATEGORY", "ASSET_CLASS")


def _token(gateway: TestGateway, test: str) -> str:
    """A viewer of the test's own: its reads spend its own budget of upstream calls,
    not the session's admin's (each period here reads 60 windows per account)."""
    return gateway.issue(Role.ADMIN, subject=f"analytics-levels-{test}")


def _utc(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp).replace(tzinfo=UTC)


@dataclass
class Truth:
    """One account as read over REST, and what its analytics must be."""

    login: str
    currency: str
    pnl: Decimal = Decimal(0)
    wins: int = 0
    losses: int = 0
    #: positionId -> symbol of the positions opened in the period.
    opened: dict[str, str] = field(default_factory=dict)
    #: The account's currency in USD from its latest deal closed before the end.
    usd_rate: Decimal | None = None
    rate_deal: str | None = None


class Rest:
    """WebServices as any client reads it, without the connector."""

    def __init__(self, sandbox: CTraderSandbox) -> None:
        self.sandbox = sandbox
        self.http = httpx.AsyncClient(
            base_url=sandbox.url,
            headers={"Accept": "application/json"},
            verify=sandbox.client_ssl_context(),
        )
        self.token: dict[str, str] = {}

    async def __aenter__(self) -> Rest:
        settings = self.sandbox.connector_settings()
        reply = await self.http.post(
            "/v2/webserv/managers/token",
            json={"login": settings["login"], "hashedPassword": md5_hex(settings["password"])},
        )
        self.token = {"token": reply.json()["webservToken"]}
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.http.aclose()

    async def classes(self) -> dict[str, tuple[str, str]]:
        reply = await self.http.get("/v2/webserv/symbols", params=self.token)
        return {s["name"]: (s["category"], s["assetClass"]) for s in reply.json()["symbol"]}

    async def account(self, login: str, start: datetime, end: datetime) -> Truth:
        trader = (await self.http.get(f"/v2/webserv/traders/{login}", params=self.token)).json()
        truth = Truth(login, str(trader["depositCurrency"]))
        reply = await self.http.get(
            "/v2/webserv/openPositions", params={**self.token, "login": login}
        )
        open_rows = list(csv.DictReader(io.StringIO(reply.text)))
        closed: list[dict[str, str]] = []
        current = EPOCH + WINDOW * ((start - LOOKBACK - EPOCH) // WINDOW)
        while current < end:
            params = {
                **self.token,
                "login": login,
                "from": current.strftime("%Y-%m-%dT%H:%M:%S.000"),
                "to": (current + WINDOW).strftime("%Y-%m-%dT%H:%M:%S.000"),
            }
            reply = await self.http.get("/v2/webserv/closedPositions", params=params)
            assert reply.status_code == 200, reply.text
            closed += csv.DictReader(io.StringIO(reply.text))
            current += WINDOW
        per_position: dict[str, Decimal] = defaultdict(Decimal)
        for row in closed:
            if start <= _utc(row["closeTimestamp"]) < end:
                truth.pnl += Decimal(row["pnl"])
                per_position[row["positionId"]] += Decimal(row["pnl"])
        truth.wins = sum(1 for v in per_position.values() if v > 0)
        truth.losses = sum(1 for v in per_position.values() if v < 0)
        for row in [*open_rows, *closed]:
            if start <= _utc(row["openTimestamp"]) < end:
                truth.opened[row["positionId"]] = row["symbol"]
        before_end = [r for r in closed if _utc(r["closeTimestamp"]) < end]
        if truth.currency != "USD" and before_end:
            latest = max(before_end, key=lambda r: (_utc(r["closeTimestamp"]), r["dealId"]))
            usd = Decimal(latest["usdConversionRate"])
            deposit = Decimal(latest["depositConversionRate"])
            value = usd / (Decimal(latest["closePrice"]) * deposit)
            truth.usd_rate = value.quantize(PLACES, ROUND_HALF_EVEN)
            truth.rate_deal = latest["dealId"]
        return truth


def ranked(counts: Counter[str]) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def levels(
    truths: list[Truth], classes: dict[str, tuple[str, str]]
) -> dict[str, list[tuple[str, int, Decimal]]]:
    """Each level's (name, positions, share) over the accounts, most first, ties by name."""
    by: dict[str, Counter[str]] = {level: Counter() for level in LEVELS}
    for truth in truths:
        for symbol in truth.opened.values():
            category, asset_class = classes[symbol]
            by["SYMBOL"][symbol] += 1
            by["CATEGORY"][category] += 1
            by["ASSET_CLASS"][asset_class] += 1
    result = {}
    for level, counts in by.items():
        total = sum(counts.values())
        result[level] = [
            (name, n, (Decimal(n) / total).quantize(Decimal("0.0001"), ROUND_HALF_EVEN))
            for name, n in ranked(counts)
        ]
    return result


RANKS = """
    symbols: mostOpened(level: SYMBOL, first: 100) { name positions share }
    categories: mostOpened(level: CATEGORY, first: 100) { name positions share }
    assetClasses: mostOpened(level: ASSET_CLASS, first: 100) { name positions share }"""
ACCOUNT = (
    """query($id: ID!, $from: DateTime!, $to: DateTime!) { account(id: $id) {
  analytics(from: $from, to: $to) { mostOpenedSymbols { symbol positions }"""
    + RANKS
    + "} } }"
)
PARTNER = (
    """query($code: String!, $from: DateTime!, $to: DateTime!, $currency: String!) {
  businessPartner(code: $code) { analytics(from: $from, to: $to, currency: $currency) {
    currency realizedPnl { amount currency } deposits { amount currency }
    withdrawals { amount currency } wins losses
    rates { currency rate asOf sources accountIds }
    convertedAccountIds
    notConverted { accountId currency realizedPnl { amount currency } reason }
    notCovered { accountId reason }"""
    + RANKS
    + "} } }"
)


def got_levels(analytics: dict[str, Any]) -> dict[str, list[tuple[str, int, Decimal]]]:
    return {
        level: [(e["name"], e["positions"], Decimal(e["share"])) for e in analytics[alias]]
        for level, alias in zip(LEVELS, ("symbols", "categories", "assetClasses"), strict=True)
    }


@pytest.mark.parametrize("login", ["9000001", "9000002"])
async def test_three_ranking_levels_match_the_sandbox_rest(
    gateway: TestGateway, sandbox: CTraderSandbox, login: str
) -> None:
    async with Rest(sandbox) as rest:
        classes = await rest.classes()
        truth = await rest.account(login, START, END)
    expected = levels([truth], classes)
    assert len(expected["CATEGORY"]) >= 2, "the seed should open in several categories"
    assert len(expected["SYMBOL"]) > len(expected["ASSET_CLASS"]) >= 2
    variables = {"id": account_gid(login), "from": START.isoformat(), "to": END.isoformat()}
    body = await gateway.query(ACCOUNT, variables, _token(gateway, f"account-{login}"))
    assert "errors" not in body, body["errors"][:1]
    analytics = body["data"]["account"]["analytics"]
    assert got_levels(analytics) == expected
    # The symbol level counts what mostOpenedSymbols counts.
    assert sorted((o["symbol"], o["positions"]) for o in analytics["mostOpenedSymbols"]) == sorted(
        (name, n) for name, n, _ in expected["SYMBOL"]
    )


async def _partner(
    gateway: TestGateway, code: str, currency: str, start: datetime = START, end: datetime = END
) -> dict[str, Any]:
    variables = {
        "code": code,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "currency": currency,
    }
    body = await gateway.query(PARTNER, variables, _token(gateway, f"partner-{code}"))
    assert "errors" not in body, body["errors"][:1]
    result: dict[str, Any] = body["data"]["businessPartner"]["analytics"]
    return result


async def test_partner_totals_in_usd_and_eur_match_the_sandbox_rest(
    gateway: TestGateway, sandbox: CTraderSandbox
) -> None:
    async with Rest(sandbox) as rest:
        classes = await rest.classes()
        usd_account = await rest.account("9000001", START, END)
        eur_account = await rest.account("9000002", START, END)
    assert (usd_account.currency, eur_account.currency) == ("USD", "EUR")
    eur_usd = eur_account.usd_rate
    assert eur_usd is not None and Decimal("1.08") < eur_usd < Decimal("1.09")
    wins = usd_account.wins + eur_account.wins
    losses = usd_account.losses + eur_account.losses
    expected_levels = levels([usd_account, eur_account], classes)

    usd = await _partner(gateway, "DEMO-001", "USD")
    assert usd["currency"] == "USD"
    pnl = usd_account.pnl + eur_account.pnl * eur_usd
    assert (Decimal(usd["realizedPnl"]["amount"]), usd["realizedPnl"]["currency"]) == (pnl, "USD")
    # No money moved through the gateway in a past period.
    assert Decimal(usd["deposits"]["amount"]) == Decimal(usd["withdrawals"]["amount"]) == 0
    assert (usd["wins"], usd["losses"]) == (wins, losses)
    (rate,) = usd["rates"]
    assert (rate["currency"], Decimal(rate["rate"])) == ("EUR", eur_usd)
    assert rate["accountIds"] == [account_gid("9000002")]
    assert f"deal {eur_account.rate_deal} of account 9000002" in rate["sources"][0]
    assert _utc(rate["asOf"].removesuffix("Z").split("+")[0]) < END
    assert usd["notConverted"] == [] and usd["notCovered"] == []
    assert sorted(usd["convertedAccountIds"]) == sorted(map(account_gid, ["9000001", "9000002"]))
    assert got_levels(usd) == expected_levels

    # EUR: the USD account goes through the EUR account's rate, inverted.
    eur = await _partner(gateway, "DEMO-001", "EUR")
    usd_eur = (Decimal(1) / eur_usd).quantize(PLACES, ROUND_HALF_EVEN)
    assert Decimal(eur["realizedPnl"]["amount"]) == eur_account.pnl + usd_account.pnl * usd_eur
    assert [(r["currency"], Decimal(r["rate"])) for r in eur["rates"]] == [("USD", usd_eur)]
    assert got_levels(eur) == expected_levels


async def test_an_account_without_a_rate_is_reported_unconverted_never_guessed(
    gateway: TestGateway, sandbox: CTraderSandbox
) -> None:
    async with Rest(sandbox) as rest:
        usd_account = await rest.account("9000001", START, END)
        eur_account = await rest.account("9000002", START, END)
    # No account of the partner is in GBP: neither can be put in GBP.
    gbp = await _partner(gateway, "DEMO-001", "GBP")
    assert gbp["realizedPnl"] == {"amount": "0.00", "currency": "GBP"}
    assert gbp["rates"] == [] and gbp["convertedAccountIds"] == []
    unconverted = {u["accountId"]: u for u in gbp["notConverted"]}
    assert set(unconverted) == {account_gid("9000001"), account_gid("9000002")}
    for truth in (usd_account, eur_account):
        entry = unconverted[account_gid(truth.login)]
        assert entry["currency"] == truth.currency
        assert Decimal(entry["realizedPnl"]["amount"]) == truth.pnl
        assert entry["realizedPnl"]["currency"] == truth.currency
        assert "GBP -> USD" in entry["reason"]
    # Counts need no rate: still every account's.
    assert (gbp["wins"], gbp["losses"]) == (
        usd_account.wins + eur_account.wins,
        usd_account.losses + eur_account.losses,
    )
    # A bad currency is refused before any upstream call.
    before = Counter(sandbox.calls)
    body = await gateway.query(
        PARTNER,
        {"code": "DEMO-001", "from": START.isoformat(), "to": END.isoformat(), "currency": "€"},
    )
    assert body["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
    assert delta(before, sandbox.calls) == {}


async def test_a_btc_account_is_converted_with_its_own_deals(
    gateway: TestGateway, sandbox: CTraderSandbox
) -> None:
    async with Rest(sandbox) as rest:
        btc_account = await rest.account("9000004", START, END)
    assert btc_account.currency == "BTC" and btc_account.usd_rate is not None
    usd = await _partner(gateway, "OTHER-001", "USD")
    assert Decimal(usd["realizedPnl"]["amount"]) == btc_account.pnl * btc_account.usd_rate
    assert [(r["currency"], Decimal(r["rate"])) for r in usd["rates"]] == [
        ("BTC", btc_account.usd_rate)
    ]


async def test_the_symbol_list_is_read_once_per_ttl_not_per_account(
    gateway: TestGateway, sandbox: CTraderSandbox
) -> None:
    await gateway.clear_cache()
    before = Counter(sandbox.calls)
    await _partner(gateway, "DEMO-001", "USD")
    calls = delta(before, sandbox.calls)
    # Two accounts, each with positions opened in the period: one symbol read.
    assert calls[SYMBOLS] == 1
    # Both accounts' positions in one openPositions call (the partner's batch),
    # which each account's analytics then finds instead of reading again.
    assert calls["GET /v2/webserv/openPositions"] == 1
    # Another period, another partner, one account alone: the list is still cached.
    before = Counter(sandbox.calls)
    await _partner(gateway, "DEMO-002", "USD", START - timedelta(days=30), START)
    other = {"id": account_gid("9000004"), "from": START.isoformat(), "to": END.isoformat()}
    body = await gateway.query(ACCOUNT, other, _token(gateway, "account-9000004"))
    assert "errors" not in body, body["errors"][:1]
    calls = delta(before, sandbox.calls)
    assert calls["GET /v2/webserv/closedPositions"] > 0  # they did read their windows
    assert SYMBOLS not in calls


MOVE = """mutation($input: MoneyMovementInput!) {
  %s(input: $input) { operation { kind amount { amount currency } } errors { code message } }
}"""


async def test_money_moved_through_the_gateway_is_in_the_partner_totals_converted(
    gateway: TestGateway, sandbox: CTraderSandbox
) -> None:
    """A deposit to the EUR account and a withdrawal from the USD one, made through the
    gateway (cTrader has no balance-history read), move the partner's USD totals by
    their amounts at the EUR account's rate (read over REST)."""
    now = datetime.now(UTC).replace(microsecond=0)
    start, end = now - timedelta(days=1), now + timedelta(hours=1)
    async with Rest(sandbox) as rest:
        eur_account = await rest.account("9000002", start, end)
    assert eur_account.usd_rate is not None
    await gateway.clear_cache()
    before = await _partner(gateway, "DEMO-001", "USD", start, end)
    for operation, login, amount in (
        ("deposit", "9000002", "40.10"),
        ("withdraw", "9000001", "7.25"),
    ):
        variables = {
            "input": {
                "accountId": account_gid(login),
                "amount": amount,
                "idempotencyKey": f"levels-{operation}-{now.timestamp()}",
            }
        }
        body = await gateway.query(MOVE % operation, variables)
        assert "errors" not in body and body["data"][operation]["errors"] == [], body
    await gateway.clear_cache()
    after = await _partner(gateway, "DEMO-001", "USD", start, end)
    moved_in = Decimal(after["deposits"]["amount"]) - Decimal(before["deposits"]["amount"])
    moved_out = Decimal(after["withdrawals"]["amount"]) - Decimal(before["withdrawals"]["amount"])
    assert moved_in == Decimal("40.10") * eur_account.usd_rate
    assert moved_out == Decimal("7.25")
    assert after["deposits"]["currency"] == after["withdrawals"]["currency"] == "USD"


@pytest.mark.parametrize("first", [0, -1, 501])
async def test_a_bad_ranking_length_is_refused_before_any_read(
    gateway: TestGateway, sandbox: CTraderSandbox, first: int
) -> None:
    await gateway.clear_cache()
    period = 'from: "2025-01-01T00:00:00Z", to: "2025-02-01T00:00:00Z"'
    ranks = f"... on AccountAnalytics {{ mostOpened(level: CATEGORY, first: {first}) {{ name }} }}"
    for query in (
        f'{{ account(id: "{account_gid("9000001")}") {{ analytics({period}) {{ {ranks} }} }} }}',
        f'{{ businessPartner(code: "DEMO-001") {{ analytics({period}) '
        f"{{ mostOpened(level: SYMBOL, first: {first}) {{ name }} }} }} }}",
    ):
        before = Counter(sandbox.calls)
        body = await gateway.query(query, None, _token(gateway, "bad-first"))
        assert body["errors"][0]["extensions"]["code"] == "INVALID_INPUT", body
        assert body["errors"][0]["extensions"]["field"] == ["first"]
        calls = delta(before, sandbox.calls)
        assert not any("closedPositions" in key or "symbols" in key for key in calls), calls


async def test_an_account_the_platform_does_not_know_is_not_covered_with_its_code(
    gateway: TestGateway,
) -> None:
    store = gateway.services.store
    await store.upsert_partner("LEVELS-MIX", broker="demo-broker", display_name="Mix")
    await store.link("LEVELS-MIX", "ctrader", "account", "9000007")  # USD, no trades
    await store.link("LEVELS-MIX", "ctrader", "account", "9999990")  # no such trader
    query = """query($from: DateTime!, $to: DateTime!) { businessPartner(code: "LEVELS-MIX") {
      analytics(from: $from, to: $to) { realizedPnl { amount currency } convertedAccountIds
        notCovered { accountId platform code reason } } } }"""
    variables = {"from": START.isoformat(), "to": END.isoformat()}
    body = await gateway.query(query, variables, _token(gateway, "mix"))
    assert "errors" not in body, body["errors"][:1]
    analytics = body["data"]["businessPartner"]["analytics"]
    assert analytics["convertedAccountIds"] == [account_gid("9000007")]
    assert analytics["realizedPnl"] == {"amount": "0.00", "currency": "USD"}
    (missing,) = analytics["notCovered"]
    assert missing["accountId"] == account_gid("9999990")
    assert (missing["platform"], missing["code"]) == ("ctrader", "NOT_FOUND")
