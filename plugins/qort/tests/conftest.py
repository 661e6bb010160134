"""Fixtures of the QORT plugin's tests: a real sandbox, real clients, a real gateway.

Everything runs over real sockets: the QORT sandbox under uvicorn on a free port,
and for the GraphQL tests a gateway under uvicorn wired to the ``qort`` connector
exactly as a deployment would load it (``load_plugins`` with the plugin module).
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import brokergraph_qort.plugin
import httpx
import pytest
import pytest_asyncio
from brokergraph_qort.client import QortClient, QortSettings
from brokergraph_qort.sandbox import QortSandbox

from gateway.auth import Role
from gateway.services import GatewayServices
from gateway.testing import open_test_gateway

JWT_SECRET = "brokergraph-qort-test-secret-0123456789abcdefgh"
#: Partner code -> broker, as the demo seeds the gateway store.
PARTNERS = {"DEMO-001": "demo-broker", "DEMO-002": "demo-broker", "OTHER-001": "other-broker"}
#: The partner the end-to-end test onboards (the "client" token is this partner's).
NEW_PARTNER = "ONB-001"
BUSY_COOLDOWN_SECONDS = 0.5


# --------------------------------------------------------------------------- sandbox + client


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def module_sandbox() -> AsyncIterator[QortSandbox]:
    sandbox = QortSandbox(report_delay_seconds=0.2)
    await sandbox.start()
    try:
        yield sandbox
    finally:
        await sandbox.stop()


@pytest.fixture
def sandbox(module_sandbox: QortSandbox) -> QortSandbox:
    """The module's sandbox, re-seeded for each test (sessions ended, knobs cleared)."""
    module_sandbox.reset()
    return module_sandbox


def settings_for(sandbox: QortSandbox, **overrides: Any) -> QortSettings:
    return QortSettings.from_mapping({**sandbox.connector_settings(), **overrides})


@pytest.fixture
def make_settings(sandbox: QortSandbox) -> Callable[..., QortSettings]:
    """``make_settings(**overrides)``: the sandbox's connector settings as QortSettings."""
    return functools.partial(settings_for, sandbox)


@pytest_asyncio.fixture(loop_scope="session")
async def client(sandbox: QortSandbox) -> AsyncIterator[QortClient]:
    qort = QortClient(settings_for(sandbox, keepalive=False))
    try:
        yield qort
    finally:
        await qort.close()


# --------------------------------------------------------------------------- the gateway


@dataclass(frozen=True)
class QortGateway:
    """A running gateway with the QORT connector, and what tests need to talk to it."""

    url: str
    graphql_url: str
    services: GatewayServices
    sandbox: QortSandbox
    #: admin; manager (demo-broker); client (NEW_PARTNER, being onboarded);
    #: demo_client (DEMO-001); other_client (OTHER-001).
    tokens: Mapping[str, str]
    http: httpx.AsyncClient
    #: The connector's cool-down after QORT answered BUSY (short, for the tests).
    busy_cooldown_seconds: float

    async def query(
        self, query: str, variables: Mapping[str, Any] | None = None, token: str = "admin"
    ) -> dict[str, Any]:
        """POST an operation; assert HTTP 200 and no top-level errors; return ``data``."""
        status, body = await self.post(query, variables, token)
        assert status == 200, body
        assert "errors" not in body, body["errors"]
        data: dict[str, Any] = body["data"]
        return data

    async def post(
        self, query: str, variables: Mapping[str, Any] | None = None, token: str = "admin"
    ) -> tuple[int, Any]:
        body: dict[str, Any] = {"query": query, "variables": dict(variables or {})}
        headers = {"Authorization": f"Bearer {self.tokens.get(token, token)}"}
        response = await self.http.post(self.graphql_url, json=body, headers=headers)
        return response.status_code, response.json()

    async def get(self, path: str, token: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens.get(token, token)}"}
        return await self.http.get(f"{self.url}{path}", headers=headers)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def qort_gateway(
    module_sandbox: QortSandbox,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[QortGateway]:
    module_sandbox.reset()
    directory = tmp_path_factory.mktemp("qort-gateway")
    extra = {"qort": {"busy_cooldown_seconds": BUSY_COOLDOWN_SECONDS}}
    async with open_test_gateway(
        brokergraph_qort.plugin, [module_sandbox], directory, connector_settings=extra
    ) as running:
        tokens = {
            **running.tokens,
            # the client is the partner a test onboards; DEMO-001's client is demo_client
            "client": running.issue(Role.CLIENT, subject="qort-client", partner_code=NEW_PARTNER),
            "demo_client": running.tokens["client"],
        }
        yield QortGateway(
            url=running.url,
            graphql_url=running.graphql_url,
            services=running.services,
            sandbox=module_sandbox,
            tokens=tokens,
            http=running.http,
            busy_cooldown_seconds=BUSY_COOLDOWN_SECONDS,
        )
