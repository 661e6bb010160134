"""Which failed writes may have been applied: the toolkit's marks and the write path's rule.

A write is "not delivered" (UPSTREAM_UNAVAILABLE) only when the failure proves the
request never reached the platform; everything else is OUTCOME_UNKNOWN.  The
end-to-end behaviour (key kept, audit "unknown", settling) is tested against the
cTrader and DXtrade sandboxes in their plugins' ``test_outcomes.py``.
"""

from __future__ import annotations

import httpx

from gateway.contract import VendorErrorTable, transport_error
from gateway.errors import (
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
from gateway.idempotency import outcome_unknown

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
