"""The client journey through the reference client area in Debian's chromium, offline.

A gateway wired to the platform sandboxes serves the built app at /client-area;
playwright-core (examples/client-area/e2e/client-journey.mjs) opens it with the client
token in the URL fragment, with every host but 127.0.0.1 unresolvable and every request
off the loopback recorded.  The page must list the partner's accounts on every platform
with the balances the gateway answers, pass axe-core's WCAG 2 A/AA rules, and show a QST
limit order go PENDING → WORKING and, once cancelled, CANCELLED — live, from
``orderEvents``, and an order crossing the market fill in parts with its fills listed;
then the same page's analytics plotted with the API's numbers, positions and deals,
client reports downloaded with the sub-account each covers, the tax of a withdrawal on
a chosen day, and every page at phone width.  Without a WebSocket the live states come
over SSE.  With a platform down, its accounts are rows carrying the typed error at their
path and the others still show.  Screenshots go to tests/artifacts/client-area/.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import brokergraph_ctrader.plugin
import brokergraph_dxtrade.plugin
import brokergraph_qort.plugin
import brokergraph_qst.plugin
import pytest
from brokergraph_ctrader.sandbox import CTraderSandbox
from brokergraph_dxtrade.sandbox import DxTradeSandbox
from brokergraph_qort.sandbox import QortSandbox
from brokergraph_qort.sandbox.reports import CSV_COLUMNS as QORT_CSV_COLUMNS
from brokergraph_qort.sandbox.seed import DEALS as QORT_DEALS
from brokergraph_qort.sandbox.seed import RATES_TO_RUB as QORT_RATES
from brokergraph_qst.sandbox import QstSandbox

from gateway.sandboxes import Sandbox
from gateway.testing import TestGateway, open_test_gateway
from tests import browser
from tests.test_client_area_build import APP_DIR, INSTALLED_LOCK, build_client_area, npm, run

#: Screenshots of every page (gitignored; README images are refreshed from here).
SHOTS = browser.ARTIFACTS_DIR / "client-area"
ACCOUNTS = """{ me { accounts { id platform number balance { amount currency } } } }"""


def shown(money: dict[str, str] | None) -> str:
    """A balance as the page shows it: the decimal string as sent, "—" when unknown."""
    return f"{money['amount']} {money['currency']}" if money else "—"


@contextlib.asynccontextmanager
async def client_area(
    plugins: list[object], sandboxes: list[Sandbox], tmp_path: Path
) -> AsyncIterator[TestGateway]:
    """The built app, served by a gateway wired to ``sandboxes`` (started here)."""
    await build_client_area()
    SHOTS.mkdir(parents=True, exist_ok=True)
    async with contextlib.AsyncExitStack() as stack:
        for sandbox in sandboxes:
            await stack.enter_async_context(sandbox)
        yield await stack.enter_async_context(
            open_test_gateway(plugins, sandboxes, tmp_path / "store")
        )


async def accounts_answer(gateway: TestGateway) -> dict[str, Any]:
    token = gateway.tokens["client"]
    answer = await gateway.http.post(
        gateway.graphql_url, json={"query": ACCOUNTS}, headers={"Authorization": f"Bearer {token}"}
    )
    body: dict[str, Any] = answer.json()
    return body


async def run_journey(
    gateway: TestGateway,
    journey: str,
    expected: dict[str, str],
    shots: Path,
    role: str = "client",
    **extra: str,
) -> dict[str, Any]:
    """Run the browser journey as ``role``; its JSON report (what the page showed)."""
    env = {
        **extra,
        "CLIENT_AREA_URL": f"{gateway.url}/client-area/#{role}={gateway.tokens[role]}",
        "CHROMIUM": browser.chromium_path(),
        "EXPECTED": json.dumps(expected),
        "SCREENSHOT_DIR": str(shots),
        "JOURNEY": journey,
    }
    process = await asyncio.create_subprocess_exec(
        "node",
        str(APP_DIR / "e2e" / "client-journey.mjs"),
        cwd=APP_DIR,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode(errors="replace")
    report: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    assert report["offLoopback"] == []  # nothing from a CDN, nothing off this machine
    return report


#: The analytics the journey asks for: cTrader's seeded history (May to 14 November 2026).
ANALYTICS = {"account": "ctrader 9000001 (USD)", "from": "2026-08-01", "to": "2026-11-14"}
PERIOD = {"from": "2026-08-01T00:00:00Z", "to": "2026-11-15T00:00:00Z"}
#: QORT's seeded deals were sold in 2024 and 2025 (a period is at most 366 days).
REPORT = {"from": "2024-06-01", "to": "2025-05-31"}
#: The withdrawal's day falls after 2024's two gains and before its loss (5 September),
#: so its tax differs from the whole year's.
TAX = {
    "amount": "100000.00",
    "currency": "RUB",
    "date": "2024-08-31",
    "from": "2024-01-01",
    "to": "2024-12-31",
}
#: A QST buy limit far above ESZ26's price (6000, ticks of 0.25): it crosses at once,
#: one contract a matching round (the sandbox's max_fill_quantity), so it fills in three.
FILL = {"quantity": "3", "price": "6100.00"}
TAX_QUERY = """mutation($input: CalculateTaxInput!) { calculateTax(input: $input) {
  calculation { taxBase { amount currency } taxAmount { amount currency } } errors { code } } }"""
ORDERS_QUERY = """query($id: ID!) { account(id: $id) { orders {
  externalId quantity filledQuantity status executions { externalId quantity price } } } }"""
INSTRUMENTS_QUERY = """query($id: ID!) {
  instruments(accountId: $id, symbols: ["ESZ26"]) { symbol } }"""

ANALYTICS_QUERY = """query($id: ID!, $from: DateTime!, $to: DateTime!) { account(id: $id) {
  positions { externalId }
  deals(from: $from, to: $to) { externalId executedAt realizedPnl { amount currency } }
  analytics(from: $from, to: $to) { realizedPnl { amount currency } wins losses
    volumeBySymbol { symbol notional { amount currency } lots }
    mostOpenedSymbols { symbol positions }
    byCategory: mostOpened(level: CATEGORY) { name positions }
    byAssetClass: mostOpened(level: ASSET_CLASS) { name positions }
    copySubAccounts { externalId balance { amount currency } equity { amount currency }
      account { externalId status } } } } }"""


def proportional(bars: list[dict[str, Any]]) -> None:
    """Each bar's drawn width is its value's share of the longest (to half a pixel)."""
    longest = max(bars, key=lambda bar: Decimal(bar["value"]))
    for bar in bars:
        share = Decimal(bar["value"]) / Decimal(longest["value"])
        assert abs(Decimal(str(bar["width"])) - share * Decimal(str(longest["width"]))) < Decimal(
            "0.5"
        ), (bar, longest)


def check_analytics(page: dict[str, Any], truth: dict[str, Any]) -> None:
    """The plotted marks against the API's own answer, summed here with Decimal."""
    analytics = truth["analytics"]
    deals = sorted(
        (d for d in truth["deals"] if d["realizedPnl"]), key=lambda d: str(d["executedAt"])
    )
    running, totals = Decimal(0), []
    for deal in deals:
        running += Decimal(deal["realizedPnl"]["amount"])
        totals.append(running)
    assert len(deals) > 5  # a period with history, or the check says little
    assert [(p["at"], Decimal(p["value"])) for p in page["pnl"]] == [
        (d["executedAt"], total) for d, total in zip(deals, totals, strict=True)
    ]
    # The line ends at the period's realised P&L, and is drawn where its values say:
    # later points further right, y linear in the value (one slope, pointing up).
    assert totals[-1] == Decimal(analytics["realizedPnl"]["amount"])
    realized = analytics["realizedPnl"]
    assert page["realized"] == f"{realized['amount']} {realized['currency']}"
    xs = [p["x"] for p in page["pnl"]]
    assert xs == sorted(xs)
    points = [(Decimal(p["value"]), Decimal(str(p["y"]))) for p in page["pnl"]]
    (v0, y0), (v1, y1) = min(points), max(points)
    slope = (y1 - y0) / (v1 - v0)
    assert slope < 0  # SVG's y grows downwards
    for value, y in points:
        assert abs(y0 + slope * (value - v0) - y) < Decimal("0.01")
    wins, losses = analytics["wins"], analytics["losses"]
    assert page["winloss"] == f"{wins} / {losses}"
    assert [(b["label"], b["value"]) for b in page["winlossBars"]] == [
        ("Won", str(wins)),
        ("Lost", str(losses)),
    ]
    proportional(page["winlossBars"])
    assert [(b["label"], Decimal(b["value"])) for b in page["volume"]] == [
        (v["symbol"], Decimal(v["notional"]["amount"])) for v in analytics["volumeBySymbol"]
    ]
    proportional(page["volume"])
    assert [(b["label"], b["value"]) for b in page["opened"]] == [
        (s["symbol"], str(s["positions"])) for s in analytics["mostOpenedSymbols"]
    ]
    proportional(page["opened"])
    for chart, field in (("category", "byCategory"), ("assetclass", "byAssetClass")):
        assert [(b["label"], b["value"]) for b in page[chart]] == [
            (r["name"], str(r["positions"])) for r in analytics[field]
        ]
        assert len(page[chart]) > 1  # cTrader's symbol list classifies the seeded symbols
        proportional(page[chart])
    # Each Copy sub-account by its login, and its status read from the account itself.
    assert page["copy"] == [
        [c["externalId"], shown(c["balance"]), shown(c["equity"]), c["account"]["status"]]
        for c in analytics["copySubAccounts"]
    ]
    assert len(page["copy"]) == 2  # 9000001 has two Copy sub-accounts in the seed
    for copy in analytics["copySubAccounts"]:
        assert copy["account"]["externalId"] == copy["externalId"]


def check_reports(report: dict[str, Any], listed: dict[str, str | None]) -> None:
    """Every downloaded file is the CSV of the deals in the period of the sub-account its
    row says it covers (as ``me.reports`` answers ``accountExternalId``): each of
    DEMO-001's seeded deals sold in it in the file of its own sub-account, with its income."""
    assert report["reportCovers"] == {i: listed[i] for i in report["reportIds"]}
    assert sorted(report["reportCovers"].values()) == ["DEMO-001-01", "DEMO-001-02"]
    expected = {
        (deal.subacc, deal.trade_num): (deal.sell_price - deal.buy_price) * deal.qty
        for deal in QORT_DEALS
        if deal.subacc.startswith("DEMO-001-") and 20240601 <= deal.sell_date <= 20250531
    }
    assert {subacc for subacc, _ in expected} == {"DEMO-001-01", "DEMO-001-02"}
    assert len(report["reportIds"]) == 2  # one per QORT sub-account of DEMO-001
    for report_id in report["reportIds"]:
        states = report["reportStates"][report_id]
        assert states[-1] == "READY"
        assert set(states[:-1]) <= {"REQUESTED", "GENERATING"} and states[:-1], states
    seen: dict[tuple[str, str], Decimal] = {}
    for report_id, file in report["files"].items():
        assert file["name"] == f"client-report-{report_id}.csv"
        rows = list(csv.reader(io.StringIO(file["text"])))
        assert rows[0] == list(QORT_CSV_COLUMNS)
        for row in rows[1:]:
            seen[(report["reportCovers"][report_id], row[0])] = Decimal(row[7])
    assert seen == expected


def expected_tax(start: int, end: int, cap_amount: Decimal | None) -> tuple[Decimal, Decimal]:
    """13 % of DEMO-001's income in RUB sold in [start, end], from the seeded deals; on a
    withdrawal at most 30 % of the amount (RUB)."""
    income = sum(
        (
            (d.sell_price - d.buy_price) * d.qty * QORT_RATES[d.currency]
            for d in QORT_DEALS
            if d.subacc.startswith("DEMO-001-") and start <= d.sell_date <= end
        ),
        Decimal(0),
    )
    base = max(Decimal(0), income)
    tax = (base * Decimal("0.13")).quantize(Decimal(1), ROUND_HALF_UP)
    if cap_amount is not None:
        tax = min(tax, (cap_amount * Decimal("0.30")).quantize(Decimal(1), ROUND_HALF_UP))
    return base, tax


def rub(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01'))} RUB"


def check_fills(page: dict[str, Any], orders: list[dict[str, Any]]) -> None:
    """The filled order's fills as the page lists them are the API's executions, and
    they add up to the filled quantity the API gives (the whole order, three fills)."""
    order = next(o for o in orders if o["externalId"] == page["order"])
    assert order["status"] == "FILLED"
    executions = order["executions"]
    assert [(f["id"], Decimal(f["quantity"]), Decimal(f["price"])) for f in page["fills"]] == [
        (e["externalId"], Decimal(e["quantity"]), Decimal(e["price"])) for e in executions
    ]
    assert len(executions) == 3  # one contract a matching round
    total = sum((Decimal(e["quantity"]) for e in executions), Decimal(0))
    assert total == Decimal(order["filledQuantity"]) == Decimal(order["quantity"]) == 3
    assert Decimal(page["filled"]) == total
    assert page["quantity"] == f"{order['filledQuantity']}/{order['quantity']}"
    assert page["summary"].startswith("3 fills")
    # Each partial fill is its own event; the row saw the order part-filled on the way.
    assert "PARTIALLY_FILLED" in page["history"].split(" → ")
    assert page["history"].endswith("→ FILLED")
    # QST publishes no order rules: the form checks nothing and says nothing alarming.
    assert page["rules"] == "unavailable"
    assert page["problems"] == page["alerts"] == 0


@pytest.mark.browser
@pytest.mark.timeout(300)  # a cold npm ci downloads; four sandboxes and chromium start
async def test_client_journey_through_every_page(tmp_path: Path) -> None:
    """One browser session: accounts, a live order, analytics plotted with the API's
    numbers, positions and deals, a report requested and downloaded, the tax of a
    withdrawal and of a period; axe-core clean on each page, and each page at phone
    width with nothing wider than the screen and every control reachable."""
    browser.chromium_path()
    plugins: list[object] = [
        brokergraph_ctrader.plugin,
        brokergraph_dxtrade.plugin,
        brokergraph_qort.plugin,
        brokergraph_qst.plugin,
    ]
    # Reports take 2 s to be made, so the page shows them pending before READY.
    qort = QortSandbox(report_delay_seconds=2.0)
    qst = QstSandbox(max_fill_quantity=Decimal(1))
    sandboxes: list[Sandbox] = [CTraderSandbox(), DxTradeSandbox(), qort, qst]
    async with client_area(plugins, sandboxes, tmp_path) as gateway:
        accounts = (await accounts_answer(gateway))["data"]["me"]["accounts"]
        expected = {f"{a['platform']} {a['number']}": shown(a["balance"]) for a in accounts}
        assert {key.split()[0] for key in expected} == {"ctrader", "dxtrade", "qort", "qst"}
        account = next(a for a in accounts if f"{a['platform']} {a['number']}" == "ctrader 9000001")
        truth = await gateway.data(ANALYTICS_QUERY, {"id": account["id"], **PERIOD}, token="client")
        qst_account = next(a for a in accounts if a["platform"] == "qst")
        rules = await gateway.query(INSTRUMENTS_QUERY, {"id": qst_account["id"]}, "client")
        assert [e["extensions"]["code"] for e in rules["errors"]] == ["CAPABILITY_NOT_SUPPORTED"]
        report = await run_journey(
            gateway,
            "client",
            expected,
            SHOTS,
            ANALYTICS=json.dumps(ANALYTICS),
            REPORT=json.dumps(REPORT),
            TAX=json.dumps(TAX),
            FILL=json.dumps(FILL),
        )
        after = await gateway.data(
            "{ me { reports { externalId status accountExternalId } } }", token="client"
        )
        orders = await gateway.data(ORDERS_QUERY, {"id": qst_account["id"]}, token="client")
        withdrawal = {k: TAX[k] for k in ("amount", "currency", "date")}
        taxed = await gateway.data(
            TAX_QUERY,
            {"input": {"partnerCode": "DEMO-001", "kind": "WITHDRAWAL", **withdrawal}},
            token="client",
        )
    assert report["balances"] == expected
    assert report["history"] == "PENDING → WORKING → CANCELLED"
    assert report["transport"] == "ws"  # SSE only when the socket cannot be opened
    assert report["streams"] == []
    pages = ("accounts", "analytics", "positions", "reports", "tax")
    phones = [f"{p}-phone" for p in pages]
    assert report["axePages"] == {name: [] for name in [*pages, "fills", *phones]}
    check_fills(report["fills"], orders["account"]["orders"])
    check_analytics(report["analytics"], truth["account"])
    positions = report["positions"]
    assert positions["positions"] == [p["externalId"] for p in truth["account"]["positions"]]
    assert sorted(positions["deals"]) == sorted(
        [d["externalId"], shown(d["realizedPnl"])] for d in truth["account"]["deals"]
    )
    check_reports(report, {r["externalId"]: r["accountExternalId"] for r in after["me"]["reports"]})
    statuses = {r["externalId"]: r["status"] for r in after["me"]["reports"]}
    assert statuses == dict.fromkeys(report["reportIds"], "READY")
    # A withdrawal on 31 August 2024 is taxed on 2024's income up to that day: the page
    # shows the API's answer, which is the seed's (two gains, not yet the loss).
    base, tax = expected_tax(20240101, 20240831, Decimal(TAX["amount"]))
    calculation = taxed["calculateTax"]["calculation"]
    assert taxed["calculateTax"]["errors"] == []
    assert report["tax"]["withdrawal"] == {
        "base": shown(calculation["taxBase"]),
        "amount": shown(calculation["taxAmount"]),
    }
    assert report["tax"]["withdrawal"] == {"base": rub(base), "amount": rub(tax)}
    assert tax > 0
    base, tax = expected_tax(20240101, 20241231, None)
    assert base > 0 and tax > 0
    assert report["tax"]["period"] == {"base": rub(base), "amount": rub(tax)}
    assert report["tax"]["period"] != report["tax"]["withdrawal"]
    for page, check in report["phone"].items():
        assert check["scrollWidth"] <= check["width"] == 390, (page, check)
        assert check["wide"] == [], (page, check)
        assert check["unreachable"] == [], (page, check)
        assert check["controls"] > 3, (page, check)
    for name in ("client-area", "client-area-analytics", "client-area-reports", "client-area-tax"):
        assert (SHOTS / f"{name}.png").stat().st_size > 0
    assert (SHOTS / "client-area-phone-analytics.png").stat().st_size > 0


@pytest.mark.browser
@pytest.mark.timeout(300)
async def test_without_a_websocket_live_orders_come_over_sse(tmp_path: Path) -> None:
    """No WebSocket can be opened (each goes to a closed port, as behind a proxy that
    drops upgrades): the page's subscriptions fall back to GraphQL over SSE, and the
    order's states still arrive live."""
    browser.chromium_path()
    async with client_area([brokergraph_qst.plugin], [QstSandbox()], tmp_path) as gateway:
        accounts = (await accounts_answer(gateway))["data"]["me"]["accounts"]
        expected = {f"{a['platform']} {a['number']}": shown(a["balance"]) for a in accounts}
        report = await run_journey(gateway, "sse", expected, SHOTS)
    assert report["transport"] == "sse"
    assert report["streams"] == ["OrderEvents"]  # one stream, over HTTP
    assert report["history"] == "PENDING → WORKING → CANCELLED"
    assert report["axe"] == []


@pytest.mark.browser
@pytest.mark.timeout(300)
async def test_a_platform_down_shows_its_typed_error_beside_the_others(tmp_path: Path) -> None:
    browser.chromium_path()
    ctrader = CTraderSandbox()
    plugins: list[object] = [brokergraph_ctrader.plugin, brokergraph_qst.plugin]
    async with client_area(plugins, [ctrader, QstSandbox()], tmp_path) as gateway:
        await ctrader.stop()  # cTrader refuses connections from now on
        answer = await accounts_answer(gateway)
        accounts = answer["data"]["me"]["accounts"]
        expected = {f"{a['platform']} {a['number']}": shown(a["balance"]) for a in accounts if a}
        # The code and path of each error (its message changes once the breaker opens).
        failures = [
            (
                error["extensions"]["details"]["platform"],
                f"{error['extensions']['code']} at me.accounts.{error['path'][2]}: ",
            )
            for error in answer["errors"]
        ]
        assert {key.split()[0] for key in expected} == {"qst"}
        assert [platform for platform, _ in failures] == ["ctrader", "ctrader"]
        report = await run_journey(gateway, "partial", expected, SHOTS)
    assert report["balances"] == expected
    shown_failures = [(row["platform"], row["text"]) for row in report["failures"]]
    for (platform, text), (want_platform, start) in zip(shown_failures, failures, strict=True):
        assert platform == want_platform
        assert text.startswith(start)
        assert "ctrader" in text.lower()  # the message names the platform too
    assert report["banner"] == "Partial result: 2 account(s) could not be read."


@pytest.mark.browser
@pytest.mark.timeout(300)
async def test_a_cut_socket_resumes_with_every_state_once(tmp_path: Path) -> None:
    """The socket is cut while an order is WORKING and stays down until its cancel is
    answered; on reconnect the page resumes after the last sequence it got, so CANCELLED
    arrives, every state once, and the events it saw have no gap and no repeat."""
    browser.chromium_path()
    plugins: list[object] = [brokergraph_qst.plugin]
    async with client_area(plugins, [QstSandbox()], tmp_path) as gateway:
        accounts = (await accounts_answer(gateway))["data"]["me"]["accounts"]
        expected = {f"{a['platform']} {a['number']}": shown(a["balance"]) for a in accounts}
        report = await run_journey(gateway, "resume", expected, SHOTS)
    assert report["statusWhileDown"] == "WORKING"  # CANCELLED could only come by resuming
    assert report["history"] == "PENDING → WORKING → CANCELLED"
    events: list[dict[str, Any]] = report["events"]
    snapshot = [e["sequence"] for e in events if e["kind"] == "ORDER_BOOK_SNAPSHOT"]
    live = [e["sequence"] for e in events if e["kind"] != "ORDER_BOOK_SNAPSHOT"]
    assert snapshot == sorted(set(snapshot))
    assert live == list(range(snapshot[-1] + 1, snapshot[-1] + 1 + len(live)))  # no gap, no repeat
    # One reconnect, resuming after the last event received before the cut.
    assert len(report["resumes"]) == 1
    assert report["resumes"][0] in live[:-1]
    assert (SHOTS / "client-area-resumed.png").stat().st_size > 0


RULES_QUERY = """query($id: ID!) { instruments(accountId: $id, symbols: ["EUR/USD"]) {
  symbol tickSize minQuantity maxQuantity quantityIncrement } }"""


async def rule_problems(rules: dict[str, Any], cases: list[tuple[str, str]]) -> list[list[str]]:
    """The order form's rule check (src/orderRules.ts, compiled by esbuild) on each
    (quantity, price) of ``cases``: the problems it would show."""
    tool = npm()
    lock = APP_DIR / "package-lock.json"
    if not INSTALLED_LOCK.is_file() or INSTALLED_LOCK.stat().st_mtime < lock.stat().st_mtime:
        await run(tool, "ci", "--no-audit", "--no-fund", "--loglevel=error")
    process = await asyncio.create_subprocess_exec(
        "node",
        str(APP_DIR / "e2e" / "order-rules.mjs"),
        cwd=APP_DIR,
        env={
            **os.environ,
            "RULES": json.dumps(rules),
            "CASES": json.dumps([{"quantity": q, "price": p} for q, p in cases]),
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode(errors="replace")
    problems: list[list[str]] = json.loads(out)
    return problems


@pytest.mark.timeout(120)
async def test_the_order_form_checks_an_order_against_the_platforms_rules(
    tmp_path: Path,
) -> None:
    """Where the platform gives an instrument's rules (DXtrade: tick, quantity bounds and
    step), the order form's check refuses exactly what breaks them, from the values the
    API answered; QST gives none (the journey: nothing checked, nothing shown)."""
    sandbox = DxTradeSandbox()
    async with sandbox, open_test_gateway([brokergraph_dxtrade.plugin], [sandbox], tmp_path) as gw:
        account = (await gw.data("{ me { accounts { id } } }", token="client"))["me"]["accounts"][0]
        (rules,) = (await gw.data(RULES_QUERY, {"id": account["id"]}, token="client"))[
            "instruments"
        ]
    tick, low, high, step = (
        Decimal(rules[k]) for k in ("tickSize", "minQuantity", "maxQuantity", "quantityIncrement")
    )
    price = tick * 108505  # on the tick
    cases = [
        (low + step, price),
        (Decimal(0), price),
        (high + step, price),
        (low + step / 2, price),
        (low, price + tick / 2),
    ]
    answers = await rule_problems(rules, [(str(q), str(p)) for q, p in cases] + [("1e3", "x")])
    assert answers == [
        [],
        [f"Quantity must be at least {rules['minQuantity']}."],
        [f"Quantity must be at most {rules['maxQuantity']}."],
        [f"Quantity must be a multiple of {rules['quantityIncrement']}."],
        [f"Limit price must be a multiple of the tick, {rules['tickSize']}."],
        [
            "Quantity must be a number such as 1 or 0.5.",
            "Limit price must be a number such as 5000.25.",
        ],
    ]


PARTNER_ACCOUNTS = """{ businessPartner(code: "DEMO-001") {
  accounts { id platform number balance { amount } } } }"""
OPERATIONS = """query($id: ID!, $from: DateTime!, $to: DateTime!) { account(id: $id) {
  balance { amount } balanceOperations(from: $from, to: $to) { kind amount { amount } } } }"""


async def manager_data(gateway: TestGateway, query: str, **variables: Any) -> dict[str, Any]:
    token = gateway.tokens["manager"]
    answer = await gateway.http.post(
        gateway.graphql_url,
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {token}"},
    )
    body: dict[str, Any] = answer.json()
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


async def deposit_journey(
    tmp_path: Path, lose_answer: bool
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A back-office deposit of 123.45 to the partner's cTrader account in the page:
    the account before, the journey's report, and the account after."""
    browser.chromium_path()
    ctrader = CTraderSandbox()
    async with client_area([brokergraph_ctrader.plugin], [ctrader], tmp_path) as gateway:
        partner = await manager_data(gateway, PARTNER_ACCOUNTS)
        account = next(a for a in partner["businessPartner"]["accounts"] if a)
        since = datetime.now(UTC) - timedelta(minutes=1)
        if lose_answer:
            ctrader.fail_next_after_apply(1, 502)  # cTrader moves the money; a proxy answers 502
        report = await run_journey(
            gateway,
            "backoffice",
            {},
            tmp_path,
            role="manager",
            TARGET=f"{account['platform']} {account['number']}",
            AMOUNT="123.45",
            **({"UNKNOWN": "1"} if lose_answer else {}),
        )
        after = await manager_data(
            gateway,
            OPERATIONS,
            id=account["id"],
            **{
                "from": since.isoformat(),
                "to": (datetime.now(UTC) + timedelta(minutes=1)).isoformat(),
            },
        )
    return account, report, after


def moved_once(account: dict[str, Any], after: dict[str, Any]) -> None:
    """One DEPOSIT of 123.45 on the account, and its balance up by exactly that."""
    deposits = [op for op in after["account"]["balanceOperations"] if op["kind"] == "DEPOSIT"]
    assert [op["amount"]["amount"] for op in deposits] == ["123.45"]
    before = Decimal(account["balance"]["amount"])
    assert Decimal(after["account"]["balance"]["amount"]) == before + Decimal("123.45")


@pytest.mark.browser
@pytest.mark.timeout(300)
async def test_a_double_clicked_deposit_moves_money_once(tmp_path: Path) -> None:
    """The back office (manager token) deposits with a double click: both clicks send
    the form's one idempotency key, so the gateway moves the money once."""
    account, report, after = await deposit_journey(tmp_path, lose_answer=False)
    assert report["depositRequests"] == 2  # the double click did send twice
    assert report["deposit"].startswith("Deposited 123.45 ")
    assert report["axe"] == []
    moved_once(account, after)
    assert (tmp_path / "back-office.png").stat().st_size > 0


@pytest.mark.browser
@pytest.mark.timeout(300)
async def test_a_lost_deposit_answer_is_shown_unknown_and_its_retry_settles_it(
    tmp_path: Path,
) -> None:
    """cTrader applies the deposit and its answer is lost: the page says the outcome
    is unknown and offers Retry, which sends the same key and settles it — once."""
    account, report, after = await deposit_journey(tmp_path, lose_answer=True)
    assert report["unknown"].startswith("Outcome unknown:")
    assert "Retry (same key)" in report["unknown"]
    assert report["depositRequests"] == 2  # the lost one and the retry
    assert report["deposit"].endswith("settled from the first submission: it moved once")
    moved_once(account, after)
