"""Three real replicas under traffic: one upstream session each, nothing lost to an outage.

One cluster serves the whole module (``running_cluster``: three ``brokergraph serve``
processes on a fresh PostgreSQL database and a private redis-server, every vendor's
sandbox in this process).  Requests are spread over the replicas in turn; every
GraphQL error code and every payload error is counted, and the sandboxes count the
logins and session evictions.  The tests run in file order and each measures its
own deltas: mixed traffic, concurrent partner creation, a vendor down, then a Redis
outage (the destructive ones last).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from brokergraph_qort.sandbox.tables import FIRMS

from gateway.store import Store
from tests.cluster_replicas import (
    Replica,
    RunningCluster,
    Subscriber,
    resting_buy,
    running_cluster,
)

pytestmark = pytest.mark.timeout(180)

#: How long the mixed traffic runs, and how many callers send it at once.
TRAFFIC_SECONDS = 60.0
CALLERS = 4
#: Pause of each caller between two operations (keeps DXtrade under its 10 reads/s).
PACE_SECONDS = 0.05
OUTAGE_SECONDS = 2.0

ERRORS = "errors { code message }"
PLACE = f"""mutation($input: PlaceOrderInput!) {{ placeOrder(input: $input) {{
  order {{ id status }} {ERRORS} }} }}"""
CANCEL = f"""mutation($id: ID!) {{ cancelOrder(input: {{orderId: $id}}) {{
  order {{ status }} {ERRORS} }} }}"""
ACCOUNT = "query($id: ID!) { account(id: $id) { externalId balance { amount } } }"
CREATE = f"""mutation($input: CreateBusinessPartnerInput!) {{
  createBusinessPartner(input: $input) {{ businessPartner {{ code name }} {ERRORS} }} }}"""
DELETE = f"""mutation($code: String!) {{
  deleteBusinessPartner(input: {{code: $code}}) {{ deletedCode {ERRORS} }} }}"""
DEPOSIT = f"""mutation($input: MoneyMovementInput!) {{ deposit(input: $input) {{
  operation {{ externalId }} {ERRORS} }} }}"""
MARKET_DATA = """subscription($id: ID!) { marketDataSubscriptionEvents(traderId: $id,
  afterSequence: 0) { sequence kind subscription { name } } }"""

READS = {
    "qort": ("qort", "DEMO-001-01"),
    "qst": ("qst", "297999"),
    "ctrader": ("ctrader", "9000001"),
    "dxtrade": ("dxtrade", "default:alice-usd"),
}
DEPOSITS = {"ctrader": "9000001", "dxtrade": "default:alice-usd"}


@pytest.fixture(scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningCluster]:
    async with running_cluster(tmp_path_factory.mktemp("cluster")) as running:
        with running.showing_logs():
            for connector in ("qst", "qort"):
                await running.holder(connector)
        yield running


class Traffic:
    """GraphQL operations on a chosen replica; every error code is counted by operation."""

    def __init__(self, cluster: RunningCluster) -> None:
        self.cluster = cluster
        self.codes: Counter[tuple[str, str]] = Counter()
        self.done: Counter[tuple[str, str]] = Counter()  # (operation, replica)

    async def call(
        self, replica: Replica, operation: str, query: str, variables: dict[str, Any]
    ) -> dict[str, Any] | None:
        """The operation's root field (None after an error, which is counted)."""
        body = await self.cluster.graphql(replica, query, variables)
        self.done[operation, replica.name] += 1
        for error in body.get("errors") or ():
            self.codes[operation, (error.get("extensions") or {}).get("code", "?")] += 1
        field = next(iter((body.get("data") or {}).values()), None)
        for error in (field or {}).get("errors") or () if isinstance(field, dict) else ():
            self.codes[operation, error["code"]] += 1
        if body.get("errors") or (isinstance(field, dict) and field.get("errors")):
            return None
        return field if isinstance(field, dict) else None

    async def read(self, replica: Replica, connector: str) -> None:
        name, external = READS[connector]
        await self.call(
            replica, f"read {name}", ACCOUNT, {"id": self.cluster.account_id(name, external)}
        )

    async def order(self, replica: Replica, cancel_on: Replica) -> None:
        """placeOrder on one replica, cancelOrder of it on another."""
        placed = await self.call(
            replica,
            "placeOrder",
            PLACE,
            resting_buy(self.cluster.account_id("qst", "297999"), "300.25", "ZCZ26"),
        )
        if placed is not None:
            await self.call(cancel_on, "cancelOrder", CANCEL, {"id": placed["order"]["id"]})

    async def deposit(self, replica: Replica, connector: str, key: str | None = None) -> bool:
        account = self.cluster.account_id(connector, DEPOSITS[connector])
        variables = {
            "input": {
                "accountId": account,
                "amount": "1.25",
                "idempotencyKey": key or secrets.token_hex(12),
            }
        }
        return await self.call(replica, f"deposit {connector}", DEPOSIT, variables) is not None

    async def partner(self, replica: Replica, delete_on: Replica) -> None:
        """createBusinessPartner (a QORT write) on one replica, delete it on another."""
        code = f"MIX-{secrets.token_hex(4).upper()}"
        variables = {"input": {"code": code, "name": "Mixed Traffic", "broker": "demo-broker"}}
        if await self.call(replica, "createBusinessPartner", CREATE, variables) is not None:
            await self.call(delete_on, "deleteBusinessPartner", DELETE, {"code": code})


def _logins(cluster: RunningCluster) -> tuple[int, int, int]:
    """(QST logins, QST sessions closed by a newer one (4101), QORT logins)."""
    boxes = cluster.sandboxes
    return boxes.qst.requests["LoginRequest"], boxes.qst.closes[4101], boxes.qort.calls["Login"]


async def _callers(
    traffic: Traffic,
    seconds: float,
    steps: list[Callable[[Replica, Replica], Awaitable[None]]],
) -> None:
    """``CALLERS`` callers, each running ``steps`` in turn over the replicas in turn, for
    ``seconds``."""
    members = traffic.cluster.members
    stop = time.monotonic() + seconds

    async def caller(offset: int) -> None:
        turn = itertools.count(offset)
        while time.monotonic() < stop:
            index = next(turn)
            step = steps[index % len(steps)]
            first, second = members[index % len(members)], members[(index + 1) % len(members)]
            await step(first, second)
            await asyncio.sleep(PACE_SECONDS)

    await asyncio.gather(*(caller(i * 3) for i in range(CALLERS)))


def _mixed(traffic: Traffic) -> list[Callable[[Replica, Replica], Awaitable[None]]]:
    async def read(connector: str, replica: Replica) -> None:
        await traffic.read(replica, connector)

    async def deposit(connector: str, replica: Replica) -> None:
        await traffic.deposit(replica, connector)

    return [
        traffic.order,
        lambda r, _: read("qort", r),
        lambda r, _: read("ctrader", r),
        traffic.partner,
        lambda r, _: read("dxtrade", r),
        lambda r, _: deposit("ctrader", r),
        lambda r, _: read("qst", r),
        lambda r, _: deposit("dxtrade", r),
    ]


async def test_mixed_traffic_over_three_replicas_keeps_one_session_per_upstream(
    cluster: RunningCluster,
) -> None:
    traffic = Traffic(cluster)
    before = _logins(cluster)
    with cluster.showing_logs():
        await _callers(traffic, TRAFFIC_SECONDS, _mixed(traffic))
    print(f"\n{sum(traffic.done.values())} operations in {TRAFFIC_SECONDS} s: {traffic.done}")
    assert traffic.codes == Counter(), traffic.codes  # no UPSTREAM_BUSY, no INTERNAL, none
    operations = {operation for operation, _ in traffic.done}
    assert len(operations) == 10, operations
    for operation in operations:  # each one went through every replica
        assert all(traffic.done[operation, r.name] for r in cluster.members), operation
    # No login, no eviction: one session per upstream, held by one replica throughout.
    assert _logins(cluster) == before
    assert before == (1, 0, 1)


async def test_nine_concurrent_partner_creations_through_all_replicas_are_whole(
    cluster: RunningCluster,
) -> None:
    traffic = Traffic(cluster)
    codes = [f"NINE-{secrets.token_hex(3).upper()}-{i}" for i in range(9)]
    members = cluster.members
    with cluster.showing_logs():
        created = await asyncio.gather(
            *(
                traffic.call(
                    members[i % 3],
                    "createBusinessPartner",
                    CREATE,
                    {"input": {"code": code, "name": f"Nine {i}", "broker": "demo-broker"}},
                )
                for i, code in enumerate(codes)
            )
        )
        assert traffic.codes == Counter(), traffic.codes
        assert [c["businessPartner"]["code"] for c in created if c] == codes
        qort_rows = cluster.sandboxes.qort.store
        store = await Store.open(cluster.dsn)
        try:
            # None half-created: the back office's row and the gateway's anchor, both.
            assert all(qort_rows.get(FIRMS, code) is not None for code in codes)
            assert all(await store.get_partners(codes))
            deleted = await asyncio.gather(
                *(
                    traffic.call(members[(i + 1) % 3], "deleteBusinessPartner", DELETE, {"code": c})
                    for i, c in enumerate(codes)
                )
            )
            assert traffic.codes == Counter(), traffic.codes
            assert [d["deletedCode"] for d in deleted if d] == codes
            assert not any(qort_rows.get(FIRMS, code) for code in codes)
            assert await store.get_partners(codes) == [None] * 9
        finally:
            await store.close()


async def _upstream_statuses(cluster: RunningCluster, connector: str) -> list[str]:
    statuses = []
    for replica in cluster.members:
        body = (await cluster.http.get(f"{replica.url}/upstreamz")).json()
        statuses.append(body["connectors"][connector]["status"])
    return statuses


async def test_every_replica_stays_ready_while_a_vendor_is_down(cluster: RunningCluster) -> None:
    ctrader = cluster.sandboxes.ctrader
    port = int(ctrader.url.rsplit(":", 1)[1].split("/", 1)[0])
    polls = Counter[int]()
    seen_down = False
    with cluster.showing_logs():
        await ctrader.stop()
        try:
            deadline = time.monotonic() + 20
            # Until every replica's background checker has seen cTrader down, and then
            # a few more rounds of probes: readiness is 200 on every replica throughout.
            while time.monotonic() < deadline and polls[200] < 60:
                for replica in cluster.members:
                    response = await cluster.http.get(f"{replica.url}/readyz")
                    polls[response.status_code] += 1
                seen_down = seen_down or set(await _upstream_statuses(cluster, "ctrader")) == {
                    "DOWN"
                }
                if not seen_down:
                    polls.clear()
                await asyncio.sleep(0.05)
        finally:
            await ctrader.start(port=port)
        assert seen_down, "the replicas' /upstreamz never reported cTrader DOWN"
        assert polls == Counter({200: polls[200]}) and polls[200] >= 60, polls
        # Back: the checkers see it again (no probe brought it back, the checker did).
        deadline = time.monotonic() + 20
        while set(await _upstream_statuses(cluster, "ctrader")) != {"UP"}:
            assert time.monotonic() < deadline, await _upstream_statuses(cluster, "ctrader")
            await asyncio.sleep(0.1)


async def _audited(cluster: RunningCluster, key: str) -> list[str]:
    store = await Store.open(cluster.dsn)
    try:
        entries = await store.list_audit(limit=500, operation="deposit")
    finally:
        await store.close()
    return [e.outcome for e in entries if e.idempotency_key == key]


async def test_a_redis_outage_under_traffic_loses_nothing(cluster: RunningCluster) -> None:
    traffic = Traffic(cluster)
    dxtrade = cluster.sandboxes.dxtrade
    members = cluster.members
    alice = cluster.trader_id("dxtrade", "alice@default")
    token = cluster.token()
    reads = ["qort", "qst", "ctrader", "dxtrade"]

    async def read(replica: Replica, _: Replica) -> None:
        await traffic.read(replica, reads[traffic.done.total() % len(reads)])

    subscriber = Subscriber(members[2], token, MARKET_DATA, {"id": alice})
    async with contextlib.AsyncExitStack() as stack:
        stack.enter_context(cluster.showing_logs())
        await stack.enter_async_context(subscriber)
        dxtrade.attach_gateway(members[0].url)
        dxtrade.callback_retry_delays = (0.5, 1.0, 1.0, 1.0, 2.0, 4.0)
        before = dxtrade.send_callback("added", "alice")
        await dxtrade.wait_callbacks(within=20)
        (first,) = await subscriber.wait_for(1)
        background = asyncio.create_task(_callers(traffic, OUTAGE_SECONDS + 4, [read]))
        stack.push_async_callback(asyncio.wait_for, background, 30)
        await asyncio.sleep(1)

        await cluster.redis.kill()
        killed = time.monotonic()
        during = dxtrade.send_callback("added", "alice")
        key = secrets.token_hex(12)
        # The money moved: success, and its audit row, though the cache and the shared
        # rate limit are unreachable.
        assert await traffic.deposit(members[1], "ctrader", key), traffic.codes
        assert await _audited(cluster, key) == ["ok"]
        await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - killed)))
        await cluster.redis.start()

        await dxtrade.wait_callbacks(within=20)
        after = dxtrade.send_callback("added", "alice")
        await dxtrade.wait_callbacks(within=20)
        await background
        events = await subscriber.wait_for(3)
        await asyncio.sleep(0.5)  # room for a duplicate, had there been one
        assert subscriber.errors == [] and not subscriber.ended  # it lived through the outage

    deliveries = {d.delivery_id: d for d in dxtrade.callbacks}
    sent = deliveries[during]
    assert sent.attempts[0] == 503 and sent.attempts[-1] == 202, sent.attempts
    assert 200 not in sent.attempts  # never answered "duplicate": it was not stored before
    assert deliveries[before].status == deliveries[after].status == "delivered"
    # Each callback stored once, in order, and delivered once to the subscriber that
    # lived through the outage on another replica.
    assert len(subscriber.events) == 3, subscriber.events
    assert [e["sequence"] for e in events] == [first["sequence"] + i for i in range(3)]
    assert not any(code == "INTERNAL" for _, code in traffic.codes), traffic.codes
    assert traffic.codes == Counter(), traffic.codes
    assert sum(traffic.done.values()) > 20
