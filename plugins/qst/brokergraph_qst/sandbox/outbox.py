"""One connection's outbound side: a queue of frames drained by a writer task.

* ``push`` queues at once (notifications); ``push_later`` after a delay (responses under
  the jitter knob, which is what lets them overtake each other).
* More than ``slow_consumer_limit`` frames waiting means the client does not keep up:
  the connection is dropped with 4102.  (Frames wait here only once the socket's own
  buffers are full, i.e. when the client stops reading.)
* ``close`` is polite: frames already queued, and responses still delayed, go first
  (logout 1000, login required 4001).  ``drop`` is at once (4101, 4102, 1011).
* ``on_emit(order_number, perf_counter())`` runs right before an Order frame is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from brokergraph_qst._proto import order_routing_pb2 as pb

log = logging.getLogger(__name__)


class Knobs(Protocol):
    slow_consumer_limit: int
    on_emit: Callable[[str, float], None] | None
    #: Close codes the server initiated, counted.
    closes: Counter[int]


@dataclass(frozen=True, slots=True)
class _Frame:
    data: bytes
    order_number: str = ""


@dataclass(frozen=True, slots=True)
class _Close:
    code: int
    reason: str


class Outbox:
    def __init__(self, websocket: ServerConnection, knobs: Knobs) -> None:
        self._websocket = websocket
        self._knobs = knobs
        self._queue: asyncio.Queue[_Frame | _Close] = asyncio.Queue()
        self._delayed: set[asyncio.TimerHandle] = set()
        #: A polite close waiting for delayed responses.
        self._ending: _Close | None = None
        #: No more frames are accepted.
        self.closing = False
        self._closer: asyncio.Task[None] | None = None
        self._writer = asyncio.create_task(self._write())

    @property
    def accepting(self) -> bool:
        return not self.closing and self._ending is None

    def push(self, message: pb.ServerMessage, *, order_number: str = "") -> None:
        if self.accepting:
            self._put(message, order_number)

    def push_later(
        self,
        message: pb.ServerMessage,
        delay: float,
        on_queued: Callable[[], None] | None = None,
    ) -> None:
        """Queue ``message`` after ``delay``; ``on_queued`` runs once it is (send order)."""
        if not self.accepting:
            return
        if delay <= 0:
            self._put(message, "")
            if on_queued is not None:
                on_queued()
            return

        def fire() -> None:
            self._delayed.discard(handle)
            if not self.closing:
                self._put(message, "")
                if on_queued is not None:
                    on_queued()
            if not self._delayed and self._ending is not None and not self.closing:
                self._queue.put_nowait(self._ending)
                self.closing = True

        handle = asyncio.get_running_loop().call_later(delay, fire)
        self._delayed.add(handle)

    def close(self, code: int, reason: str) -> None:
        """Close once what is queued and delayed has been sent."""
        if not self.accepting:
            return
        self._ending = _Close(code, reason)
        self._knobs.closes[code] += 1
        if not self._delayed:
            self._queue.put_nowait(self._ending)
            self.closing = True

    def drop(self, code: int, reason: str) -> None:
        """Close now, discarding what waits."""
        if self.closing:
            return
        self.closing = True
        self._knobs.closes[code] += 1
        self._cancel_delayed()
        self._writer.cancel()
        self._closer = asyncio.create_task(self._websocket.close(code, reason))

    async def shutdown(self) -> None:
        """Stop the writer and any close in progress (the connection has ended)."""
        self.closing = True
        self._cancel_delayed()
        for task in (self._writer, self._closer):
            if task is not None:
                if not task.done():
                    task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def _put(self, message: pb.ServerMessage, order_number: str) -> None:
        self._queue.put_nowait(_Frame(message.SerializeToString(), order_number))
        if self._queue.qsize() > self._knobs.slow_consumer_limit:
            self.drop(4102, "slow consumer")

    def _cancel_delayed(self) -> None:
        for handle in self._delayed:
            handle.cancel()
        self._delayed.clear()

    async def _write(self) -> None:
        try:
            while True:
                item = await self._queue.get()
                if isinstance(item, _Close):
                    await self._websocket.close(item.code, item.reason)
                    return
                hook = self._knobs.on_emit
                if item.order_number and hook is not None:
                    try:
                        hook(item.order_number, time.perf_counter())
                    except Exception:
                        log.exception("on_emit failed")
                await self._websocket.send(item.data)
        except ConnectionClosed:
            pass
        finally:
            self.closing = True
