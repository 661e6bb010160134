"""Prometheus metrics: what the gateway counts, and ``/metrics`` serving them.

The core calls the small functions here from one line each (an upstream call
settled, a breaker moving, a cache lookup, an idempotency outcome, a socket
opening...); each is a dictionary lookup and an addition, nothing more.

Cardinality is bounded by construction: labels hold connector names (from the
configuration), family method names (from the code), error codes (a fixed
vocabulary, shape-checked), topic kinds (the schema's subscription fields) and
GraphQL operation names, which clients choose: the first
:data:`MAX_OPERATION_NAMES` valid names seen get a label of their own, every
later one counts as ``other``.  No label ever holds an id, a key or a token.

With ``PROMETHEUS_MULTIPROC_DIR`` set (several server processes), every process
writes its samples there and a scrape merges them (prometheus-client's
multiprocess mode); the directory must be emptied when the server starts.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = [
    "CONTENT_TYPE_LATEST",
    "MAX_OPERATION_NAMES",
    "HealthCollector",
    "breaker_moved",
    "cache_lookups",
    "error_code",
    "exposition",
    "graphql_operation",
    "idempotency_outcome",
    "lease_held",
    "operation_label",
    "subscription_events",
    "upstream_call",
]

#: Operation names with a label of their own; later ones count as ``other``.
MAX_OPERATION_NAMES: Final = 200
#: Seconds buckets from a cached read (ms) to a slow vendor (tens of seconds).
LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]{0,63}")
_CODE = re.compile(r"[A-Z][A-Z0-9_]{0,47}")
_MAX_CODES: Final = 100
_MAX_METHODS: Final = 500

GRAPHQL_OPERATIONS = Counter(
    "brokergraph_graphql_operations",
    "GraphQL operations executed, by operation name, type and outcome (ok, error, refused).",
    ["operation", "type", "outcome"],
)
GRAPHQL_SECONDS = Histogram(
    "brokergraph_graphql_operation_seconds",
    "Time to execute a GraphQL operation (a subscription: its whole life).",
    ["operation", "type"],
    buckets=LATENCY_BUCKETS,
)
GRAPHQL_ERRORS = Counter(
    "brokergraph_graphql_errors",
    "GraphQL errors answered, by extensions.code.",
    ["code"],
)
UPSTREAM_CALLS = Counter(
    "brokergraph_upstream_calls",
    "Calls to a platform (each attempt), by connector, family method and outcome "
    "(ok, or the error code; breaker_open when nothing was sent).",
    ["connector", "method", "outcome"],
)
UPSTREAM_SECONDS = Histogram(
    "brokergraph_upstream_call_seconds",
    "Time of one call to a platform.",
    ["connector", "method"],
    buckets=LATENCY_BUCKETS,
)
BREAKER_STATE = Gauge(
    "brokergraph_breaker_state",
    "Circuit breaker of each upstream: 0 closed, 1 half-open, 2 open.",
    ["connector"],
    multiprocess_mode="max",
)
BREAKER_TRANSITIONS = Counter(
    "brokergraph_breaker_transitions",
    "Circuit breaker moves, by connector and the state entered.",
    ["connector", "state"],
)
CACHE_LOOKUPS = Counter(
    "brokergraph_cache_lookups",
    "Cached upstream reads looked up, by connector and result (hit, miss).",
    ["connector", "result"],
)
IDEMPOTENCY = Counter(
    "brokergraph_idempotency_outcomes",
    "Keyed writes by outcome: claimed (sent), replayed, conflict, unknown (outcome unknown).",
    ["outcome"],
)
WEBSOCKETS = Gauge(
    "brokergraph_websocket_connections",
    "WebSocket connections open now.",
    multiprocess_mode="livesum",
)
SUBSCRIPTIONS = Gauge(
    "brokergraph_subscriptions",
    "Subscriptions running now, by topic kind (the subscription's root field).",
    ["topic"],
    multiprocess_mode="livesum",
)
SUBSCRIPTION_EVENTS = Counter(
    "brokergraph_subscription_events",
    "Subscription events by topic kind and result: delivered, or dropped (the socket "
    "failed while sending it).",
    ["topic", "result"],
)
LEASE_HELD = Gauge(
    "brokergraph_session_lease_held",
    "1 while this replica holds the single upstream session of a connector.",
    ["connector"],
    multiprocess_mode="liveall",
)

_BREAKER_VALUES: Final = {"CLOSED": 0, "HALF_OPEN": 1, "OPEN": 2}
_lock = threading.Lock()
_operation_names: set[str] = set()
_codes: set[str] = set()
_methods: set[str] = set()


def _bounded(value: str, pattern: re.Pattern[str], seen: set[str], cap: int) -> str:
    if value in seen:
        return value
    if not pattern.fullmatch(value):
        return "other"
    with _lock:
        if len(seen) >= cap:
            return "other"
        seen.add(value)
    return value


def operation_label(name: str | None) -> str:
    """The label of a client-chosen operation name (bounded; see the module docstring)."""
    if not name:
        return "anonymous"
    return _bounded(name, _NAME, _operation_names, MAX_OPERATION_NAMES)


def error_code(code: object) -> None:
    label = _bounded(code, _CODE, _codes, _MAX_CODES) if isinstance(code, str) else "other"
    GRAPHQL_ERRORS.labels(label).inc()


#: Each metric's children by their labels: ``labels()`` checks and locks on every call,
#: a few microseconds a request; the labels are bounded (above), and so is this.
_children: dict[tuple[Any, ...], Any] = {}


def _child(metric: Any, *labels: str) -> Any:
    key = (metric, *labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels)
    return child


def graphql_operation(name: str, kind: str, outcome: str, seconds: float) -> None:
    """One executed operation; ``name`` is already an :func:`operation_label`."""
    _child(GRAPHQL_OPERATIONS, name, kind, outcome).inc()
    _child(GRAPHQL_SECONDS, name, kind).observe(seconds)


def upstream_call(connector: str, method: str, outcome: str, seconds: float | None) -> None:
    """One attempt settled; ``seconds`` is ``None`` when nothing was sent."""
    method = _bounded(method, _NAME, _methods, _MAX_METHODS)
    outcome = outcome if _CODE.fullmatch(outcome) or outcome == "ok" else "other"
    _child(UPSTREAM_CALLS, connector, method, outcome).inc()
    if seconds is not None:
        _child(UPSTREAM_SECONDS, connector, method).observe(seconds)


def breaker_moved(connector: str, state: str) -> None:
    BREAKER_STATE.labels(connector).set(_BREAKER_VALUES[state])
    BREAKER_TRANSITIONS.labels(connector, state).inc()


def cache_lookups(keys: Sequence[str], values: Sequence[Any]) -> None:
    """The cache's answer to ``keys`` (``kind:connector:id``); ``None`` is a miss."""
    for key, value in zip(keys, values, strict=True):
        connector = key.split(":", 2)[1] if key.count(":") >= 2 else "other"
        _child(CACHE_LOOKUPS, connector, "miss" if value is None else "hit").inc()


def idempotency_outcome(outcome: str) -> None:
    """``claimed``, ``replayed``, ``conflict`` or ``unknown``."""
    _child(IDEMPOTENCY, outcome).inc()


def subscription_events(topic: str) -> tuple[Any, Any]:
    """The ``delivered`` and ``dropped`` counters of ``topic`` (kept per subscription)."""
    return SUBSCRIPTION_EVENTS.labels(topic, "delivered"), SUBSCRIPTION_EVENTS.labels(
        topic, "dropped"
    )


def lease_held(connector: str, held: bool) -> None:
    LEASE_HELD.labels(connector).set(1 if held else 0)


class HealthCollector(Collector):
    """The upstreams' last known health, read at scrape time (nothing to keep in step)."""

    def __init__(self, report: Any) -> None:
        #: ``UpstreamHealthChecker.report``: connector -> last known health.
        self._report = report

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "brokergraph_upstream_session_state",
            "Last known state of each upstream (session): 1 for its current status.",
            labels=["connector", "status"],
        )
        for name, entry in sorted(self._report().items()):
            family.add_metric([name, entry.health.status.value], 1)
        yield family


def exposition(collectors: Iterable[Collector] = ()) -> bytes:
    """The text format of every metric of this process (or of every process)."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
        output = generate_latest(registry)
    else:
        output = generate_latest(REGISTRY)
    extra = CollectorRegistry(auto_describe=False)
    for collector in collectors:
        extra.register(collector)
    return output + generate_latest(extra)
