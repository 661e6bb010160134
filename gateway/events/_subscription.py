"""A subscriber's view of one topic: a bounded, ordered stream of events."""

from __future__ import annotations

import asyncio
import enum
from collections import deque
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

__all__ = ["SlowConsumer", "Subscription", "SubscriptionLost"]


class SubscriptionLost(Exception):
    """The stream has a gap from here on: resubscribe and resynchronise.

    Raised by iteration instead of silently skipping events, e.g. when the Redis
    pub/sub connection dropped (Redis does not replay what it missed meanwhile).
    """


class SlowConsumer(SubscriptionLost):
    """The consumer fell more than ``max_queue`` events behind and was cut off."""


class _State(enum.Enum):
    NEW = "new"
    ACTIVE = "active"
    EXITED = "exited"


_Hook = Callable[["Subscription"], Awaitable[None]]


class Subscription:
    """Events of one topic in publish order; use as ``async with`` then ``async for``.

    Created by :meth:`EventBus.subscribe`.  Subscribing is effective when
    ``__aenter__`` returns: no event published after that is missed.  Events wait in
    a queue of at most ``max_queue``; one more cuts the subscriber off (the queue is
    dropped to free the memory) and iteration raises :class:`SlowConsumer`.  When the
    bus closes, iteration ends after the queued events.
    """

    def __init__(self, topic: str, max_queue: int, *, attach: _Hook, detach: _Hook) -> None:
        if max_queue < 1:
            raise ValueError(f"max_queue must be >= 1, got {max_queue!r}")
        self.topic = topic
        self.max_queue = max_queue
        self._attach = attach
        self._detach = detach
        self._state = _State.NEW
        self._events: deque[Any] = deque()
        self._error: SubscriptionLost | None = None
        self._ended = False
        self._waiter: asyncio.Future[None] | None = None

    async def __aenter__(self) -> Subscription:
        if self._state is not _State.NEW:
            raise RuntimeError("a Subscription can be entered only once")
        self._state = _State.ACTIVE
        try:
            await self._attach(self)
        except BaseException:
            self._state = _State.EXITED
            # The bus may have registered us before failing (or being cancelled).
            await self._detach(self)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._state is _State.ACTIVE:
            self._state = _State.EXITED
            self._events.clear()
            self._wake()
            await self._detach(self)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Any:
        if self._state is _State.NEW:
            raise RuntimeError("enter the subscription with 'async with' before iterating")
        while not self._events:
            if self._error is not None:
                raise self._error.with_traceback(None)
            if self._ended or self._state is _State.EXITED:
                raise StopAsyncIteration
            if self._waiter is not None:
                raise RuntimeError("another task is already iterating this subscription")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._events.popleft()

    # The methods below are called by the buses of this package only.

    def _deliver(self, event: Any) -> bool:
        """Queue ``event``; False if this subscriber no longer receives."""
        if self._error is not None or self._ended or self._state is _State.EXITED:
            return False
        if len(self._events) >= self.max_queue:
            self._fail(
                SlowConsumer(
                    f"subscriber of {self.topic!r} fell more than {self.max_queue} events "
                    "behind and was cut off"
                )
            )
            return False
        self._events.append(event)
        self._wake()
        return True

    def _fail(self, error: SubscriptionLost) -> None:
        """Cut the subscriber off: what is still queued is dropped, since the consumer
        must resynchronise anyway, and iteration raises ``error``."""
        if self._error is None and not self._ended:
            self._events.clear()
            self._error = error
            self._wake()

    def _end(self) -> None:
        """End iteration once the queued events are consumed (the bus closed)."""
        self._ended = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
