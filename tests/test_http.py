"""GraphQL over HTTP, over a real socket: media types, status codes, limits, auth."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

GRAPHQL_RESPONSE = "application/graphql-response+json"
QUERY = "{ viewer { role } }"


@pytest.fixture
async def client(gateway: Any) -> Any:
    # A GraphQL client's Accept: httpx's default */* is answered as a legacy client.
    headers = {"Accept": GRAPHQL_RESPONSE}
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10, headers=headers) as http:
        yield http


def auth(gateway: Any, role: str = "admin") -> dict[str, str]:
    return {"Authorization": f"Bearer {gateway.tokens[role]}"}


async def test_post_json_answers_graphql_response_json(gateway: Any, client: Any) -> None:
    response = await client.post("/graphql", json={"query": QUERY}, headers=auth(gateway))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    assert response.json() == {"data": {"viewer": {"role": "admin"}}}


async def test_legacy_accept_application_json(gateway: Any, client: Any) -> None:
    headers = {**auth(gateway), "Accept": "application/json"}
    response = await client.post("/graphql", json={"query": "{ nope }"}, headers=headers)
    assert response.status_code == 200  # the spec keeps 200 for application/json
    assert response.headers["content-type"].startswith("application/json")
    assert "data" not in response.json() and response.json()["errors"]


async def test_validation_error_is_400_with_graphql_response_json(
    gateway: Any, client: Any
) -> None:
    headers = {**auth(gateway), "Accept": GRAPHQL_RESPONSE}
    response = await client.post("/graphql", json={"query": "{ nope }"}, headers=headers)
    assert response.status_code == 400
    body = response.json()
    assert "data" not in body and "nope" in body["errors"][0]["message"]


async def test_parse_error_is_400(gateway: Any, client: Any) -> None:
    response = await client.post("/graphql", json={"query": "{ viewer {"}, headers=auth(gateway))
    assert response.status_code == 400
    assert "Syntax Error" in response.json()["errors"][0]["message"]


async def test_get_query_works_and_get_mutation_is_405(gateway: Any, client: Any) -> None:
    ok = await client.get("/graphql", params={"query": QUERY}, headers=auth(gateway))
    assert ok.status_code == 200 and ok.json()["data"]["viewer"]["role"] == "admin"
    mutation = 'mutation { deleteBusinessPartner(input: {code: "X"}) { deletedCode } }'
    refused = await client.get("/graphql", params={"query": mutation}, headers=auth(gateway))
    assert refused.status_code == 405
    assert refused.headers["allow"] == "POST"


@pytest.mark.parametrize(
    ("content_type", "body", "status"),
    [
        ("text/plain", b'{"query": "{ viewer { role } }"}', 415),
        ("application/x-www-form-urlencoded", b"query=x", 415),
        ("application/json", b"{not json", 400),
        ("application/json", b'"a string"', 400),
        ("application/json", b'{"query": 42}', 400),
        ("application/json", b'{"query": "{ viewer { role } }", "variables": [1]}', 400),
        ("application/json", b"[]", 400),
        ("application/json", b'[{"query": "{ viewer { role } }"}, 5]', 400),
        ("application/json", b"{}", 400),
    ],
)
async def test_malformed_requests_get_4xx(
    gateway: Any, client: Any, content_type: str, body: bytes, status: int
) -> None:
    headers = {**auth(gateway), "Content-Type": content_type}
    response = await client.post("/graphql", content=body, headers=headers)
    assert response.status_code == status
    assert response.json()["errors"][0]["message"]


async def test_unacceptable_accept_is_406(gateway: Any, client: Any) -> None:
    headers = {**auth(gateway), "Accept": "application/xml"}
    response = await client.post("/graphql", json={"query": QUERY}, headers=headers)
    assert response.status_code == 406


async def test_oversized_body_is_413_without_reading_it_all(gateway: Any, client: Any) -> None:
    limit = gateway.services.settings.limits.max_body_bytes
    padding = "x" * (limit + 1)
    response = await client.post(
        "/graphql", json={"query": QUERY, "extensions": {"p": padding}}, headers=auth(gateway)
    )
    assert response.status_code == 413


async def test_missing_and_bad_tokens_are_401(gateway: Any, client: Any) -> None:
    missing = await client.post("/graphql", json={"query": QUERY})
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert missing.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    forged = gateway.tokens["admin"][:-4] + "AAAA"
    bad = await client.post(
        "/graphql", json={"query": QUERY}, headers={"Authorization": f"Bearer {forged}"}
    )
    assert bad.status_code == 401
    assert forged not in bad.text


async def test_other_methods_are_405(gateway: Any, client: Any) -> None:
    response = await client.put("/graphql", json={"query": QUERY}, headers=auth(gateway))
    assert response.status_code == 405


async def test_limits_refuse_deep_and_aliased_queries(gateway: Any, client: Any) -> None:
    limits = gateway.services.settings.limits
    aliases = " ".join(f"a{i}: viewer {{ role }}" for i in range(limits.max_aliases + 1))
    response = await client.post(
        "/graphql", json={"query": f"{{ {aliases} }}"}, headers=auth(gateway)
    )
    assert response.status_code == 400
    deep = "{ me { " + "accounts { trader { " * 8 + "id" + " } }" * 8 + " } }"
    response = await client.post("/graphql", json={"query": deep}, headers=auth(gateway))
    assert response.status_code == 400
    assert "exceeds maximum operation depth" in response.json()["errors"][0]["message"]


async def test_health_and_readiness(gateway: Any, client: Any) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "checks": {"leases": "ok", "plugins": "ok", "store": "ok"},
    }
    # Vendors are reported apart from readiness, from the background checker.
    upstreams = await client.get("/upstreamz")
    assert upstreams.status_code == 200
    assert upstreams.json()["connectors"]["toy"]["status"] == "UP"


async def test_graphiql_page_is_served_offline(gateway: Any, client: Any) -> None:
    page = await client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert "/static/graphiql/" in page.text and "unpkg" not in page.text


@pytest.mark.browser
async def test_graphiql_renders_from_the_real_gateway_with_the_network_blocked(
    gateway: Any,
) -> None:
    from tests import browser

    # chromium blocks; run it in a thread so this loop keeps serving the gateway
    dom = await asyncio.to_thread(browser.dump_dom, gateway.graphql_url)
    assert "graphiql-container" in dom
    assert "Loading..." not in dom


async def test_a_bounded_batch_answers_an_array_in_order(gateway: Any, client: Any) -> None:
    batch = [{"query": "{ viewer { role } }"}, {"query": "{ nope }"}, {"query": "{ me { code } }"}]
    response = await client.post("/graphql", json=batch, headers=auth(gateway, "client"))
    assert response.status_code == 200
    first, second, third = response.json()
    assert first == {"data": {"viewer": {"role": "client"}}}
    assert "nope" in second["errors"][0]["message"]
    assert third == {"data": {"me": {"code": "DEMO-001"}}}
    limit = gateway.services.settings.limits.max_batch
    too_many = [{"query": "{ viewer { role } }"}] * (limit + 1)
    refused = await client.post("/graphql", json=too_many, headers=auth(gateway))
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["extensions"]["code"] == "BATCH_TOO_LARGE"
