"""Routing a single-session connector's calls: the three outcomes, the signature, the codec.

A call routed to the holder was answered, provably not delivered (sent again, a
write too), or lost (a write is never sent again: UPSTREAM_TIMEOUT, outcome
unknown; a read is repeated once).  The "holder" here is a raw TCP server that
reads the request and hangs up, or nothing at all, found through a lease manager
that always names it; the holder's side is :func:`serve_call` itself.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar, cast

import orjson
import pytest

from gateway.cluster import (
    Cluster,
    Holder,
    Lease,
    LeaseHooks,
    LeaseManager,
    PostgresLeases,
    RoutedConnector,
)
from gateway.cluster import serve_call as serve
from gateway.cluster._codec import decode, decode_error, encode, encode_error
from gateway.cluster._signing import SeenCalls, sign, verify
from gateway.connectors import Connector, ConnectorContext, MoneyMovement, read, write
from gateway.errors import RateLimited, UpstreamBusy, UpstreamTimeout, UpstreamUnavailable
from gateway.models import BusinessPartner, ConnectorHealth, HealthStatus, PartnerKind
from gateway.resilience import GuardedConnector, ResiliencePolicy, Upstream

SECRET = b"s" * 32


class Probe(Connector):
    """A single-session connector whose methods must only ever run on the holder."""

    name: ClassVar[str] = "probe"
    platform: ClassVar[str] = "probe"
    single_session: ClassVar[bool] = True

    def __init__(self) -> None:
        context = ConnectorContext(
            name="probe",
            settings={},
            store=cast(Any, None),
            reads=cast(Any, None),
            events=cast(Any, None),
            logger=logging.getLogger("probe"),
        )
        super().__init__(context)
        self.calls: list[str] = []

    async def health(self) -> ConnectorHealth:
        return ConnectorHealth(status=HealthStatus.UP)

    @write
    async def move(self, movement: MoneyMovement) -> Decimal:
        self.calls.append("move")
        return movement.amount

    @read
    async def look(self, ids: Sequence[str]) -> Sequence[str | None]:
        self.calls.append("look")
        return [i.upper() if i else None for i in ids]


class OneHolder(LeaseManager):
    """A lease engine that always names one address as the holder (never this process)."""

    distributed = True

    def __init__(self, address: str) -> None:
        super().__init__()
        self._address = address

    async def start(self) -> None:
        self._running = True

    async def holder(self, lease: Lease) -> Holder | None:
        return Holder(self._address, 7)

    async def step_down(self, drain_seconds: float) -> None:
        pass

    async def close(self) -> None:
        self._running = False


async def _nothing() -> None:
    pass


class HangUp:
    """A TCP server that reads each request and closes the connection without answering."""

    def __init__(self) -> None:
        self.requests = 0
        self.server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        self.requests += 1
        writer.close()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


def _routed(address: str, probe: Probe) -> tuple[RoutedConnector, Cluster]:
    leases = OneHolder(address)
    lease = leases.add("probe", 1, LeaseHooks(on_acquired=_nothing, on_lost=_nothing))
    cluster = Cluster(leases, SECRET, route_wait_seconds=0.3)
    policy = ResiliencePolicy(timeout_seconds=1, read_retries=0)
    guarded = GuardedConnector(probe, Upstream("probe", policy))
    return RoutedConnector(guarded, lease, cluster, policy), cluster


@pytest.fixture
async def hang_up() -> AsyncIterator[tuple[HangUp, str]]:
    server = HangUp()
    async with server as address:
        yield server, address


MOVE = MoneyMovement(account_id="1", amount=Decimal("10.50"), idempotency_key="k1")


async def test_a_write_whose_answer_is_lost_is_sent_once_and_reported_unknown(
    hang_up: tuple[HangUp, str],
) -> None:
    server, address = hang_up
    routed, cluster = _routed(address, Probe())
    try:
        with pytest.raises(UpstreamTimeout, match="outcome is unknown"):
            await routed.move(MOVE)
    finally:
        await cluster.close()
    assert server.requests == 1


async def test_a_read_whose_answer_is_lost_is_repeated_once(hang_up: tuple[HangUp, str]) -> None:
    server, address = hang_up
    routed, cluster = _routed(address, Probe())
    try:
        with pytest.raises(UpstreamTimeout):
            await routed.look(["a"])
    finally:
        await cluster.close()
    assert server.requests == 2


async def test_no_reachable_holder_is_unavailable_and_nothing_ran() -> None:
    listener = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    listener.close()
    await listener.wait_closed()  # the port is free again: connections are refused
    probe = Probe()
    routed, cluster = _routed(f"http://127.0.0.1:{port}", probe)
    try:
        with pytest.raises(UpstreamUnavailable, match="nothing was sent"):
            await routed.move(MOVE)
    finally:
        await cluster.close()
    assert probe.calls == []


def _lookup(probe: Probe, lease: Lease) -> Any:
    guarded = GuardedConnector(probe, Upstream("probe", ResiliencePolicy()))
    return lambda name: (guarded, lease) if name == "probe" else None


def _call(method: str, arguments: dict[str, Any], token: int = 3, call_id: str = "c1") -> bytes:
    return orjson.dumps(
        {
            "id": call_id,
            "connector": "probe",
            "method": method,
            "token": token,
            "arguments": arguments,
        }
    )


async def test_the_holder_runs_a_signed_call_once_and_only_under_its_own_token() -> None:
    probe = Probe()
    lease = Lease("probe", 1, LeaseHooks(on_acquired=_nothing, on_lost=_nothing))
    lookup, seen = _lookup(probe, lease), SeenCalls()
    body = _call("move", {"movement": encode(MOVE)})

    async def run(body: bytes, secret: bytes = SECRET) -> tuple[int, dict[str, Any]]:
        return await serve(body, sign(secret, body), secret=SECRET, seen=seen, lookup=lookup)

    assert (await run(body, b"x" * 32))[0] == 401
    assert (await run(body))[0] == 409  # not the holder: nothing ran
    lease.granted(3, math.inf)
    lease.ready.set()
    assert (await run(_call("move", {}, token=2, call_id="c2")))[0] == 409  # another tenure
    assert (await run(_call("start", {}, call_id="c3")))[0] == 400  # lifecycle: never routed
    status, answer = await run(_call("move", {"movement": encode(MOVE)}, call_id="c4"))
    assert (status, answer) == (200, {"result": "10.50"})
    assert (await run(_call("move", {"movement": encode(MOVE)}, call_id="c4")))[0] == 400
    assert probe.calls == ["move"]  # the replayed id was refused
    assert lease.in_flight == 0


def test_signatures_expire_and_bind_the_body() -> None:
    now = time.time()
    header = sign(SECRET, b"{}", now)
    assert verify(SECRET, header, b"{}", now + 29)
    assert not verify(SECRET, header, b"{}", now + 31)
    assert not verify(SECRET, header, b"{ }", now)
    assert not verify(SECRET, None, b"{}", now)


def test_answers_keep_what_idempotency_records_drop() -> None:
    partner = BusinessPartner(
        code="P1",
        name="Ann",
        kind=PartnerKind.INDIVIDUAL,
        platform="qort",
        raw={"Firm": {"BOCode": "P1"}},
    )
    assert decode(Sequence[BusinessPartner | None], encode([partner, None])) == (partner, None)
    assert decode(BusinessPartner, encode(partner)).raw == {"Firm": {"BOCode": "P1"}}
    assert decode(tuple[str, bytes], encode(("a.pdf", b"%PDF\x00"))) == ("a.pdf", b"%PDF\x00")
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert decode(datetime, encode(moment)) == moment
    busy = decode_error(encode_error(UpstreamBusy("held", details={"platform": "qort"})))
    assert type(busy) is UpstreamBusy
    assert busy.details == {"platform": "qort"}
    limited = decode_error(encode_error(RateLimited("slow down", retry_after=1.5)))
    assert isinstance(limited, RateLimited)
    assert limited.retry_after == 1.5


async def test_the_lease_manager_is_a_readiness_check(postgres_url: str) -> None:
    cluster = Cluster(PostgresLeases(postgres_url, lease_seconds=1), SECRET)
    assert not await cluster.ready()
    await cluster.start()
    try:
        assert await cluster.ready()  # ready without holding anything: it routes
    finally:
        await cluster.close()
    assert not await cluster.ready()
