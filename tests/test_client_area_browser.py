"""The client journey through the reference client area in Debian's chromium, offline.

A gateway wired to the platform sandboxes serves the built app at /client-area;
playwright-core (examples/client-area/e2e/client-journey.mjs) opens it with the client
token in the URL fragment, with every host but 127.0.0.1 unresolvable and every request
off the loopback recorded.  The page must list the partner's accounts on every platform
with the balances the gateway answers, pass axe-core's WCAG 2 A/AA rules, and show a QST
limit order go PENDING → WORKING and, once cancelled, CANCELLED — live, from
``orderEvents``.  With a platform down, its accounts are rows carrying the typed error at
their path and the others still show.  Screenshots go to the test's tmp dir.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
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
from brokergraph_qst.sandbox import QstSandbox

from gateway.sandboxes import Sandbox
from gateway.testing import TestGateway, open_test_gateway
from tests import browser
from tests.test_client_area_build import APP_DIR, build_client_area

ACCOUNTS = """{ me { accounts { platform number balance { amount currency } } } }"""


def shown(money: dict[str, str] | None) -> str:
    """A balance as the page shows it: the decimal string as sent, "—" when unknown."""
    return f"{money['amount']} {money['currency']}" if money else "—"


@contextlib.asynccontextmanager
async def client_area(
    plugins: list[object], sandboxes: list[Sandbox], tmp_path: Path
) -> AsyncIterator[TestGateway]:
    """The built app, served by a gateway wired to ``sandboxes`` (started here)."""
    await build_client_area()
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


@pytest.mark.browser
@pytest.mark.timeout(300)  # a cold npm ci downloads; four sandboxes and chromium start
async def test_client_journey_accounts_and_a_live_order(tmp_path: Path) -> None:
    browser.chromium_path()
    plugins: list[object] = [
        brokergraph_ctrader.plugin,
        brokergraph_dxtrade.plugin,
        brokergraph_qort.plugin,
        brokergraph_qst.plugin,
    ]
    sandboxes: list[Sandbox] = [CTraderSandbox(), DxTradeSandbox(), QortSandbox(), QstSandbox()]
    async with client_area(plugins, sandboxes, tmp_path) as gateway:
        accounts = (await accounts_answer(gateway))["data"]["me"]["accounts"]
        expected = {f"{a['platform']} {a['number']}": shown(a["balance"]) for a in accounts}
        assert {key.split()[0] for key in expected} == {"ctrader", "dxtrade", "qort", "qst"}
        report = await run_journey(gateway, "orders", expected, tmp_path)
    assert report["balances"] == expected
    assert report["axe"] == []
    assert report["history"] == "PENDING → WORKING → CANCELLED"
    assert (tmp_path / "client-area.png").stat().st_size > 0


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
        report = await run_journey(gateway, "partial", expected, tmp_path)
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
        report = await run_journey(gateway, "resume", expected, tmp_path)
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
    assert (tmp_path / "client-area-resumed.png").stat().st_size > 0


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
