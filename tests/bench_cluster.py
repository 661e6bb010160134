"""Benchmark of the clustered runtime: three replicas against one process.

Run from the repository root (``scripts/bench cluster`` does)::

    .venv/bin/python tests/bench_cluster.py

Needs PostgreSQL and Redis as the tests do (a fresh database and a private
redis-server are made and removed).  Each setup is real ``brokergraph serve``
processes (``tests/cluster_replicas.py``) with the sandboxes in this process; the
single process is the default install (SQLite, in-memory cache and event log).
Prints one markdown table:

1. **failover** — SIGKILL of the process holding the QST session until a
   ``placeOrder`` succeeds again: through a surviving replica (which then holds the
   session) in the cluster; through a restarted process for the single one, which
   has nothing else to fail over to.  The killed replica is replaced between rounds.
2. **event latency** — QST sending an Order notification (the sandbox's
   ``on_emit``) until a graphql-transport-ws ``orderEvents`` subscriber has it: in
   the cluster the notification is appended to the log by the holder's connector
   and the subscriber is on another replica.  p50/p99 over every event of
   ``ROUNDS`` place-and-cancel rounds.
3. **resume** — a subscriber leaves; ``MISSED_ROUNDS`` orders are placed and
   cancelled; it subscribes again (in the cluster: on another replica) with
   ``afterSequence`` = its last sequence: how many events it is given and how long
   from subscribing until it has the last one.

Bounded: fixed rounds, a deadline on every wait, every process killed at the end.
"""

from __future__ import annotations

import asyncio
import signal
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.cluster_replicas import (  # noqa: E402
    Replica,
    RunningCluster,
    Subscriber,
    resting_buy,
    running_cluster,
)

FAILOVERS = 3
ROUNDS = 40
MISSED_ROUNDS = 20
WAIT = 30.0
ACCOUNT = "297999"
EVENTS = """subscription($id: ID!, $after: Int) { orderEvents(accountId: $id,
  afterSequence: $after) { sequence kind order { externalId status } } }"""
PLACE = """mutation($input: PlaceOrderInput!) { placeOrder(input: $input) {
  order { id externalId } errors { code message } } }"""
CANCEL = """mutation($id: ID!) { cancelOrder(input: {orderId: $id}) {
  order { status } errors { code message } } }"""


@dataclass
class Figures:
    failover: list[float]
    latency: list[float]
    resumed_events: int
    resume_seconds: float


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def place(cluster: RunningCluster, replica: Replica) -> dict[str, Any] | None:
    """A resting LIMIT BUY through ``replica``; its order, or None if it failed."""
    variables = resting_buy(cluster.account_id("qst", ACCOUNT))
    body = await cluster.graphql(replica, PLACE, variables)
    payload = (body.get("data") or {}).get("placeOrder")
    if body.get("errors") or not payload or payload["errors"]:
        return None
    order: dict[str, Any] = payload["order"]
    return order


async def round_trip(cluster: RunningCluster, replica: Replica) -> str:
    """Place and cancel one order through ``replica``; its external id."""
    order = await place(cluster, replica)
    if order is None:
        raise RuntimeError("placeOrder failed")
    body = await cluster.graphql(replica, CANCEL, {"id": order["id"]})
    if body.get("errors") or body["data"]["cancelOrder"]["errors"]:
        raise RuntimeError(f"cancelOrder failed: {body}")
    external: str = order["externalId"]
    return external


def subscribe(cluster: RunningCluster, replica: Replica, after: int | None = None) -> Subscriber:
    variables = {"id": cluster.account_id("qst", ACCOUNT), "after": after}
    return Subscriber(replica, cluster.token(), EVENTS, variables)


async def failovers(cluster: RunningCluster, clustered: bool) -> list[float]:
    samples = []
    for n in range(FAILOVERS):
        holder = await cluster.holder("qst") if clustered else cluster.members[-1]
        await round_trip(cluster, holder)  # the session is up and used
        killed = time.perf_counter()
        holder.signal(signal.SIGKILL)
        await holder.wait()
        if clustered:
            survivor = next(r for r in cluster.members if r.alive)
        else:
            survivor = await cluster.add_replica(f"restart-{n}")
        deadline = time.monotonic() + WAIT
        while await place(cluster, survivor) is None:
            if time.monotonic() > deadline:
                raise RuntimeError("no order went through after the kill")
            await asyncio.sleep(0.01)
        samples.append(time.perf_counter() - killed)
        if clustered:  # back to three replicas for the next round
            await cluster.add_replica(f"spare-{n}")
    return samples


async def received(watcher: Subscriber, counts: dict[str, int], external: str) -> None:
    """Until ``watcher`` has as many ORDER events of ``external`` as QST sent."""
    deadline = time.monotonic() + WAIT
    while (
        sum(1 for e in watcher.events if (e["order"] or {}).get("externalId") == external)
        < (counts[external])
    ):
        if time.monotonic() > deadline or watcher.ended:
            raise RuntimeError(f"order {external}'s events did not all arrive")
        await asyncio.sleep(0.002)


async def latencies(cluster: RunningCluster, clustered: bool) -> list[float]:
    holder = await cluster.holder("qst") if clustered else cluster.members[-1]
    where = next(r for r in cluster.members if r is not holder and r.alive) if clustered else holder
    emits: dict[str, list[float]] = defaultdict(list)
    qst = cluster.sandboxes.qst
    qst.on_emit = lambda number, at: emits[number].append(at)
    samples: list[float] = []
    try:
        async with subscribe(cluster, where) as watcher:
            await watcher.wait_for(1, WAIT)  # the snapshot: live from here
            for n in range(ROUNDS + 3):
                external = await round_trip(cluster, holder)
                counts = {external: 3}  # New Order, Working, Cancelled
                await received(watcher, counts, external)
                if n < 3:  # warm-up
                    continue
                arrivals = [
                    at
                    for e, at in zip(watcher.events, watcher.arrivals, strict=True)
                    if (e["order"] or {}).get("externalId") == external
                ]
                samples += [a - e for e, a in zip(emits[external], arrivals, strict=True)]
    finally:
        qst.on_emit = None
    return samples


async def settled(watcher: Subscriber) -> int:
    """``watcher``'s last sequence once nothing more arrives for a moment."""
    deadline = time.monotonic() + WAIT
    last = -1
    while time.monotonic() < deadline:
        head = watcher.events[-1]["sequence"] if watcher.events else 0
        if head == last:
            return head
        last = head
        await asyncio.sleep(0.3)
    raise RuntimeError("the events did not settle")


async def resume(cluster: RunningCluster, clustered: bool) -> tuple[int, float]:
    holder = await cluster.holder("qst") if clustered else cluster.members[-1]
    alive = [r for r in cluster.members if r.alive]
    first, second = (alive[0], alive[1]) if clustered else (holder, holder)
    async with subscribe(cluster, second) as witness:  # tells when everything is logged
        await witness.wait_for(1, WAIT)
        async with subscribe(cluster, first) as leaving:
            await leaving.wait_for(1, WAIT)
            external = await round_trip(cluster, holder)
            await received(leaving, {external: 3}, external)
            last = await settled(leaving)
        for _ in range(MISSED_ROUNDS):
            await round_trip(cluster, holder)
        target = await settled(witness)
    started = time.perf_counter()
    async with subscribe(cluster, second, after=last) as back:
        deadline = time.monotonic() + WAIT
        while not back.events or back.events[-1]["sequence"] < target:
            if time.monotonic() > deadline or back.ended:
                raise RuntimeError("the resumed subscriber did not catch up")
            await asyncio.sleep(0.001)
        drained = back.arrivals[-1] - started
        sequences = [e["sequence"] for e in back.events]
    if sequences != list(range(last + 1, target + 1)):
        raise RuntimeError(f"the resumed events are not exactly the missed ones: {sequences}")
    return len(sequences), drained


async def measure(directory: Path, clustered: bool) -> Figures:
    count = 3 if clustered else 1
    async with running_cluster(directory, count, single_process=not clustered) as cluster:
        if clustered:
            await cluster.holder("qst")
        latency = await latencies(cluster, clustered)
        resumed, drain = await resume(cluster, clustered)
        failover = await failovers(cluster, clustered)
        return Figures(failover, latency, resumed, drain)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def ratio(cluster: float, single: float) -> str:
    return f"{cluster / single:.2f}x" if single else "—"


def table(cluster: Figures, single: Figures) -> str:
    rows = [
        (
            f"failover: SIGKILL → next placeOrder, median of {FAILOVERS} (single: restart)",
            statistics.median(cluster.failover),
            statistics.median(single.failover),
        ),
        (
            f"order event latency p50 ({len(cluster.latency)} events)",
            percentile(cluster.latency, 0.5),
            percentile(single.latency, 0.5),
        ),
        (
            "order event latency p99",
            percentile(cluster.latency, 0.99),
            percentile(single.latency, 0.99),
        ),
        (
            f"resume: time to drain the missed events ({MISSED_ROUNDS} orders)",
            cluster.resume_seconds,
            single.resume_seconds,
        ),
    ]
    lines = [
        "| figure | cluster (3 replicas) | single process | ratio |",
        "|---|---|---|---|",
    ]
    lines += [f"| {name} | {ms(c)} | {ms(s)} | {ratio(c, s)} |" for name, c, s in rows]
    lines.append(
        f"| resume: events delivered after afterSequence | {cluster.resumed_events} | "
        f"{single.resumed_events} | {ratio(cluster.resumed_events, single.resumed_events)} |"
    )
    return "\n".join(lines)


async def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as temporary:
        root = Path(temporary)
        (root / "cluster").mkdir()
        (root / "single").mkdir()
        async with asyncio.timeout(600):
            cluster = await measure(root / "cluster", clustered=True)
            single = await measure(root / "single", clustered=False)
    print(table(cluster, single))


if __name__ == "__main__":
    asyncio.run(main())
