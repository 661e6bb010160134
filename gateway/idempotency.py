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
  moved.  The claim stays STARTED, because guessing could move money twice.

A retry with the key of a claim left STARTED is settled by reading the platform
first, where the connector can (``settle``: e.g. ``find_movement``, the account's
balance operations by the key): found, the retry replays what the platform did;
provably absent and the claim older than the lease (so nobody is still sending
it), the retry takes the claim over and sends again.  Where nothing can be read,
the retry gets IDEMPOTENCY_CONFLICT — until the claim is older than the lease and
the platform dedupes writes by the key (``Connector.idempotent_writes``): then a
retry re-drives the call with the same key.

The gateway also settles such claims itself, with no retry (:mod:`gateway.reconciler`,
from the ``recovery`` stored with the claim): found, the claim completes and a retry
replays it; absent past the lease, the claim is marked NOT_APPLIED, and the next
request with the key (the same request, or it is IDEMPOTENCY_CONFLICT) sends it.
"""

from __future__ import annotations

import dataclasses
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
from gateway.observability import metrics
from gateway.store import AuditEntry, IdempotencyState, Store

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
    #: True when its audit row was written with the claim's completion (``audit``).
    audited: bool = False


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
    settle: Callable[[datetime], Awaitable[Any | None]] | None = None,
    recovery: Mapping[str, Any] | None = None,
    audit: Callable[[IdempotentResult], AuditEntry] | None = None,
) -> IdempotentResult:
    """Run ``call`` unless ``key`` already ran in ``scope``; ``call`` returns JSON-safe data.

    ``settle`` reads the platform for what the key's earlier attempt did, given when
    that attempt was claimed: the JSON-safe result it finds, or None when the
    platform provably holds nothing under the key.  A retry of a claim left STARTED
    (outcome unknown) settles it first: found, the claim completes with it and the
    retry replays it; absent, the claim may be taken over and the call re-sent.

    ``redrive_after`` (seconds) lets a retry take over a claim left STARTED that long
    ago and call again — given for platforms that dedupe writes by the key, and for
    any write ``settle`` can prove absent: a claim younger than that may still be in
    flight, so its retry is refused as IDEMPOTENCY_CONFLICT instead.

    ``recovery`` (JSON-safe) is stored with the claim for the background reconciler:
    what it needs to run ``settle``'s read and audit the settlement on its own.  A
    claim it settled as NOT_APPLIED is taken over by the next request and sent.

    ``audit`` makes the audit row of the result this call completes the claim with;
    the row is written in the completion's transaction (the result says ``audited``).
    """
    fingerprint = request_fingerprint(operation, request)
    claimed, record = await store.begin_idempotent(
        scope, key, operation, fingerprint, recovery=recovery
    )
    if not claimed and record.state is IdempotencyState.NOT_APPLIED:
        claimed = await store.reclaim_idempotent(scope, key)
    elif not claimed and record.state is IdempotencyState.STARTED:
        # Stale as of before the read: a write still in flight when the read began
        # could land after it, unseen, so it must have been older than the lease then.
        stale_before = datetime.now(UTC) - timedelta(seconds=redrive_after or 0)
        if settle is not None:
            found = await _settle(settle, record.created_at)
            if found is not None:
                return await _settled(store, scope, key, found)
        if redrive_after is not None:
            claimed = await store.reclaim_idempotent(scope, key, stale_before)
    if not claimed:
        if record.state is IdempotencyState.COMPLETED and record.response is not None:
            metrics.idempotency_outcome("replayed")
            return IdempotentResult(
                value=record.response.get("value"),
                error=record.response.get("error"),
                replayed=True,
            )
        metrics.idempotency_outcome("conflict")
        raise IdempotencyConflict(
            "a request with this idempotency key is in progress or its outcome is not known "
            "yet; retry later with the same key",
            field=["idempotencyKey"],
        )
    metrics.idempotency_outcome("claimed")
    try:
        value = await call()
    except BrokerGraphError as error:
        if may_have_applied(error):
            metrics.idempotency_outcome("unknown")
            raise outcome_unknown(error, keyed=True) from error  # the claim stays
        if isinstance(error, UpstreamUnavailable):
            await store.release_idempotent(scope, key)  # not delivered: free to retry
            raise
        if isinstance(error, IdempotencyConflict):
            raise
        result = IdempotentResult(value=None, error=error.to_dict(), replayed=False)
        entry = None if audit is None else audit(result)
        await store.complete_idempotent(scope, key, {"error": result.error}, audit=entry)
        return dataclasses.replace(result, audited=entry is not None)
    result = IdempotentResult(value=value, error=None, replayed=False)
    entry = None if audit is None else audit(result)
    try:
        await store.complete_idempotent(scope, key, {"value": value}, audit=entry)
    except IdempotencyConflict:
        # A retry settled it meanwhile, from the platform (the same operation); the
        # refused completion wrote no audit row either.
        return result
    return dataclasses.replace(result, audited=entry is not None)


async def _settle(
    settle: Callable[[datetime], Awaitable[Any | None]], claimed_at: datetime
) -> Any | None:
    """The earlier attempt as the platform shows it; a failed read settles nothing.

    The read failing must not turn into "not delivered": the first attempt's outcome
    is still unknown, and so is this retry's.
    """
    try:
        return await settle(claimed_at)
    except BrokerGraphError as error:
        raise OutcomeUnknown(
            f"the outcome of this key's earlier attempt is still unknown: reading the "
            f"platform failed ({error.message}); retry later with the SAME idempotencyKey",
            details={**error.details, "cause": error.code},
        ) from error


async def _settled(store: Store, scope: str, key: str, found: Any) -> IdempotentResult:
    """Complete an unknown claim with what the platform shows, and replay it."""
    try:
        await store.complete_idempotent(scope, key, {"value": found})
    except IdempotencyConflict:
        record = await store.get_idempotent(scope, key)  # its owner completed it meanwhile
        if record is not None and record.response is not None:
            response = record.response
            return IdempotentResult(response.get("value"), response.get("error"), replayed=True)
    return IdempotentResult(value=found, error=None, replayed=True)


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
