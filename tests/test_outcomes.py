"""Which failed writes may have been applied: the toolkit's marks and the write path's rule.

A write is "not delivered" (UPSTREAM_UNAVAILABLE) only when the failure proves the
request never reached the platform; everything else is OUTCOME_UNKNOWN.  The
end-to-end behaviour (key kept, audit "unknown", settling) is tested against the
cTrader and DXtrade sandboxes in their plugins' ``test_outcomes.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from gateway.contract import VendorErrorTable, transport_error
from gateway.errors import (
    IdempotencyConflict,
    InsufficientFunds,
    OutcomeUnknown,
    ProtocolError,
    UpstreamBusy,
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
    may_have_applied,
)
from gateway.idempotency import IdempotentResult, outcome_unknown, run_once
from gateway.store import IdempotencyState, Store

TABLE = VendorErrorTable(platform="acme", vendor="ACME")


def test_a_refused_connection_was_not_delivered() -> None:
    for error in (ConnectionRefusedError(), httpx.ConnectError("refused")):
        mapped = transport_error(error, platform="acme")
        assert type(mapped) is UpstreamUnavailable
        assert not may_have_applied(mapped)


def test_a_failure_after_sending_may_have_been_applied() -> None:
    for error in (httpx.ReadError("reset"), httpx.RemoteProtocolError("eof"), TimeoutError()):
        mapped = transport_error(error, platform="acme")
        assert mapped.details["outcome"] == "UNKNOWN"
        assert may_have_applied(mapped)


def test_a_5xx_from_anything_on_the_path_may_have_been_applied() -> None:
    for status in (500, 502, 503, 504):
        assert may_have_applied(TABLE.error(status=status, what="withdrawal"))
    assert not may_have_applied(TABLE.error(status=400, what="withdrawal"))


def test_our_own_refusals_and_the_platforms_are_not_applied() -> None:
    circuit_open = UpstreamUnavailable("acme is unavailable (circuit open); nothing was sent")
    for error in (
        circuit_open,
        UpstreamBusy("another application holds the session"),
        UpstreamRejected("refused"),
        InsufficientFunds("no"),
    ):
        assert not may_have_applied(error)
    for unknown in (UpstreamTimeout("late"), ProtocolError("garbled"), UpstreamError("?")):
        assert may_have_applied(unknown)


def test_outcome_unknown_says_what_to_do_and_keeps_the_facts() -> None:
    lost = TABLE.error(status=502, what="withdrawal")
    error = outcome_unknown(lost, keyed=True)
    assert isinstance(error, OutcomeUnknown) and error.code == "OUTCOME_UNKNOWN"
    assert "SAME idempotencyKey" in error.message
    assert error.details["cause"] == "UPSTREAM_UNAVAILABLE"
    assert error.details["status"] == 502
    assert outcome_unknown(error, keyed=True) is error
    assert "check the platform" in outcome_unknown(lost, keyed=False).message


# -- settling a claim left unknown (run_once against a real SQLite store) ------------

SCOPE, KEY = "money:acme:1", "key-00000001"


class Platform:
    """What the platform did with the key: the test plays the vendor, not our code."""

    def __init__(self) -> None:
        self.applied: list[str] = []
        self.lose_answer = False
        self.applies = True  # False: the request is lost on its way, before it applies
        self.reads = 0

    async def withdraw(self) -> dict[str, str]:
        if self.applies:
            self.applied.append(KEY)
        if self.lose_answer:
            self.lose_answer = False
            raise transport_error(httpx.ReadError("reset"), platform="acme")
        return {"id": KEY}

    async def find(self, claimed_at: datetime) -> dict[str, str] | None:
        self.reads += 1
        return {"id": KEY} if KEY in self.applied else None


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'outcomes.db'}")
    yield opened
    await opened.close()


async def _run(store: Store, platform: Platform, *, lease: float) -> IdempotentResult:
    return await run_once(
        store,
        scope=SCOPE,
        key=KEY,
        operation="withdraw",
        request={"amount": "1"},
        call=platform.withdraw,
        redrive_after=lease,
        settle=platform.find,
    )


async def _lose_first_answer(store: Store, platform: Platform) -> None:
    platform.lose_answer = True
    with pytest.raises(OutcomeUnknown):
        await _run(store, platform, lease=3600)
    record = await store.get_idempotent(SCOPE, KEY)
    assert record is not None and record.state is IdempotencyState.STARTED


async def test_an_applied_write_is_settled_from_the_platform(store: Store) -> None:
    platform = Platform()
    await _lose_first_answer(store, platform)
    settled = await _run(store, platform, lease=3600)
    assert (settled.value, settled.replayed) == ({"id": KEY}, True)
    assert platform.applied == [KEY]
    replay = await _run(store, platform, lease=3600)
    assert replay.replayed and platform.reads == 1  # completed: no further read


async def test_an_absent_write_is_resent_only_once_its_claim_is_stale(store: Store) -> None:
    platform = Platform()
    platform.applies = False
    await _lose_first_answer(store, platform)
    platform.applies = True
    with pytest.raises(IdempotencyConflict):  # young: its sender may still be sending
        await _run(store, platform, lease=3600)
    assert platform.applied == []
    resent = await _run(store, platform, lease=0)
    assert (resent.value, resent.replayed) == ({"id": KEY}, False)
    assert platform.applied == [KEY]


async def test_a_failed_settling_read_stays_unknown(store: Store) -> None:
    platform = Platform()
    await _lose_first_answer(store, platform)

    async def unreachable(claimed_at: datetime) -> None:
        raise transport_error(ConnectionRefusedError(), platform="acme")

    with pytest.raises(OutcomeUnknown):  # never "not delivered": the first try may have moved
        await run_once(
            store,
            scope=SCOPE,
            key=KEY,
            operation="withdraw",
            request={"amount": "1"},
            call=platform.withdraw,
            redrive_after=0,
            settle=unreachable,
        )
    assert platform.applied == [KEY]


async def test_not_delivered_releases_the_key(store: Store) -> None:
    async def refused() -> None:
        raise transport_error(ConnectionRefusedError(), platform="acme")

    with pytest.raises(UpstreamUnavailable):
        await run_once(store, scope=SCOPE, key=KEY, operation="withdraw", request={}, call=refused)
    assert await store.get_idempotent(SCOPE, KEY) is None
