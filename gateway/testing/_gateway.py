"""A real gateway serving one plugin against its sandbox(es), for end-to-end tests.

Everything a connector's GraphQL tests need and every plugin would otherwise write
again: settings (a fixed test secret, a SQLite store in a temporary folder, strict
plugins), the gateway under uvicorn on a free port, the sandboxes told where it
listens (for webhooks), the demo partners with the sandboxes' demo links, a token
per role, and an HTTP client.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from gateway.auth import Role
from gateway.config import load_settings
from gateway.graphql import BrokerGraphSchema
from gateway.plugins import load_plugins
from gateway.runner import RunningGateway, running_gateway
from gateway.sandboxes import DEMO_PARTNERS as DEMO_SEED
from gateway.sandboxes import Sandbox, seed_demo
from gateway.services import GatewayServices

__all__ = ["DEMO_PARTNERS", "TEST_JWT_SECRET", "TestGateway", "open_test_gateway"]

#: 48 characters: above HS256's minimum, fixed so failures are reproducible.
TEST_JWT_SECRET = "brokergraph-test-secret-0123456789abcdefghijklmn"
#: Partner code -> broker, as ``brokergraph demo`` seeds them.
DEMO_PARTNERS: Mapping[str, str] = {code: broker for code, (broker, _) in DEMO_SEED.items()}
TOKEN_TTL_SECONDS = 24 * 3600
#: The background upstream check's interval in test gateways: none during a test.
QUIET_HEALTH_CHECK_SECONDS = 3600.0


@dataclass(frozen=True)
class TestGateway:
    """A running gateway: its addresses, services, tokens by name and an HTTP client.

    ``tokens``: admin; manager (brokers ["demo-broker"]); client (partner DEMO-001);
    other_client (partner OTHER-001).
    """

    __test__ = False  # not a pytest test class, whatever its name says

    running: RunningGateway
    tokens: Mapping[str, str]
    http: httpx.AsyncClient

    @property
    def url(self) -> str:
        return self.running.url

    @property
    def graphql_url(self) -> str:
        return self.running.graphql_url

    @property
    def websocket_url(self) -> str:
        return self.running.websocket_url

    @property
    def services(self) -> GatewayServices:
        return self.running.services

    @property
    def schema(self) -> BrokerGraphSchema:
        return self.running.schema

    def issue(
        self,
        role: Role,
        *,
        subject: str,
        partner_code: str | None = None,
        brokers: Collection[str] = (),
    ) -> str:
        """Another bearer token, e.g. for a partner a test creates."""
        return self.services.authenticator.issue(
            subject=subject,
            role=role,
            partner_code=partner_code,
            brokers=brokers,
            ttl_seconds=TOKEN_TTL_SECONDS,
        )

    async def post(
        self,
        query: str,
        variables: Mapping[str, Any] | None = None,
        token: str | None = "admin",  # noqa: S107 (a name in tokens, not a secret)
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """POST one operation; ``token`` is a name in ``tokens``, a raw token or None."""
        sent = dict(headers or {})
        if token is not None:
            sent.setdefault("Authorization", f"Bearer {self.tokens.get(token, token)}")
        body: dict[str, Any] = {"query": query}
        if variables is not None:
            body["variables"] = dict(variables)
        return await self.http.post(self.graphql_url, json=body, headers=sent)

    async def query(
        self,
        query: str,
        variables: Mapping[str, Any] | None = None,
        token: str | None = "admin",  # noqa: S107 (a name in tokens, not a secret)
    ) -> dict[str, Any]:
        """POST one operation; assert HTTP 200 and return the decoded body (errors included)."""
        response = await self.post(query, variables, token)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def data(
        self,
        query: str,
        variables: Mapping[str, Any] | None = None,
        token: str | None = "admin",  # noqa: S107 (a name in tokens, not a secret)
    ) -> dict[str, Any]:
        """``data`` of an operation that must not fail (asserts no ``errors``)."""
        body = await self.query(query, variables, token)
        assert "errors" not in body, body["errors"]
        data: dict[str, Any] = body["data"]
        return data

    async def clear_cache(self) -> None:
        """Forget every cached upstream read, so the next query reaches the platform."""
        await self.services.cache.delete_prefix("")


@contextlib.asynccontextmanager
async def open_test_gateway(
    plugin: object | Sequence[object],
    sandboxes: Sequence[Sandbox],
    store_dir: Path,
    *,
    connector_settings: Mapping[str, Mapping[str, Any]] | None = None,
    **sections: Mapping[str, Any],
) -> AsyncIterator[TestGateway]:
    """Serve ``plugin`` (or a list of plugins) against started ``sandboxes`` until the block exits.

    ``connector_settings`` adds keys to a sandbox's connector section (by name);
    ``sections`` are further settings sections (``resilience={...}``, ``limits={...}``).
    The background upstream check runs once at start and then only hourly (unless a
    ``cluster`` section says otherwise), so tests can count the calls they cause.
    """
    extra_plugins = list(plugin) if isinstance(plugin, Sequence) else [plugin]
    plugins = load_plugins(entry_points=False, extra=extra_plugins, strict=True)
    extra = connector_settings or {}
    settings = load_settings(
        environ={},
        overrides={
            "auth": {"jwt_secret": TEST_JWT_SECRET},
            "store": {"url": f"sqlite+aiosqlite:///{store_dir / 'store.db'}"},
            "plugins": {"strict": True},
            "cluster": {"upstream_health_seconds": QUIET_HEALTH_CHECK_SECONDS},
            # Started, but no round within a test unless it asks (reconcile_now).
            "reconciler": {"interval_seconds": QUIET_HEALTH_CHECK_SECONDS},
            "connectors": {
                s.name: {**s.connector_settings(), **extra.get(s.name, {})} for s in sandboxes
            },
            **sections,
        },
    )
    async with (
        running_gateway(settings, plugins, host="127.0.0.1", port=0) as running,
        # Accept as a GraphQL client sends it (httpx's default */* gets the legacy
        # application/json, under which a validation error answers 200).
        httpx.AsyncClient(
            timeout=60, headers={"Accept": "application/graphql-response+json"}
        ) as http,
    ):
        for sandbox in sandboxes:
            sandbox.attach_gateway(running.url)
        await seed_demo(
            running.services.store, sandboxes, lambda n: plugins.connector_classes[n].platform
        )
        issue = functools.partial(
            running.services.authenticator.issue, ttl_seconds=TOKEN_TTL_SECONDS
        )
        tokens = {
            "admin": issue(subject="test-admin", role=Role.ADMIN),
            "manager": issue(subject="test-manager", role=Role.MANAGER, brokers=["demo-broker"]),
            "client": issue(subject="test-client", role=Role.CLIENT, partner_code="DEMO-001"),
            "other_client": issue(
                subject="test-other-client", role=Role.CLIENT, partner_code="OTHER-001"
            ),
        }
        yield TestGateway(running=running, tokens=tokens, http=http)
