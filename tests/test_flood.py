"""One client's flood of costly reads costs only its own budget, never the platform.

Against a real gateway and the cTrader sandbox over real sockets (cTrader answers
deals two days at a time, so a period read fans out into many calls), counting the
calls that reach the sandbox:

* a document certain to make more upstream calls than a client's whole budget is
  refused before anything runs;
* a flood of ``_entities`` analytics spends the flooding viewer's budget of upstream
  calls and is then refused with RATE_LIMITED and ``retryAfter`` before the vendor
  is called: the breaker stays closed and another viewer is served;
* identical reads in flight at once, from several requests and viewers, make one
  upstream fetch;
* cache hits and reads joined to one in flight cost nothing (:class:`SingleFlight`
  with real budgets);
* with the cache on Redis, a viewer's budget is one for the whole cluster.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import brokergraph_ctrader.plugin
import pytest
import pytest_asyncio
from brokergraph_ctrader.sandbox import CTraderSandbox

from gateway.auth import Role
from gateway.cache import MemoryCache
from gateway.cache._shared_reads import SingleFlight
from gateway.contract import UpstreamCost
from gateway.contract.schema import encode_id
from gateway.errors import RateLimited
from gateway.graphql.cost import declared_upstream_costs
from gateway.http._client_limits import ViewerBudgets
from gateway.resilience import BreakerState, upstream_payer
from gateway.testing import TestGateway, open_test_gateway

BURST = 120
CLOSED = "GET /v2/webserv/closedPositions"
WINDOW = timedelta(days=2)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
LOOKBACK = timedelta(days=90)  # the connector's default look-back
ANALYTICS = """query($r: [_Any!]!) { _entities(representations: $r) {
  ... on Account { analytics(from: "FROM", to: "TO") { wins losses } } } }"""
DEALS = """query($id: ID!) { account(id: $id) {
  deals(from: "FROM", to: "TO") { symbol } } }"""


def gid(login: str) -> str:
    return encode_id("Account", "ctrader", login)


def today() -> datetime:
    now = datetime.now(UTC)
    return datetime(now.year, now.month, now.day, tzinfo=UTC)


def period(query: str, start: datetime, end: datetime) -> str:
    return query.replace("FROM", start.isoformat()).replace("TO", end.isoformat())


def windows(start: datetime, end: datetime) -> int:
    current = EPOCH + WINDOW * ((start - EPOCH) // WINDOW)
    count = 0
    while current < end:
        count += 1
        current += WINDOW
    return count


def counted(sandbox: CTraderSandbox) -> Counter[str]:
    return Counter({k: n for k, n in sandbox.calls.items() if "token" not in k})


def spent(before: Counter[str], after: Counter[str]) -> Counter[str]:
    return Counter({k: after[k] - before[k] for k in after if after[k] != before[k]})


def codes(body: Any) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors") or ()]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def flood_gateway(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[TestGateway, CTraderSandbox]]:
    # A refill this slow adds nothing during the tests: the burst is each viewer's budget.
    limits = {
        "upstream_calls_per_viewer_per_second": 0.001,
        "upstream_calls_per_viewer_burst": BURST,
        "max_upstream_calls": BURST,
    }
    async with (
        CTraderSandbox() as sandbox,
        open_test_gateway(
            brokergraph_ctrader.plugin,
            [sandbox],
            tmp_path_factory.mktemp("flood"),
            limits=limits,
        ) as gateway,
    ):
        yield gateway, sandbox


async def drained(gateway: TestGateway) -> None:
    """Wait until no upstream read is in flight any more."""
    async with asyncio.timeout(30):
        await SingleFlight.of(gateway.services.cache).settled()


def client(gateway: TestGateway, subject: str, partner: str = "DEMO-001") -> str:
    """A client token of its own subject: a fresh budget."""
    return gateway.issue(Role.CLIENT, subject=subject, partner_code=partner)


async def test_the_started_ctrader_connector_declares_its_windows_and_look_back(
    flood_gateway: tuple[TestGateway, CTraderSandbox],
) -> None:
    gateway, _ = flood_gateway
    declared = declared_upstream_costs(gateway.services.registry.connectors())["ctrader"]
    assert declared["get_deals"] == UpstreamCost(calls=1, window=WINDOW, lookback=LOOKBACK)
    # analytics: open positions, Copy sub-accounts and the symbol list (once per TTL)
    assert declared["get_analytics"] == UpstreamCost(calls=3, window=WINDOW, lookback=LOOKBACK)
    assert declared["get_balance_operations"] == UpstreamCost(calls=0)  # from the store


async def test_aliases_of_long_periods_are_refused_before_any_upstream_call(
    flood_gateway: tuple[TestGateway, CTraderSandbox],
) -> None:
    gateway, sandbox = flood_gateway
    end = today()
    years = " ".join(
        f'y{i}: analytics(from: "{(end - timedelta(days=365 * (i + 1))).isoformat()}", '
        f'to: "{(end - timedelta(days=365 * i)).isoformat()}") {{ wins }}'
        for i in range(10)
    )
    before = counted(sandbox)
    response = await gateway.post(
        f"query($id: ID!) {{ account(id: $id) {{ {years} }} }}",
        {"id": gid("9000001")},
        token=client(gateway, "alias-flooder"),
    )
    error = response.json()["errors"][0]["extensions"]
    assert error["code"] == "QUERY_TOO_COSTLY"
    assert error["upstreamCalls"] > 10 * 180 and error["limit"] == BURST
    assert counted(sandbox) == before


async def test_a_flood_of_entities_spends_only_the_flooders_budget(
    flood_gateway: tuple[TestGateway, CTraderSandbox],
) -> None:
    gateway, sandbox = flood_gateway
    await gateway.clear_cache()
    end = today()
    # What one analytics read makes besides its windows (trader, positions, Copy reads).
    before = counted(sandbox)
    warm = period(ANALYTICS, end - timedelta(days=30), end)
    body = await gateway.query(warm, {"r": [{"__typename": "Account", "id": gid("9000001")}]})
    assert "errors" not in body, body
    overhead = (
        sum(spent(before, counted(sandbox)).values()) - spent(before, counted(sandbox))[CLOSED]
    )

    flooder = client(gateway, "entities-flooder")
    before = counted(sandbox)

    async def one(index: int) -> Any:
        # A quarter and the look-back of either account of the partner: up to ~90
        # calls, within a budget; forty, some 240 windows since the accounts were
        # registered (none before: no position is older than its account), are not.
        representation = {"r": [{"__typename": "Account", "id": gid(f"900000{1 + index % 2}")}]}
        start = end - timedelta(days=91 + 4 * (index // 2))
        query = period(ANALYTICS, start, start + timedelta(days=91))
        return (await gateway.post(query, representation, token=flooder)).json()

    bodies = await asyncio.gather(*(one(i) for i in range(40)))
    await drained(gateway)  # windows paid for before the refusals still land in the cache
    calls = spent(before, counted(sandbox))
    refusals = [
        e
        for b in bodies
        for e in b.get("errors") or ()
        if e["extensions"]["code"] == "RATE_LIMITED"
    ]
    assert refusals and all(e["extensions"]["details"]["retryAfter"] > 0 for e in refusals)
    assert {c for b in bodies for c in codes(b)} == {"RATE_LIMITED"}
    # Every window paid before it was sent; reads admitted added their few own calls.
    assert calls[CLOSED] <= BURST
    assert sum(calls.values()) <= BURST + 40 * overhead  # unbounded, it was ~3,900
    upstream = gateway.services.registry.upstreams["ctrader"]
    assert upstream.breaker.state is BreakerState.CLOSED and upstream.breaker.failures == 0

    # The flooder's next read of anything uncached is refused with nothing sent...
    await gateway.clear_cache()
    before = counted(sandbox)
    again = await gateway.post(
        period(ANALYTICS, end - timedelta(days=30), end - timedelta(days=20)),
        {"r": [{"__typename": "Account", "id": gid("9000001")}]},
        token=flooder,
    )
    assert codes(again.json()) == ["RATE_LIMITED"]
    assert counted(sandbox) == before
    # ...while another client, with a budget of its own, is served from the platform.
    other = await gateway.query(
        period(ANALYTICS, end - timedelta(days=40), end),
        {"r": [{"__typename": "Account", "id": gid("9000004")}]},
        token="other_client",
    )
    assert "errors" not in other, other
    assert other["data"]["_entities"][0]["analytics"] is not None
    assert spent(before, counted(sandbox))[CLOSED] > 0


async def test_identical_reads_in_flight_make_one_upstream_fetch(
    flood_gateway: tuple[TestGateway, CTraderSandbox],
) -> None:
    gateway, sandbox = flood_gateway
    await gateway.clear_cache()
    # In the seeded history: no window of it precedes the account's registration.
    end = datetime(2026, 11, 1, tzinfo=UTC)
    start = end - timedelta(days=20)
    query = period(DEALS, start, end)
    tokens = [
        gateway.issue(Role.ADMIN, subject="identical-admin"),
        client(gateway, "identical-a"),
        client(gateway, "identical-b"),
    ]
    before = counted(sandbox)
    bodies = await asyncio.gather(
        *(gateway.query(query, {"id": gid("9000001")}, token=tokens[i % 3]) for i in range(12))
    )
    assert all("errors" not in b for b in bodies), bodies
    assert len({repr(b["data"]) for b in bodies}) == 1
    calls = spent(before, counted(sandbox))
    # Each window once, the open positions once, the trader once for the account
    # (the deals read reuses it): the same as a single request makes.
    assert calls[CLOSED] == windows(start - LOOKBACK, end)
    assert calls["GET /v2/webserv/openPositions"] == 1
    assert sum(n for k, n in calls.items() if k.startswith("GET /v2/webserv/traders/")) == 1


async def test_cache_hits_and_joined_reads_cost_nothing() -> None:
    flights = SingleFlight(MemoryCache())
    budgets = ViewerBudgets(0.001, 2, refusal="spent")  # two calls each, no refill
    release = asyncio.Event()
    fetched: list[Sequence[int]] = []

    async def fetch(indexes: list[int]) -> list[str]:
        fetched.append(indexes)
        await release.wait()
        return ["value"] * len(indexes)

    async def read(viewer: str, key: str) -> list[str]:
        named = upstream_payer.set(budgets.payer(viewer))
        try:
            return await flights.read([key], fetch, ttl=60)
        finally:
            upstream_payer.reset(named)

    leader = asyncio.create_task(read("a", "k1"))
    await asyncio.sleep(0)  # a has paid and started the fetch
    joiners = [asyncio.create_task(read("b", "k1")) for _ in range(5)]
    await asyncio.sleep(0)
    release.set()
    assert await leader == ["value"]
    assert [await j for j in joiners] == [["value"]] * 5
    assert len(fetched) == 1
    for _ in range(10):  # cache hits: free for anyone
        assert await read("a", "k1") == ["value"]
    # b joined and hit the cache only: both its calls are left; a has one.
    assert await read("b", "k2") == ["value"]
    assert await read("b", "k3") == ["value"]
    assert await read("a", "k4") == ["value"]
    with pytest.raises(RateLimited):
        await read("a", "k5")
    with pytest.raises(RateLimited):
        await read("b", "k6")
    assert len(fetched) == 4  # the refused reads fetched nothing


async def test_a_joiner_is_not_refused_for_the_leaders_spent_budget() -> None:
    flights = SingleFlight(MemoryCache())
    budgets = ViewerBudgets(0.001, 1, refusal="spent")
    refuse = asyncio.Event()

    async def fetch(indexes: list[int]) -> list[str]:
        if not refuse.is_set():
            refuse.set()
            await asyncio.sleep(0)
            # A sub-read of the leader's fetch finds the leader's budget spent.
            await budgets.payer("a").pay()
        return ["value"] * len(indexes)

    async def read(viewer: str) -> list[str]:
        named = upstream_payer.set(budgets.payer(viewer))
        try:
            return await flights.read(["k"], fetch, ttl=60)
        finally:
            upstream_payer.reset(named)

    leader = asyncio.create_task(read("a"))
    await asyncio.sleep(0)
    joiner = asyncio.create_task(read("b"))
    with pytest.raises(RateLimited):
        await leader
    assert await joiner == ["value"]  # made again on b's own budget


async def test_the_budget_of_upstream_calls_is_cluster_wide_with_the_cache_on_redis(
    tmp_path: Path,
) -> None:
    settings: dict[str, Mapping[str, Any]] = {
        # One 20-day deals read is ~58 calls: one fits the budget, two do not.
        "limits": {
            "upstream_calls_per_viewer_per_second": 0.001,
            "upstream_calls_per_viewer_burst": 80,
            "max_upstream_calls": 80,
        },
        "cache": {"url": "redis://127.0.0.1:6379/0", "secret": "flood-test-secret"},
        # A fresh namespace: a slow refill keeps a bucket in Redis for an hour.
        "cluster": {"namespace": f"t-{uuid.uuid4().hex[:12]}"},
    }
    async with (
        CTraderSandbox() as sandbox,
        open_test_gateway(brokergraph_ctrader.plugin, [sandbox], tmp_path / "a", **settings) as a,
        open_test_gateway(brokergraph_ctrader.plugin, [sandbox], tmp_path / "b", **settings) as b,
    ):
        token = client(a, "cluster-reader")
        variables = {"id": gid("9000001")}
        # Two periods of the seeded history, their windows after the registration.
        first = datetime(2026, 11, 1, tzinfo=UTC)
        body = await a.query(period(DEALS, first - timedelta(days=20), first), variables, token)
        assert "errors" not in body, body
        before = counted(sandbox)
        second = datetime(2026, 7, 10, tzinfo=UTC)
        body = await b.query(period(DEALS, second - timedelta(days=20), second), variables, token)
        assert codes(body) == ["RATE_LIMITED"]  # the other replica spent this viewer's budget
        assert spent(before, counted(sandbox))[CLOSED] <= 80 - windows(
            first - timedelta(days=20) - LOOKBACK, first
        )
