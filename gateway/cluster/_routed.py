"""A single-session connector seen from any replica: local on the holder, routed elsewhere.

The registry hands this proxy to resolvers in place of the guarded connector when
a lease may be held by another replica.  Each call of a read or write method:

* runs here, through the upstream guards, while this replica serves the lease;
* otherwise goes to the holder the lease record names, which runs it through *its*
  guards (timeout, breaker, rate limit, read retries — the only place that talks
  to the upstream) and sends back the result or the typed error;
* waits (bounded by ``[cluster] route_wait_seconds``) while no replica holds the
  lease — a hand-over in progress — and then answers UPSTREAM_UNAVAILABLE, nothing
  sent.  A call the holder provably never received is sent again (to the new
  holder), a write included; a write whose answer was lost never is: it is an
  UPSTREAM_TIMEOUT, outcome unknown, as a timed-out write on the upstream is.

Streams are not routed: events reach every replica through the event log.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from typing import TYPE_CHECKING, Any

from gateway.cluster._codec import decode, decode_error, encode_arguments, method_hints
from gateway.cluster._leases import Lease
from gateway.cluster._router import Delivery
from gateway.connectors import Connector, MethodKind, method_kind
from gateway.errors import UpstreamTimeout, UpstreamUnavailable
from gateway.resilience import GuardedConnector, ResiliencePolicy

if TYPE_CHECKING:
    from gateway.cluster._cluster import Cluster

__all__ = ["RoutedConnector", "local_attribute", "routed_kind"]

logger = logging.getLogger("gateway.cluster")

#: Pause between two looks for a holder during a hand-over.
RETRY_PAUSE = 0.1
#: Added to the holder's own time bound before a routed call counts as lost.
ROUTE_MARGIN_SECONDS = 2.0
#: Methods that manage the connector itself: never called through a route.
LIFECYCLE = frozenset({"start", "close", "session_identity"})


@functools.cache
def routed_kind(cls: type[Connector], name: str) -> MethodKind | None:
    """How a call of ``cls.name`` may be routed: READ, WRITE, or ``None`` (not routed)."""
    if name.startswith("_") or name in LIFECYCLE:
        return None
    if name == "health":
        return MethodKind.READ
    try:
        kind = method_kind(cls, name)
    except LookupError:
        attribute = getattr(cls, name, None)
        # As the guards do: an unmarked coroutine method runs once, as a write.
        return MethodKind.WRITE if inspect.iscoroutinefunction(attribute) else None
    return None if kind is MethodKind.STREAM else kind


def local_attribute(guarded: GuardedConnector, name: str) -> Any:
    """``name`` on this replica: behind the guards, but ``health`` as the connector has it
    (a check is not traffic: it must not trip the breaker)."""
    return getattr(guarded.wrapped if name == "health" else guarded, name)


def route_timeout(policy: ResiliencePolicy, kind: MethodKind) -> float:
    """How long the holder may take: its timeout for each attempt, its backoffs, a margin."""
    attempts = 1 + policy.read_retries if kind is MethodKind.READ else 1
    per_call = policy.timeout_seconds or 60.0
    return per_call * attempts + policy.backoff_max_seconds * (attempts - 1) + ROUTE_MARGIN_SECONDS


class RoutedConnector:
    """Looks like the connector; reads and writes go to whichever replica holds the lease."""

    def __init__(
        self,
        guarded: GuardedConnector,
        lease: Lease,
        cluster: Cluster,
        policy: ResiliencePolicy,
    ) -> None:
        self._guarded = guarded
        self._lease = lease
        self._cluster = cluster
        self._policy = policy

    @property
    def wrapped(self) -> Connector:
        return self._guarded.wrapped

    def __getattr__(self, name: str) -> Any:
        attribute = local_attribute(self._guarded, name)
        kind = routed_kind(type(self._guarded.wrapped), name)
        if kind is None or not callable(attribute):
            return attribute

        @functools.wraps(attribute)
        async def call(*args: Any, **kwargs: Any) -> Any:
            return await self._call(name, kind, attribute, args, kwargs)

        return call

    async def _call(
        self, name: str, kind: MethodKind, local: Any, args: tuple[Any, ...], kwargs: Any
    ) -> Any:
        lease, leases = self._lease, self._cluster.leases
        cls = type(self._guarded.wrapped)
        arguments = encode_arguments(cls, name, args, kwargs)
        # A health check reports the moment: it does not wait out a hand-over.
        wait = 0.0 if name == "health" else self._cluster.route_wait_seconds
        deadline = time.monotonic() + wait
        lost_reads = 0
        why = "no replica holds the session"
        while True:
            if lease.serving:
                lease.enter()
                try:
                    return await local(*args, **kwargs)
                finally:
                    lease.leave()
            if lease.held and not lease.draining:  # ours, its connector still starting
                remaining = deadline - time.monotonic()
                if remaining > 0:
                    try:
                        async with asyncio.timeout(remaining):
                            await lease.ready.wait()
                    except TimeoutError:
                        pass
                    continue
            holder = await leases.holder(lease)
            if holder is not None and holder.address != leases.address:
                sent = await self._cluster.router.send(
                    holder,
                    connector=lease.name,
                    method=name,
                    kind=kind,
                    arguments=arguments,
                    seconds=route_timeout(self._policy, kind),
                )
                if sent.delivery is Delivery.ANSWERED and sent.answer is not None:
                    return self._answer(cls, name, sent.answer)
                leases.forget_holder(lease)
                why = sent.why
                if sent.delivery is Delivery.LOST:
                    if kind is not MethodKind.READ or lost_reads:
                        raise UpstreamTimeout(
                            f"the replica holding the {lease.name} session did not answer "
                            f"{name}; its outcome is unknown",
                            details={"platform": self._guarded.wrapped.platform},
                        )
                    lost_reads += 1  # a read is harmless to repeat, once
                    continue
            elif holder is not None:
                leases.forget_holder(lease)  # the record names us, but we do not serve it
            if time.monotonic() >= deadline:
                if wait:
                    logger.warning("no holder for %s.%s: %s", lease.name, name, why)
                raise UpstreamUnavailable(
                    f"no replica holding the {lease.name} session can be reached; nothing was sent",
                    details={"platform": self._guarded.wrapped.platform},
                )
            await asyncio.sleep(RETRY_PAUSE)

    @staticmethod
    def _answer(cls: type[Connector], name: str, answer: dict[str, Any]) -> Any:
        if "error" in answer:
            raise decode_error(answer["error"])
        if "internal" in answer:
            raise RuntimeError(f"the holder replica failed in {name} (error {answer['internal']})")
        _, hints = method_hints(cls, name)
        return decode(hints.get("return", Any), answer.get("result"))
