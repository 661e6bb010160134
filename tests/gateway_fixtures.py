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
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

import tests.toy.plugin
from gateway.graphql import BrokerGraphSchema
from gateway.graphql.ids import encode_id
from gateway.services import GatewayServices
from gateway.testing import TEST_JWT_SECRET, open_test_gateway
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
    async with ToySandbox() as sandbox:
        yield sandbox


@contextlib.asynccontextmanager
async def open_gateway(
    sandbox: ToySandbox,
    store_dir: Path,
    *,
    plugin: object = tests.toy.plugin,
    **overrides: Mapping[str, Any],
) -> AsyncIterator[GatewayUnderTest]:
    """A gateway wired to ``sandbox``, seeded with the demo partners and links.

    ``plugin`` serves the toy platform (a variant of the toy's, say); ``overrides``
    are extra settings sections (e.g. ``resilience={...}``).
    """
    async with open_test_gateway(plugin, [sandbox], store_dir, **overrides) as running:
        yield GatewayUnderTest(
            url=running.url,
            graphql_url=running.graphql_url,
            websocket_url=running.websocket_url,
            services=running.services,
            schema=running.schema,
            sandbox=sandbox,
            tokens=running.tokens,
            http=running.http,
        )


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def gateway(
    toy_sandbox: ToySandbox, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[GatewayUnderTest]:
    async with open_gateway(toy_sandbox, tmp_path_factory.mktemp("gateway")) as running:
        yield running
