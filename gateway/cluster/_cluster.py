"""What a replica needs to share single upstream sessions: leases, routing, the secret."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gateway.cluster._leases import LeaseManager, LocalLeases
from gateway.cluster._postgres import PostgresLeases
from gateway.cluster._router import Router
from gateway.cluster._signing import SeenCalls

if TYPE_CHECKING:
    from gateway.config import Settings

__all__ = ["Cluster", "lease_key", "open_cluster"]

logger = logging.getLogger("gateway.cluster")

DEFAULT_LEASE_SECONDS = 5.0
#: How long a graceful hand-over lets calls running on the holder finish.
DRAIN_SECONDS = 5.0


def lease_key(namespace: str, identity: str) -> int:
    """The signed 64-bit advisory key of a credential (a hash: the identity stays here)."""
    digest = hashlib.blake2b(f"{namespace}\0{identity}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@dataclass
class Cluster:
    """This replica's leases and, when they are distributed, the road to their holders."""

    leases: LeaseManager
    secret: bytes
    namespace: str = "bg"
    #: How long a call waits for a holder to appear (a hand-over) before UPSTREAM_UNAVAILABLE.
    route_wait_seconds: float = DEFAULT_LEASE_SECONDS
    seen: SeenCalls = field(default_factory=SeenCalls)
    _router: Router | None = None

    @classmethod
    def local(cls) -> Cluster:
        return cls(LocalLeases(), secrets.token_bytes(32))

    @property
    def distributed(self) -> bool:
        return self.leases.distributed

    @property
    def running(self) -> bool:
        """Readiness hook: the lease manager is started and campaigning."""
        return self.leases.running

    async def ready(self) -> bool:
        """The readiness check of the lease manager (``Readiness.add("leases", …)``).

        True while it runs — whether or not this replica holds any lease: a replica
        that routes to the holder serves as well as the holder does.
        """
        return self.running

    @property
    def router(self) -> Router:
        if self._router is None:
            self._router = Router(self.secret)
        return self._router

    def key(self, identity: str) -> int:
        return lease_key(self.namespace, identity)

    async def start(self) -> None:
        await self.leases.start()

    async def step_down(self) -> None:
        """Hand every held lease over now (graceful shutdown)."""
        await self.leases.step_down(DRAIN_SECONDS)

    async def close(self) -> None:
        await self.leases.close()
        if self._router is not None:
            await self._router.close()


def _secret(settings: Settings) -> bytes:
    configured = settings.cluster.secret
    if configured is not None:
        return configured.reveal().encode()
    if settings.cache.secret is not None:
        # The cache secret is already the same on every replica: derive a separate key.
        base = settings.cache.secret.reveal().encode()
        return hmac.new(base, b"brokergraph cluster routing", hashlib.sha256).digest()
    logger.warning(
        "[cluster] secret (or [cache] secret) is not set: this replica cannot route calls "
        "to, or serve calls from, other replicas; set the same secret on every replica"
    )
    return secrets.token_bytes(32)


def open_cluster(settings: Settings) -> Cluster:
    """Leases in PostgreSQL when the store is PostgreSQL (replicas), else local ones."""
    cluster_settings = settings.cluster
    lease_seconds = cluster_settings.lease_seconds
    if not settings.store.url.startswith("postgresql"):
        return Cluster(LocalLeases(), secrets.token_bytes(32), cluster_settings.namespace)
    return Cluster(
        PostgresLeases(settings.store.url, lease_seconds=lease_seconds),
        _secret(settings),
        cluster_settings.namespace,
        route_wait_seconds=cluster_settings.route_wait_seconds or lease_seconds,
    )
