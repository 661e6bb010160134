"""A real gateway, wired to the toy sandbox, for the core's tests (session-scoped).

Activate with ``pytest_plugins = ["tests.services", "tests.gateway_fixtures"]`` in
tests/conftest.py.  Everything runs over real sockets: the gateway under uvicorn on
a free port, the toy platform under uvicorn on another.  The session shares one
sandbox: tests that move money or place orders must not assume seeded balances
(read before, compare after), or call ``gateway.sandbox.reset()`` and
``gateway.clear_cache()`` first.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

import tests.toy.plugin
from gateway.auth import Role
from gateway.config import load_settings
from gateway.graphql import BrokerGraphSchema
from gateway.graphql.ids import encode_id
from gateway.plugins import load_plugins
from gateway.runner import running_gateway
from gateway.services import GatewayServices
from tests.toy.sandbox import ToySandbox

__all__ = [
    "TEST_JWT_SECRET",
    "GatewayUnderTest",
    "account_gid",
    "gateway",
    "open_gateway",
    "toy_sandbox",
    "trader_gid",
]

#: 48 characters: above HS256's 32-byte minimum, fixed so failures are reproducible.
TEST_JWT_SECRET = "brokergraph-test-secret-0123456789abcdefghijklmn"
#: Partner code -> broker, as the demo seeds them.
PARTNERS = {"DEMO-001": "demo-broker", "DEMO-002": "demo-broker", "OTHER-001": "other-broker"}


def account_gid(native_id: str, platform: str = "toy") -> str:
    """The GraphQL global id of an account (``account_gid("1001")``)."""
    return encode_id("Account", platform, native_id)


def trader_gid(native_id: str, platform: str = "toy") -> str:
    return encode_id("Trader", platform, native_id)


@dataclass(frozen=True)
class GatewayUnderTest:
    """A running gateway and what tests need to talk to it."""

    url: str
    graphql_url: str
    websocket_url: str
    services: GatewayServices
    schema: BrokerGraphSchema
    sandbox: ToySandbox
    #: Bearer tokens by name: admin, manager (brokers ["demo-broker"]),
    #: client (partner DEMO-001) and other_client (partner OTHER-001).
    tokens: Mapping[str, str]
    http: httpx.AsyncClient

    async def query(
        self,
        query: str,
        variables: Mapping[str, Any] | None = None,
        token: str | None = "admin",
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, Any]:
        """POST a GraphQL operation; ``token`` is a name in ``tokens``, a raw token, or None.

        Returns the status and the decoded JSON body (the text when it is not JSON).
        """
        sent = dict(headers or {})
        if token is not None:
            sent.setdefault("Authorization", f"Bearer {self.tokens.get(token, token)}")
        body: dict[str, Any] = {"query": query}
        if variables is not None:
            body["variables"] = dict(variables)
        response = await self.http.post(self.graphql_url, json=body, headers=sent)
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, response.text

    def account_id(self, native_id: str) -> str:
        return account_gid(native_id)

    def trader_id(self, native_id: str) -> str:
        return trader_gid(native_id)

    async def clear_cache(self) -> None:
        """Drop cached connector reads (after ``sandbox.reset()``, say)."""
        await self.services.cache.delete_prefix("")


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def toy_sandbox() -> AsyncIterator[ToySandbox]:
    sandbox = ToySandbox()
    await sandbox.start()
    try:
        yield sandbox
    finally:
        await sandbox.stop()


@contextlib.asynccontextmanager
async def open_gateway(
    sandbox: ToySandbox, store_dir: Path, **overrides: Mapping[str, Any]
) -> AsyncIterator[GatewayUnderTest]:
    """A gateway wired to ``sandbox``, seeded with the demo partners and links.

    ``overrides`` are extra settings sections (e.g. ``resilience={...}``).
    """
    plugins = load_plugins(entry_points=False, extra=[tests.toy.plugin], strict=True)
    settings = load_settings(
        environ={},
        overrides={
            "auth": {"jwt_secret": TEST_JWT_SECRET},
            "store": {"url": f"sqlite+aiosqlite:///{store_dir / 'store.db'}"},
            "plugins": {"strict": True},
            "connectors": {"toy": dict(sandbox.connector_settings())},
            **overrides,
        },
    )
    async with (
        running_gateway(settings, plugins, host="127.0.0.1", port=0) as running,
        httpx.AsyncClient(timeout=30) as http,
    ):
        store = running.services.store
        for code, broker in PARTNERS.items():
            await store.upsert_partner(code, broker=broker, display_name=f"Partner {code}")
        platform = plugins.connector_classes[sandbox.name].platform
        for link in sandbox.demo_links():
            await store.link(
                link.partner_code, platform, link.kind, link.external_id, trader_id=link.trader_id
            )
        issue = functools.partial(running.services.authenticator.issue, ttl_seconds=24 * 3600)
        tokens = {
            "admin": issue(subject="test-admin", role=Role.ADMIN),
            "manager": issue(subject="test-manager", role=Role.MANAGER, brokers=["demo-broker"]),
            "client": issue(subject="test-client", role=Role.CLIENT, partner_code="DEMO-001"),
            "other_client": issue(
                subject="test-other-client", role=Role.CLIENT, partner_code="OTHER-001"
            ),
        }
        yield GatewayUnderTest(
            url=running.url,
            graphql_url=running.graphql_url,
            websocket_url=running.websocket_url,
            services=running.services,
            schema=running.schema,
            sandbox=sandbox,
            tokens=tokens,
            http=http,
        )


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def gateway(
    toy_sandbox: ToySandbox, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[GatewayUnderTest]:
    async with open_gateway(toy_sandbox, tmp_path_factory.mktemp("gateway")) as running:
        yield running
