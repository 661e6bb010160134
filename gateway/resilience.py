"""Upstream resilience, applied by the gateway around every connector call.

Connectors stay simple: the registry hands resolvers a :class:`GuardedConnector`
that wraps each family method with, per upstream (one connector instance):

* a rate limit (token bucket) so the gateway never floods a platform — in process,
  or shared by every replica through Redis (:class:`SharedTokenBucket`) so N
  replicas put the configured load on a vendor, not N times it;
* a circuit breaker: after ``breaker_failures`` consecutive upstream failures the
  circuit opens and calls fail at once with UPSTREAM_UNAVAILABLE (nothing was
  sent, so an idempotency key is released) until ``breaker_reset_seconds`` pass
  and one trial call succeeds;
* a per-call timeout: UPSTREAM_TIMEOUT, whose outcome is unknown for writes;
* retries with exponential backoff and full jitter — for reads only.  Writes are
  never retried here: they run once under the mutation's idempotency key.

Whether a method is a read, a write or a stream is its mark
(:func:`gateway.connectors.method_kind`), set on the family classes and inherited
by every connector, never guessed from its name.  Streams only check the breaker
when they start.  A connector's own extra methods carry the same marks; a public
coroutine method without one is still guarded but run once, as a write, and
logged: retrying a call whose effect nobody declared could apply it twice.
Domain errors (not found, insufficient funds, rejected...) mean the platform
answered: they count as successes.  Each upstream also keeps its last observed
outcome (:attr:`Upstream.observed`): real traffic is health evidence that costs
the vendor nothing, and the upstream-health report uses it between checks.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import inspect
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway.connectors import Connector, MethodKind, method_kind
from gateway.errors import (
    BrokerGraphError,
    ProtocolError,
    RateLimited,
    UpstreamBusy,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.models import ConnectorHealth, HealthStatus
from gateway.outage import Outage

__all__ = [
    "BreakerState",
    "CircuitBreaker",
    "GuardedConnector",
    "Observed",
    "RateLimiter",
    "ResiliencePolicy",
    "SharedTokenBucket",
    "TokenBucket",
]

logger = logging.getLogger("gateway.resilience")


@dataclass(frozen=True, slots=True)
class ResiliencePolicy:
    """Per-upstream settings; ``[resilience]`` sets defaults, ``[resilience.<name>]`` overrides."""

    timeout_seconds: float = 15.0
    read_retries: int = 2
    backoff_base_seconds: float = 0.1
    backoff_max_seconds: float = 2.0
    breaker_failures: int = 5
    breaker_reset_seconds: float = 30.0
    rate_limit_per_second: float = 0.0  # 0: no limit
    rate_limit_burst: int = 20
    rate_limit_wait_seconds: float = 2.0

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> ResiliencePolicy:
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"unknown resilience settings: {', '.join(unknown)}")
        converted: dict[str, Any] = {}
        for name, value in values.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"resilience setting {name} must be a non-negative number")
            converted[name] = int(value) if known[name].type == "int" else float(value)
        return cls(**converted)


class BreakerState(enum.Enum):
    CLOSED = "CLOSED"
    OPEN = "OPEN"
    HALF_OPEN = "HALF_OPEN"


class CircuitBreaker:
    def __init__(
        self, failures: int, reset_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._threshold = max(1, failures)
        self._reset = reset_seconds
        self._clock = clock
        self._failures = 0
        self._opened_at = 0.0
        self._trial_running = False
        self.state = BreakerState.CLOSED

    def allow(self) -> bool:
        """Whether a call may go upstream now (one trial call when half-open)."""
        if self.state is BreakerState.OPEN and self._clock() - self._opened_at >= self._reset:
            self.state = BreakerState.HALF_OPEN
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.HALF_OPEN and not self._trial_running:
            self._trial_running = True
            return True
        return False

    def record_success(self) -> None:
        self._failures = 0
        self._trial_running = False
        if self.state is not BreakerState.CLOSED:
            logger.info("circuit closed")
        self.state = BreakerState.CLOSED

    def record_failure(self) -> None:
        self._trial_running = False
        self._failures += 1
        if self.state is BreakerState.HALF_OPEN or self._failures >= self._threshold:
            if self.state is not BreakerState.OPEN:
                logger.warning("circuit opened after %d failures", self._failures)
            self.state = BreakerState.OPEN
            self._opened_at = self._clock()

    @property
    def retry_in_seconds(self) -> float:
        if self.state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self._reset - (self._clock() - self._opened_at))


class RateLimiter(Protocol):
    async def acquire(self, max_wait: float) -> None:
        """Take one token, waiting at most ``max_wait`` seconds, else RateLimited."""


def _refused(wait: float) -> RateLimited:
    return RateLimited(
        "the gateway's rate limit for this platform is reached", retry_after=round(wait, 3)
    )


class TokenBucket:
    """The in-process bucket: this replica's calls only."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = rate
        self._capacity = float(max(1, burst))
        self._tokens = self._capacity
        self._clock = clock
        self._updated = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self._capacity, self._tokens + (now - self._updated) * self._rate)
        self._updated = now

    async def acquire(self, max_wait: float) -> None:
        """Take one token, waiting at most ``max_wait`` seconds, else RateLimited."""
        if self._rate <= 0:
            return
        self._refill()
        if self._tokens < 1:
            wait = (1 - self._tokens) / self._rate
            if wait > max_wait:
                raise _refused(wait)
            await asyncio.sleep(wait)
            self._refill()
        self._tokens -= 1


# One atomic step of a token bucket kept in a Redis hash, on Redis's clock (replicas'
# clocks never meet).  A token is *reserved*: the count may go below zero, and the
# caller sleeps the returned wait before calling, so concurrent callers on every
# replica queue in order without polling.  A refusal (wait beyond max_wait) takes
# nothing.  The key expires once the bucket would be full again: absent means full.
# Numbers go back as strings: Redis truncates Lua numbers to integers.
_BUCKET_SCRIPT = """
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local max_wait = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens < 1 then wait = (1 - tokens) / rate end
if wait > max_wait then return {0, tostring(wait)} end
tokens = tokens - 1
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - tokens) / rate * 1000) + 1000)
return {1, tostring(wait)}
"""


class SharedTokenBucket:
    """One bucket for every replica, in Redis under ``key``.

    Fails soft: while Redis is unreachable the replica falls back to its own
    in-process bucket of the same rate (so a cluster of N may send up to N times the
    rate during the outage, rather than failing every call), logged once per outage.
    """

    def __init__(self, client: aioredis.Redis, key: str, rate: float, burst: int) -> None:
        self._script = client.register_script(_BUCKET_SCRIPT)
        self._key = key
        self._rate = rate
        self._capacity = max(1, burst)
        self._local = TokenBucket(rate, burst)
        self.outage = Outage(f"the shared rate limit ({key})", logger)

    async def acquire(self, max_wait: float) -> None:
        if self._rate <= 0:
            return
        if self.outage.skip():
            await self._local.acquire(max_wait)
            return
        try:
            taken, wait = await self._script(
                keys=[self._key], args=[repr(self._rate), self._capacity, repr(max_wait)]
            )
        except (RedisError, OSError) as error:
            self.outage.failed(error)
            await self._local.acquire(max_wait)
            return
        self.outage.reached()
        seconds = float(wait)
        if not taken:
            raise _refused(seconds)
        if seconds > 0:
            await asyncio.sleep(seconds)


@dataclass(frozen=True, slots=True)
class Observed:
    """An upstream's health as last seen, by a check or by a real call, and when."""

    health: ConnectorHealth
    at: datetime
    by_traffic: bool


def _is_upstream_failure(error: Exception) -> bool:
    """Errors that say the platform is unhealthy (as opposed to answering 'no')."""
    if isinstance(error, UpstreamBusy):
        return False  # another application holds the session: the platform is up
    if isinstance(error, UpstreamUnavailable | UpstreamTimeout | ProtocolError):
        return True
    return not isinstance(error, BrokerGraphError)


def _is_retryable(error: Exception) -> bool:
    return isinstance(error, UpstreamUnavailable | UpstreamTimeout) and not isinstance(
        error, UpstreamBusy
    )


class Upstream:
    """The guards of one connector instance."""

    def __init__(self, name: str, policy: ResiliencePolicy) -> None:
        self.name = name
        self.policy = policy
        self.breaker = CircuitBreaker(policy.breaker_failures, policy.breaker_reset_seconds)
        #: In-process unless the services share it across replicas (SharedTokenBucket).
        self.bucket: RateLimiter = TokenBucket(
            policy.rate_limit_per_second, policy.rate_limit_burst
        )
        #: The outcome of the last call that reached (or failed to reach) the platform.
        self.observed: Observed | None = None

    def _observe(self, status: HealthStatus, detail: str | None, started: float) -> None:
        latency = round((time.perf_counter() - started) * 1000, 2)
        health = ConnectorHealth(status=status, detail=detail, latency_ms=latency)
        self.observed = Observed(health, datetime.now(UTC), by_traffic=True)

    def check_breaker(self) -> None:
        if not self.breaker.allow():
            raise UpstreamUnavailable(
                f"{self.name} is unavailable (circuit open); nothing was sent",
                details={
                    "platform": self.name,
                    "retryAfter": round(self.breaker.retry_in_seconds, 1),
                },
            )

    async def call(self, method: str, kind: MethodKind, call: Callable[[], Awaitable[Any]]) -> Any:
        attempts = 1 + (self.policy.read_retries if kind is MethodKind.READ else 0)
        for attempt in range(1, attempts + 1):
            await self.bucket.acquire(self.policy.rate_limit_wait_seconds)
            self.check_breaker()
            started = time.perf_counter()
            try:
                async with asyncio.timeout(self.policy.timeout_seconds or None):
                    result = await call()
            except TimeoutError:
                error: Exception = UpstreamTimeout(
                    f"{self.name} did not answer {method} within {self.policy.timeout_seconds} s",
                    details={"platform": self.name},
                )
            except Exception as raised:  # classified below, then re-raised
                error = raised
            else:
                self.breaker.record_success()
                self._observe(HealthStatus.UP, None, started)
                return result
            if _is_upstream_failure(error) or isinstance(error, UpstreamBusy):
                code = error.code if isinstance(error, BrokerGraphError) else type(error).__name__
                self._observe(HealthStatus.DOWN, code, started)
            else:
                self._observe(HealthStatus.UP, None, started)
            if _is_upstream_failure(error):
                self.breaker.record_failure()
            else:
                self.breaker.record_success()
            if attempt < attempts and _is_retryable(error):
                delay = min(
                    self.policy.backoff_max_seconds,
                    self.policy.backoff_base_seconds * 2 ** (attempt - 1),
                )
                await asyncio.sleep(random.uniform(0, delay))  # noqa: S311 (jitter, not crypto)
                continue
            raise error
        raise AssertionError("unreachable")


class GuardedConnector:
    """A connector seen through its :class:`Upstream` guards; looks like the connector."""

    def __init__(self, connector: Connector, upstream: Upstream) -> None:
        self._connector = connector
        self._upstream = upstream

    @property
    def wrapped(self) -> Connector:
        return self._connector

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._connector, name)
        if name.startswith("_") or not callable(attribute):
            return attribute
        kind = _kind_of(type(self._connector), name)
        if kind is None:
            return attribute
        if kind is MethodKind.STREAM:

            @functools.wraps(attribute)
            def stream(*args: Any, **kwargs: Any) -> Any:
                self._upstream.check_breaker()
                return attribute(*args, **kwargs)

            return stream

        @functools.wraps(attribute)
        async def guarded(*args: Any, **kwargs: Any) -> Any:
            return await self._upstream.call(name, kind, lambda: attribute(*args, **kwargs))

        return guarded


@functools.cache  # also makes the warning below once per method
def _kind_of(cls: type[Connector], name: str) -> MethodKind | None:
    """How the guard calls ``cls.name``: its mark; ``None`` to hand it out unguarded."""
    try:
        return method_kind(cls, name)
    except LookupError:
        pass
    attribute = getattr(cls, name, None)
    if inspect.isasyncgenfunction(attribute):
        return MethodKind.STREAM
    if inspect.iscoroutinefunction(attribute):
        logger.warning(
            "%s.%s has no read/write/stream mark: called once, never retried",
            cls.__qualname__,
            name,
        )
        return MethodKind.WRITE
    # A plain function cannot await the upstream: a helper, nothing to guard.
    return None
