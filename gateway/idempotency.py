"""Run a mutation at most once per idempotency key, and remember its first result.

The key is claimed atomically in the store before anything goes upstream, so two
identical requests racing each other move money once: the loser sees the key in
flight and gets IDEMPOTENCY_CONFLICT, a later retry gets the stored first result.

What happens to the claim when the call fails depends on what we know:

* a domain error (insufficient funds, unknown account, rejected) is a result:
  it is stored and replayed like a success;
* UPSTREAM_UNAVAILABLE means the request was not delivered: the claim is
  released so the client may retry with the same key;
* anything else (timeout, crash) leaves the outcome unknown: the claim stays
  STARTED and retries get IDEMPOTENCY_CONFLICT, because guessing could move money
  twice — until the claim is older than the lease and the platform dedupes writes
  by the key (``Connector.idempotent_writes``): then a retry re-drives the call
  with the same key and the platform returns the first result.
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
    UpstreamError,
    UpstreamRejected,
    UpstreamUnavailable,
)
from gateway.store import IdempotencyState, Store

__all__ = ["IdempotentResult", "check_idempotency_key", "run_once"]

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
    except UpstreamUnavailable:
        await store.release_idempotent(scope, key)
        raise
    except BrokerGraphError as error:
        outcome_unknown = isinstance(error, UpstreamError) and not isinstance(
            error, UpstreamRejected
        )
        if outcome_unknown or isinstance(error, IdempotencyConflict):
            raise
        await store.complete_idempotent(scope, key, {"error": error.to_dict()})
        return IdempotentResult(value=None, error=error.to_dict(), replayed=False)
    await store.complete_idempotent(scope, key, {"value": value})
    return IdempotentResult(value=value, error=None, replayed=False)
