"""The default event log, for a single gateway process: bounded, in memory."""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from gateway.events._log import EventLog, LogEntry, LogPage, Retention
from gateway.events._memory import InProcessEventBus

__all__ = ["MAX_KEYS", "InProcessEventLog"]

#: Append keys remembered per topic (the oldest are forgotten first).
MAX_KEYS = 100_000


class _Topic:
    def __init__(self) -> None:
        self.head = 0
        self.epoch = secrets.token_hex(8)
        self.entries: deque[tuple[float, LogEntry]] = deque()
        #: Append keys seen, with their entry (bounded by MAX_KEYS).
        self.keys: dict[str, LogEntry] = {}


class InProcessEventLog(EventLog):
    """Keeps each topic's last ``retention.max_entries`` events (younger than
    ``retention.max_age_seconds``) in this process; nothing survives a restart, so a
    resume point from an earlier process is reported as a reset log.

    ``clock`` (monotonic seconds) is for tests of age retention.
    """

    def __init__(
        self,
        retention: Retention | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(InProcessEventBus())
        self.retention = retention or Retention()
        self._clock = clock
        self._topics: dict[str, _Topic] = {}

    async def _store(self, topic: str, event: Any, key: str | None) -> LogEntry:
        log = self._topics.get(topic)
        if log is None:
            log = self._topics[topic] = _Topic()
        if key is not None and key in log.keys:
            return dataclasses.replace(log.keys[key], repeated=True)
        log.head += 1
        now = self._clock()
        entry = LogEntry(topic, log.head, event, datetime.now(UTC), log.epoch)
        log.entries.append((now, entry))
        if key is not None:
            log.keys[key] = entry
            if len(log.keys) > MAX_KEYS:  # oldest first (dict order)
                del log.keys[next(iter(log.keys))]
        self._trim(log, now)
        return entry

    async def _read(self, topic: str, after: int, limit: int) -> LogPage:
        log = self._topics.get(topic)
        if log is None:
            return LogPage((), 0, "")
        self._trim(log, self._clock())
        entries = log.entries
        # Sequences are consecutive from the oldest kept one: index arithmetic.
        start = 0 if not entries else max(0, after + 1 - entries[0][1].sequence)
        found = [entries[i][1] for i in range(start, min(len(entries), start + limit))]
        return LogPage(found, log.head, log.epoch)

    def _trim(self, log: _Topic, now: float) -> None:
        retention = self.retention
        while len(log.entries) > retention.max_entries:
            log.entries.popleft()
        if retention.max_age_seconds:
            cutoff = now - retention.max_age_seconds
            while log.entries and log.entries[0][0] < cutoff:
                log.entries.popleft()

    async def _close_storage(self) -> None:
        self._topics.clear()
