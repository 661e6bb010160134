"""Which connector serves a platform, and whether it declared a capability.

The registry instantiates the connectors that have a settings section, starts
them, and answers the one question dispatch asks: "give me the connector of this
platform that declared this capability, typed as its family".  An unconfigured
connector is listed (health UNCONFIGURED) but never dispatched to.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar, cast

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
    ) -> None:
        self._classes = dict(classes)
        self._instances: dict[str, Connector] = {
            name: cls(contexts[name]) for name, cls in classes.items() if name in contexts
        }
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
        """Start every configured connector; one that fails is logged and shows as DOWN."""
        results = await asyncio.gather(
            *(c.start() for c in self._instances.values()), return_exceptions=True
        )
        for connector, result in zip(self._instances.values(), results, strict=True):
            if isinstance(result, BaseException):
                logger.error("connector %s failed to start: %r", connector.name, result)

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self._instances.values()), return_exceptions=True)

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
        return cast(F, GuardedConnector(connector, self.upstreams[connector.name]))

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
            try:
                health = await asyncio.wait_for(connector.health(), HEALTH_TIMEOUT_SECONDS)
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
