"""Fixtures of the cTrader plugin's tests: a real sandbox, a real connector, a real gateway.

Everything talks over real sockets: the sandbox (uvicorn, local port), the connector
(httpx), and a :class:`~gateway.testing.TestGateway` (uvicorn) loaded with this
plugin only.  The session shares one sandbox:
tests that move money read before and compare after, and count upstream calls as
differences of ``sandbox.calls``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import brokergraph_ctrader.plugin
import httpx
import pytest
import pytest_asyncio
from brokergraph_ctrader.client import md5_hex
from brokergraph_ctrader.connector import CTraderConnector
from brokergraph_ctrader.sandbox import CTraderSandbox

from gateway.contract.schema import encode_id
from gateway.testing import TestGateway, open_connector, open_test_gateway

#: Partner code -> broker (white label), as the demo seeds them.
PARTNERS = {"DEMO-001": "demo-broker", "DEMO-002": "demo-broker", "OTHER-001": "other-broker"}
PLATFORM = "ctrader"


def account_gid(login: str | int) -> str:
    return encode_id("Account", PLATFORM, str(login))


def trader_gid(user_id: str | int) -> str:
    return encode_id("Trader", PLATFORM, str(user_id))


def writes(calls: Counter[str]) -> int:
    """Non-GET requests in a ``sandbox.calls`` counter (or a difference of two)."""
    return sum(n for key, n in calls.items() if not key.startswith("GET ") and "token" not in key)


def delta(before: Counter[str], after: Counter[str]) -> Counter[str]:
    return Counter({k: after[k] - before[k] for k in after if after[k] != before[k]})


async def seed_links(services_store: Any, sandbox: CTraderSandbox) -> None:
    """The demo's partners and links, as ``brokergraph demo`` writes them."""
    for code, broker in PARTNERS.items():
        await services_store.upsert_partner(code, broker=broker, display_name=f"Partner {code}")
    for link in sandbox.demo_links():
        await services_store.link(
            link.partner_code, PLATFORM, link.kind, link.external_id, trader_id=link.trader_id
        )


async def open_accounts(sandbox: CTraderSandbox, count: int) -> list[str]:
    """``count`` funded accounts opened over WebServices (4.1), as a CRM opens them."""
    settings = sandbox.connector_settings()
    async with httpx.AsyncClient(
        base_url=sandbox.url,
        headers={"Accept": "application/json"},
        verify=sandbox.client_ssl_context(),
    ) as http:
        reply = await http.post(
            "/v2/webserv/managers/token",
            json={"login": settings["login"], "hashedPassword": md5_hex(settings["password"])},
        )
        token = reply.json()["webservToken"]
        logins: list[str] = []
        for i in range(count):
            reply = await http.post(
                "/v2/webserv/traders",
                params={"token": token},
                json={
                    "accessRights": "FULL_ACCESS",
                    "accountType": "HEDGED",
                    "balance": 250000 + i,
                    "brokerName": "DEMOBROKER",
                    "depositCurrency": "USD",
                    "groupName": "Default",
                    "hashedPassword": md5_hex(f"calls-{i}"),
                    "leverageInCents": 10000,
                    "totalMarginCalculationType": "MAX",
                },
            )
            assert reply.status_code == 200, reply.text
            logins.append(str(reply.json()["login"]))
    return logins


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def sandbox() -> AsyncIterator[CTraderSandbox]:
    async with CTraderSandbox() as started:
        yield started


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def connector(
    sandbox: CTraderSandbox, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[CTraderConnector]:
    """A started connector with the demo links in its (own) store."""
    directory: Path = tmp_path_factory.mktemp("ctrader-connector")
    async with open_connector(CTraderConnector, sandbox.connector_settings(), directory) as started:
        await seed_links(started.context.store, sandbox)
        yield started


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def gateway(
    sandbox: CTraderSandbox, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[TestGateway]:
    """A gateway with this plugin only, against the session's sandbox."""
    directory = tmp_path_factory.mktemp("ctrader-gateway")
    async with open_test_gateway(brokergraph_ctrader.plugin, [sandbox], directory) as running:
        yield running
