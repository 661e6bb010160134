"""Settling unknown outcomes in the background, without waiting for a client retry.

A keyed write whose answer was lost is OUTCOME_UNKNOWN: its idempotency claim stays
STARTED (:mod:`gateway.idempotency`).  With the claim, the write path stores a
:class:`Recovery` — the platform, account and ``@read`` finder that look the write
up by its key (money: ``find_movement``), who asked and what — so each replica runs
one reconciler: every ``interval`` seconds (jittered) it takes the claims left
STARTED longer than ``grace`` and reads the platform with the very read a same-key
retry would make.  Then, for each claim:

* **found** — the platform applied it: the claim completes with what the platform
  shows, so a retry with the key replays it and sends nothing; audit ``settled``
  (``upstream_ref``: the platform's id, ``details.found``: the record).
* **provably absent and older than the lease** (when the read began, so no attempt
  can still be on its way) — the claim is marked NOT_APPLIED; audit ``not_applied``.
  Nothing is sent: the next request with the key, if it is the same request, takes
  the claim over and sends it (a different request under the key stays refused).
* **absent but younger than the lease, the read failed, or the connector has no
  finder** — the claim stays STARTED (unknown) and is tried again later.  A failed
  read never turns into "not applied": the money may have moved.

The reconciler never re-sends a write: it only reads and records.  Its audit rows
name the viewer who asked for the write (``actor``, ``role``), the write's operation
and target, and ``details.settled_by = "reconciler"`` with the request as claimed.

In a cluster every replica runs one, and a claim is settled by one at a time: a
replica first *holds* the claim — a conditional update of its ``check_after``, which
only the first of two replicas can make — for the idempotency lease, longer than its
read may take (bounded by the upstream timeout); a claim left unknown is read again
once its hold has passed, not before.  Every settling step is itself
conditional on the claim still being STARTED (and, for NOT_APPLIED, still old), so a
client retry or another replica settling it meanwhile wins cleanly and only the one
that settled writes the audit row.  The same works on SQLite and PostgreSQL.

After its claims, a round runs its follow-ups (:meth:`Reconciler.add_follow_up`): what
moves on once a write is settled.  The gateway's one is the transfer sagas
(:func:`gateway.graphql.mutations.transfers.resume_transfers`): each saga waiting past
the grace is resumed as a same-key retry would, by one replica (which holds it for the
lease), its audit rows with ``details.settled_by = "reconciler"``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from gateway.connectors import Capability
from gateway.errors import BrokerGraphError, IdempotencyConflict, NotFound
from gateway.registry import ConnectorRegistry
from gateway.serialization import to_jsonable
from gateway.store import AuditEntry, Store, UnsettledClaim

__all__ = [
    "SETTLED_BY",
    "SETTLE_MARGIN",
    "FollowUp",
    "Reconciler",
    "Recovery",
    "Round",
    "platform_settler",
]

logger = logging.getLogger("gateway.reconciler")

#: How far before its claim a write's record is looked for: the platform's clock and
#: ours may differ, and a wider window costs the one read nothing more.
SETTLE_MARGIN = timedelta(minutes=10)
#: How far (±) each interval is drawn around the configured one.
JITTER = 0.2
#: Claims read from the store at once; a round goes on until none is left.
PAGE = 100
#: Who the audit rows of settlements name as having settled them.
SETTLED_BY = "reconciler"

Settle = Callable[[datetime], Awaitable[Any | None]]
#: A follow-up of each round: given what is older than the grace and how long a replica
#: holds what it takes, how many things it moved on.
FollowUp = Callable[[datetime, timedelta], Awaitable[int]]
Outcome = Literal["settled", "not_applied", "unknown", "skipped"]


def platform_settler(
    registry: ConnectorRegistry, platform: str, account_id: str, key: str, find: str | None
) -> Settle | None:
    """The read that settles an unknown write of ``key`` to ``account_id``, if any.

    ``find`` names the connector's ``@read`` method (``find(account_id, key, since)``:
    the platform's record of the key's write, or None when it provably has none);
    it reads the account's history, so it is called behind the guards (and routed)
    as an ACCOUNT_HISTORY read.  None when the platform is not configured or its
    connector has no such read (checked at each call: a connector may gain one).
    """
    if find is None:
        return None
    try:
        connector = registry.require_any(platform)
    except NotFound:
        return None
    if Capability.ACCOUNT_HISTORY not in connector.capabilities or not hasattr(connector, find):
        return None
    guarded = registry.require(platform, Capability.ACCOUNT_HISTORY, type(connector))
    method: Callable[[str, str, datetime], Awaitable[Any]] = getattr(guarded, find)

    async def settle(claimed_at: datetime) -> Any | None:
        found = await method(account_id, key, claimed_at - SETTLE_MARGIN)
        return None if found is None else to_jsonable(found)

    return settle


@dataclass(frozen=True, slots=True)
class Recovery:
    """What settles a claim without its client, stored with it (JSON) when it is made.

    ``find`` is the connector's finder; ``target``, ``actor``, ``role`` and ``request``
    (the request as fingerprinted, without its key) go into the settlement's audit row.
    """

    platform: str
    account_id: str
    find: str
    target: str | None
    actor: str
    role: str
    request: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "platform": self.platform,
            "account_id": self.account_id,
            "find": self.find,
            "target": self.target,
            "actor": self.actor,
            "role": self.role,
            "request": dict(self.request),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Recovery:
        """Raises KeyError/TypeError on a row this version cannot read."""
        request = data.get("request") or {}
        if not isinstance(request, Mapping):
            raise TypeError("recovery request must be an object")
        return cls(
            platform=str(data["platform"]),
            account_id=str(data["account_id"]),
            find=str(data["find"]),
            target=None if data.get("target") is None else str(data["target"]),
            actor=str(data["actor"]),
            role=str(data["role"]),
            request=dict(request),
        )


@dataclass(slots=True)
class Round:
    """What one round did, claim by claim (for tests and logs)."""

    settled: int = 0
    not_applied: int = 0
    #: Read, still unknown: absent but young, the read failed, or no finder.
    unknown: int = 0
    #: Held by another replica when this one came to it, or settled by someone else.
    skipped: int = 0
    #: Moved on by the round's follow-ups (transfer sagas resumed).
    resumed: int = 0

    def add(self, outcome: Outcome) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)


class Reconciler:
    """Settles claims left STARTED in the background (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        registry: ConnectorRegistry,
        *,
        interval: float,
        grace: float,
        lease: float,
    ) -> None:
        self._store = store
        self._registry = registry
        self._interval = interval
        self._grace = timedelta(seconds=grace)
        #: Also how long a replica holds a claim it reads: longer than a read may take.
        self._lease = timedelta(seconds=lease)
        self._task: asyncio.Task[None] | None = None
        self._follow_ups: list[FollowUp] = []
        #: Rounds completed, for tests.
        self.rounds = 0

    async def start(self) -> None:
        """Loop in the background; the first round comes one interval after start.

        Not at once: a replica starting (or a test gateway) reads no platform before
        it serves, and an interval of 0 turns the reconciler off.
        """
        if self._interval > 0:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def add_follow_up(self, follow_up: FollowUp) -> None:
        """Run ``follow_up`` after the claims of every round (see the module docstring)."""
        self._follow_ups.append(follow_up)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def reconcile_now(self) -> Round:
        """One round: every claim left STARTED past the grace and not held, once each."""
        done = Round()
        seen: set[tuple[str, str]] = set()
        while True:
            claimed_before = datetime.now(UTC) - self._grace
            page = await self._store.unsettled_idempotent(claimed_before=claimed_before, limit=PAGE)
            fresh = [u for u in page if (u.claim.scope, u.claim.key) not in seen]
            for unsettled in fresh:
                seen.add((unsettled.claim.scope, unsettled.claim.key))
                await self._reconcile(unsettled, done)
            if len(page) < PAGE or not fresh:
                break
        for follow_up in self._follow_ups:
            try:
                done.resumed += await follow_up(datetime.now(UTC) - self._grace, self._lease)
            except Exception:  # a bug or a store fault: what it moves waits for the next round
                logger.exception("reconciler follow-up failed")
        self.rounds += 1
        return done

    async def _reconcile(self, unsettled: UnsettledClaim, done: Round) -> None:
        held_until = datetime.now(UTC) + self._lease
        if not await self._store.hold_unsettled(unsettled, held_until):
            done.skipped += 1
            return
        outcome: Outcome = "unknown"
        try:
            outcome = await self._settle(unsettled)
        except Exception:  # a bug or a store fault: the claim waits for its hold to pass
            logger.exception("settling %s failed", _describe(unsettled))
        done.add(outcome)

    async def _settle(self, unsettled: UnsettledClaim) -> Outcome:
        """Settle one held claim; which :class:`Round` counter it adds to."""
        claim = unsettled.claim
        try:
            recovery = Recovery.from_json(unsettled.recovery)
        except (KeyError, TypeError):
            logger.error("%s has a recovery this version cannot read", _describe(unsettled))
            return "unknown"
        settle = platform_settler(
            self._registry, recovery.platform, recovery.account_id, claim.key, recovery.find
        )
        if settle is None:  # nothing to read it with (yet): a retry may still re-drive it
            return "unknown"
        read_at = datetime.now(UTC)
        try:
            found = await settle(claim.created_at)
        except BrokerGraphError as error:
            logger.warning(
                "%s is still unknown: reading %s failed (%s)",
                _describe(unsettled),
                recovery.platform,
                error.code,
            )
            return "unknown"
        if found is not None:
            try:
                await self._store.complete_idempotent(claim.scope, claim.key, {"value": found})
            except (IdempotencyConflict, NotFound):
                return "skipped"  # a retry (or its own request) settled it meanwhile
            await self._audit(unsettled, recovery, "settled", found)
            return "settled"
        if not await self._store.mark_not_applied(claim.scope, claim.key, read_at - self._lease):
            return "unknown"  # young (may still be on its way), or taken over meanwhile
        await self._audit(unsettled, recovery, "not_applied", None)
        return "not_applied"

    async def _audit(
        self, unsettled: UnsettledClaim, recovery: Recovery, outcome: str, found: Any
    ) -> None:
        reference = found.get("external_id") if isinstance(found, Mapping) else None
        await self._store.append_audit(
            AuditEntry(
                id=None,
                at=datetime.now(UTC),
                actor=recovery.actor,
                role=recovery.role,
                operation=unsettled.claim.operation,
                target=recovery.target,
                outcome=outcome,
                error_code=None,
                upstream_ref=None if reference is None else str(reference),
                idempotency_key=unsettled.claim.key,
                details={
                    "settled_by": SETTLED_BY,
                    "request": dict(recovery.request),
                    "found": found,
                },
            )
        )
        logger.info("%s settled: %s", _describe(unsettled), outcome)

    async def _loop(self) -> None:
        while True:
            spread = self._interval * JITTER
            await asyncio.sleep(self._interval + random.uniform(-spread, spread))  # noqa: S311
            try:
                await self.reconcile_now()
            except Exception:  # a bug or a store outage must not end reconciling for good
                logger.exception("reconciler round failed")


def _describe(unsettled: UnsettledClaim) -> str:
    claim = unsettled.claim
    return f"{claim.operation} {claim.scope} key {claim.key}"
