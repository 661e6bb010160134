"""Upstream health, checked in the background — never by a probe or a request.

Readiness must not depend on vendors (a replica is ready while a vendor is down),
and a probe must never log into one.  So each replica runs one checker: every
``interval`` seconds (jittered, so replicas do not check in step) it calls each
configured connector's ``health()`` through the registry (which skips a connector
whose circuit is open, and bounds each check with a timeout) and keeps the result.

The report — ``/upstreamz`` and ``connectors { health }`` — is the newest of two
pieces of evidence per connector, each with its time: the last check, and the last
real call (:attr:`gateway.resilience.Upstream.observed`), so a vendor failing live
traffic shows as DOWN at once rather than at the next check.  An open circuit shows
as DOWN whatever the evidence: nothing is sent until it half-opens.

The checker also drives the breakers' recovery: a second task wakes when an open
circuit's reset time has passed and makes its trial call itself — the connector's
``health()`` through the breaker (:meth:`gateway.resilience.Upstream.probe`) — so
a circuit goes half-open, then closed (or open for another period) with no user
request, and the report shows the recovery at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass
from datetime import UTC, datetime

from gateway.models import ConnectorHealth, HealthStatus
from gateway.registry import ConnectorRegistry
from gateway.resilience import BreakerState, Observed

__all__ = ["UpstreamHealth", "UpstreamHealthChecker"]

logger = logging.getLogger("gateway.upstream_health")

#: How far (±) each interval is drawn around the configured one.
JITTER = 0.2
#: The probe looks at the breakers at least this often (no I/O unless one is due)...
PROBE_POLL_SECONDS = 1.0
#: ...and at most this often (while another trial is in flight, it waits for it).
PROBE_FLOOR_SECONDS = 0.05


@dataclass(frozen=True, slots=True)
class UpstreamHealth:
    """One connector's health as reported: the evidence and when it was gathered."""

    health: ConnectorHealth
    #: When the evidence was gathered; ``None`` for an unconfigured connector.
    checked_at: datetime | None
    #: ``check`` (the background checker), ``traffic`` (a real call) or ``breaker``.
    source: str | None

    def age_seconds(self, now: datetime) -> float | None:
        if self.checked_at is None:
            return None
        return round(max(0.0, (now - self.checked_at).total_seconds()), 3)


class UpstreamHealthChecker:
    """Checks every configured upstream every ``interval`` seconds, in the background."""

    def __init__(self, registry: ConnectorRegistry, interval: float) -> None:
        self._registry = registry
        self._interval = interval
        self._checked: dict[str, Observed] = {}
        self._tasks: list[asyncio.Task[None]] = []
        #: Rounds completed, for tests and metrics.
        self.rounds = 0

    async def start(self) -> None:
        """Run one round now (so the first report means something), then loop."""
        await self.check_now()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._loop()), loop.create_task(self._probe_loop())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    @property
    def running(self) -> bool:
        return bool(self._tasks) and not any(task.done() for task in self._tasks)

    async def check_now(self) -> None:
        """One round: every configured connector's ``health()``, concurrently."""
        results = await self._registry.health()
        now = datetime.now(UTC)
        configured = {info.name for info in self._registry.installed() if info.configured}
        for name, health in results.items():
            if name in configured:
                self._checked[name] = Observed(health, now, by_traffic=False)
        self.rounds += 1

    async def probe_now(self) -> None:
        """Each open circuit past its reset time gets its trial now (``health()``)."""
        connectors = {connector.name: connector for connector in self._registry.connectors()}

        async def probe(name: str) -> None:
            health = await self._registry.upstreams[name].probe(connectors[name].health)
            if health is not None:
                self._checked[name] = Observed(health, datetime.now(UTC), by_traffic=False)

        await asyncio.gather(*(probe(name) for name in self._registry.upstreams))

    def _next_probe_in(self) -> float:
        """Seconds until the first open circuit's reset time (bounded both ways)."""
        due = [
            upstream.breaker.retry_in_seconds
            for upstream in self._registry.upstreams.values()
            if upstream.breaker.state is not BreakerState.CLOSED
        ]
        return max(PROBE_FLOOR_SECONDS, min([PROBE_POLL_SECONDS, *due]))

    def report(self) -> dict[str, UpstreamHealth]:
        """Each installed connector's latest health (no upstream is called)."""
        report: dict[str, UpstreamHealth] = {}
        for info in self._registry.installed():
            if not info.configured:
                unconfigured = ConnectorHealth(status=HealthStatus.UNCONFIGURED)
                report[info.name] = UpstreamHealth(unconfigured, None, None)
                continue
            upstream = self._registry.upstreams[info.name]
            breaker = upstream.breaker
            if breaker.state is BreakerState.OPEN:
                detail = f"circuit open; next trial in {breaker.retry_in_seconds:.0f} s"
                health = ConnectorHealth(status=HealthStatus.DOWN, detail=detail)
                report[info.name] = UpstreamHealth(health, datetime.now(UTC), "breaker")
                continue
            evidence = [e for e in (self._checked.get(info.name), upstream.observed) if e]
            if not evidence:  # started after the first round: not checked yet
                report[info.name] = UpstreamHealth(
                    ConnectorHealth(status=HealthStatus.DOWN, detail="not checked yet"), None, None
                )
                continue
            latest = max(evidence, key=lambda e: e.at)
            report[info.name] = UpstreamHealth(
                latest.health, latest.at, "traffic" if latest.by_traffic else "check"
            )
        return report

    async def _loop(self) -> None:
        while True:
            spread = self._interval * JITTER
            await asyncio.sleep(self._interval + random.uniform(-spread, spread))  # noqa: S311
            try:
                await self.check_now()
            except Exception:  # a bug here must not end the checking for good
                logger.exception("upstream health round failed")

    async def _probe_loop(self) -> None:
        while True:
            await asyncio.sleep(self._next_probe_in())
            try:
                await self.probe_now()
            except Exception:  # a bug here must not leave a circuit open for good
                logger.exception("breaker probe failed")
