"""The client area's back office in Debian's chromium, offline (manager token).

A gateway wired to the cTrader, DXtrade and QORT sandboxes serves the built app at
/client-area; playwright-core (examples/client-area/e2e/backoffice-journey.mjs) opens it
with a manager token in the URL fragment, every host but 127.0.0.1 unresolvable.  In one
journey the page creates a cTrader trader whose link-user step this test makes fail (the
sandbox's ``fail_next``, set the moment cTrader has made the trader), shows the steps and
resumes the failed one; deposits by double click (one movement: the audit trail shows it
once, beside the replay of the second click); withdraws, the answer lost on its way to
the page (shown as outcome unknown, settled by the Retry with the same key); changes
credit and bonus; enables trading on QORT; deactivates and reactivates a DXtrade trader;
with DXtrade then stopped, shows a deposit to it as not delivered; and passes axe-core's
WCAG 2 A/AA rules.  What the page showed is checked against the platforms: one trader
made and linked once, one deposit, one withdrawal, one credit and one bonus change on the
account.  A second test opens the partner with DXtrade down from the start.  Screenshots
go to tests/artifacts/back-office/.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import brokergraph_ctrader.plugin
import brokergraph_dxtrade.plugin
import brokergraph_qort.plugin
import pytest
import pytest_asyncio
from brokergraph_ctrader.sandbox import CTraderSandbox
from brokergraph_dxtrade.sandbox import DxTradeSandbox
from brokergraph_qort.sandbox import QortSandbox

from gateway.sandboxes import Sandbox
from gateway.testing import TestGateway, open_test_gateway
from tests import browser
from tests.test_client_area_build import APP_DIR, build_client_area

SHOTS = browser.ARTIFACTS_DIR / "back-office"
PARTNER = """{ businessPartner(code: "DEMO-001") {
  accounts { id platform number balance { amount } credit { amount } bonus { amount } }
  traders { platform externalId status } } }"""
OPERATIONS = """query($id: ID!, $from: DateTime!, $to: DateTime!) { account(id: $id) {
  balance { amount } credit { amount } bonus { amount }
  balanceOperations(from: $from, to: $to) { kind amount { amount } } } }"""
TRADERS = "POST /v2/webserv/traders"
LINKS = "POST /cid/ctid/link"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def built() -> None:
    """The app built once for this module's tests (a build takes 10-30 s)."""
    await build_client_area()


def keep_screenshots(shots: Path) -> None:
    """The journey's screenshots, kept as artifacts (tests/artifacts is not committed)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    for shot in shots.glob("back-office*.png"):
        shutil.copy(shot, SHOTS / shot.name)


async def manager_data(gateway: TestGateway, query: str, **variables: Any) -> dict[str, Any]:
    data: dict[str, Any] = await gateway.data(query, variables, token="manager")
    return data


async def fail_the_link_step(ctrader: CTraderSandbox) -> None:
    """Once cTrader has made the trader, refuse the next request: createTrader's
    link-user.  Requests wait 0.2 s on arrival meanwhile, so the knob is set before
    link-user is handled (as tests/test_crm_client_area.py does)."""
    made = ctrader.calls[TRADERS]
    users = ctrader.calls["POST /cid/ctid/create"]
    while ctrader.calls["POST /cid/ctid/create"] == users:  # noqa: ASYNC110
        await asyncio.sleep(0.002)
    ctrader.latency_seconds = 0.2
    while ctrader.calls[TRADERS] == made:  # noqa: ASYNC110
        await asyncio.sleep(0.002)
    ctrader.fail_next(1, 429)
    await asyncio.sleep(0.5)  # link-user has arrived: its wait was fixed then
    ctrader.latency_seconds = 0.0


async def take_dxtrade_down(
    gateway: TestGateway, dxtrade: DxTradeSandbox, signals: Path
) -> list[dict[str, Any]]:
    """When the page has reactivated the DXtrade trader: the partner's traders then, and
    DXtrade stopped (connections refused) before the page is told to go on."""
    while not await asyncio.to_thread((signals / "reactivated").exists):  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    traders: list[dict[str, Any]] = (await manager_data(gateway, PARTNER))["businessPartner"][
        "traders"
    ]
    await dxtrade.stop()
    await asyncio.to_thread((signals / "dxtrade-down").write_text, "")
    return traders


async def run_journey(gateway: TestGateway, shots: Path, **inputs: str) -> dict[str, Any]:
    env = {
        **inputs,
        "BACKOFFICE_URL": f"{gateway.url}/client-area/#manager={gateway.tokens['manager']}",
        "CHROMIUM": browser.chromium_path(),
        "SCREENSHOT_DIR": str(shots),
    }
    process = await asyncio.create_subprocess_exec(
        "node",
        str(APP_DIR / "e2e" / "backoffice-journey.mjs"),
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
@pytest.mark.timeout(300)  # a cold npm ci downloads; three sandboxes and chromium start
async def test_the_back_office_journey(built: None, tmp_path: Path) -> None:
    browser.chromium_path()
    ctrader, dxtrade = CTraderSandbox(), DxTradeSandbox()
    sandboxes: list[Sandbox] = [ctrader, dxtrade, QortSandbox()]
    plugins: list[object] = [
        brokergraph_ctrader.plugin,
        brokergraph_dxtrade.plugin,
        brokergraph_qort.plugin,
    ]
    async with contextlib.AsyncExitStack() as stack:
        for sandbox in sandboxes:
            await stack.enter_async_context(sandbox)
        gateway = await stack.enter_async_context(
            open_test_gateway(plugins, sandboxes, tmp_path / "store")
        )
        partner = (await manager_data(gateway, PARTNER))["businessPartner"]
        account = next(a for a in partner["accounts"] if a["platform"] == "ctrader")
        dx_trader = next(t for t in partner["traders"] if t["platform"] == "dxtrade")
        assert dx_trader["status"] == "ACTIVE"
        since = datetime.now(UTC) - timedelta(minutes=1)
        made, linked = ctrader.calls[TRADERS], ctrader.calls[LINKS]

        loop = asyncio.get_running_loop()
        failing = loop.create_task(fail_the_link_step(ctrader))
        down = loop.create_task(take_dxtrade_down(gateway, dxtrade, tmp_path))
        try:
            report = await run_journey(
                gateway,
                tmp_path,
                EMAIL=f"back-office-{uuid.uuid4().hex[:8]}@example.com",
                TARGET=f"{account['platform']} {account['number']}",
                AMOUNT="123.45",
                WITHDRAW="20.00",
                CREDIT="15.00",
                BONUS="5.00",
                DX_TRADER=dx_trader["externalId"],
                SIGNAL_DIR=str(tmp_path),
            )
            traders_after = await down
        finally:
            failing.cancel()
            down.cancel()
        after = await manager_data(
            gateway,
            OPERATIONS,
            id=account["id"],
            **{
                "from": since.isoformat(),
                "to": (datetime.now(UTC) + timedelta(minutes=1)).isoformat(),
            },
        )

    keep_screenshots(tmp_path)

    # The trader: the link step failed, the page showed it and resumed only that step.
    assert report["stoppedSteps"] == [
        ["create-user", True],
        ["create-trader", True],
        ["link-user", False],
    ]
    assert "RATE_LIMITED" in report["stopped"]
    assert report["resumedSteps"] == [
        ["create-user", True],
        ["create-trader", True],
        ["link-user", True],
    ]
    assert report["created"].startswith("Trader ")
    assert report["requests"]["CreateTrader"] == 2  # the first, and the resume
    first_key, resume_key = report["createKeys"]
    assert first_key and resume_key == first_key  # one submission, one idempotency key
    assert (ctrader.calls[TRADERS], ctrader.calls[LINKS]) == (made + 1, linked + 1)
    assert (
        len([t for t in traders_after if t["platform"] == "ctrader"])
        == len([t for t in partner["traders"] if t["platform"] == "ctrader"]) + 1
    )

    # The double click sent the key twice; money moved once, and the trail says so.
    assert report["doubleClickRequests"] == 2
    assert report["deposit"].startswith("Deposited 123.45 ")
    # One movement under the key; the second click's row is its replay, or, when it met
    # the first still in flight, a refusal that moved nothing.
    audit = report["depositAudit"]
    assert [row for row in audit if row[1] == "OK"] == [["deposit", "OK", "123.45", "done"]]
    assert [row[3] for row in audit if row[1] != "OK"] in (
        ["replayed: nothing moved"],
        ["failed (IDEMPOTENCY_CONFLICT)"],
    ), audit
    # The withdrawal's answer was lost on its way to the page: shown as unknown, its
    # Retry sent the same key and the gateway answered the first result.
    assert report["requests"]["Withdraw"] == 2
    assert report["withdrawUnknown"].startswith("Outcome unknown:")
    assert "Retry (same key)" in report["withdrawUnknown"]
    assert report["retryKey"] == report["withdrawKey"]
    assert report["withdraw"].startswith("Withdrew 20.00 ")
    assert report["withdraw"].endswith("settled from the first submission: it moved once")
    assert sorted(report["withdrawAudit"]) == [
        ["withdraw", "OK", "20.00", "done"],
        ["withdraw", "REPLAYED", "20.00", "replayed: nothing moved"],
    ]
    moved = [(op["kind"], op["amount"]["amount"]) for op in after["account"]["balanceOperations"]]
    assert sorted(moved) == [
        ("BONUS_IN", "5.00"),
        ("CREDIT_IN", "15.00"),
        ("DEPOSIT", "123.45"),
        ("WITHDRAWAL", "20.00"),
    ], moved
    before = Decimal(account["balance"]["amount"])
    assert Decimal(after["account"]["balance"]["amount"]) == before + Decimal("103.45")

    # Credit and bonus, each once.
    assert report["credit"].startswith("Credit changed by 15.00 ")
    assert report["bonus"].startswith("Bonus changed by 5.00 ")
    for field, change in (("credit", "15.00"), ("bonus", "5.00")):
        was = Decimal(account[field]["amount"])
        assert Decimal(after["account"][field]["amount"]) == was + Decimal(change), field
    assert report["enabled"].startswith("Trading enabled on QORT for DEMO-001")

    # DXtrade: deactivated, then active again; both audited.
    assert report["statusAfterDeactivate"] in ("DISABLED", "INACTIVE")
    assert report["statusAfterReactivate"] == "ACTIVE"
    assert all(succeeded for _, succeeded in report["deactivateSteps"])
    assert all(succeeded for _, succeeded in report["reactivateSteps"])
    assert report["traderAudit"][:2] == [["reactivateTrader", "OK"], ["deactivateTrader", "OK"]]
    assert (
        next(t for t in traders_after if t["externalId"] == dx_trader["externalId"])["status"]
        == "ACTIVE"
    )

    # DXtrade down: the deposit provably never left the gateway, and the page says so.
    assert report["notDelivered"].startswith("Not delivered: UPSTREAM_UNAVAILABLE: ")
    assert report["notDelivered"].endswith("Nothing moved; submit again when the platform is back.")
    assert report["requests"]["Deposit"] == 3  # the double click's two, and this one
    assert report["notDeliveredAudit"] == [["deposit", "ERROR", "failed (UPSTREAM_UNAVAILABLE)"]]

    assert report["axe"] == []
    assert (SHOTS / "back-office.png").stat().st_size > 0


@pytest.mark.browser
@pytest.mark.timeout(300)
async def test_a_platform_down_shows_in_the_back_office_at_its_paths(
    built: None, tmp_path: Path
) -> None:
    """DXtrade is down: the partner's DXtrade account and trader are rows carrying the
    typed error the gateway answered at their paths; cTrader's still show."""
    browser.chromium_path()
    ctrader, dxtrade = CTraderSandbox(), DxTradeSandbox()
    sandboxes: list[Sandbox] = [ctrader, dxtrade]
    plugins: list[object] = [brokergraph_ctrader.plugin, brokergraph_dxtrade.plugin]
    async with contextlib.AsyncExitStack() as stack:
        for sandbox in sandboxes:
            await stack.enter_async_context(sandbox)
        gateway = await stack.enter_async_context(
            open_test_gateway(
                plugins,
                sandboxes,
                tmp_path / "store",
                # A refused connection is final at once: no read retry waits it out.
                resilience={"dxtrade": {"read_retries": 0}},
            )
        )
        await dxtrade.stop()  # DXtrade refuses connections from now on
        answer = await gateway.query(PARTNER, token="manager")
        report = await run_journey(gateway, tmp_path, JOURNEY="partial", TARGET="", EMAIL="")
    keep_screenshots(tmp_path)

    partner = answer["data"]["businessPartner"]
    expected = {
        (error["path"][1], error["path"][2]): (
            error["extensions"]["details"]["platform"],
            f"{error['extensions']['code']} at {'.'.join(map(str, error['path']))}: ",
        )
        for error in answer["errors"]
    }
    assert {(kind, platform) for (kind, _), (platform, _) in expected.items()} == {
        ("accounts", "dxtrade"),
        ("traders", "dxtrade"),
    }
    for kind, shown in (("accounts", report["accountErrors"]), ("traders", report["traderErrors"])):
        want = [value for (k, _), value in sorted(expected.items()) if k == kind]
        assert len(shown) == len(want)
        for (platform, text), (want_platform, start) in zip(shown, want, strict=True):
            assert platform == want_platform
            assert text.startswith(start), (text, start)
    assert report["answered"] == [
        f"{a['platform']} {a['number']}" for a in partner["accounts"] if a is not None
    ]
    assert {a.split()[0] for a in report["answered"]} == {"ctrader"}
    assert len(report["banners"]) == 2  # one for the accounts, one for the traders
    assert report["axe"] == []
