"""Leases on single upstream sessions: what a replica holds, and the local manager.

A :class:`Lease` is this replica's view of one credential's session: whether it
holds it (and since which fencing token), whether its connector has started, and
how many calls are running through it (a graceful hand-over lets them finish).
A :class:`LeaseManager` campaigns for leases and runs two hooks: ``on_acquired``
starts the connector, ``on_lost`` closes it — always *before* the lease is
released, so two replicas never hold the upstream session at once.

:class:`LocalLeases` is the single-process default: every lease is held from
start to close, nobody else could want it.
"""

from __future__ import annotations

import abc
import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from gateway.observability import metrics

__all__ = ["Holder", "Lease", "LeaseHooks", "LeaseManager", "LocalLeases"]

Hook = Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class LeaseHooks:
    """What the registry does when a lease is won (start) and before it is let go (close)."""

    on_acquired: Hook
    on_lost: Hook


@dataclass(frozen=True, slots=True)
class Holder:
    """The replica that holds a lease, as the lease record advertises it."""

    address: str
    token: int


@dataclass(eq=False)
class Lease:
    """One single-session credential as this replica sees it."""

    #: The connector (settings section) whose session this is.
    name: str
    #: The 64-bit key the lease is taken under (a hash of the credential).
    key: int
    hooks: LeaseHooks
    #: The fencing token of this replica's tenure; ``None`` when it does not hold it.
    token: int | None = None
    #: ``time.monotonic()`` after which this replica may no longer assume it holds the
    #: lease unless the engine confirmed it again (the holder fences itself).
    valid_until: float = 0.0
    #: Set while stepping down: new calls go elsewhere, running ones finish.
    draining: bool = False
    #: Calls running through this replica's connector.
    in_flight: int = 0
    #: Set once the connector has started under the current tenure.
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    _idle: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._idle.set()

    @property
    def held(self) -> bool:
        return self.token is not None and time.monotonic() < self.valid_until

    @property
    def serving(self) -> bool:
        """Calls may run on this replica's connector now."""
        return self.held and self.ready.is_set() and not self.draining

    def enter(self) -> None:
        self.in_flight += 1
        self._idle.clear()

    def leave(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self._idle.set()

    async def drained(self, seconds: float) -> None:
        """Wait (bounded) until no call runs through this replica's connector."""
        try:
            async with asyncio.timeout(seconds):
                await self._idle.wait()
        except TimeoutError:
            pass

    def granted(self, token: int, valid_until: float) -> None:
        metrics.lease_held(self.name, True)
        self.token = token
        self.valid_until = valid_until
        self.draining = False

    def revoked(self) -> None:
        metrics.lease_held(self.name, False)
        self.token = None
        self.valid_until = 0.0
        self.ready.clear()


class LeaseManager(abc.ABC):
    """Campaigns for this replica's leases and runs their hooks."""

    #: True when other replicas may hold a lease (calls may have to be routed).
    distributed: bool = False

    def __init__(self) -> None:
        self.leases: dict[str, Lease] = {}
        self.address: str | None = None
        self._running = False

    @property
    def running(self) -> bool:
        """Readiness hook: the manager is started and not closed."""
        return self._running

    def add(self, name: str, key: int, hooks: LeaseHooks) -> Lease:
        lease = Lease(name=name, key=key, hooks=hooks)
        self.leases[name] = lease
        return lease

    def advertise(self, address: str) -> None:
        """Where other replicas reach this one (the internal endpoint's base URL)."""
        self.address = address

    @abc.abstractmethod
    async def start(self) -> None:
        """Begin campaigning (a local manager acquires everything at once)."""

    @abc.abstractmethod
    async def holder(self, lease: Lease) -> Holder | None:
        """The replica holding ``lease`` now, or ``None`` when none does."""

    def forget_holder(self, lease: Lease) -> None:  # noqa: B027  (no cache by default)
        """A routed call found the holder gone: look it up afresh next time."""

    @abc.abstractmethod
    async def step_down(self, drain_seconds: float) -> None:
        """Hand every held lease over at once (graceful shutdown)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close every held connector and release everything; idempotent."""


class LocalLeases(LeaseManager):
    """The single-process default: every lease is held from start to close."""

    async def start(self) -> None:
        self._running = True
        for lease in self.leases.values():
            lease.granted(1, math.inf)
            await lease.hooks.on_acquired()
            lease.ready.set()

    async def holder(self, lease: Lease) -> Holder | None:
        return None

    async def step_down(self, drain_seconds: float) -> None:
        """Nobody to hand over to: the connectors close with the gateway."""

    async def close(self) -> None:
        if not self._running:
            return
        self._running = False
        for lease in self.leases.values():
            if lease.token is not None:
                lease.revoked()
                await lease.hooks.on_lost()
