"""GraphiQL as a person uses it, offline: the page loads from the gateway with every
non-loopback host blocked, the query and the bearer token are filled in, Run is
clicked, and the answer appears — here the five seed-003 analytics of a cTrader
account, computed from the cTrader sandbox.  Chromium is driven over its DevTools
protocol with the websockets client we already depend on (no extra browser driver).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import brokergraph_ctrader.plugin
import httpx
import pytest
import websockets
from brokergraph_ctrader.sandbox import CTraderSandbox

from gateway.graphql.ids import encode_id
from gateway.http.graphiql import graphiql_url
from gateway.testing import open_test_gateway
from tests import browser
from tests.gateway_fixtures import GatewayUnderTest

ANALYTICS = """query Analytics($id: ID!) {
  account(id: $id) {
    number currency balance { amount currency }
    analytics(from: "2026-10-01T00:00:00Z", to: "2026-11-01T00:00:00Z") {
      realizedPnl { amount currency }
      mostTradedSymbols { symbol volume deals }
      openVolume
      copySubAccounts { accountId balance { amount currency } equity { amount } }
      wins losses winRatio
    }
  }
}"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class DevTools:
    """The smallest DevTools-protocol client: send a command, wait for its answer."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.next_id = 0

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        await self.connection.send(
            json.dumps({"id": self.next_id, "method": method, "params": params})
        )
        while True:
            message = json.loads(await asyncio.wait_for(self.connection.recv(), 90))
            if message.get("id") == self.next_id:
                result: dict[str, Any] = message.get("result", {})
                return result

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    async def wait_for(self, expression: str, seconds: float = 90) -> Any:
        for _ in range(int(seconds * 10)):
            value = await self.evaluate(expression)
            if value:
                return value
            await asyncio.sleep(0.1)
        raise AssertionError(f"timed out waiting for {expression}")


@contextlib.asynccontextmanager
async def chromium_at(url: str) -> AsyncIterator[DevTools]:
    port = free_port()
    with browser.chromium_profile() as profile:
        process = await asyncio.create_subprocess_exec(
            browser.chromium_path(),
            *browser.OFFLINE_FLAGS,
            f"--user-data-dir={profile}",
            f"--remote-debugging-port={port}",
            "--window-size=1400,2400",
            url,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,  # its own process group, for kill_group
        )
        try:
            async with httpx.AsyncClient() as http:
                for _ in range(600):  # chromium starts slowly on a busy 2-core machine
                    with contextlib.suppress(httpx.HTTPError):
                        targets = (await http.get(f"http://127.0.0.1:{port}/json/list")).json()
                        pages = [t for t in targets if t.get("type") == "page"]
                        if pages:
                            break
                    await asyncio.sleep(0.1)
                else:
                    raise AssertionError("chromium's DevTools endpoint did not come up")
            async with websockets.connect(pages[0]["webSocketDebuggerUrl"], max_size=None) as ws:
                yield DevTools(ws)
        finally:
            browser.kill_group(process.pid)
            await process.wait()


@pytest.mark.browser
async def test_graphiql_runs_the_seed_003_analytics_offline(tmp_path: Path) -> None:
    async with CTraderSandbox() as sandbox:
        async with open_test_gateway(brokergraph_ctrader.plugin, [sandbox], tmp_path) as gateway:
            variables = json.dumps({"id": encode_id("Account", "ctrader", "9000001")})
            headers = json.dumps({"Authorization": f"Bearer {gateway.tokens['client']}"})
            search = urllib.parse.urlencode(
                {"q": ANALYTICS, "variables": variables, "headers": headers},
                quote_via=urllib.parse.quote,
            )
            async with chromium_at(f"{gateway.graphql_url}?{search}") as page:
                await page.wait_for("document.querySelector('.graphiql-execute-button') !== null")
                await page.evaluate("document.querySelector('.graphiql-execute-button').click()")
                # The response pane is a CodeMirror editor that renders only the lines in
                # view; the window is tall enough for the whole answer.
                answer = await page.wait_for(
                    "(() => { const r = document.querySelector('.graphiql-response');"
                    " const t = r ? r.innerText : ''; return t.includes('winRatio') ? t : ''; })()"
                )
                shot = await page.call("Page.captureScreenshot", format="png")
            browser.ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
            (browser.ARTIFACTS_DIR / "graphiql-ctrader-analytics.png").write_bytes(
                base64.b64decode(shot["data"])
            )
        # innerText carries the editor's gutter marks, so read it as text, not JSON
        expected = ("realizedPnl", "mostTradedSymbols", "openVolume", "copySubAccounts")
        for field in (*expected, "wins", "losses", "winRatio", '"symbol": "EURUSD"'):
            assert field in answer, field
        assert '"errors"' not in answer


DOCS_BUTTON = "document.querySelector('[aria-label=\"Show Documentation Explorer\"]')"
DOCS_TEXT = (
    "(() => { const d = document.querySelector('.graphiql-doc-explorer');"
    " return d ? d.innerText : ''; })()"
)
VIEWER = "{ viewer { role } }"


async def open_docs(page: DevTools) -> str:
    """Open the docs pane and wait until it shows the schema or GraphiQL's fetch error."""
    await page.wait_for(f"{DOCS_BUTTON} !== null")
    await page.evaluate(f"{DOCS_BUTTON}.click()")
    text: str = await page.wait_for(
        f"(() => {{ const t = {DOCS_TEXT};"
        " return /Root Types|Error fetching schema/.test(t) ? t : ''; })()"
    )
    return text


@pytest.mark.browser
async def test_the_demo_url_opens_graphiql_signed_in_with_the_docs_pane_working(
    gateway: GatewayUnderTest,
) -> None:
    # The demo prints graphiql_url(...) for each role; the token rides in the fragment.
    url = graphiql_url(
        f"{gateway.graphql_url}?q={urllib.parse.quote(VIEWER)}", gateway.tokens["client"]
    )
    assert "token=" not in url.split("#")[0]
    async with chromium_at(url) as page:
        docs = await open_docs(page)
        assert "Root Types" in docs and "Error fetching schema" not in docs
        # The fragment is gone from the address bar (and so from history and bookmarks).
        assert await page.evaluate("window.location.hash") == ""
        await page.evaluate("document.querySelector('.graphiql-execute-button').click()")
        answer = await page.wait_for(
            "(() => { const r = document.querySelector('.graphiql-response');"
            " const t = r ? r.innerText : ''; return t.includes('role') ? t : ''; })()"
        )
        assert '"client"' in answer
        # GraphiQL's own URL sharing writes the query string; the token never joins it.
        assert "token" not in await page.evaluate("window.location.search")
        assert gateway.tokens["client"] not in await page.evaluate("window.location.href")


@pytest.mark.browser
async def test_a_token_pasted_later_makes_graphiql_fetch_the_schema_again(
    gateway: GatewayUnderTest,
) -> None:
    async with chromium_at(gateway.graphql_url) as page:
        # Anonymous introspection is refused (401): GraphiQL's docs pane shows its error.
        assert "Error fetching schema" in await open_docs(page)
        headers = json.dumps({"Authorization": f"Bearer {gateway.tokens['admin']}"})
        # The Headers editor is a CodeMirror 5 instance; setValue fires its change event
        # as typing does.
        await page.evaluate(
            "document.querySelectorAll('.graphiql-editor-tool .CodeMirror')[1]"
            f".CodeMirror.setValue({json.dumps(headers)})"
        )
        docs = await page.wait_for(
            f"(() => {{ const t = {DOCS_TEXT}; return t.includes('Root Types') ? t : ''; }})()"
        )
        assert "Error fetching schema" not in docs
