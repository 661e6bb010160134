"""API keys: storage on SQLite and PostgreSQL, checking and caching, HTTP and WebSocket, CLI."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Collection
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.typing import Subprotocol

from gateway.auth import (
    ApiKeyAuthenticator,
    Authenticator,
    AuthenticatorChain,
    NewApiKey,
    Role,
    create_api_key,
)
from gateway.auth._api_keys import hash_api_key_secret, verify_api_key_secret
from gateway.cli import main
from gateway.errors import InvalidInput, Unauthenticated
from gateway.store import ApiKeyRecord, Store
from tests.gateway_fixtures import GatewayUnderTest

REFUSED = "invalid or revoked API key"

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'brokergraph.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(store_url)
    yield opened
    await opened.close()


class CountingStore:
    """A store that counts reads, to see what the cache of verified keys saves."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.reads = 0

    async def create_api_key(
        self,
        *,
        secret_hash: str,
        role: str,
        partner_code: str | None = None,
        brokers: Collection[str] = (),
        name: str | None = None,
    ) -> str:
        return await self.store.create_api_key(
            secret_hash=secret_hash,
            role=role,
            partner_code=partner_code,
            brokers=brokers,
            name=name,
        )

    async def get_api_key(self, key_id: str) -> ApiKeyRecord | None:
        self.reads += 1
        return await self.store.get_api_key(key_id)

    async def revoke_api_key(self, key_id: str) -> ApiKeyRecord | None:
        return await self.store.revoke_api_key(key_id)

    async def mark_api_key_used(self, key_id: str) -> None:
        await self.store.mark_api_key_used(key_id)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _refused(auth: Authenticator, header: str | None, *secrets_: str) -> None:
    with pytest.raises(Unauthenticated) as info:
        await auth.viewer_from_authorization_header(header)
    shown = f"{info.value} {info.value!r} {info.value.to_dict()}"
    for secret in secrets_:
        assert secret not in shown
    assert info.value.__cause__ is None


def _tampered(key: str) -> str:
    last = "A" if key[-1] != "A" else "B"
    return key[:-1] + last


# -- storage --------------------------------------------------------------------


async def test_create_get_and_list(store: Store) -> None:
    before = datetime.now(UTC)
    first = await store.create_api_key(
        secret_hash="scrypt$h1", role="manager", brokers=["wl-b", "wl-a"], name="crm"
    )
    second = await store.create_api_key(secret_hash="scrypt$h2", role="client", partner_code="P1")
    assert first != second and len(first) == 16
    record = await store.get_api_key(first)
    assert record is not None
    assert (record.key_id, record.name, record.role) == (first, "crm", "manager")
    assert record.brokers == ("wl-a", "wl-b") and record.partner_code is None
    assert record.secret_hash == "scrypt$h1" and "scrypt$h1" not in repr(record)
    assert before - timedelta(seconds=1) <= record.created_at <= datetime.now(UTC)
    assert record.created_at.utcoffset() == timedelta(0)
    assert record.last_used_at is None and record.revoked_at is None and record.active
    assert [r.key_id for r in await store.list_api_keys()] == [first, second]
    assert await store.get_api_key("0123456789abcdef") is None


async def test_revoke_is_for_good_and_keeps_the_first_time(store: Store) -> None:
    key_id = await store.create_api_key(secret_hash="scrypt$h", role="admin")
    revoked = await store.revoke_api_key(key_id)
    assert revoked is not None and revoked.revoked_at is not None and not revoked.active
    again = await store.revoke_api_key(key_id)
    assert again is not None and again.revoked_at == revoked.revoked_at
    assert await store.revoke_api_key("0123456789abcdef") is None
    assert [r.key_id for r in await store.list_api_keys()] == [key_id]
    assert await store.list_api_keys(include_revoked=False) == []


async def test_mark_used(store: Store) -> None:
    key_id = await store.create_api_key(secret_hash="scrypt$h", role="admin")
    await store.mark_api_key_used(key_id)
    record = await store.get_api_key(key_id)
    assert record is not None and record.last_used_at is not None
    assert record.last_used_at >= record.created_at


@pytest.mark.parametrize(
    "kwargs",
    [
        {"role": "superuser"},
        {"role": "ADMIN"},
        {"role": "manager", "brokers": "wl-a"},
        {"role": "admin", "secret_hash": ""},
    ],
    ids=repr,
)
async def test_create_refuses_bad_values(store: Store, kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput):
        await store.create_api_key(**{"secret_hash": "scrypt$h", **kwargs})
    assert await store.list_api_keys() == []


# -- making and checking keys ---------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "scope"),
    [
        ({"role": Role.CLIENT, "partner_code": "BP-1"}, ("BP-1", frozenset())),
        ({"role": Role.MANAGER, "brokers": ["wl-b", "wl-a"]}, (None, frozenset({"wl-a", "wl-b"}))),
        ({"role": Role.ADMIN}, (None, frozenset())),
    ],
    ids=["client", "manager", "admin"],
)
async def test_create_then_authenticate(
    store: Store, kwargs: dict[str, Any], scope: tuple[Any, ...]
) -> None:
    created = await create_api_key(store, name="crm", **kwargs)
    assert created.key.startswith(f"bg_{created.key_id}_")
    assert created.key not in repr(created)
    auth = ApiKeyAuthenticator(store)
    viewer = await auth.viewer_from_authorization_header(f"ApiKey {created.key}")
    assert viewer == created.viewer
    assert viewer.subject == f"api-key:{created.key_id}" and viewer.role is kwargs["role"]
    assert (viewer.partner_code, viewer.brokers) == scope
    record = await store.get_api_key(created.key_id)
    assert record is not None and record.last_used_at is not None


async def test_stored_hash_is_salted_and_never_the_key(store: Store) -> None:
    one = await create_api_key(store, role=Role.ADMIN)
    two = await create_api_key(store, role=Role.ADMIN)
    records = {r.key_id: r for r in await store.list_api_keys()}
    for created in (one, two):
        stored = records[created.key_id].secret_hash
        secret = created.key.split("_", 2)[2]
        assert stored != created.key and created.key not in stored and secret not in stored
        assert stored.startswith("scrypt$")
        assert verify_api_key_secret(secret, stored)
    assert records[one.key_id].secret_hash != records[two.key_id].secret_hash


def test_hash_verification() -> None:
    stored = hash_api_key_secret("s" * 43)
    assert stored != hash_api_key_secret("s" * 43)  # a fresh salt every time
    assert verify_api_key_secret("s" * 43, stored)
    assert not verify_api_key_secret("t" * 43, stored)
    assert not verify_api_key_secret("é", stored)
    scheme, n, r, p, salt, digest = stored.split("$")
    for broken in (
        "",
        "scrypt$1$2",
        f"md5${n}${r}${p}${salt}${digest}",
        f"{scheme}$2097152${r}${p}${salt}${digest}",  # a cost no row of ours has
        f"{scheme}${n}${r}${p}$!!!${digest}",
    ):
        assert not verify_api_key_secret("s" * 43, broken)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"role": Role.CLIENT},
        {"role": Role.MANAGER},
        {"role": Role.MANAGER, "brokers": "wl-a"},
        {"role": Role.ADMIN, "partner_code": "BP-1"},
        {"role": Role.CLIENT, "partner_code": "BP-1", "brokers": ["wl-a"]},
    ],
    ids=repr,
)
async def test_create_refuses_a_scope_that_does_not_fit_the_role(
    store: Store, kwargs: dict[str, Any]
) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies per rule
        await create_api_key(store, **kwargs)
    assert await store.list_api_keys() == []


async def test_wrong_secret_unknown_id_and_malformed_keys_refused(store: Store) -> None:
    created = await create_api_key(store, role=Role.ADMIN)
    auth = ApiKeyAuthenticator(store)
    unknown = "bg_0123456789abcdef_" + created.key.split("_", 2)[2]
    for key in (
        _tampered(created.key),
        unknown,
        created.key + "x",
        created.key.upper(),
        "bg_short_secret",
        "x" * 5000,
    ):
        await _refused(auth, f"ApiKey {key}", key, created.key)
    for header in (f"Bearer {created.key}", f"Basic {created.key}", "ApiKey", None):
        await _refused(auth, header, created.key)
    assert (await auth.viewer_from_key(created.key)).role is Role.ADMIN


async def test_revoked_key_refused_at_once_in_this_process(store: Store) -> None:
    created = await create_api_key(store, role=Role.ADMIN)
    auth = ApiKeyAuthenticator(store)
    await auth.viewer_from_key(created.key)  # now cached
    record = await auth.revoke(created.key_id)
    assert record is not None and record.revoked_at is not None
    await _refused(auth, f"ApiKey {created.key}", created.key)
    assert await auth.revoke("0123456789abcdef") is None


async def test_a_check_racing_a_revocation_does_not_cache_the_key(store: Store) -> None:
    created = await create_api_key(store, role=Role.ADMIN)
    release = asyncio.Event()

    class Slow(CountingStore):
        async def get_api_key(self, key_id: str) -> ApiKeyRecord | None:
            record = await super().get_api_key(key_id)  # read before the revocation...
            await release.wait()  # ...and finished after it
            return record

    auth = ApiKeyAuthenticator(Slow(store))
    racing = asyncio.create_task(auth.viewer_from_key(created.key))
    await asyncio.sleep(0.05)
    await auth.revoke(created.key_id)
    release.set()
    assert (await racing).role is Role.ADMIN  # it began before the revocation
    await _refused(auth, f"ApiKey {created.key}")


async def test_revoked_elsewhere_is_refused_once_the_cache_expires(store: Store) -> None:
    created = await create_api_key(store, role=Role.ADMIN)
    clock = Clock()
    auth = ApiKeyAuthenticator(store, ttl_seconds=30, clock=clock)
    await auth.viewer_from_key(created.key)
    await store.revoke_api_key(created.key_id)  # as `brokergraph api-key revoke` does
    clock.now += 29
    assert (await auth.viewer_from_key(created.key)).role is Role.ADMIN  # the documented TTL
    clock.now += 2
    await _refused(auth, f"ApiKey {created.key}", created.key)


async def test_verified_keys_are_cached_for_the_ttl(store: Store) -> None:
    counting = CountingStore(store)
    created = await create_api_key(counting, role=Role.MANAGER, brokers=["wl-a"])
    clock = Clock()
    auth = ApiKeyAuthenticator(counting, ttl_seconds=30, clock=clock)
    for _ in range(5):
        assert (await auth.viewer_from_key(created.key)).brokers == {"wl-a"}
    assert counting.reads == 1
    # A wrong secret for a cached id is refused without reading the store.
    await _refused(auth, f"ApiKey {_tampered(created.key)}")
    assert counting.reads == 1
    clock.now += 31
    await auth.viewer_from_key(created.key)
    assert counting.reads == 2
    auth.forget()
    await auth.viewer_from_key(created.key)
    assert counting.reads == 3


async def test_failures_are_not_cached(store: Store) -> None:
    counting = CountingStore(store)
    created = await create_api_key(counting, role=Role.ADMIN)
    auth = ApiKeyAuthenticator(counting)
    for _ in range(2):
        await _refused(auth, f"ApiKey {_tampered(created.key)}")
    assert counting.reads == 2
    assert (await auth.viewer_from_key(created.key)).role is Role.ADMIN


async def test_the_cache_is_bounded(store: Store) -> None:
    counting = CountingStore(store)
    keys = [await create_api_key(counting, role=Role.ADMIN) for _ in range(3)]
    auth = ApiKeyAuthenticator(counting, max_entries=2)
    for created in keys:
        await auth.viewer_from_key(created.key)
    await auth.viewer_from_key(keys[2].key)
    await auth.viewer_from_key(keys[1].key)
    assert counting.reads == 3
    await auth.viewer_from_key(keys[0].key)  # evicted as least recently used
    assert counting.reads == 4


async def test_keys_never_reach_the_log(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    created = await create_api_key(store, role=Role.ADMIN)
    secret = created.key.split("_", 2)[2]
    auth = ApiKeyAuthenticator(store)
    with caplog.at_level(logging.DEBUG):
        await auth.viewer_from_key(created.key)
        await _refused(auth, f"ApiKey {_tampered(created.key)}")
        await auth.revoke(created.key_id)
        await _refused(auth, f"ApiKey {created.key}")
        await _refused(auth, f"ApiKey {created.key}x")
    assert "wrong secret" in caplog.text and "revoked" in caplog.text
    assert created.key_id in caplog.text  # the public id helps an operator
    assert secret not in caplog.text and _tampered(created.key) not in caplog.text


async def test_a_corrupted_row_is_refused_loudly(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    created = await create_api_key(store, role=Role.ADMIN)
    stored = await store.get_api_key(created.key_id)
    assert stored is not None
    secret_hash, created_at = stored.secret_hash, stored.created_at

    class Corrupted(CountingStore):
        async def get_api_key(self, key_id: str) -> ApiKeyRecord | None:
            return ApiKeyRecord(
                key_id=key_id,
                name=None,
                role="manager",  # a manager without brokers
                partner_code=None,
                brokers=(),
                secret_hash=secret_hash,
                created_at=created_at,
                last_used_at=None,
                revoked_at=None,
            )

    with caplog.at_level(logging.WARNING, logger="gateway.auth"):
        await _refused(ApiKeyAuthenticator(Corrupted(store)), f"ApiKey {created.key}")
    assert "invalid role or scope" in caplog.text


async def test_chain_sends_each_scheme_to_its_authenticator(store: Store) -> None:
    created = await create_api_key(store, role=Role.ADMIN)
    chain = AuthenticatorChain(api_keys=ApiKeyAuthenticator(store))
    authenticator: Authenticator = chain
    viewer = await authenticator.viewer_from_authorization_header(f"apikey {created.key}")
    assert viewer.subject == f"api-key:{created.key_id}"
    # No JWT verifier configured: bearer tokens are refused like an unknown scheme.
    await _refused(chain, f"Bearer {created.key}", created.key)


# -- over HTTP and WebSocket, on a running gateway ---------------------------------------

QUERY = "{ viewer { subject role brokers } }"


async def _manager_key(gateway: GatewayUnderTest) -> NewApiKey:
    return await create_api_key(
        gateway.services.store, role=Role.MANAGER, brokers=["demo-broker"], name="e2e"
    )


async def test_http_with_an_api_key(gateway: GatewayUnderTest) -> None:
    created = await _manager_key(gateway)
    status, body = await gateway.query(QUERY, headers={"Authorization": f"ApiKey {created.key}"})
    assert status == 200, body
    assert body["data"]["viewer"] == {
        "subject": f"api-key:{created.key_id}",
        "role": "manager",
        "brokers": ["demo-broker"],
    }
    status, body = await gateway.query(
        "{ businessPartners { edges { node { code } } } }",
        headers={"Authorization": f"ApiKey {created.key}"},
    )
    codes = {edge["node"]["code"] for edge in body["data"]["businessPartners"]["edges"]}
    assert codes == {"DEMO-001", "DEMO-002"}  # the key's brokers, not OTHER-001's


async def test_http_refuses_a_bad_or_revoked_api_key(gateway: GatewayUnderTest) -> None:
    created = await _manager_key(gateway)
    for key in (_tampered(created.key), "bg_nonsense"):
        status, body = await gateway.query(QUERY, headers={"Authorization": f"ApiKey {key}"})
        assert status == 401 and body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        assert key not in json.dumps(body)
    header = {"Authorization": f"ApiKey {created.key}"}
    assert (await gateway.query(QUERY, headers=header))[0] == 200
    api_keys = gateway.services.authenticator.api_keys
    assert api_keys is not None
    await api_keys.revoke(created.key_id)
    status, body = await gateway.query(QUERY, headers=header)
    assert status == 401, body


async def _connection_init(gateway: GatewayUnderTest, payload: dict[str, Any]) -> Any:
    """The first message after ``connection_init``, or the close code if the socket closes."""
    async with websockets.connect(
        gateway.websocket_url, subprotocols=[Subprotocol("graphql-transport-ws")]
    ) as socket:
        await socket.send(json.dumps({"type": "connection_init", "payload": payload}))
        try:
            return json.loads(await asyncio.wait_for(socket.recv(), 10))
        except websockets.ConnectionClosed as closed:
            return None if closed.rcvd is None else closed.rcvd.code


async def test_websocket_connection_init_with_an_api_key(gateway: GatewayUnderTest) -> None:
    created = await _manager_key(gateway)
    good = await _connection_init(gateway, {"Authorization": f"ApiKey {created.key}"})
    assert good["type"] == "connection_ack"
    bad = await _connection_init(gateway, {"Authorization": f"ApiKey {_tampered(created.key)}"})
    assert bad == 4403


# -- the command line -------------------------------------------------------------------


async def test_cli_creates_lists_and_revokes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "brokergraph.toml"
    database = tmp_path / "cli.db"
    config.write_text(f'[store]\nurl = "sqlite+aiosqlite:///{database}"\n', encoding="utf-8")

    async def cli(*args: str) -> tuple[int, str, str]:
        # In a thread: the command runs its own event loop, as it does from a shell.
        code = await asyncio.to_thread(main, ["--config", str(config), "api-key", *args])
        out, err = capsys.readouterr()
        return code, out, err

    code, out, _ = await cli("create", "--role", "manager", "--brokers", "b1, b2", "--name", "crm")
    assert code == 0
    key = out.strip().splitlines()[-1]
    key_id = key.split("_")[1]
    assert key.startswith("bg_") and f"created API key {key_id}" in out
    code, _, err = await cli("create", "--role", "client")
    assert code == 2 and "partner" in err
    code, out, _ = await cli("list")
    assert code == 0 and key_id in out and "active" in out and "brokers b1,b2" in out
    assert key not in out and key.split("_", 2)[2] not in out
    code, out, _ = await cli("revoke", key_id)
    assert code == 0 and "revoked" in out
    code, _, err = await cli("revoke", "0123456789abcdef")
    assert code == 1 and "no API key" in err

    store = await Store.open(f"sqlite+aiosqlite:///{database}")
    try:
        await _refused(ApiKeyAuthenticator(store), f"ApiKey {key}", key)
        (record,) = await store.list_api_keys()
        assert record.revoked_at is not None and record.brokers == ("b1", "b2")
    finally:
        await store.close()
