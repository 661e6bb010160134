"""Benchmark: what metrics, the access log and tracing cost the gateway.

Run from the repository root (bounded: about a minute, stops by itself)::

    .venv/bin/python tests/bench_observability.py      # or: scripts/bench observability

This process serves the toy sandbox and, one after another, gateways wired to it
in four set-ups; the load client runs in another process (this file with
``--client``) so it never shares the event loop under test.  Each round measures
the serving process's CPU time per request, under a closed loop of concurrent
keep-alive connections, for a warm read (``account { balance }`` from the cache: no
upstream call) and for ``placeOrder`` (idempotency claim, one upstream call, audit),
rounds interleaved across the set-ups, medians printed as markdown:

* **bare** — no middleware, no schema extension (the runner's ``Observability``
  swapped for a no-op here, as no setting does): what the always-on parts cost;
* **quiet** — metrics served, access log and tracing off;
* **default** — metrics and the access log (INFO, formatted, written to /dev/null);
* **traced** — the default plus tracing on: every span made and handed to a batch
  processor whose exporter drops them (the cost of recording, not of a collector).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import (  # noqa: E402
    BatchSpanProcessor,
    SpanExporter,
    SpanExportResult,
)

import tests.toy.plugin  # noqa: E402
from gateway import runner  # noqa: E402
from gateway.graphql.ids import encode_id  # noqa: E402
from gateway.observability import Observability, tracing  # noqa: E402
from gateway.testing import open_test_gateway  # noqa: E402
from tests.toy.sandbox import ToySandbox  # noqa: E402

ROUNDS = 3
SECONDS = 2.0
CONCURRENCY = 8
ACCOUNT = encode_id("Account", "toy", "1001")
READ = {
    "query": "query Balance($id: ID!) { account(id: $id) { balance { amount } } }",
    "variables": {"id": ACCOUNT},
}
WRITE = {
    "query": "mutation PlaceOrder($input: PlaceOrderInput!) "
    "{ placeOrder(input: $input) { order { externalId } errors { code } } }",
    "variables": {
        "input": {
            "accountId": ACCOUNT,
            "symbol": "EURUSD",
            "side": "BUY",
            "type": "LIMIT",
            "quantity": "1000",
            "price": "0.5",
            "idempotencyKey": "KEY",
        }
    },
}
SETUPS: dict[str, dict[str, Any]] = {
    "bare": {"bare": True},
    "quiet": {"access_log": False},
    "default": {},
    "traced": {"tracing": True},
}


class NoObservability:
    """The runner's :class:`~gateway.observability.Observability`, doing nothing."""

    @classmethod
    def start(cls, settings: Any, schema: Any) -> NoObservability:
        return cls()

    def wrap(self, app: Any, schema: Any) -> Any:
        return app

    async def serve_metrics(self, services: Any, host: str) -> None:
        pass

    async def stop(self) -> None:
        pass


class Dropping(SpanExporter):
    """Takes every span and keeps none."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


# -- the client process ---------------------------------------------------------------


async def closed_loop(command: dict[str, Any]) -> dict[str, Any]:
    """``concurrency`` connections sending back to back for ``seconds``; requests done."""
    body: dict[str, Any] = command["body"]
    headers = {"Authorization": f"Bearer {command['token']}"}
    done = 0
    failed = 0
    deadline = time.perf_counter() + command["seconds"]

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal done, failed
        while time.perf_counter() < deadline:
            sent = json.loads(json.dumps(body))
            if "input" in sent["variables"]:
                sent["variables"]["input"]["idempotencyKey"] = f"bench-{uuid.uuid4()}"
            response = await client.post(command["url"], json=sent, headers=headers)
            if response.status_code == 200 and "errors" not in response.json():
                done += 1
            else:
                failed += 1

    async with httpx.AsyncClient(timeout=30) as client:
        await asyncio.gather(*(worker(client) for _ in range(command["concurrency"])))
    return {"done": done, "failed": failed}


async def run_client() -> None:
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        result = await closed_loop(json.loads(line))
        print(json.dumps(result), flush=True)


# -- the serving process --------------------------------------------------------------


async def measure(client: asyncio.subprocess.Process, command: dict[str, Any]) -> float:
    """CPU milliseconds this process (gateway and sandbox, every thread) spent per request.

    CPU time, not throughput: the machine is shared, and a busy neighbour slows a
    closed loop's rate far more than it changes the work each request takes here.
    """
    assert client.stdin is not None and client.stdout is not None
    spent = time.process_time()
    client.stdin.write((json.dumps(command) + "\n").encode())
    await client.stdin.drain()
    result = json.loads(await client.stdout.readline())
    spent = time.process_time() - spent
    if result["failed"]:
        raise RuntimeError(f"{result['failed']} requests failed: {command['body']['query']}")
    done: int = result["done"]
    return spent * 1000 / max(1, done)


async def one_round(
    client: asyncio.subprocess.Process, sandbox: ToySandbox, setup: str, directory: Path
) -> dict[str, float]:
    settings = SETUPS[setup]
    # The runner looks the name up when it starts a gateway.
    setattr(runner, "Observability", NoObservability if settings.get("bare") else Observability)  # noqa: B010
    if settings.get("tracing"):
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(Dropping()))
        tracing.install(provider)
    try:
        async with open_test_gateway(
            tests.toy.plugin,
            [sandbox],
            directory / f"{setup}-{uuid.uuid4().hex}",
            observability={k: v for k, v in settings.items() if k not in ("tracing", "bare")},
            # One client viewer makes all the load: its budgets would measure themselves.
            limits={"requests_per_viewer_per_second": 0, "upstream_calls_per_viewer_per_second": 0},
        ) as gateway:
            token = gateway.tokens["client"]
            warm = {"url": gateway.running.graphql_url, "token": token, "body": READ}
            await measure(client, {**warm, "seconds": 0.5, "concurrency": 2})  # warms the cache
            results = {}
            for name, body in (("read", READ), ("placeOrder", WRITE)):
                command = {**warm, "body": body, "seconds": SECONDS, "concurrency": CONCURRENCY}
                results[name] = await measure(client, command)
            return results
    finally:
        if settings.get("tracing"):
            tracing.uninstall()


async def serve() -> dict[str, dict[str, list[float]]]:
    client = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--client",
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    results: dict[str, dict[str, list[float]]] = {s: {} for s in SETUPS}
    try:
        with tempfile.TemporaryDirectory() as directory:
            async with ToySandbox() as sandbox:
                for _ in range(ROUNDS):
                    for setup in SETUPS:
                        measured = await one_round(client, sandbox, setup, Path(directory))
                        for name, value in measured.items():
                            results[setup].setdefault(name, []).append(value)
    finally:
        assert client.stdin is not None
        client.stdin.close()
        await client.wait()
    return results


def table(results: dict[str, dict[str, list[float]]]) -> str:
    lines = [
        "| workload | bare | quiet | default | traced "
        "| quiet / bare | default / bare | traced / default |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in results["default"]:
        bare, quiet, default, traced = (statistics.median(results[s][name]) for s in SETUPS)
        lines.append(
            f"| {name} | {bare:.2f} | {quiet:.2f} | {default:.2f} | {traced:.2f} "
            f"| {quiet / bare:.2f} | {default / bare:.2f} | {traced / default:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        asyncio.run(run_client())
        return
    # The access log goes where a deployment's would, formatted: here to /dev/null.
    logging.basicConfig(level=logging.INFO, stream=open(os.devnull, "w"))  # noqa: SIM115
    for noisy in ("httpx", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    started = time.perf_counter()
    results = asyncio.run(serve())
    print(
        f"{ROUNDS} interleaved rounds of {SECONDS:.0f} s per workload, "
        f"{CONCURRENCY} connections; the serving process's CPU ms per request, medians "
        f"({time.perf_counter() - started:.0f} s in all)\n"
    )
    print(table(results))


if __name__ == "__main__":
    main()
