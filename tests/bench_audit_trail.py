"""Benchmark: a page of ``auditTrail`` read from a store of 200,000 audit rows, on SQLite
and on PostgreSQL (127.0.0.1:5432, a database of its own, dropped afterwards).

Run from the repository root (bounded: about a minute, stops by itself)::

    .venv/bin/python tests/bench_audit_trail.py      # or: scripts/bench audit

The log holds 2,000 partners' writes over 60 days: deposits and withdrawals on their
accounts (exact targets), order cancels and replaces (ids found by their account's
prefix), partner updates and transfer transitions; one busy partner has a tenth of all
rows.  Each case reads what ``auditTrail`` reads, through the store: the targets and
order prefixes a partner's trail names, a page of 50 (51 asked, as the resolver does),
the first page and one deep in the log (``after`` a cursor half-way back).  Printed as
markdown: the median ms per page of 30 reads, after the plans are warm.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: tests/ is on the path, not the root
    sys.path.insert(0, str(ROOT))

from sqlalchemy import insert  # noqa: E402
from sqlalchemy.ext.asyncio import create_async_engine  # noqa: E402

from gateway.graphql.audit import _order_prefix  # noqa: E402
from gateway.graphql.ids import encode_id  # noqa: E402
from gateway.store import Store  # noqa: E402
from gateway.store._tables import audit_log  # noqa: E402
from tests.services import fresh_database  # noqa: E402

ROWS = 200_000
PARTNERS = 2_000
ACCOUNTS = 3  # per partner
PAGE = 50
READS = 30
START = datetime(2026, 9, 1, tzinfo=UTC)


def _account(partner: int, n: int) -> str:
    return str(100_000 + partner * 10 + n)


def _rows(rng: random.Random) -> list[dict[str, Any]]:
    rows = []
    for i in range(ROWS):
        partner = 0 if rng.random() < 0.1 else rng.randrange(PARTNERS)
        account = _account(partner, rng.randrange(ACCOUNTS))
        kind = rng.random()
        if kind < 0.45:
            operation, target = "deposit", encode_id("Account", "toy", account)
        elif kind < 0.85:
            order = f"ord-{i}"
            operation, target = "cancelOrder", encode_id("Order", "toy", account, order)
        elif kind < 0.95:
            operation, target = "updateBusinessPartner", f"P{partner:05d}"
        else:
            operation, target = "transferFunds", encode_id("Transfer", f"tr-{partner}-{i % 7}")
        rows.append(
            {
                "at": START + timedelta(seconds=i * 26),
                "actor": "bench",
                "role": "manager",
                "operation": operation,
                "target": target,
                "outcome": "ok",
                "error_code": None,
                "upstream_ref": None,
                "idempotency_key": None,
                "details": {"amount": "1.00"},
            }
        )
    return rows


def _trail_of(partner: int) -> tuple[set[str], set[str]]:
    """What the resolver asks the store for: exact targets and order prefixes."""
    code = f"P{partner:05d}"
    exact = {code, encode_id("BusinessPartner", code)}
    exact |= {encode_id("Account", "toy", _account(partner, n)) for n in range(ACCOUNTS)}
    exact.add(encode_id("Trader", "toy", f"T{partner}"))
    exact |= {encode_id("Transfer", f"tr-{partner}-{k}") for k in range(7)}
    prefixes = {_order_prefix("toy", _account(partner, n)) for n in range(ACCOUNTS)}
    return exact, prefixes


async def _fill(url: str, rows: list[dict[str, Any]]) -> None:
    store = await Store.open(url)  # made at the head
    await store.close()
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            for i in range(0, len(rows), 5_000):
                await conn.execute(insert(audit_log), rows[i : i + 5_000])
        if url.startswith("postgresql"):
            async with engine.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.exec_driver_sql("VACUUM ANALYZE audit_log")
        else:
            async with engine.begin() as conn:
                await conn.exec_driver_sql("ANALYZE")
    finally:
        await engine.dispose()


async def _measure(url: str, partner: int, deep: bool) -> tuple[float, int]:
    store = await Store.open(url)
    try:
        exact, prefixes = _trail_of(partner)
        before = None
        if deep:
            mid = START + timedelta(seconds=ROWS // 2 * 26)
            before = (mid, ROWS // 2)
        found = 0
        for _ in range(3):  # warm: plans, pages
            found = len(
                await store.audit_trail(
                    targets=exact, target_prefixes=prefixes, before=before, limit=PAGE + 1
                )
            )
        times = []
        for _ in range(READS):
            began = time.perf_counter()
            await store.audit_trail(
                targets=exact, target_prefixes=prefixes, before=before, limit=PAGE + 1
            )
            times.append((time.perf_counter() - began) * 1000)
        return statistics.median(times), found
    finally:
        await store.close()


async def _bench(label: str, url: str, rows: list[dict[str, Any]]) -> list[str]:
    began = time.perf_counter()
    await _fill(url, rows)
    print(f"<!-- {label}: {ROWS} rows written in {time.perf_counter() - began:.1f} s -->")
    lines = []
    for partner, name in ((0, "busy partner (10% of rows)"), (1234, "one of 2,000 partners")):
        for deep in (False, True):
            ms, found = await _measure(url, partner, deep)
            page = "deep page" if deep else "first page"
            lines.append(f"| {label} | {name} | {page} | {found} | {ms:.2f} |")
    return lines


async def main(backends: list[str]) -> None:
    rows = _rows(random.Random(7))
    print("| store | partner | page | rows | ms per page (median) |")
    print("|---|---|---|---:|---:|")
    if "sqlite" in backends:
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'audit.db'}"
            for line in await _bench("SQLite", url, rows):
                print(line, flush=True)
    if "postgres" in backends:
        async with fresh_database("brokergraph_bench") as url:
            for line in await _bench("PostgreSQL", url, rows):
                print(line, flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("backends", nargs="*", default=["sqlite", "postgres"])
    asyncio.run(main(parser.parse_args().backends))
