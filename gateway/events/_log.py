"""The event log: every event source's one road to every subscriber, on any replica.

Appending gives an event the next number of its topic, once, where it enters the
cluster: numbers grow by one per topic with no gap, the same on every replica.  A
follower enters at the log's head ("from now") or after a sequence it already has;
it gets what it missed from the log's storage, then live events, each once, in
order.  Live events come through an :class:`~gateway.events.EventBus` (the
notification carries the entry, so nothing is re-read in the common case); any gap
— a lost notification, a dropped bus connection, a follower too slow for its queue —
is filled from storage, never skipped.  A resume point that retention has passed, or
a log that lost what it had handed out, raises :class:`~gateway.errors.ResumeTooOld`:
never silent.  A log that stays unreachable longer than ``reconnect_seconds`` ends
the stream with :class:`~gateway.errors.StreamInterrupted` carrying the last sequence.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any

from gateway.errors import ResumeTooOld, StreamInterrupted
from gateway.events._base import EventBus
from gateway.events._subscription import Subscription, SubscriptionLost

__all__ = ["EventLog", "LogEntry", "LogFollower", "LogPage", "Retention"]

logger = logging.getLogger("gateway.events")

#: Entries read from storage per round trip while catching up.
READ_BATCH = 500


#: A resume point past any topic's head: reading after it returns the head alone.
_BEYOND_EVERY_SEQUENCE = 2**62


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One appended event: ``sequence`` is its number in ``topic`` (1, 2, 3, ...)."""

    topic: str
    sequence: int
    event: Any
    appended_at: datetime
    #: Which incarnation of the topic's log numbered it (a reset log starts a new one).
    epoch: str
    #: Set on what ``append`` returns when its ``key`` was appended before: this is
    #: that first entry's number, and nothing new was stored.
    repeated: bool = False


@dataclass(frozen=True, slots=True)
class LogPage:
    """What storage holds after a point: ``entries`` in order, and the topic's head."""

    entries: Sequence[LogEntry]
    #: The topic's last assigned sequence (0: nothing appended yet).
    head: int
    #: The topic log's incarnation ("" when the topic has none yet).
    epoch: str


@dataclass(frozen=True, slots=True)
class Retention:
    """How much a topic keeps: at most ``max_entries``, none older than ``max_age_seconds``
    (0: no age limit).  Trimming happens as events are appended."""

    max_entries: int = 10_000
    max_age_seconds: float = 86_400.0

    def __post_init__(self) -> None:
        if self.max_entries < 1:
            raise ValueError(f"retention max_entries must be >= 1, got {self.max_entries!r}")
        if self.max_age_seconds < 0:
            raise ValueError(f"retention max_age_seconds must be >= 0, got {self.max_age_seconds}")


class EventLog(abc.ABC):
    """Append events to topics; follow a topic from now or from a resume point.

    ``publish``/``subscribe`` are the payload-only forms of ``append``/``follow`` (the
    contract's first :class:`~gateway.contract.EventLog` methods).
    """

    #: Errors of the storage or bus meaning "unreachable for now": followers retry.
    transient_errors: tuple[type[BaseException], ...] = (ConnectionError, OSError)
    #: Without a notification for this long, a follower checks storage (a notification
    #: lost after its append succeeded is then late, not lost).  None: never needed.
    poll_seconds: float | None = None

    def __init__(self, bus: EventBus, *, reconnect_seconds: float = 30.0) -> None:
        self.bus = bus
        self.reconnect_seconds = reconnect_seconds
        self._closed = False

    # -- the API ----------------------------------------------------------------------

    async def append(self, topic: str, event: Any, *, key: str | None = None) -> LogEntry:
        """Store ``event`` as the topic's next entry and notify followers.

        The entry is durable (as the backend is) when this returns; raises when it
        could not be stored, and then it was not — a caller may retry.  With ``key``
        (a webhook's delivery id...), a repeated append of the same key in the topic
        stores nothing and returns the first entry's number with ``repeated`` set: the
        dedupe record and the event are written in one step.
        """
        self._check_open()
        entry = await self._store(topic, event, key)
        if entry.repeated:
            return entry
        try:
            await self.bus.publish(topic, entry)
        except Exception as error:  # stored: followers find it in storage
            logger.warning("appended %s #%d but could not notify: %s", topic, entry.sequence, error)
        return entry

    def follow(self, topic: str, *, after: int | None = None, max_queue: int = 1000) -> LogFollower:
        """Entries of ``topic`` after ``after`` (None: from the moment of entering),
        then live ones; enter with ``async with``, iterate with ``async for``."""
        if after is not None and after < 0:
            raise ValueError(f"after must be >= 0, got {after!r}")
        return LogFollower(self, topic, after=after, max_queue=max_queue)

    async def head(self, topic: str) -> int:
        """The last sequence ``topic`` gave out (0: none yet), without reading entries."""
        self._check_open()
        return (await self._read(topic, _BEYOND_EVERY_SEQUENCE, 0)).head

    async def publish(self, topic: str, event: Any) -> int:
        """Append ``event``; its sequence."""
        return (await self.append(topic, event)).sequence

    @contextlib.asynccontextmanager
    async def subscribe(self, topic: str, *, max_queue: int = 1000) -> Any:
        """Events (payloads only) appended from now on."""
        async with self.follow(topic, max_queue=max_queue) as follower:
            yield _Payloads(follower)

    async def close(self) -> None:
        """Stop: followers end after what they already hold."""
        if self._closed:
            return
        self._closed = True
        await self.bus.close()
        await self._close_storage()

    # -- the backend ---------------------------------------------------------------------

    @abc.abstractmethod
    async def _store(self, topic: str, event: Any, key: str | None) -> LogEntry:
        """Number and store ``event``, trimming the topic to its retention; if ``key``
        was stored before, the first entry's number with ``repeated`` set instead."""

    @abc.abstractmethod
    async def _read(self, topic: str, after: int, limit: int) -> LogPage:
        """At most ``limit`` entries with sequence > ``after``, and the head, atomically."""

    @abc.abstractmethod
    async def _close_storage(self) -> None: ...

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the event log is closed")


class _Payloads:
    """A follower seen as the events alone (``EventLog.subscribe``)."""

    def __init__(self, follower: LogFollower) -> None:
        self._follower = follower

    def __aiter__(self) -> _Payloads:
        return self

    async def __anext__(self) -> Any:
        return (await anext(self._follower)).event


class LogFollower:
    """One follower of a topic; see :meth:`EventLog.follow` and the module docstring.

    ``last_sequence`` is the sequence of the last entry handed out (on entering: the
    resume point, or the head when following from now) — what to resume after.
    """

    def __init__(self, log: EventLog, topic: str, *, after: int | None, max_queue: int) -> None:
        if max_queue < 1:
            raise ValueError(f"max_queue must be >= 1, got {max_queue!r}")
        self.topic = topic
        self._log = log
        self._max_queue = max_queue
        self._resume = after
        self.last_sequence = after or 0
        self._epoch: str | None = None
        self._live: Subscription | None = None
        self._pending: deque[LogEntry] = deque()
        #: Storage may hold entries we have not seen: read them before waiting.
        self._behind = after is not None
        self._entered = False
        self._ended = False

    async def __aenter__(self) -> LogFollower:
        if self._entered:
            raise RuntimeError("a LogFollower can be entered only once")
        self._entered = True
        # Live first, then storage: whatever is appended in between is in both, and
        # the duplicate is recognised by its sequence.
        await self._open_live()
        try:
            if self._resume is None:
                page = await self._log._read(self.topic, 0, 0)
                self.last_sequence, self._epoch = page.head, page.epoch or None
            else:
                await self._fetch()
        except BaseException:
            await self._close_live()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._pending.clear()
        self._ended = True
        await self._close_live()

    def __aiter__(self) -> LogFollower:
        return self

    async def __anext__(self) -> LogEntry:
        if not self._entered:
            raise RuntimeError("enter the follower with 'async with' before iterating")
        while True:
            if self._pending:
                entry = self._pending.popleft()
                self.last_sequence = entry.sequence
                return entry
            if self._behind or self._live is None:
                if self._ended:
                    raise StopAsyncIteration
                await self._recover()
                continue
            try:
                async with asyncio.timeout(self._log.poll_seconds):
                    entry = await anext(self._live)
            except TimeoutError:
                self._behind = True  # quiet for long: make sure no notification was lost
                continue
            except SubscriptionLost:  # dropped bus, or too slow for the queue
                await self._close_live()
                self._behind = True
                continue
            except StopAsyncIteration:  # the log closed
                self._ended = True
                await self._close_live()
                raise
            if self._epoch is None and self.last_sequence == 0:
                self._epoch = entry.epoch  # the topic's first incarnation began
            same_log = entry.epoch == self._epoch
            if entry.sequence <= self.last_sequence and same_log:
                continue  # already handed out (or read from storage meanwhile)
            if entry.sequence == self.last_sequence + 1 and same_log:
                self.last_sequence = entry.sequence
                return entry
            self._behind = True  # a gap, or another incarnation: storage decides

    # -- internals ------------------------------------------------------------------------

    async def _open_live(self) -> None:
        live = self._log.bus.subscribe(self.topic, max_queue=self._max_queue)
        await live.__aenter__()
        self._live = live

    async def _close_live(self) -> None:
        live, self._live = self._live, None
        if live is not None:
            await live.__aexit__(None, None, None)

    async def _fetch(self) -> None:
        """Read what storage holds after ``last_sequence``; raise if it cannot be whole."""
        after = self.last_sequence
        page = await self._log._read(self.topic, after, READ_BATCH)
        if self._epoch is not None and page.epoch != self._epoch:
            raise self._too_old(page, "the event log was reset; events may be missing")
        if after > page.head:
            raise self._too_old(page, "the resume point is ahead of the event log")
        if after < page.head and (not page.entries or page.entries[0].sequence != after + 1):
            raise self._too_old(page, "the resume point is older than the log's retention")
        self._epoch = page.epoch or None
        self._pending.extend(page.entries)
        last = page.entries[-1].sequence if page.entries else after
        self._behind = last < page.head

    def _too_old(self, page: LogPage, why: str) -> ResumeTooOld:
        oldest = page.entries[0].sequence if page.entries else page.head + 1
        return ResumeTooOld(
            f"{why}; subscribe again without a resume point",
            details={
                "afterSequence": self.last_sequence,
                "oldestSequence": oldest,
                "lastSequence": page.head,
            },
        )

    async def _recover(self) -> None:
        """Reopen the live side if needed and read storage, while the log is unreachable
        for at most ``reconnect_seconds`` (jittered backoff); then :class:`StreamInterrupted`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._log.reconnect_seconds
        pause = 0.05
        while True:
            try:
                if self._live is None:
                    await self._open_live()
                await self._fetch()
                return
            except self._log.transient_errors as error:
                if loop.time() >= deadline:
                    raise StreamInterrupted(
                        "the event stream broke and could not be resumed; subscribe again "
                        "with afterSequence = details.lastSequence",
                        details={"lastSequence": self.last_sequence},
                    ) from error
                logger.info("event log unreachable (%s); retrying %r", error, self.topic)
            except SubscriptionLost:
                pass  # the bus dropped again while reopening: retry
            await self._close_live()
            await asyncio.sleep(random.uniform(0, pause))  # noqa: S311 (jitter, not crypto)
            pause = min(pause * 2, 1.0)
