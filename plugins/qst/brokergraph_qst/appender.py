"""One session's events onto the gateway's event log: one writer, in arrival order.

QST's notifications are handled synchronously as they arrive; each event they make
is queued here, and one task appends the queue to the log, one entry at a time, so
the log numbers an account's events in the order QST sent them.  An append that
fails (the log unreachable) is retried with the same key until it succeeds — the
log stores a key once, so a retry whose first try was stored after all does not
store it twice — and the events behind it wait: nothing is skipped or reordered.
Closing gives the queue a bounded time to drain; what is left then is reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
from collections import deque
from collections.abc import Callable
from typing import Any

from gateway.contract import EventLog

__all__ = ["EventAppender"]

#: The longest pause between two tries of an append that failed.
MAX_PAUSE_SECONDS = 1.0

#: Called with the sequence the log gave an appended event.
Logged = Callable[[int], None]


class EventAppender:
    """Appends ``put`` events to their topics in the order they were put."""

    def __init__(self, log: EventLog, logger: logging.Logger) -> None:
        self._log = log
        self._logger = logger
        self._queue: deque[tuple[str, Any, Logged]] = deque()
        #: Events put so far, and events appended so far (their keys: ``<id>:<n>``).
        self._put = 0
        self._done = 0
        self._id = secrets.token_hex(8)
        self._queued = asyncio.Event()
        #: (mark, future): resolved once ``mark`` events are in the log.
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        """Events put and not yet in the log."""
        return self._put - self._done

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="qst-event-appender")

    def put(self, topic: str, event: Any, on_logged: Logged) -> None:
        """Queue ``event`` (synchronous: arrival order is queue order)."""
        self._queue.append((topic, event, on_logged))
        self._put += 1
        self._queued.set()

    async def drained(self) -> None:
        """Return once every event put before this call is in the log."""
        mark = self._put
        if self._done >= mark:
            return
        waiter = asyncio.get_running_loop().create_future()
        entry = (mark, waiter)
        self._waiters.append(entry)
        try:
            await waiter
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)

    async def close(self, seconds: float) -> None:
        """Let the queue drain for at most ``seconds``, then stop."""
        task, self._task = self._task, None
        if task is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.drained()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if self._queue:
            self._logger.error(
                "QST: %d events were not appended to the event log before closing",
                len(self._queue),
            )

    async def _run(self) -> None:
        while True:
            while not self._queue:
                self._queued.clear()
                await self._queued.wait()
            topic, event, on_logged = self._queue[0]
            entry = await self._append(topic, event, f"{self._id}:{self._done + 1}")
            self._queue.popleft()
            self._done += 1
            try:
                on_logged(entry.sequence)
            except Exception:  # a bookkeeping bug must not stop the appender
                self._logger.exception("QST: recording logged event %s #%d", topic, entry.sequence)
            for mark, waiter in self._waiters:
                if mark <= self._done and not waiter.done():
                    waiter.set_result(None)

    async def _append(self, topic: str, event: Any, key: str) -> Any:
        pause, failures = 0.05, 0
        while True:
            try:
                return await self._log.append(topic, event, key=key)
            except Exception as error:  # unreachable for now: retry, the key keeps it once
                failures += 1
                self._logger.warning(
                    "QST: appending to %s failed (%d times): %r; retrying", topic, failures, error
                )
            await asyncio.sleep(random.uniform(0, pause))  # noqa: S311 (jitter, not crypto)
            pause = min(pause * 2, MAX_PAUSE_SECONDS)
