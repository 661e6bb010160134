"""Per-client limits: over its request budget or API-key failures, a client gets 429 first."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from gateway.auth import Role, create_api_key
from tests.gateway_fixtures import account_gid, open_gateway
from tests.toy.sandbox import ToySandbox

BALANCE = "query($id: ID!) { account(id: $id) { balance { amount currency } } }"


async def test_a_flood_beyond_the_budget_is_refused_before_the_upstream(
    toy_sandbox: ToySandbox, tmp_path: Path
) -> None:
    # A refill this slow never adds a token during the test: the burst is the budget.
    limits = {"requests_per_viewer_per_second": 0.001, "requests_per_viewer_burst": 3}
    async with open_gateway(toy_sandbox, tmp_path, limits=limits) as gateway:
        variables = {"id": account_gid("1001")}
        for _ in range(3):
            status, body = await gateway.query(BALANCE, variables, token="client")
            assert status == 200, body
        calls = sum(gateway.sandbox.calls.values())
        for _ in range(20):
            await gateway.clear_cache()  # a refused request must not reach even a cold cache
            response = await gateway.http.post(
                gateway.graphql_url,
                json={"query": BALANCE, "variables": variables},
                headers={"Authorization": f"Bearer {gateway.tokens['client']}"},
            )
            assert response.status_code == 429
            error = response.json()["errors"][0]
            assert error["extensions"]["code"] == "RATE_LIMITED"
            assert error["extensions"]["details"]["retryAfter"] > 0
            assert int(response.headers["Retry-After"]) >= 1
        assert sum(gateway.sandbox.calls.values()) == calls
        # Another viewer has its own budget.
        status, body = await gateway.query(BALANCE, {"id": account_gid("1001")}, token="admin")
        assert status == 200, body
        assert "errors" not in body, body


async def test_zero_disables_the_budget(toy_sandbox: ToySandbox, tmp_path: Path) -> None:
    limits = {"requests_per_viewer_per_second": 0, "requests_per_viewer_burst": 1}
    async with open_gateway(toy_sandbox, tmp_path, limits=limits) as gateway:
        for _ in range(5):
            status, body = await gateway.query("{ viewer { role } }", token="client")
            assert status == 200, body


async def test_api_key_failures_beyond_the_limit_are_refused_unchecked(
    toy_sandbox: ToySandbox, tmp_path: Path
) -> None:
    async with open_gateway(
        toy_sandbox, tmp_path, limits={"api_key_failures_per_minute": 3}
    ) as gateway:
        created = await create_api_key(gateway.services.store, role=Role.ADMIN)
        right = {"Authorization": f"ApiKey {created.key}"}
        wrong = {
            "Authorization": f"ApiKey {created.key[:-1]}{'A' if created.key[-1] != 'A' else 'B'}"
        }
        for _ in range(3):
            status, body = await gateway.query("{ viewer { role } }", token=None, headers=wrong)
            assert status == 401, body
        for headers in (wrong, right):
            # Refused without checking the key: even the right one, from this client.
            status, body = await gateway.query("{ viewer { role } }", token=None, headers=headers)
            assert status == 429, body
            error = body["errors"][0]
            assert error["extensions"]["code"] == "RATE_LIMITED"
            assert 0 < error["extensions"]["details"]["retryAfter"] <= 60
        # Bearer tokens from the same client are not API-key attempts.
        assert (await gateway.query("{ viewer { role } }", token="admin"))[0] == 200
        # Another client address keeps its own count: the right key works there.
        transport = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
        async with httpx.AsyncClient(transport=transport) as other:
            response = await other.post(
                gateway.graphql_url, json={"query": "{ viewer { role } }"}, headers=right
            )
        assert response.status_code == 200, response.text
        assert response.json()["data"]["viewer"]["role"] == "admin"


async def test_the_budget_is_cluster_wide_with_the_cache_on_redis(
    toy_sandbox: ToySandbox, tmp_path: Path
) -> None:
    settings: dict[str, Mapping[str, Any]] = {
        "limits": {"requests_per_viewer_per_second": 0.001, "requests_per_viewer_burst": 3},
        "cache": {"url": "redis://127.0.0.1:6379/0", "secret": "client-limits-test-secret"},
        # A fresh namespace: a slow refill keeps a bucket in Redis for an hour.
        "cluster": {"namespace": f"t-{uuid.uuid4().hex[:12]}"},
    }
    async with (
        open_gateway(toy_sandbox, tmp_path / "a", **settings) as first,
        open_gateway(toy_sandbox, tmp_path / "b", **settings) as second,
    ):
        statuses = [
            (await replica.query("{ viewer { role } }", token="client"))[0]
            for replica in (first, second, first, second)
        ]
        assert statuses == [200, 200, 200, 429]
        assert (await first.query("{ viewer { role } }", token="admin"))[0] == 200
