"""A real connector instance against a real sandbox, and a watcher for its streams."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

from gateway.cache import MemoryCache, SharedReads
from gateway.config import load_settings
from gateway.connectors import Connector, ConnectorContext
from gateway.events import InProcessEventLog
from gateway.store import Store

__all__ = ["EventWatcher", "assert_increasing", "open_connector"]

C = TypeVar("C", bound=Connector)
E = TypeVar("E")


@contextlib.asynccontextmanager
async def open_connector(
    connector_class: type[C], settings: Mapping[str, Any], directory: Path
) -> AsyncIterator[C]:
    """A started ``connector_class`` with the context the gateway would give it.

    The settings go through the gateway's own loader, so secret-looking keys arrive
    wrapped in ``Secret`` exactly as in production.  The store is SQLite in
    ``directory``; cache and event bus are the in-process defaults.
    """
    name = connector_class.name
    section = load_settings(environ={}, overrides={"connectors": {name: dict(settings)}})
    # Each resource is closed by the stack as soon as it exists, so a constructor or
    # start() that raises leaves no store connection for the garbage collector to find.
    async with contextlib.AsyncExitStack() as opened:
        store = await Store.open(f"sqlite+aiosqlite:///{directory / 'conformance.db'}")
        opened.push_async_callback(store.close)
        cache, events = MemoryCache(), InProcessEventLog()
        opened.push_async_callback(cache.close)
        opened.push_async_callback(events.close)
        context = ConnectorContext(
            name=name,
            settings=section.connectors[name],
            store=store,
            reads=SharedReads(cache, connector_class.platform),
            events=events,
            logger=logging.getLogger(f"gateway.connectors.{name}"),
        )
        connector = connector_class(context)
        opened.push_async_callback(connector.close)  # also after a failed start()
        await connector.start()
        yield connector


class EventWatcher(Generic[E]):
    """Follows a connector stream in a task, so a case can act and then wait for events.

    Waits are bounded by a generous timeout only so a broken stream fails instead
    of hanging; nothing asserts on timing.
    """

    def __init__(self, stream: AsyncIterator[E], wait_seconds: float) -> None:
        self._stream = stream
        self._wait_seconds = wait_seconds
        self._queue: asyncio.Queue[E | BaseException] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        #: Every event received so far, in order.
        self.events: list[E] = []

    async def _pump(self) -> None:
        try:
            async for event in self._stream:
                self._queue.put_nowait(event)
            self._queue.put_nowait(AssertionError("the stream ended by itself"))
        except Exception as error:  # handed to the waiting case, which fails with it
            self._queue.put_nowait(error)

    async def __aenter__(self) -> EventWatcher[E]:
        self._task = asyncio.create_task(self._pump())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        aclose: Callable[[], Any] | None = getattr(self._stream, "aclose", None)
        if aclose is not None:
            await aclose()

    async def wait_for(self, predicate: Callable[[E], bool], what: str) -> E:
        """The first new event matching ``predicate``; AssertionError after the wait."""
        try:
            async with asyncio.timeout(self._wait_seconds):
                while True:
                    item = await self._queue.get()
                    if isinstance(item, BaseException):
                        raise item
                    self.events.append(item)
                    if predicate(item):
                        return item
        except TimeoutError:
            raise AssertionError(
                f"no event {what} within {self._wait_seconds} s; received {len(self.events)}: "
                f"{self.events[-5:]!r}"
            ) from None


def assert_increasing(sequences: Sequence[int], what: str) -> None:
    """Event sequence numbers of one stream must strictly increase (gaps show, never repeat)."""
    for previous, current in itertools.pairwise(sequences):
        assert current > previous, f"{what} sequence numbers must increase, got {list(sequences)}"
