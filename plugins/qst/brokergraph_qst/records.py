"""The logged order book of each account, saved for replicas that do not hold the session.

A replica without the QST session has no order state of its own; a fresh subscription
there starts from the last saved record (resting orders as of a logged sequence, see
:meth:`~brokergraph_qst.streams.AccountFeed.record`) and follows the log after that
sequence.  Any record is a consistent pair, so saving is coalesced (the latest state
when the saver gets to it) and a failed save only makes the next subscriber replay a
little more of the log; it is retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from gateway.contract import ConnectorStore

__all__ = ["FLOW_KIND", "RecordSaver", "record_id"]

FLOW_KIND = "qst-order-book"
#: The pause after a failed save before the next try.
RETRY_SECONDS = 1.0


def record_id(connector: str, account_id: str) -> str:
    """The flow id of an account's record."""
    return f"{connector}:order-book:{account_id}"


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
            if not await self._save_changed():
                await asyncio.sleep(RETRY_SECONDS)

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
