"""Benchmark: one client floods period reads — how many cTrader calls, and when refused.

Run from the repository root (bounded: two floods, about a minute at most, stops by itself)::

    .venv/bin/python tests/bench_flood.py      # or: scripts/bench flood

It starts the cTrader sandbox and a gateway wired to it (one process, real sockets,
the default ``[limits]``), then, each flood against a fresh cache and fresh counters:

* **aliases x analytics** — one request holding 10 aliases of ``analytics`` over
  ten consecutive past years of one account (each year is ~183 closedPositions
  windows of 2 days, plus the connector's 90-day look-back);
* **40 ``_entities`` analytics** — 40 concurrent requests of one client, each an
  ``_entities`` read of the same account's ``analytics`` over another of the last 40
  half years (~91 windows each, plus the look-back).

For each it reports the cTrader calls the flood caused (the sandbox's counters), the
time until the first refusal (or until the flood was over, when nothing was refused),
the refusals' codes, whether the cTrader breaker stayed closed, and whether another
client was served right after (its own account's balance, no error).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import brokergraph_ctrader.plugin
from brokergraph_ctrader.sandbox import CTraderSandbox

from gateway.contract.schema import encode_id
from gateway.resilience import BreakerState
from gateway.testing import TestGateway, open_test_gateway

ACCOUNT = "9000001"  # DEMO-001's, seen by the "client" token
OTHER_ACCOUNT = "9000004"  # OTHER-001's, seen by the "other_client" token
ANALYTICS = 'analytics(from: "{start}", to: "{end}") {{ wins losses realizedPnl {{ amount }} }}'
ALIASES = 10
ENTITY_REQUESTS = 40
#: Nothing in a flood may take longer than this (the bench stops itself).
FLOOD_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class FloodResult:
    name: str
    upstream_calls: int
    seconds: float
    first_refusal_seconds: float | None
    codes: Counter[str]
    breaker_closed: bool
    other_served: bool


def _stamp(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ").replace("Z", "+00:00")


def _today() -> datetime:
    now = datetime.now(UTC)
    return datetime(now.year, now.month, now.day, tzinfo=UTC)


def _codes(body: Any) -> list[str]:
    if not isinstance(body, dict):
        return ["HTTP"]
    return [str(e.get("extensions", {}).get("code", "?")) for e in body.get("errors") or []]


def alias_query() -> str:
    today = _today()
    parts = []
    for i in range(ALIASES):
        end = today - timedelta(days=365 * i)
        start = end - timedelta(days=365)
        parts.append(f"y{i}: " + ANALYTICS.format(start=_stamp(start), end=_stamp(end)))
    return "query($id: ID!) { account(id: $id) { " + " ".join(parts) + " } }"


def entities_query(index: int) -> str:
    end = _today() - timedelta(days=182 * index)
    start = end - timedelta(days=182)
    analytics = ANALYTICS.format(start=_stamp(start), end=_stamp(end))
    return (
        "query($r: [_Any!]!) { _entities(representations: $r) "
        f"{{ ... on Account {{ {analytics} }} }} }}"
    )


async def _other_served(gateway: TestGateway) -> bool:
    response = await gateway.post(
        "query($id: ID!) { account(id: $id) { balance { amount } } }",
        {"id": encode_id("Account", "ctrader", OTHER_ACCOUNT)},
        token="other_client",
    )
    body = response.json()
    return response.status_code == 200 and not body.get("errors") and bool(body["data"]["account"])


async def flood(
    gateway: TestGateway, sandbox: CTraderSandbox, name: str, requests: list[tuple[str, Any]]
) -> FloodResult:
    await gateway.clear_cache()
    sandbox.calls.clear()
    upstream = gateway.services.registry.upstreams["ctrader"]
    started = time.perf_counter()
    first_refusal: list[float] = []
    codes: Counter[str] = Counter()

    async def one(query: str, variables: Any) -> None:
        response = await gateway.post(query, variables, token="client")
        try:
            found = _codes(response.json())
        except ValueError:
            found = [f"HTTP {response.status_code}"]
        if found and not first_refusal:
            first_refusal.append(time.perf_counter() - started)
        codes.update(found or ["ok"])

    async with asyncio.timeout(FLOOD_TIMEOUT_SECONDS):
        await asyncio.gather(*(one(q, v) for q, v in requests))
    seconds = time.perf_counter() - started
    calls = sum(n for key, n in sandbox.calls.items() if "token" not in key)
    return FloodResult(
        name=name,
        upstream_calls=calls,
        seconds=seconds,
        first_refusal_seconds=first_refusal[0] if first_refusal else None,
        codes=codes,
        breaker_closed=upstream.breaker.state is BreakerState.CLOSED,
        other_served=await _other_served(gateway),
    )


async def main() -> list[FloodResult]:
    gid = encode_id("Account", "ctrader", ACCOUNT)
    results = []
    with tempfile.TemporaryDirectory() as directory:
        async with (
            CTraderSandbox() as sandbox,
            open_test_gateway(brokergraph_ctrader.plugin, [sandbox], Path(directory)) as gateway,
        ):
            results.append(
                await flood(
                    gateway,
                    sandbox,
                    f"{ALIASES} aliases x analytics",
                    [(alias_query(), {"id": gid})],
                )
            )
            representation = {"r": [{"__typename": "Account", "id": gid}]}
            results.append(
                await flood(
                    gateway,
                    sandbox,
                    f"{ENTITY_REQUESTS} `_entities` analytics",
                    [(entities_query(i), representation) for i in range(ENTITY_REQUESTS)],
                )
            )
    return results


def table(results: list[FloodResult]) -> str:
    lines = [
        "| flood | cTrader calls | first refusal after | over after | answers "
        "| breaker closed | other client served |",
        "|---|---:|---:|---:|---|---|---|",
    ]
    for r in results:
        refusal = "none" if r.first_refusal_seconds is None else f"{r.first_refusal_seconds:.2f} s"
        answers = ", ".join(f"{code} x{n}" for code, n in sorted(r.codes.items()))
        lines.append(
            f"| {r.name} | {r.upstream_calls} | {refusal} | {r.seconds:.2f} s | {answers} "
            f"| {'yes' if r.breaker_closed else 'NO'} | {'yes' if r.other_served else 'NO'} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(asyncio.run(main())))
