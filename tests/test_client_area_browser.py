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
    gateway: TestGateway, journey: str, expected: dict[str, str], shots: Path
) -> dict[str, Any]:
    """Run the browser journey; its JSON report (what the page showed)."""
    env = {
        "CLIENT_AREA_URL": f"{gateway.url}/client-area/#token={gateway.tokens['client']}",
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
