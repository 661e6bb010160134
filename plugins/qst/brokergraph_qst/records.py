"""The logged order book of each account, saved for replicas that do not hold the session,
and for the replica that holds it next.

A replica without the QST session has no order state of its own; a fresh subscription
there starts from the last saved record (resting orders as of a logged sequence, see
:meth:`~brokergraph_qst.streams.AccountFeed.record`) and follows the log after that
sequence.  Any record is a consistent pair, so saving is coalesced (the latest state
when the saver gets to it, at most one save per :data:`SAVE_INTERVAL_SECONDS`) and a
failed save only makes the next subscriber replay a little more of the log; it is
retried.

The next holder of the session takes the records over (:func:`saved_records`,
:func:`restore`): each account's record plus the log's entries after its sequence —
what a holder killed between an append and the next save had logged — is the state
its first order book is diffed against.  A record the log does not continue (the log
was reset, or retention passed the record's sequence) is not taken over: that
account starts afresh, with a snapshot in the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

from brokergraph_qst.streams import AccountFeed
from gateway.contract import ConnectorStore, EventLog, OrderEvent, ResumeTooOld

__all__ = ["FLOW_KIND", "RecordSaver", "record_id", "restore", "saved_records"]

FLOW_KIND = "qst-order-book"
#: The pause after a failed save before the next try.
RETRY_SECONDS = 1.0
#: The least time between two saves.  Each is a store transaction, and saving after
#: every order made a third one per order beside the idempotency record and the audit
#: (they queue behind each other on SQLite).  The log holds every event, so a record a
#: quarter second older only makes the next subscriber or holder replay that much more.
SAVE_INTERVAL_SECONDS = 0.25
#: The most account records a new holder takes over (one QST login has a handful).
MAX_RECORDS = 1000


def record_id(connector: str, account_id: str) -> str:
    """The flow id of an account's record."""
    return f"{connector}:order-book:{account_id}"


async def saved_records(store: ConnectorStore, connector: str) -> list[tuple[str, dict[str, Any]]]:
    """``(account id, record)`` of every account a holder of the session saved (bounded)."""
    prefix = record_id(connector, "")
    flows = await store.list_flows(FLOW_KIND, prefix=prefix, limit=MAX_RECORDS)
    return [(flow_id.removeprefix(prefix), state) for flow_id, state in flows]


async def restore(feed: AccountFeed, record: Mapping[str, Any], log: EventLog) -> bool:
    """Seed ``feed`` with ``record`` and what the log holds after it; False (the feed left
    as it was) when the log does not continue the record."""
    after = int(record["sequence"])
    head = await log.head(feed.topic)
    if head < after:
        return False  # the log was reset: its numbers are not the record's
    tail: list[tuple[int, OrderEvent]] = []
    if head > after:
        try:
            async with log.follow(feed.topic, after=after) as entries:
                async for entry in entries:
                    if isinstance(entry.event, OrderEvent):
                        tail.append((entry.sequence, entry.event))
                    if entry.sequence >= head:
                        break
        except ResumeTooOld:
            return False  # retention passed the record
    feed.seed(record, tail)
    return True


class RecordSaver:
    """Saves ``state(account)`` under :func:`record_id` for each account marked changed."""

    def __init__(
        self,
        store: ConnectorStore,
        connector: str,
        state: Callable[[str], dict[str, Any]],
        logger: logging.Logger,
    ) -> None:
        self._store = store
        self._connector = connector
        self._state = state
        self._logger = logger
        self._changed: dict[str, None] = {}
        self._wanted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="qst-record-saver")

    def changed(self, account_id: str) -> None:
        self._changed[account_id] = None
        self._wanted.set()

    async def close(self, seconds: float) -> None:
        """Save what changed (for at most ``seconds``), then stop."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._save_changed()

    async def _run(self) -> None:
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            saved = await self._save_changed()
            # What changes meanwhile is coalesced into the next save.
            await asyncio.sleep(SAVE_INTERVAL_SECONDS if saved else RETRY_SECONDS)

    async def _save_changed(self) -> bool:
        """Save every changed account; False when one failed (it stays marked)."""
        while self._changed:
            account_id = next(iter(self._changed))
            del self._changed[account_id]
            try:
                await self._store.save_flow(
                    record_id(self._connector, account_id), FLOW_KIND, self._state(account_id)
                )
            except asyncio.CancelledError:
                self._changed[account_id] = None  # closing: saved there
                raise
            except Exception as error:  # the store unreachable for now: retried
                self._logger.warning("QST: saving the order book of %s: %r", account_id, error)
                self.changed(account_id)
                return False
        return True
