"""CORS by configuration, over a real socket: a listed origin's preflight and request
are answered for it, any other origin gets no Access-Control-* header, and without
``[server] cors_origins`` the gateway stays same-origin only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.config import ConfigError, load_settings
from tests.gateway_fixtures import GatewayUnderTest, open_gateway
from tests.toy.sandbox import ToySandbox

APP = "https://crm.example"
PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type",
}


@pytest.fixture
async def cors_gateway(tmp_path: Path) -> AsyncIterator[GatewayUnderTest]:
    async with (
        ToySandbox() as sandbox,
        open_gateway(sandbox, tmp_path, server={"cors_origins": [APP]}) as running,
    ):
        yield running


async def test_a_listed_origin_gets_a_cached_preflight_without_credentials(
    cors_gateway: GatewayUnderTest,
) -> None:
    response = await cors_gateway.http.options(
        cors_gateway.graphql_url, headers={"Origin": APP, **PREFLIGHT}
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == APP
    assert "POST" in response.headers["access-control-allow-methods"]
    assert "authorization" in response.headers["access-control-allow-headers"].lower()
    assert response.headers["access-control-max-age"] == "600"
    assert "access-control-allow-credentials" not in response.headers


async def test_a_listed_origin_reads_the_answer(cors_gateway: GatewayUnderTest) -> None:
    status, body = await cors_gateway.query("{ viewer { role } }", headers={"Origin": APP})
    assert status == 200 and body == {"data": {"viewer": {"role": "admin"}}}
    response = await cors_gateway.http.post(
        cors_gateway.graphql_url,
        json={"query": "{ viewer { role } }"},
        headers={"Origin": APP, "Authorization": f"Bearer {cors_gateway.tokens['admin']}"},
    )
    assert response.headers["access-control-allow-origin"] == APP
    assert "retry-after" in response.headers["access-control-expose-headers"].lower()


async def test_another_origin_gets_no_cors_headers(cors_gateway: GatewayUnderTest) -> None:
    evil = "https://evil.example"
    preflight = await cors_gateway.http.options(
        cors_gateway.graphql_url, headers={"Origin": evil, **PREFLIGHT}
    )
    assert preflight.status_code == 400
    assert "access-control-allow-origin" not in preflight.headers
    response = await cors_gateway.http.post(
        cors_gateway.graphql_url,
        json={"query": "{ viewer { role } }"},
        headers={"Origin": evil, "Authorization": f"Bearer {cors_gateway.tokens['admin']}"},
    )
    assert "access-control-allow-origin" not in response.headers


async def test_without_cors_origins_there_is_no_cors(gateway: GatewayUnderTest) -> None:
    response = await gateway.http.options(gateway.graphql_url, headers={"Origin": APP, **PREFLIGHT})
    assert response.status_code == 405
    assert not [h for h in response.headers if h.lower().startswith("access-control-")]


async def test_credentials_are_allowed_only_when_configured(tmp_path: Path) -> None:
    server: dict[str, Any] = {
        "cors_origins": [APP],
        "cors_allow_credentials": True,
        "cors_max_age_seconds": 60,
    }
    async with ToySandbox() as sandbox, open_gateway(sandbox, tmp_path, server=server) as running:
        response = await running.http.options(
            running.graphql_url, headers={"Origin": APP, **PREFLIGHT}
        )
        assert response.headers["access-control-allow-credentials"] == "true"
        assert response.headers["access-control-max-age"] == "60"


@pytest.mark.parametrize(
    ("server", "says"),
    [
        ({"cors_origins": ["*"], "cors_allow_credentials": True}, "cors_allow_credentials"),
        ({"cors_origins": ["crm.example"]}, "not an origin"),
        ({"cors_origins": ["https://crm.example/"]}, "not an origin"),
        ({"cors_max_age_seconds": -1}, "cors_max_age_seconds"),
    ],
)
def test_unsafe_or_malformed_cors_settings_are_refused(server: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        load_settings(environ={}, overrides={"server": server})
