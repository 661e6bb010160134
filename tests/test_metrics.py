"""``/metrics`` after a known workload, scraped over a real socket from a real gateway.

The counters are compared with what the workload did and with the toy sandbox's
own call counter: a scrape before, the workload, a scrape after, the differences.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import brokergraph_qst.plugin
import httpx
import pytest
import websockets
from brokergraph_qst.sandbox import QstSandbox
from prometheus_client import multiprocess
from prometheus_client.parser import text_string_to_metric_families

from gateway.observability import metrics
from gateway.testing import open_test_gateway
from tests.gateway_fixtures import GatewayUnderTest, open_gateway
from tests.test_websocket import ACCOUNT, PROTOCOL, receive, subscribe
from tests.toy.sandbox import ToySandbox

ROOT = Path(__file__).resolve().parents[1]

PLACE_ORDER = """mutation PlaceOrder($input: PlaceOrderInput!) {
    placeOrder(input: $input) { order { externalId } errors { code } } }"""
PLACE_AGAIN = PLACE_ORDER.replace("mutation PlaceOrder", "mutation PlaceOrderAgain")
BALANCE = """query Balance($id: ID!) { account(id: $id) { balance { amount } } }"""


def order(key: str) -> dict[str, Any]:
    return {
        "accountId": ACCOUNT,
        "symbol": "EURUSD",
        "side": "BUY",
        "type": "LIMIT",
        "quantity": "1000",
        "price": "0.5",
        "idempotencyKey": key,
    }


async def scrape(gateway: GatewayUnderTest, url: str | None = None) -> dict[tuple[str, str], float]:
    """Every sample of ``/metrics``: (name, labels as sorted k=v) -> value."""
    response = await gateway.http.get(url or f"{gateway.url}/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    found: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            found[(sample.name, labels)] = sample.value
    return found


def value(samples: dict[tuple[str, str], float], name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    wanted = {f"{k}={v}" for k, v in labels.items()}
    return sum(
        v for (n, have), v in samples.items() if n == name and wanted <= set(have.split(","))
    )


async def test_a_known_workload_moves_each_counter_by_what_it_did(tmp_path: Path) -> None:
    async with ToySandbox() as sandbox, open_gateway(sandbox, tmp_path) as gateway:
        before = await scrape(gateway)
        calls_before = sum(sandbox.calls.values())
        keys = [f"metrics-{uuid.uuid4()}" for _ in range(3)]
        for key in keys:
            status, body = await gateway.query(PLACE_ORDER, {"input": order(key)}, "client")
            assert status == 200 and body["data"]["placeOrder"]["errors"] == [], body
        # The same key again: replayed from the store, nothing sent.
        status, body = await gateway.query(PLACE_AGAIN, {"input": order(keys[0])}, "client")
        assert status == 200 and "errors" not in body
        # A read twice: the first misses the cache and calls, the second hits it.
        await gateway.clear_cache()
        for _ in range(2):
            status, body = await gateway.query(BALANCE, {"id": ACCOUNT}, "client")
            assert status == 200 and "errors" not in body, body
        # A refused operation: its error counted by code, no upstream call.
        status, body = await gateway.query("query Broken { nope }", None, "client")
        assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
        after = await scrape(gateway)
        sandbox_calls = sum(sandbox.calls.values()) - calls_before

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    ops = "brokergraph_graphql_operations_total"
    assert delta(ops, operation="PlaceOrder", type="mutation", outcome="ok") == 3
    assert delta(ops, operation="PlaceOrderAgain", type="mutation", outcome="ok") == 1
    assert delta(ops, operation="Balance", type="query", outcome="ok") == 2
    assert delta(ops, operation="Broken", outcome="refused") == 1
    assert delta("brokergraph_graphql_operation_seconds_count", operation="PlaceOrder") == 3
    assert delta("brokergraph_graphql_errors_total", code="GRAPHQL_VALIDATION_FAILED") == 1
    upstream = "brokergraph_upstream_calls_total"
    assert delta(upstream, connector="toy", method="place_order", outcome="ok") == 3
    # Every call the sandbox counted went through the guard, and no other.
    assert delta(upstream, connector="toy") == sandbox_calls > 3
    assert delta("brokergraph_upstream_call_seconds_count", connector="toy") == sandbox_calls
    assert delta("brokergraph_idempotency_outcomes_total", outcome="claimed") == 3
    assert delta("brokergraph_idempotency_outcomes_total", outcome="replayed") == 1
    assert delta("brokergraph_cache_lookups_total", connector="toy", result="hit") >= 1
    assert delta("brokergraph_cache_lookups_total", connector="toy", result="miss") >= 1
    assert value(after, "brokergraph_breaker_state", connector="toy") == 0
    assert value(after, "brokergraph_upstream_session_state", connector="toy", status="UP") == 1
    # No label holds an id, a key or a token.
    text = "\n".join(labels for _, labels in after)
    for secret in [*keys, ACCOUNT, *gateway.tokens.values()]:
        assert secret not in text


async def test_websocket_connections_subscriptions_and_events(gateway: GatewayUnderTest) -> None:
    connections = "brokergraph_websocket_connections"
    running = "brokergraph_subscriptions"
    events = "brokergraph_subscription_events_total"
    before = await scrape(gateway)
    async with websockets.connect(gateway.websocket_url, subprotocols=[PROTOCOL]) as ws:
        init = {"type": "connection_init", "payload": {"token": gateway.tokens["client"]}}
        await ws.send(json.dumps(init))
        assert (await receive(ws))["type"] == "connection_ack"
        await subscribe(
            ws,
            "subscription($id: ID!) { orderEvents(accountId: $id) { sequence } }",
            {"id": ACCOUNT},
        )
        await subscribe(ws, "subscription Ticks { toyTicks(count: 3) }", {})
        assert [(await receive(ws))["type"] for _ in range(4)] == ["next"] * 3 + ["complete"]
        during = await scrape(gateway)
    assert value(during, connections) - value(before, connections) == 1

    def moved(name: str, **labels: str) -> float:
        return value(during, name, **labels) - value(before, name, **labels)

    assert moved(running, topic="orderEvents") == 1  # still open
    assert moved(running, topic="toyTicks") == 0  # complete
    assert moved(events, topic="toyTicks", result="delivered") == 3
    for _ in range(200):  # the server sees the close a moment after the client
        after = await scrape(gateway)
        if value(after, connections) == value(before, connections):
            break
        await asyncio.sleep(0.02)
    assert value(after, connections) == value(before, connections)
    assert value(after, running, topic="toyTicks") == value(before, running, topic="toyTicks")


async def test_metrics_require_the_token_when_one_is_configured(
    toy_sandbox: ToySandbox, tmp_path: Path
) -> None:
    token = f"scrape-{uuid.uuid4().hex}"
    async with open_gateway(
        toy_sandbox, tmp_path, observability={"metrics_token": token}
    ) as gateway:
        url = f"{gateway.url}/metrics"
        assert (await gateway.http.get(url)).status_code == 401
        wrong = await gateway.http.get(url, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and "brokergraph_" not in wrong.text
        right = await gateway.http.get(url, headers={"Authorization": f"Bearer {token}"})
        assert right.status_code == 200 and "brokergraph_upstream_calls_total" in right.text


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_metrics_on_a_port_of_their_own_and_off(
    toy_sandbox: ToySandbox, tmp_path: Path
) -> None:
    port = free_port()
    async with open_gateway(
        toy_sandbox, tmp_path / "own", observability={"metrics_port": port}
    ) as gateway:
        assert (await gateway.http.get(f"{gateway.url}/metrics")).status_code == 404
        samples = await scrape(gateway, f"http://127.0.0.1:{port}/metrics")
        assert ("brokergraph_breaker_state", "connector=toy") in samples
    with pytest.raises(httpx.ConnectError):  # stopped with the gateway
        await httpx.AsyncClient().get(f"http://127.0.0.1:{port}/metrics")
    async with open_gateway(toy_sandbox, tmp_path / "off", observability={"metrics": False}) as gw:
        assert (await gw.http.get(f"{gw.url}/metrics")).status_code == 404


def test_client_chosen_labels_are_bounded() -> None:
    seen: set[str] = set()
    name = re.compile(r"[_A-Za-z][_0-9A-Za-z]{0,63}")
    labels = [metrics._bounded(f"Op{i}", name, seen, 3) for i in range(5)]
    assert labels == ["Op0", "Op1", "Op2", "other", "other"]
    assert metrics._bounded("Op1", name, seen, 3) == "Op1"  # known names keep their label
    for hostile in ("eyJhbGciOi.J9.x", "a" * 65, "drop table", ""):
        assert metrics._bounded(hostile, name, set(), 3) == "other"
    assert metrics.operation_label(None) == "anonymous"


COUNT_ONE = """
import os
from gateway.observability import metrics
from gateway.testing import open_test_gateway
metrics.idempotency_outcome("replayed")
metrics.WEBSOCKETS.inc()
print(os.getpid())
"""


def multiprocess_scrape(
    env: dict[str, str],
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    scraped = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from gateway.observability import metrics; "
            "sys.stdout.write(metrics.exposition().decode())",
        ],
        env=env,
        check=True,
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(scraped)
        for sample in family.samples
    }


def test_several_processes_are_counted_together(tmp_path: Path) -> None:
    """PROMETHEUS_MULTIPROC_DIR: two worker processes count, any process scrapes both."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    pids = [
        int(
            subprocess.run(
                [sys.executable, "-c", COUNT_ONE],
                env=env,
                check=True,
                cwd=ROOT,
                capture_output=True,
                text=True,
            ).stdout
        )
        for _ in range(2)
    ]
    samples = multiprocess_scrape(env)
    assert samples[("brokergraph_idempotency_outcomes_total", (("outcome", "replayed"),))] == 2
    assert samples[("brokergraph_websocket_connections", ())] == 2
    # A worker's live gauges leave the sum once the server marks it dead (on its exit);
    # its counters stay.
    for pid in pids:
        multiprocess.mark_process_dead(pid, str(tmp_path))  # type: ignore[no-untyped-call]
    samples = multiprocess_scrape(env)
    assert samples[("brokergraph_idempotency_outcomes_total", (("outcome", "replayed"),))] == 2
    assert samples.get(("brokergraph_websocket_connections", ()), 0) == 0


async def test_a_single_session_lease_is_held_while_serving_and_let_go_after(
    tmp_path: Path,
) -> None:
    """QST's one upstream session: this replica holds its lease (1) until it steps down."""
    held = ("brokergraph_session_lease_held", "connector=qst")
    async with (
        QstSandbox() as sandbox,
        open_test_gateway(brokergraph_qst.plugin, [sandbox], tmp_path) as gateway,
    ):
        response = await gateway.http.get(f"{gateway.url}/metrics")
        assert samples_of(response.text)[held] == 1
    assert samples_of(metrics.exposition().decode())[held] == 0


def samples_of(text: str) -> dict[tuple[str, str], float]:
    return {
        (sample.name, ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
