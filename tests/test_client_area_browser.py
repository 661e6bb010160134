"""The client journey through the reference client area in Debian's chromium, offline.

A gateway wired to the four platform sandboxes serves the built app at /client-area;
playwright-core (examples/client-area/e2e/client-journey.mjs) opens it with the client
token in the URL fragment, with every host but 127.0.0.1 unresolvable and every request
off the loopback recorded.  The page must list the partner's accounts on every platform
with the balances the gateway answers, pass axe-core's WCAG 2 A/AA rules, and show a QST
limit order go PENDING → WORKING and, once cancelled, CANCELLED — live, from
``orderEvents``.  Screenshots go to the test's tmp dir.
"""

from __future__ import annotations

import asyncio
import json
import os
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

from gateway.testing import open_test_gateway
from tests import browser
from tests.test_client_area_build import APP_DIR, build_client_area

PLUGINS = [
    brokergraph_ctrader.plugin,
    brokergraph_dxtrade.plugin,
    brokergraph_qort.plugin,
    brokergraph_qst.plugin,
]

BALANCES = """{ me { accounts { platform number balance { amount currency } } } }"""


def shown(money: dict[str, str] | None) -> str:
    """A balance as the page shows it: the decimal string as sent, "—" when unknown."""
    return f"{money['amount']} {money['currency']}" if money else "—"


async def run_journey(env: dict[str, str]) -> dict[str, Any]:
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
    return report


@pytest.mark.browser
@pytest.mark.timeout(300)  # a cold npm ci downloads; four sandboxes and chromium start
async def test_client_journey_accounts_and_a_live_order(tmp_path: Path) -> None:
    chromium = browser.chromium_path()
    await build_client_area()
    sandboxes = [CTraderSandbox(), DxTradeSandbox(), QortSandbox(), QstSandbox()]
    for sandbox in sandboxes:
        await sandbox.start(host="127.0.0.1", port=0)
    try:
        async with open_test_gateway(PLUGINS, sandboxes, tmp_path / "store") as gateway:
            token = gateway.tokens["client"]
            answer = await gateway.http.post(
                gateway.graphql_url,
                json={"query": BALANCES},
                headers={"Authorization": f"Bearer {token}"},
            )
            accounts = answer.json()["data"]["me"]["accounts"]
            expected = {f"{a['platform']} {a['number']}": shown(a["balance"]) for a in accounts}
            assert {key.split()[0] for key in expected} >= {"ctrader", "dxtrade", "qort", "qst"}
            shots = tmp_path / "screenshots"
            shots.mkdir()
            report = await run_journey(
                {
                    "CLIENT_AREA_URL": f"{gateway.url}/client-area/#token={token}",
                    "CHROMIUM": chromium,
                    "EXPECTED": json.dumps(expected),
                    "SCREENSHOT_DIR": str(shots),
                }
            )
    finally:
        for sandbox in sandboxes:
            await sandbox.stop()
    assert report["offLoopback"] == []
    assert report["balances"] == expected
    assert report["axe"] == []
    assert report["history"] == "PENDING → WORKING → CANCELLED"
    assert (shots / "client-area.png").stat().st_size > 0
