"""Which connector serves a platform, and whether it declared a capability.

The registry instantiates the connectors that have a settings section, starts
them, and answers the one question dispatch asks: "give me the connector of this
platform that declared this capability, typed as its family".  An unconfigured
connector is listed (health UNCONFIGURED) but never dispatched to.

A ``single_session`` connector is started under a lease (:mod:`gateway.cluster`):
only while this replica holds it, closed before it is let go, and built afresh if
the lease comes back.  Where another replica may hold it, dispatch hands out a
:class:`~gateway.cluster.RoutedConnector` that sends reads and writes to the holder.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from gateway.cluster import Cluster, Lease, LeaseHooks, RoutedConnector, serve_call
from gateway.connectors import Capability, Connector, ConnectorContext, family_of
from gateway.errors import CapabilityNotSupported, NotFound
from gateway.models import ConnectorHealth, HealthStatus
from gateway.resilience import BreakerState, GuardedConnector, ResiliencePolicy, Upstream

__all__ = ["ConnectorInfo", "ConnectorRegistry"]

F = TypeVar("F")
logger = logging.getLogger("gateway.registry")
HEALTH_TIMEOUT_SECONDS = 3.0


@dataclass(frozen=True, slots=True)
class ConnectorInfo:
    name: str
    platform: str
    version: str
    capabilities: frozenset[Capability]
    configured: bool


class ConnectorRegistry:
    def __init__(
        self,
        classes: Mapping[str, type[Connector]],
        contexts: Mapping[str, ConnectorContext],
        policies: Mapping[str, ResiliencePolicy] | None = None,
        cluster: Cluster | None = None,
    ) -> None:
        self._classes = dict(classes)
        self._contexts = dict(contexts)
        self._instances: dict[str, Connector] = {
            name: cls(contexts[name]) for name, cls in classes.items() if name in contexts
        }
        #: Leases and routing of single-session connectors (local: held from start).
        self.cluster = cluster or Cluster.local()
        self._leases: dict[str, Lease] = {
            name: self.cluster.leases.add(
                name,
                self.cluster.key(connector.session_identity()),
                LeaseHooks(
                    on_acquired=functools.partial(self._acquired, name),
                    on_lost=functools.partial(self._lost, name),
                ),
            )
            for name, connector in self._instances.items()
            if connector.single_session
        }
        self._closed: set[str] = set()
        self.upstreams: dict[str, Upstream] = {
            name: Upstream(name, (policies or {}).get(name, ResiliencePolicy()))
            for name in self._instances
        }
        self._by_platform: dict[str, Connector] = {}
        for connector in self._instances.values():
            # One configured connector per platform keeps dispatch unambiguous.
            if connector.platform in self._by_platform:
                raise ValueError(f"two configured connectors serve platform {connector.platform}")
            self._by_platform[connector.platform] = connector

    async def start(self) -> None:
        """Start every configured connector; one that fails is logged and shows as DOWN.

        Single-session connectors start under their lease: at once with local leases,
        when this replica wins it otherwise (see :meth:`advertise`).
        """
        plain = [c for name, c in self._instances.items() if name not in self._leases]
        results = await asyncio.gather(*(c.start() for c in plain), return_exceptions=True)
        for connector, result in zip(plain, results, strict=True):
            if isinstance(result, BaseException):
                logger.error("connector %s failed to start: %r", connector.name, result)
        await self.cluster.start()

    def advertise(self, address: str) -> None:
        """Where other replicas reach this one; campaigning for leases begins now."""
        self.cluster.leases.advertise(address)

    async def step_down(self) -> None:
        """Hand the leases this replica holds over at once (graceful shutdown)."""
        await self.cluster.step_down()

    async def close(self) -> None:
        await self.cluster.close()  # closes the held single-session connectors first
        await asyncio.gather(
            *(c.close() for name, c in self._instances.items() if name not in self._leases),
            return_exceptions=True,
        )

    async def _acquired(self, name: str) -> None:
        """This replica won ``name``'s lease: start its connector (a fresh one if it ran)."""
        if name in self._closed:
            connector = self._classes[name](self._contexts[name])
            self._instances[name] = connector
            self._by_platform[connector.platform] = connector
            self._closed.discard(name)
        try:
            await self._instances[name].start()
        except Exception as error:  # shows as DOWN; the lease stays: no replica could do better
            logger.error("connector %s failed to start: %r", name, error)

    async def _lost(self, name: str) -> None:
        """Close ``name``'s connector before its lease is let go."""
        self._closed.add(name)
        try:
            await self._instances[name].close()
        except Exception as error:
            logger.error("connector %s failed to close: %r", name, error)

    def serving(self, name: str) -> tuple[GuardedConnector, Lease] | None:
        """The guarded single-session connector ``name`` and its lease (routed calls)."""
        lease = self._leases.get(name)
        if lease is None:
            return None
        return GuardedConnector(self._instances[name], self.upstreams[name]), lease

    async def serve_routed(self, body: bytes, signature: str | None) -> tuple[int, object]:
        """Run a call another replica routed here (the internal endpoint's handler)."""
        return await serve_call(
            body, signature, secret=self.cluster.secret, seen=self.cluster.seen, lookup=self.serving
        )

    def _dispatch(self, connector: Connector) -> object:
        """The connector behind its guards; routed to the holder where it may be elsewhere."""
        upstream = self.upstreams[connector.name]
        guarded = GuardedConnector(connector, upstream)
        lease = self._leases.get(connector.name)
        if lease is None or not self.cluster.distributed:
            return guarded
        return RoutedConnector(guarded, lease, self.cluster, upstream.policy)

    def installed(self) -> list[ConnectorInfo]:
        return [
            ConnectorInfo(
                name=name,
                platform=cls.platform,
                version=cls.version,
                capabilities=cls.capabilities,
                configured=name in self._instances,
            )
            for name, cls in sorted(self._classes.items())
        ]

    def connectors(self) -> list[Connector]:
        return list(self._instances.values())

    def platforms(self) -> list[str]:
        return sorted(self._by_platform)

    def platforms_with(self, capability: Capability) -> list[str]:
        return sorted(p for p, c in self._by_platform.items() if capability in c.capabilities)

    def has(self, platform: str, capability: Capability) -> bool:
        connector = self._by_platform.get(platform)
        return connector is not None and capability in connector.capabilities

    def require_any(self, platform: str) -> Connector:
        """The configured connector of ``platform``, whatever it declares."""
        connector = self._by_platform.get(platform)
        if connector is None:
            raise NotFound(
                f"no connector is configured for platform {platform!r}",
                details={"platform": platform},
            )
        return connector

    def require(self, platform: str, capability: Capability, family: type[F]) -> F:
        """The connector of ``platform`` as ``family``, behind its guards, or a typed error.

        ``family`` is the capability's family class, or a connector class when a
        plugin calls its own connector's extra (marked) methods: the platform's
        connector must then be an instance of it.
        """
        connector = self.require_any(platform)
        if capability not in connector.capabilities:
            raise CapabilityNotSupported(
                f"platform {platform!r} does not support {capability.value}",
                details={"platform": platform, "capability": capability.value},
            )
        if issubclass(family, Connector):
            if not isinstance(connector, family):
                raise CapabilityNotSupported(
                    f"the {platform!r} connector is not a {family.__name__}",
                    details={"platform": platform, "capability": capability.value},
                )
        else:
            assert family is family_of(capability)
        return cast(F, self._dispatch(connector))

    def only(self, capability: Capability, family: type[F], platform: str | None = None) -> F:
        """The connector for ``capability``; ``platform`` may be omitted when exactly one has it."""
        if platform is not None:
            return self.require(platform, capability, family)
        candidates = self.platforms_with(capability)
        if len(candidates) != 1:
            raise CapabilityNotSupported(
                f"{len(candidates)} configured platforms support {capability.value}; "
                "name the platform",
                details={"capability": capability.value, "platforms": candidates},
            )
        return self.require(candidates[0], capability, family)

    async def health(self) -> dict[str, ConnectorHealth]:
        """Each installed connector's health, checked concurrently with a timeout."""

        async def check(connector: Connector) -> ConnectorHealth:
            breaker = self.upstreams[connector.name].breaker
            if breaker.state is BreakerState.OPEN:
                return ConnectorHealth(
                    status=HealthStatus.DOWN,
                    detail=f"circuit open; next trial in {breaker.retry_in_seconds:.0f} s",
                )
            started = time.perf_counter()
            # A session held elsewhere: the holder's health (it alone talks to the upstream).
            target: Any = connector
            if connector.name in self._leases and self.cluster.distributed:
                target = self._dispatch(connector)
            try:
                health: ConnectorHealth = await asyncio.wait_for(
                    target.health(), HEALTH_TIMEOUT_SECONDS
                )
            except TimeoutError:
                return ConnectorHealth(status=HealthStatus.DOWN, detail="health check timed out")
            except Exception as error:  # a failing upstream must not break /readyz
                return ConnectorHealth(status=HealthStatus.DOWN, detail=type(error).__name__)
            if health.latency_ms is None:
                elapsed = (time.perf_counter() - started) * 1000
                health = ConnectorHealth(
                    status=health.status, detail=health.detail, latency_ms=round(elapsed, 2)
                )
            return health

        names = list(self._instances)
        checks = await asyncio.gather(*(check(self._instances[n]) for n in names))
        report = dict(zip(names, checks, strict=True))
        for name in self._classes:
            report.setdefault(name, ConnectorHealth(status=HealthStatus.UNCONFIGURED))
        return report
