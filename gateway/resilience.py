"""Upstream resilience, applied by the gateway around every connector call.

Connectors stay simple: the registry hands resolvers a :class:`GuardedConnector`
that wraps each family method with, per upstream (one connector instance):

* a rate limit (token bucket) so the gateway never floods a platform — in process,
  or shared by every replica through Redis (:class:`SharedTokenBucket`) so N
  replicas put the configured load on a vendor, not N times it;
* a circuit breaker: after ``breaker_failures`` consecutive upstream failures the
  circuit opens and calls fail at once with UPSTREAM_UNAVAILABLE (nothing was
  sent, so an idempotency key is released) until ``breaker_reset_seconds`` pass
  and one trial call succeeds (see "The breaker" below);
* a per-call timeout: UPSTREAM_TIMEOUT, whose outcome is unknown for writes;
* retries with exponential backoff and full jitter — for reads only.  Writes are
  never retried here: they run once under the mutation's idempotency key.

Whether a method is a read, a write or a stream is its mark
(:func:`gateway.connectors.method_kind`), set on the family classes and inherited
by every connector, never guessed from its name.  Streams only check the breaker
when they start.  A connector's own extra methods carry the same marks; a public
coroutine method without one is still guarded but run once, as a write, and
logged: retrying a call whose effect nobody declared could apply it twice.
Each upstream also keeps its last observed outcome (:attr:`Upstream.observed`):
real traffic is health evidence that costs the vendor nothing, and the
upstream-health report uses it between checks.

The breaker
-----------
Every call through the breaker holds a :class:`Permit` and settles it exactly once,
in a ``finally``: so the half-open *trial slot* (one permit at a time) always comes
back — on success, on failure, on a client error, and on cancellation (a sibling
non-null field failed and graphql-core cancelled the task).  A stream's trial is
its start: the slot is given back as soon as the iterator exists, never held for a
subscription's lifetime.  The trial need not come from user traffic:
:meth:`Upstream.probe` (driven by the upstream-health checker) makes it with the
connector's ``health()`` once the reset time has passed, so an open circuit moves
on — half-open, then closed or open again — with no request at all.

What a settled call counts as (:func:`verdict`):

* **failure** (counts toward opening; re-opens a half-open circuit) — only what
  the *upstream* caused: UPSTREAM_UNAVAILABLE (but not UPSTREAM_BUSY),
  UPSTREAM_TIMEOUT (ours or the connector's), UPSTREAM_PROTOCOL_ERROR, any other
  ``UpstreamError`` except UPSTREAM_REJECTED (an outcome-unknown failure after the
  request was sent is the platform's or the path's doing), and a transport
  exception that escaped the connector unmapped (``OSError``, ``EOFError``,
  httpx's ``TransportError``, websockets' and zeep's transport errors);
* **success** (resets the count; closes a half-open circuit) — the call returned;
* **neutral** (changes nothing but gives the trial slot back) — everything that
  judges the *request* rather than the platform: INVALID_INPUT, NOT_FOUND,
  PERMISSION_DENIED, CONFLICT, INSUFFICIENT_FUNDS, RATE_LIMITED (our bucket, or a
  vendor throttling us: it answered), CAPABILITY_NOT_SUPPORTED, UPSTREAM_REJECTED,
  UPSTREAM_BUSY (another application holds the session: the platform is up, but
  busy is not healthy either);
  cancellation; and any other exception a connector raises.  That last one is a
  bug of the connector (a SOAP library rejecting a control character, a
  ``KeyError`` on input it did not expect): the caller sees it masked as INTERNAL
  and it is logged there, but it must not open the circuit for every tenant
  because one client sent odd input.  A neutral outcome is no evidence of health
  either, so it does not close a half-open circuit: the next call or the probe is
  the trial.
"""

from __future__ import annotations

import asyncio
import contextvars
import enum
import functools
import inspect
import logging
import random
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway.connectors import Connector, MethodKind, method_kind
from gateway.errors import (
    BrokerGraphError,
    RateLimited,
    UpstreamBusy,
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.models import ConnectorHealth, HealthStatus
from gateway.observability import metrics, tracing
from gateway.observability._context import note_upstream_call
from gateway.outage import Outage

__all__ = [
    "BreakerState",
    "CircuitBreaker",
    "GuardedConnector",
    "Observed",
    "Permit",
    "RateLimiter",
    "ResiliencePolicy",
    "SharedTokenBucket",
    "TokenBucket",
    "Upstream",
    "UpstreamPayer",
    "Verdict",
    "upstream_payer",
    "verdict",
]

T = TypeVar("T")

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


class Verdict(enum.Enum):
    """What a settled call tells the breaker (see the module docstring)."""

    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    NEUTRAL = "NEUTRAL"


@dataclass(frozen=True, slots=True, eq=False)
class Permit:
    """Leave to make one call; a ``trial`` permit is the half-open circuit's only slot.

    Compared by identity: only the permit that took the slot gives it back.
    """

    trial: bool


class CircuitBreaker:
    def __init__(
        self,
        failures: int,
        reset_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerState], None] | None = None,
    ) -> None:
        """``on_change``: told each state entered (the metrics' transitions)."""
        self._on_change = on_change
        self._threshold = max(1, failures)
        self._reset = reset_seconds
        self._clock = clock
        self._failures = 0
        self._opened_at = 0.0
        #: The permit holding the trial slot, until it is settled.
        self._trial: Permit | None = None
        self.state = BreakerState.CLOSED

    @property
    def failures(self) -> int:
        """Upstream failures since the last success."""
        return self._failures

    @property
    def trial_in_flight(self) -> bool:
        return self._trial is not None

    def allow(self) -> Permit | None:
        """Leave for a call to go upstream now, or ``None`` (one trial when half-open).

        The permit must be settled (:meth:`settle`) whatever happens to the call.
        """
        if self.state is BreakerState.OPEN and self._clock() - self._opened_at >= self._reset:
            self._move(BreakerState.HALF_OPEN)
        if self.state is BreakerState.CLOSED:
            return Permit(trial=False)
        if self.state is BreakerState.HALF_OPEN and self._trial is None:
            self._trial = Permit(trial=True)
            return self._trial
        return None

    def settle(self, permit: Permit, verdict: Verdict) -> None:
        """The call made under ``permit`` is over; the trial slot comes back if it held it."""
        if permit is self._trial:
            self._trial = None
        if verdict is Verdict.SUCCESS:
            self._failures = 0
            if self.state is not BreakerState.CLOSED:
                logger.info("circuit closed")
                self._move(BreakerState.CLOSED)
        elif verdict is Verdict.FAILURE:
            self._failures += 1
            if self.state is BreakerState.HALF_OPEN or self._failures >= self._threshold:
                if self.state is not BreakerState.OPEN:
                    logger.warning("circuit opened after %d failures", self._failures)
                    self._move(BreakerState.OPEN)
                self._opened_at = self._clock()

    def _move(self, state: BreakerState) -> None:
        self.state = state
        if self._on_change is not None:
            self._on_change(state)

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


class UpstreamPayer(Protocol):
    """Whose budget of upstream calls a read in this context draws from (a viewer's)."""

    @property
    def key(self) -> str:
        """Who pays: two payers with one key draw from one budget."""
        ...

    async def pay(self) -> None:
        """Take one upstream call from the budget now, else raise RateLimited."""


#: The payer of the reads started in this context: set by a request's loaders around
#: each read they start, inherited by every task the read spawns (a connector's
#: sub-reads); ``None``: nobody is charged (the gateway's own checks).
upstream_payer: contextvars.ContextVar[UpstreamPayer | None] = contextvars.ContextVar(
    "upstream_payer", default=None
)


@dataclass(frozen=True, slots=True)
class Observed:
    """An upstream's health as last seen, by a check or by a real call, and when."""

    health: ConnectorHealth
    at: datetime
    by_traffic: bool


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Transport failures a connector let escape unmapped: the path failed, not the input.

    The libraries are looked up in ``sys.modules``: an error cannot come from a
    library nobody loaded.
    """
    found: list[type[BaseException]] = [OSError, EOFError]
    for module, name in (
        ("httpx", "TransportError"),
        ("websockets.exceptions", "WebSocketException"),
        ("zeep.exceptions", "TransportError"),
    ):
        cls = getattr(sys.modules.get(module), name, None)
        if isinstance(cls, type) and issubclass(cls, BaseException):
            found.append(cls)
    return tuple(found)


def verdict(error: BaseException) -> Verdict:
    """Whether a call that raised ``error`` counts against the upstream (module docstring)."""
    if isinstance(error, UpstreamBusy | UpstreamRejected):
        return Verdict.NEUTRAL
    if isinstance(error, UpstreamError):
        return Verdict.FAILURE
    if isinstance(error, BrokerGraphError):
        return Verdict.NEUTRAL  # the request was judged, not the platform
    if isinstance(error, _transport_errors()):
        return Verdict.FAILURE
    return Verdict.NEUTRAL  # cancellation, or a bug of the connector


def _outcome_label(error: Exception, outcome: Verdict) -> str:
    """A failed call's outcome label: its error code, never its message."""
    if isinstance(error, BrokerGraphError):
        return error.code
    return "TRANSPORT_ERROR" if outcome is Verdict.FAILURE else "CONNECTOR_ERROR"


def _is_retryable(error: Exception) -> bool:
    return isinstance(error, UpstreamUnavailable | UpstreamTimeout) and not isinstance(
        error, UpstreamBusy
    )


class Upstream:
    """The guards of one connector instance."""

    def __init__(
        self, name: str, policy: ResiliencePolicy, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.name = name
        self.policy = policy
        self.breaker = CircuitBreaker(
            policy.breaker_failures,
            policy.breaker_reset_seconds,
            clock=clock,
            on_change=lambda state: metrics.breaker_moved(name, state.value),
        )
        metrics.BREAKER_STATE.labels(name).set(0)  # closed; a transition only when it moves
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

    def admit(self) -> Permit:
        """A permit to call now, or UPSTREAM_UNAVAILABLE (circuit open; nothing was sent)."""
        permit = self.breaker.allow()
        if permit is None:
            raise UpstreamUnavailable(
                f"{self.name} is unavailable (circuit open); nothing was sent",
                details={
                    "platform": self.name,
                    "retryAfter": round(self.breaker.retry_in_seconds, 1),
                },
            )
        return permit

    def open_stream(self, start: Callable[[], T]) -> T:
        """Start a stream: its start is the call the breaker admits, and the slot comes
        straight back — a subscription lives for hours and must not hold the only trial."""
        permit = self.admit()
        outcome = Verdict.NEUTRAL
        try:
            return start()
        except Exception as error:
            outcome = verdict(error)
            raise
        finally:
            self.breaker.settle(permit, outcome)

    async def call(self, method: str, kind: MethodKind, call: Callable[[], Awaitable[Any]]) -> Any:
        attempts = 1 + (self.policy.read_retries if kind is MethodKind.READ else 0)
        for attempt in range(1, attempts + 1):
            await self.bucket.acquire(self.policy.rate_limit_wait_seconds)
            try:
                return await self._once(method, call)
            except Exception as error:
                if attempt < attempts and _is_retryable(error):
                    delay = min(
                        self.policy.backoff_max_seconds,
                        self.policy.backoff_base_seconds * 2 ** (attempt - 1),
                    )
                    await asyncio.sleep(random.uniform(0, delay))  # noqa: S311 (jitter)
                    continue
                raise
        raise AssertionError("unreachable")

    async def _once(self, method: str, call: Callable[[], Awaitable[Any]]) -> Any:
        """One attempt under one permit, settled whatever happens (cancellation too)."""
        try:
            permit = self.admit()
        except UpstreamUnavailable:
            metrics.upstream_call(self.name, method, "BREAKER_OPEN", None)
            raise
        outcome = Verdict.NEUTRAL  # until known: a cancelled call gives its slot back
        label = "CANCELLED"  # the metrics' outcome, likewise
        started = time.perf_counter()
        note_upstream_call()
        try:
            with tracing.upstream_span(self.name, method):
                try:
                    async with asyncio.timeout(self.policy.timeout_seconds or None):
                        result = await call()
                except TimeoutError:
                    raise UpstreamTimeout(
                        f"{self.name} did not answer {method} within "
                        f"{self.policy.timeout_seconds} s",
                        details={"platform": self.name},
                    ) from None
        except Exception as error:
            outcome = verdict(error)
            label = _outcome_label(error, outcome)
            if outcome is Verdict.FAILURE or isinstance(error, UpstreamBusy):
                code = error.code if isinstance(error, BrokerGraphError) else type(error).__name__
                self._observe(HealthStatus.DOWN, code, started)
            elif isinstance(error, BrokerGraphError):
                self._observe(HealthStatus.UP, None, started)  # the platform answered "no"
            else:
                logger.warning(
                    "%s.%s raised %s: a connector bug, not counted against the upstream",
                    self.name,
                    method,
                    type(error).__name__,
                )
            raise
        else:
            outcome, label = Verdict.SUCCESS, "ok"
            self._observe(HealthStatus.UP, None, started)
            return result
        finally:
            self.breaker.settle(permit, outcome)
            metrics.upstream_call(self.name, method, label, time.perf_counter() - started)

    async def probe(
        self, check: Callable[[], Awaitable[ConnectorHealth]]
    ) -> ConnectorHealth | None:
        """The trial of an open circuit, made by the gateway itself with ``check``
        (the connector's ``health()``), so the circuit recovers with no user request.

        ``None`` when there is nothing to try: the circuit is closed, its reset time
        has not passed, or a trial is already in flight.  Otherwise the health seen:
        UP closes the circuit, anything else (DOWN, an error, no answer in time)
        opens it for another reset period.
        """
        if self.breaker.state is BreakerState.CLOSED:
            return None
        permit = self.breaker.allow()
        if permit is None:
            return None
        outcome = Verdict.NEUTRAL  # cancelled (the checker stopping): the slot comes back
        started = time.perf_counter()
        try:
            try:
                async with asyncio.timeout(self.policy.timeout_seconds or None):
                    health = await check()
            except Exception as error:  # any failure of a check is a failed trial
                health = ConnectorHealth(status=HealthStatus.DOWN, detail=type(error).__name__)
            if health.latency_ms is None:
                latency = round((time.perf_counter() - started) * 1000, 2)
                health = ConnectorHealth(
                    status=health.status, detail=health.detail, latency_ms=latency
                )
            outcome = Verdict.SUCCESS if health.status is HealthStatus.UP else Verdict.FAILURE
            logger.info("%s: circuit trial by probe: %s", self.name, health.status.value)
            return health
        finally:
            self.breaker.settle(permit, outcome)


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
                return self._upstream.open_stream(lambda: attribute(*args, **kwargs))

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
