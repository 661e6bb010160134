"""Reads of several accounts that start together, made as one batch.

The accounts of a page ask for their analytics together, but each account's read
of its open positions would be a call of its own when no sibling ``positions`` field
of the query batched them.  Keys asked for within ``delay`` seconds of the first
join one ``fetch(keys)`` (``openPositions`` without ``login`` for more than one).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Generic, TypeVar

__all__ = ["KeyBatcher"]

V = TypeVar("V")


class KeyBatcher(Generic[V]):
    def __init__(
        self, fetch: Callable[[list[str]], Awaitable[Mapping[str, V]]], *, delay: float
    ) -> None:
        self._fetch = fetch
        self._delay = max(delay, 0.0)
        self._keys: set[str] = set()
        self._task: asyncio.Task[Mapping[str, V]] | None = None

    async def get(self, key: str) -> V:
        if self._task is None:
            self._keys = set()
            self._task = asyncio.ensure_future(self._fire())
        self._keys.add(key)
        return (await asyncio.shield(self._task))[key]

    async def _fire(self) -> Mapping[str, V]:
        await asyncio.sleep(self._delay)  # let the page's other accounts join
        keys, self._task = sorted(self._keys), None
        return await self._fetch(keys)
