"""One upstream session per credential across three real replicas.

Three ``brokergraph serve`` processes share a fresh PostgreSQL database (store and
leases) and the QST and QORT sandboxes running in this process.  Orders and QORT
reads are spread over the replicas; the sandboxes count the logins: exactly one
replica logs into each upstream, the others route to it.  Then the holder is
killed (SIGKILL: another replica holds the lease at once — the server drops the
dead session's lock) and the next one is stopped gracefully (SIGTERM: handed over
at once).  The measured hand-over times are printed (``-s`` shows them).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from brokergraph_qort.connector import QortConnector
from brokergraph_qort.sandbox import QortSandbox
from brokergraph_qst.connector import QstConnector
from brokergraph_qst.sandbox import QstSandbox

from gateway.auth import JwtAuthenticator, JwtSettings, Role
from gateway.cluster import Holder, lease_holders
from gateway.graphql.ids import encode_id
from gateway.sandboxes import seed_demo
from gateway.store import Store
from tests.cluster_replicas import Replica, replicas, resting_buy

pytestmark = pytest.mark.timeout(120)

LEASE_SECONDS = 3
JWT_SECRET = secrets.token_urlsafe(48)
PLACE = """mutation($input: PlaceOrderInput!) { placeOrder(input: $input) {
  order { externalId status } errors { code message } } }"""
QORT_ACCOUNT = """query($id: ID!) { account(id: $id) { externalId currency status } }"""
PLATFORMS = {"qst": QstConnector.platform, "qort": QortConnector.platform}


def _token() -> str:
    issuer = JwtAuthenticator(JwtSettings(secret=JWT_SECRET))
    return issuer.issue(subject="cluster-test", role=Role.ADMIN, ttl_seconds=600)


class Traffic:
    """GraphQL calls spread over the replicas; every error code is counted."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http
        self._headers = {"Authorization": f"Bearer {_token()}"}
        self.codes: Counter[str] = Counter()

    async def _post(self, replica: Replica, query: str, variables: dict[str, Any]) -> Any:
        response = await self._http.post(
            replica.graphql_url,
            json={"query": query, "variables": variables},
            headers=self._headers,
        )
        body = response.json()
        for error in body.get("errors") or ():
            self.codes[error.get("extensions", {}).get("code", "?")] += 1
        return body.get("data")

    async def place(self, replica: Replica, price: str) -> bool:
        data = await self._post(
            replica,
            PLACE,
            resting_buy(encode_id("Account", PLATFORMS["qst"], "297999"), price, "ZCZ26"),
        )
        payload = (data or {}).get("placeOrder") or {"errors": [{"code": "NO_PAYLOAD"}]}
        for error in payload["errors"]:
            self.codes[error["code"]] += 1
        return not payload["errors"] and payload["order"] is not None

    async def read_qort(self, replica: Replica) -> bool:
        account = encode_id("Account", PLATFORMS["qort"], "DEMO-001-01")
        data = await self._post(replica, QORT_ACCOUNT, {"id": account})
        return bool(data and data["account"] and data["account"]["externalId"] == "DEMO-001-01")

    async def spread(self, members: Sequence[Replica], rounds: int) -> list[bool]:
        """``rounds`` orders and QORT reads per replica, all at once."""
        calls = [
            call
            for i in range(rounds)
            for replica in members
            for call in (self.place(replica, f"{300 + i}.25"), self.read_qort(replica))
        ]
        return list(await asyncio.gather(*calls))


async def _holders(dsn: str) -> dict[str, Holder]:
    return await lease_holders(dsn)


async def _held_elsewhere(dsn: str, name: str, not_at: str, seconds: float) -> Holder:
    """Poll the lease record until a replica other than ``not_at`` holds ``name``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        holder = (await _holders(dsn)).get(name)
        if holder is not None and holder.address != not_at:
            return holder
        await asyncio.sleep(0.02)
    raise AssertionError(f"no other replica took the {name} lease within {seconds} s")


async def _first_order(traffic: Traffic, replica: Replica, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await traffic.place(replica, "299.25"):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no order went through {replica.name} within {seconds} s")


def _by_address(members: Sequence[Replica], address: str) -> Replica:
    return next(r for r in members if r.url == address)


async def _seed(dsn: str, sandboxes: Sequence[QstSandbox | QortSandbox]) -> None:
    store = await Store.open(dsn)
    try:
        await seed_demo(store, sandboxes, PLATFORMS.__getitem__)
    finally:
        await store.close()


async def test_one_replica_holds_each_session_and_hands_it_over(
    postgres_url: str, tmp_path: Path
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        qst, qort = QstSandbox(), QortSandbox()
        for sandbox in (qst, qort):
            await sandbox.start()
            stack.push_async_callback(sandbox.stop)
        await _seed(postgres_url, [qst, qort])
        sections: dict[str, Mapping[str, Any]] = {
            "auth": {"jwt_secret": JWT_SECRET},
            "store": {"url": postgres_url},
            "cluster": {"lease_seconds": LEASE_SECONDS, "secret": secrets.token_hex(32)},
            "connectors.qst": dict(qst.connector_settings()),
            "connectors.qort": dict(qort.connector_settings()),
        }
        members = await stack.enter_async_context(replicas(tmp_path, sections))
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=30))
        traffic = Traffic(http)
        try:
            await _steady_then_failovers(postgres_url, members, traffic, qst, qort)
        except BaseException:
            for replica in members:
                print(f"--- replica {replica.name} ({replica.url})\n{replica.log_tail()}")
            raise


async def _steady_then_failovers(
    dsn: str, members: Sequence[Replica], traffic: Traffic, qst: QstSandbox, qort: QortSandbox
) -> None:
    for name in ("qst", "qort"):
        await _held_elsewhere(dsn, name, "nobody", 20)

    # Steady state: calls through every replica, one session each upstream.
    assert all(await traffic.spread(members, rounds=3)), traffic.codes
    assert traffic.codes == Counter()
    assert qst.requests["LoginRequest"] == 1
    assert qst.closes[4101] == 0
    assert qort.calls["Login"] == 1

    # SIGKILL of the QST holder: the server ends its session, a waiting replica gets the lock.
    holders = await _holders(dsn)
    victim = _by_address(members, holders["qst"].address)
    survivors = [r for r in members if r is not victim]
    killed = time.monotonic()
    victim.signal(signal.SIGKILL)
    taken = await _held_elsewhere(dsn, "qst", victim.url, LEASE_SECONDS * 5)
    lease_after = time.monotonic() - killed
    await _first_order(traffic, survivors[0], LEASE_SECONDS * 5)
    order_after = time.monotonic() - killed
    print(
        f"\nSIGKILL of the holder: lease held by another replica after {lease_after:.3f} s, "
        f"first order through a survivor after {order_after:.3f} s (lease {LEASE_SECONDS} s)"
    )
    assert taken.token > holders["qst"].token  # a new tenure, a new fencing token
    assert all(await traffic.spread(survivors, rounds=2)), traffic.codes
    assert (qst.requests["LoginRequest"], qst.closes[4101]) == (2, 0)

    # SIGSTOP of the holder: PostgreSQL ends its silent session after a lease time and
    # the other replica takes over (QST then closes the frozen session: the one 4101).
    # Resumed, the old holder finds its tenure over and routes, never logging in again.
    frozen = _by_address(survivors, taken.address)
    other = next(r for r in survivors if r is not frozen)
    stopped = time.monotonic()
    frozen.signal(signal.SIGSTOP)
    taken = await _held_elsewhere(dsn, "qst", frozen.url, LEASE_SECONDS * 5)
    frozen_after = time.monotonic() - stopped
    await _first_order(traffic, other, LEASE_SECONDS * 5)
    print(f"SIGSTOP of the holder: lease held by another replica after {frozen_after:.3f} s")
    frozen.signal(signal.SIGCONT)
    assert all(await traffic.spread(survivors, rounds=2)), traffic.codes
    await asyncio.sleep(LEASE_SECONDS)  # room for a wrongful re-login, had the fence failed
    assert (qst.requests["LoginRequest"], qst.closes[4101]) == (3, 1)

    # SIGTERM of the holder: it hands the lease over before it stops serving.
    holder = _by_address(survivors, taken.address)
    last = next(r for r in survivors if r is not holder)
    stopping = time.monotonic()
    holder.signal(signal.SIGTERM)
    await _held_elsewhere(dsn, "qst", holder.url, LEASE_SECONDS * 5)
    handed_after = time.monotonic() - stopping
    print(f"SIGTERM of the holder: lease handed over after {handed_after:.3f} s")
    assert await holder.wait() == 0
    assert all(await traffic.spread([last], rounds=3)), traffic.codes

    assert traffic.codes["UPSTREAM_BUSY"] == 0
    assert traffic.codes == Counter(), traffic.codes
    # One login per tenure (four holders); only the frozen holder's session was taken.
    assert qst.requests["LoginRequest"] == 4
    assert qst.closes[4101] == 1
    qort_holders = (await _holders(dsn))["qort"].token
    assert qort.calls["Login"] == qort_holders
