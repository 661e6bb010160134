"""The breaker cannot stick: every permit is settled, the probe recovers an open circuit,
and only upstream-caused failures count (gateway.resilience's "The breaker").

Property tests drive a real :class:`~gateway.resilience.Upstream` with a fake clock
through random interleavings of call outcomes, cancellations, stream starts, probes
and time; a real-socket test reproduces the cancelled half-open trial of the issue.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
import pytest
import websockets
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from websockets.typing import Subprotocol

from gateway import models
from gateway.connectors import MethodKind
from gateway.errors import (
    Conflict,
    InsufficientFunds,
    InvalidInput,
    NotFound,
    PermissionDenied,
    ProtocolError,
    RateLimited,
    UpstreamBusy,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.graphql.ids import encode_id
from gateway.hookspecs import hookimpl
from gateway.models import ConnectorHealth, HealthStatus
from gateway.resilience import (
    BreakerState,
    CircuitBreaker,
    ResiliencePolicy,
    Upstream,
    Verdict,
    verdict,
)
from tests.gateway_fixtures import GatewayUnderTest, open_gateway
from tests.toy.connector import ToyConnector
from tests.toy.sandbox import ToySandbox

RESET = 10.0
THRESHOLD = 2

UPSTREAM_FAILURES: list[Callable[[], BaseException]] = [
    lambda: UpstreamUnavailable("down"),
    lambda: UpstreamTimeout("slow"),
    lambda: ProtocolError("garbage"),
    lambda: ConnectionResetError("reset"),
    lambda: httpx.ReadError("dropped"),
]
CLIENT_ERRORS: list[Callable[[], BaseException]] = [
    lambda: InvalidInput("bad"),
    lambda: NotFound("none"),
    lambda: PermissionDenied("no"),
    lambda: Conflict("taken"),
    lambda: InsufficientFunds("poor"),
    lambda: RateLimited("ours", retry_after=1.0),
    lambda: UpstreamRejected("judged the request"),
    lambda: UpstreamBusy("another application holds the session"),
    lambda: ValueError("a SOAP library rejects a control character"),  # a connector bug
]


@pytest.mark.parametrize("make", UPSTREAM_FAILURES)
def test_upstream_caused_failures_count(make: Callable[[], BaseException]) -> None:
    assert verdict(make()) is Verdict.FAILURE


@pytest.mark.parametrize("make", CLIENT_ERRORS)
def test_client_caused_errors_and_connector_bugs_do_not_count(
    make: Callable[[], BaseException],
) -> None:
    assert verdict(make()) is Verdict.NEUTRAL


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Call:
    """A call in flight at the fake upstream, and whether it is the half-open trial."""

    task: asyncio.Task[object]
    answer: asyncio.Future[object]
    trial: bool = False


@dataclass
class Model:
    """The upstream under test and the calls it has let through."""

    clock: Clock = field(default_factory=Clock)
    upstream: Upstream = field(init=False)
    calls: list[Call] = field(default_factory=list)

    def __post_init__(self) -> None:
        policy = ResiliencePolicy(
            timeout_seconds=0,  # no timeout: the interleaving decides when calls end
            read_retries=0,
            breaker_failures=THRESHOLD,
            breaker_reset_seconds=RESET,
        )
        self.upstream = Upstream("prop", policy, clock=self.clock)

    def snapshot(self) -> tuple[BreakerState, int, float]:
        """What a client error must never change (OPEN past its reset counts as half-open)."""
        breaker = self.upstream.breaker
        state = breaker.state
        if state is BreakerState.OPEN and breaker.retry_in_seconds == 0:
            state = BreakerState.HALF_OPEN
        return state, breaker.failures, breaker.retry_in_seconds

    def check(self) -> None:
        trials = sum(1 for call in self.calls if call.trial)
        assert trials <= 1  # at most one trial in flight
        # The slot is held exactly while its call runs: no leak, no double use.
        assert self.upstream.breaker.trial_in_flight == (trials == 1)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[object] = loop.create_future()
        call = Call(task=None, answer=answer)  # type: ignore[arg-type]  # set just below

        async def upstream_call() -> object:
            call.trial = self.upstream.breaker.state is BreakerState.HALF_OPEN
            self.calls.append(call)
            return await answer

        call.task = loop.create_task(self.upstream.call("get", MethodKind.READ, upstream_call))
        await asyncio.sleep(0)  # admitted (and waiting for its answer) or refused
        if call.task.done():
            assert isinstance(call.task.exception(), UpstreamUnavailable)  # circuit open

    async def finish(self, index: int, outcome: BaseException | None) -> None:
        if not self.calls:
            return
        call = self.calls.pop(index % len(self.calls))
        before = self.snapshot()
        if outcome is None:
            call.answer.set_result("ok")
        else:
            call.answer.set_exception(outcome)
        await asyncio.gather(call.task, return_exceptions=True)
        if outcome is None and call.trial:
            assert self.upstream.breaker.state is BreakerState.CLOSED  # a trial's success
        if outcome is not None and verdict(outcome) is Verdict.NEUTRAL:
            assert self.snapshot() == before  # client errors never change state

    async def cancel(self, index: int) -> None:
        if not self.calls:
            return
        call = self.calls.pop(index % len(self.calls))
        before = self.snapshot()
        call.task.cancel()  # e.g. graphql-core cancelling a sibling of a failed field
        await asyncio.gather(call.task, return_exceptions=True)
        assert self.snapshot() == before

    def stream(self) -> None:
        before = self.snapshot()
        try:
            self.upstream.open_stream(lambda: "a subscription")
        except UpstreamUnavailable:
            return
        # Its start was the trial, if one was due: the slot is back at once.
        assert self.snapshot()[:2] == before[:2]

    async def probe(self, healthy: bool) -> None:
        breaker = self.upstream.breaker
        state, _, wait = self.snapshot()
        due = state is not BreakerState.CLOSED and wait == 0 and not breaker.trial_in_flight

        async def health() -> ConnectorHealth:
            if healthy:
                return ConnectorHealth(status=HealthStatus.UP)
            raise UpstreamUnavailable("still down")

        seen = await self.upstream.probe(health)
        assert (seen is not None) == due
        if due:  # never stuck: a due probe always moves the circuit on
            if healthy:
                assert breaker.state is BreakerState.CLOSED
            else:
                assert breaker.state is BreakerState.OPEN and breaker.retry_in_seconds == RESET


outcomes = st.one_of(
    st.none(),
    st.sampled_from(UPSTREAM_FAILURES).map(lambda make: make()),
    st.sampled_from(CLIENT_ERRORS).map(lambda make: make()),
)
steps = st.one_of(
    st.tuples(st.just("start")),
    st.tuples(st.just("finish"), st.integers(0, 7), outcomes),
    st.tuples(st.just("cancel"), st.integers(0, 7)),
    st.tuples(st.just("stream")),
    st.tuples(st.just("advance"), st.sampled_from([0.0, 1.0, RESET / 2, RESET, 2 * RESET])),
    st.tuples(st.just("probe"), st.booleans()),
)


async def run(script: list[tuple[object, ...]]) -> None:
    model = Model()
    actions: dict[str, Callable[..., Awaitable[None] | None]] = {
        "start": model.start,
        "finish": model.finish,
        "cancel": model.cancel,
        "stream": model.stream,
        "advance": lambda seconds: setattr(model.clock, "now", model.clock.now + seconds),
        "probe": model.probe,
    }
    for name, *arguments in script:
        done = actions[str(name)](*arguments)
        if done is not None:
            await done
        model.check()
    # However the interleaving ended: once its calls end, the probe recovers the circuit.
    while model.calls:
        await model.cancel(0)
    model.clock.now += RESET
    await model.upstream.probe(lambda: _up())
    assert model.upstream.breaker.state is BreakerState.CLOSED
    assert not model.upstream.breaker.trial_in_flight


async def _up() -> ConnectorHealth:
    return ConnectorHealth(status=HealthStatus.UP)


OPEN_THEN_DUE: list[tuple[object, ...]] = [
    *[("start",), ("finish", 0, UpstreamUnavailable("down"))] * THRESHOLD,
    ("advance", RESET),
]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(steps, max_size=50))
@example([*OPEN_THEN_DUE, ("start",), ("cancel", 0), ("start",), ("finish", 0, None)])
@example([*OPEN_THEN_DUE, ("stream",), ("start",), ("finish", 0, NotFound("none"))])
@example([*OPEN_THEN_DUE, ("start",), ("start",), ("probe", True), ("finish", 0, None)])
def test_random_interleavings_never_stick_the_breaker(script: list[tuple[object, ...]]) -> None:
    asyncio.run(run(script))


# -- against a real gateway and the toy sandbox ------------------------------------------

SIBLING_FAILS = """query($id: ID!, $order: ID!) {
  a: account(id: $id) { deals(from: "2024-01-01T00:00:00Z", to: "2024-01-02T00:00:00Z") {
    externalId } }
  b: order(id: $order) { id }
}"""
BALANCE = "query($id: ID!) { account(id: $id) { balance { amount } } }"


async def until(condition: Callable[[], bool], rounds: int = 200) -> None:
    """Wait (bounded) for ``condition``: the gateway's background work is asynchronous."""
    for _ in range(rounds):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached")


def state_of(breaker: CircuitBreaker) -> BreakerState:
    """The state now (mypy would keep an earlier assert's narrowing across calls)."""
    return breaker.state


async def open_the_breaker(gateway: GatewayUnderTest, account: str) -> None:
    breaker = gateway.services.registry.upstreams["toy"].breaker
    gateway.sandbox.fail_next_n = 1000
    for _ in range(2):  # breaker_failures
        await gateway.clear_cache()
        await gateway.query(BALANCE, {"id": account})
    assert breaker.state is BreakerState.OPEN
    gateway.sandbox.fail_next_n = 0


async def test_a_cancelled_half_open_trial_gives_its_slot_back_and_the_probe_recovers(
    tmp_path: Path,
) -> None:
    """The issue's ``{a: account{deals} b: order(id:"bad")}`` while half-open, over real
    sockets; then the background probe closes the circuit with no user request."""
    async with (
        ToySandbox() as sandbox,
        open_gateway(
            sandbox,
            tmp_path,
            resilience={
                "timeout_seconds": 5,
                "read_retries": 0,
                "breaker_failures": 2,
                "breaker_reset_seconds": 0.3,
            },
        ) as gateway,
    ):
        checker = gateway.services.upstream_health
        breaker = gateway.services.registry.upstreams["toy"].breaker
        account = gateway.account_id("1001")
        await checker.stop()  # first the users' trial: no probe may take it
        await open_the_breaker(gateway, account)
        sandbox.latency_seconds = 0.5  # healthy but slow: a sibling fails first
        await until(lambda: breaker.retry_in_seconds == 0)
        orders = sandbox.calls["GET /orders"]
        # The query: the bad id is the client's fault, refused before any call of
        # its own. Its sibling's read may already have taken the trial (a warm-path
        # lookup runs in the resolver's task): it runs on in its fetch task and gives the
        # slot back with its outcome, so the circuit is not left holding a dead trial.
        _, body = await gateway.query(SIBLING_FAILS, {"id": account, "order": "bad"})
        assert body["data"] is None
        assert [e["extensions"]["code"] for e in body["errors"]] == ["INVALID_INPUT"]
        assert sandbox.calls["GET /orders"] == orders
        await until(lambda: not breaker.trial_in_flight)
        sandbox.latency_seconds = 0
        await open_the_breaker(gateway, account)  # half-open again for the next case
        sandbox.latency_seconds = 0.5
        await until(lambda: breaker.retry_in_seconds == 0)
        # A well-formed id: one field takes the trial, its sibling is refused "circuit
        # open" (non-null), so graphql-core cancels the field that holds the trial.
        order = encode_id("Order", "toy", "1001", "no-such-order")
        _, body = await gateway.query(SIBLING_FAILS, {"id": account, "order": order})
        assert body["data"] is None
        assert body["errors"][0]["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
        # The read itself runs on in its own task (other requests may have joined it:
        # gateway.cache.SingleFlight), and gives the slot back with its outcome: the
        # circuit is never left half-open with a trial nobody will settle.
        await until(lambda: not breaker.trial_in_flight)
        assert state_of(breaker) is BreakerState.CLOSED
        sandbox.latency_seconds = 0
        await gateway.clear_cache()
        _, body = await gateway.query(BALANCE, {"id": account})  # the next trial
        assert body["data"]["account"]["balance"]["amount"], body
        assert state_of(breaker) is BreakerState.CLOSED

        # Open again; now nobody calls: the background probe recovers the circuit.
        await checker.start()
        await open_the_breaker(gateway, account)
        reads, checks = sandbox.calls["GET /accounts"], sandbox.calls["GET /health"]
        await until(lambda: breaker.state is BreakerState.CLOSED)
        assert sandbox.calls["GET /health"] > checks  # the probe's trial
        assert sandbox.calls["GET /accounts"] == reads  # no user request did it
        upstreams = await gateway.http.get(f"{gateway.url}/upstreamz")
        assert upstreams.status_code == 200
        assert upstreams.json()["connectors"]["toy"]["status"] == "UP"


class InputBugToyConnector(ToyConnector):
    """A toy whose deals read trips over its input the way QORT's SOAP layer did over a
    control character: a plain ``ValueError`` from a library, before anything is sent."""

    async def get_deals(
        self, account_id: str, start: datetime, end: datetime
    ) -> Sequence[models.Deal]:
        raise ValueError("All strings must be XML compatible: no control characters")


class InputBugPlugin:
    @hookimpl
    def brokergraph_connectors(self) -> list[type[ToyConnector]]:
        return [InputBugToyConnector]


async def test_a_connector_bug_on_odd_input_is_internal_and_never_opens_the_breaker(
    tmp_path: Path,
) -> None:
    async with (
        ToySandbox() as sandbox,
        open_gateway(
            sandbox,
            tmp_path,
            plugin=InputBugPlugin(),
            resilience={"read_retries": 0, "breaker_failures": 2, "breaker_reset_seconds": 30},
        ) as gateway,
    ):
        breaker = gateway.services.registry.upstreams["toy"].breaker
        account = gateway.account_id("1001")
        deals = """query($id: ID!) { account(id: $id) {
              deals(from: "2024-01-01T00:00:00Z", to: "2024-01-02T00:00:00Z") { externalId } } }"""
        for _ in range(5):  # the five requests, over twice the threshold
            await gateway.clear_cache()
            _, body = await gateway.query(deals, {"id": account})
            assert body["errors"][0]["extensions"]["code"] == "INTERNAL"
        assert breaker.state is BreakerState.CLOSED and breaker.failures == 0
        await gateway.clear_cache()
        _, body = await gateway.query(BALANCE, {"id": account})  # everyone else served
        assert body["data"]["account"]["balance"]["amount"], body


async def test_a_subscription_started_half_open_does_not_keep_the_trial_slot(
    tmp_path: Path,
) -> None:
    async with (
        ToySandbox() as sandbox,
        open_gateway(
            sandbox,
            tmp_path,
            resilience={"read_retries": 0, "breaker_failures": 2, "breaker_reset_seconds": 0.3},
        ) as gateway,
    ):
        await gateway.services.upstream_health.stop()  # the stream must be the trial
        breaker = gateway.services.registry.upstreams["toy"].breaker
        account = gateway.account_id("1001")
        await open_the_breaker(gateway, account)
        await until(lambda: breaker.retry_in_seconds == 0)
        async with websockets.connect(
            gateway.websocket_url, subprotocols=[Subprotocol("graphql-transport-ws")]
        ) as socket:
            auth = {"Authorization": f"Bearer {gateway.tokens['admin']}"}
            await socket.send(json.dumps({"type": "connection_init", "payload": auth}))
            assert json.loads(await socket.recv())["type"] == "connection_ack"
            query = "subscription($id: ID!) { orderEvents(accountId: $id) { sequence } }"
            subscribe = {"query": query, "variables": {"id": account}}
            await socket.send(json.dumps({"id": "1", "type": "subscribe", "payload": subscribe}))
            # Attached upstream: its start went through the half-open circuit.
            await until(lambda: sandbox.calls["WS /accounts/{id}/events"] == 1)
            assert state_of(breaker) is BreakerState.HALF_OPEN
            # The stream lives on, and the slot is free for the next call: a trial.
            assert not breaker.trial_in_flight
            await gateway.clear_cache()
            _, body = await gateway.query(BALANCE, {"id": account})
            assert body["data"]["account"]["balance"]["amount"], body
            assert state_of(breaker) is BreakerState.CLOSED
