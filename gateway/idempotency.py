"""Run a mutation at most once per idempotency key, and remember its first result.

The key is claimed atomically in the store before anything goes upstream, so two
identical requests racing each other move money once: the loser sees the key in
flight and gets IDEMPOTENCY_CONFLICT, a later retry gets the stored first result.

What happens to the claim when the call fails depends on what we know:

* a domain error (insufficient funds, unknown account, rejected) is a result:
  it is stored and replayed like a success;
* "not delivered" — UPSTREAM_UNAVAILABLE (or UPSTREAM_BUSY) for a request that
  provably never reached the platform (connection refused, circuit open, our own
  limits) — releases the claim so the client may retry, with any key;
* anything after the request may have reached the platform (a lost connection or
  answer, a 5xx from anything on the path, a timeout, an undecodable answer; see
  :func:`gateway.errors.may_have_applied`) is OUTCOME_UNKNOWN: the money may have
  moved.  The claim stays STARTED and retries with the key get
  IDEMPOTENCY_CONFLICT, because guessing could move money twice — until the claim
  is older than the lease and the platform dedupes writes by the key
  (``Connector.idempotent_writes``): then a retry re-drives the call with the same
  key and the platform returns the first result.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.errors import (
    BrokerGraphError,
    IdempotencyConflict,
    InvalidInput,
    OutcomeUnknown,
    UpstreamUnavailable,
    may_have_applied,
)
from gateway.store import IdempotencyState, Store

__all__ = ["IdempotentResult", "check_idempotency_key", "outcome_unknown", "run_once"]

KEY_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{7,127}$")


def check_idempotency_key(key: str) -> str:
    if not KEY_PATTERN.match(key):
        raise InvalidInput(
            "idempotencyKey must be 8-128 characters of letters, digits and _.:- "
            "(a UUID is a good choice)",
            field=["idempotencyKey"],
        )
    return key


@dataclass(frozen=True, slots=True)
class IdempotentResult:
    """The stored outcome: ``value`` on success, ``error`` (a dict) on a domain error."""

    value: Any
    error: Mapping[str, Any] | None
    replayed: bool


def request_fingerprint(operation: str, request: Mapping[str, Any]) -> str:
    canonical = json.dumps({"op": operation, "request": request}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def run_once(
    store: Store,
    *,
    scope: str,
    key: str,
    operation: str,
    request: Mapping[str, Any],
    call: Callable[[], Awaitable[Any]],
    redrive_after: float | None = None,
) -> IdempotentResult:
    """Run ``call`` unless ``key`` already ran in ``scope``; ``call`` returns JSON-safe data.

    ``redrive_after`` (seconds), given only for platforms that dedupe writes by the
    key, lets a retry take over a claim left STARTED that long ago and call again:
    the platform answers with the first result instead of applying it twice.
    """
    fingerprint = request_fingerprint(operation, request)
    claimed, record = await store.begin_idempotent(scope, key, operation, fingerprint)
    if not claimed and record.state is IdempotencyState.STARTED and redrive_after is not None:
        stale_before = datetime.now(UTC) - timedelta(seconds=redrive_after)
        claimed = await store.reclaim_idempotent(scope, key, stale_before)
    if not claimed:
        if record.state is IdempotencyState.COMPLETED and record.response is not None:
            return IdempotentResult(
                value=record.response.get("value"),
                error=record.response.get("error"),
                replayed=True,
            )
        raise IdempotencyConflict(
            "a request with this idempotency key is in progress or its outcome is not known yet",
            field=["idempotencyKey"],
        )
    try:
        value = await call()
    except BrokerGraphError as error:
        if may_have_applied(error):
            raise outcome_unknown(error, keyed=True) from error  # the claim stays
        if isinstance(error, UpstreamUnavailable):
            await store.release_idempotent(scope, key)  # not delivered: free to retry
            raise
        if isinstance(error, IdempotencyConflict):
            raise
        await store.complete_idempotent(scope, key, {"error": error.to_dict()})
        return IdempotentResult(value=None, error=error.to_dict(), replayed=False)
    await store.complete_idempotent(scope, key, {"value": value})
    return IdempotentResult(value=value, error=None, replayed=False)


def outcome_unknown(error: BrokerGraphError, *, keyed: bool) -> OutcomeUnknown:
    """OUTCOME_UNKNOWN for a write that failed with ``error`` after it may have arrived.

    The message says what happened and what the caller should do; ``details`` keep
    the original facts (platform, status, vendor code) and its code as ``cause``.
    """
    if isinstance(error, OutcomeUnknown):
        return error
    if keyed:
        advice = (
            "check the account's balance operations or orders for it, and repeat it only "
            "with the SAME idempotencyKey (never applied twice); a new key may apply it twice"
        )
    else:
        advice = "check the platform before repeating it"
    return OutcomeUnknown(
        f"{error.message}; the request may have been applied: {advice}",
        details={**error.details, "cause": error.code},
    )
