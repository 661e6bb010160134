"""Automatic persisted queries as Apollo's persisted-queries link speaks them, over real
HTTP: the hash alone first, the hash with the text when the gateway does not know it,
then the hash alone again — over GET too (``useGETForHashedQueries``)."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.gateway_fixtures import GatewayUnderTest, open_gateway
from tests.toy.sandbox import ToySandbox

GRAPHQL_RESPONSE = "application/graphql-response+json"


def sha256(query: str) -> str:
    return hashlib.sha256(query.encode()).hexdigest()


def persisted(digest: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": digest}}


class ApolloLink:
    """What @apollo/client's createPersistedQueryLink sends, request by request."""

    def __init__(self, gateway: GatewayUnderTest, *, use_get: bool = False) -> None:
        self.gateway = gateway
        self.use_get = use_get
        self.headers = {
            "Authorization": f"Bearer {gateway.tokens['admin']}",
            "Accept": GRAPHQL_RESPONSE,
        }

    async def hash_only(self, query: str, url: str | None = None) -> httpx.Response:
        target = url or self.gateway.graphql_url
        if self.use_get:
            params = {"extensions": json.dumps(persisted(sha256(query)))}
            return await self.gateway.http.get(target, params=params, headers=self.headers)
        body = {"extensions": persisted(sha256(query))}
        return await self.gateway.http.post(target, json=body, headers=self.headers)

    async def with_query(self, query: str, digest: str | None = None) -> httpx.Response:
        # The link retries with the text by POST, whatever it used for the hash alone.
        body = {"query": query, "extensions": persisted(digest or sha256(query))}
        return await self.gateway.http.post(
            self.gateway.graphql_url, json=body, headers=self.headers
        )


def code_of(response: httpx.Response) -> str:
    code: str = response.json()["errors"][0]["extensions"]["code"]
    return code


@pytest.fixture
async def gateway_with(tmp_path: Path) -> AsyncIterator[Any]:
    """``gateway_with(limits={...})``: a fresh gateway, so each test's registrations are its own."""

    stores = itertools.count()

    def opened(**sections: Mapping[str, Any]) -> Any:
        store = tmp_path / f"gateway-{next(stores)}"
        store.mkdir()
        return open_gateway(sandbox, store, **sections)

    async with ToySandbox() as sandbox:
        yield opened


@pytest.mark.parametrize("use_get", [False, True], ids=["post", "get"])
async def test_apollo_link_round_trip(gateway_with: Any, use_get: bool) -> None:
    query = "query Role { viewer { role } }"
    async with gateway_with() as gateway:
        link = ApolloLink(gateway, use_get=use_get)
        first = await link.hash_only(query)
        assert first.status_code == 400
        assert code_of(first) == "PERSISTED_QUERY_NOT_FOUND"
        assert first.json()["errors"][0]["message"] == "PersistedQueryNotFound"
        second = await link.with_query(query)
        assert second.status_code == 200
        assert second.json() == {"data": {"viewer": {"role": "admin"}}}
        third = await link.hash_only(query)
        assert third.status_code == 200
        assert third.json() == {"data": {"viewer": {"role": "admin"}}}


async def test_a_text_that_does_not_hash_to_the_hash_is_refused_and_not_remembered(
    gateway_with: Any,
) -> None:
    query, other = "{ viewer { role } }", "{ __typename }"
    async with gateway_with() as gateway:
        link = ApolloLink(gateway)
        refused = await link.with_query(other, digest=sha256(query))
        assert refused.status_code == 400
        assert code_of(refused) == "PERSISTED_QUERY_MISMATCH"
        assert "data" not in refused.json()
        assert code_of(await link.hash_only(query)) == "PERSISTED_QUERY_NOT_FOUND"
        assert code_of(await link.hash_only(other)) == "PERSISTED_QUERY_NOT_FOUND"


async def test_only_operations_that_validate_are_remembered(gateway_with: Any) -> None:
    invalid = "{ viewer { noSuchField } }"
    async with gateway_with() as gateway:
        link = ApolloLink(gateway)
        assert (await link.with_query(invalid)).status_code == 400
        assert code_of(await link.hash_only(invalid)) == "PERSISTED_QUERY_NOT_FOUND"


async def test_an_unsupported_version_is_a_coded_400(gateway_with: Any) -> None:
    query = "{ viewer { role } }"
    async with gateway_with() as gateway:
        link = ApolloLink(gateway)
        body = {
            "query": query,
            "extensions": {"persistedQuery": {"version": 2, "sha256Hash": sha256(query)}},
        }
        response = await gateway.http.post(gateway.graphql_url, json=body, headers=link.headers)
        assert response.status_code == 400
        assert code_of(response) == "PERSISTED_QUERY_VERSION_UNSUPPORTED"


async def test_the_memory_store_is_bounded(gateway_with: Any) -> None:
    queries = [f"query Q{i} {{ viewer {{ role }} }}" for i in range(3)]
    long_query = "query Long { viewer { role } }" + " " * 200
    async with gateway_with(limits={"apq_max_entries": 2, "apq_max_query_bytes": 100}) as gateway:
        link = ApolloLink(gateway)
        for query in queries:
            assert (await link.with_query(query)).status_code == 200
        # The least recently used went first; the two newest are still known.
        assert code_of(await link.hash_only(queries[0])) == "PERSISTED_QUERY_NOT_FOUND"
        for query in queries[1:]:
            assert (await link.hash_only(query)).json()["data"] == {"viewer": {"role": "admin"}}
        # Over apq_max_query_bytes: it runs, but the client must keep sending the text.
        assert (await link.with_query(long_query)).status_code == 200
        assert code_of(await link.hash_only(long_query)) == "PERSISTED_QUERY_NOT_FOUND"


async def test_replicas_on_redis_share_registrations(gateway_with: Any, redis_url: str) -> None:
    query = "query Shared { viewer { role } }"
    cache = {"url": redis_url, "secret": "apq-test-secret-shared-by-replicas"}
    async with gateway_with(cache=cache) as one, gateway_with(cache=cache) as two:
        assert (await ApolloLink(one).with_query(query)).status_code == 200
        answer = await ApolloLink(two).hash_only(query)
        assert answer.status_code == 200
        assert answer.json() == {"data": {"viewer": {"role": "admin"}}}


async def test_persisted_only_refuses_registration(gateway_with: Any, tmp_path: Path) -> None:
    listed, unlisted = "{ viewer { role } }", "query Other { viewer { role } }"
    operations = tmp_path / "operations.json"
    operations.write_text(json.dumps({sha256(listed): listed}))
    limits = {"persisted_operations_file": str(operations), "persisted_only": True}
    async with gateway_with(limits=limits) as gateway:
        link = ApolloLink(gateway)
        refused = await link.with_query(unlisted)
        assert refused.status_code == 400
        assert code_of(refused) == "PERSISTED_QUERY_NOT_FOUND"
        assert "data" not in refused.json()
        assert code_of(await link.hash_only(unlisted)) == "PERSISTED_QUERY_NOT_FOUND"
        listed_answer = await link.hash_only(listed)
        assert listed_answer.json() == {"data": {"viewer": {"role": "admin"}}}


async def test_apq_can_be_switched_off(gateway_with: Any) -> None:
    query = "{ viewer { role } }"
    async with gateway_with(limits={"apq": False}) as gateway:
        link = ApolloLink(gateway)
        assert code_of(await link.with_query(query)) == "PERSISTED_QUERY_NOT_FOUND"
