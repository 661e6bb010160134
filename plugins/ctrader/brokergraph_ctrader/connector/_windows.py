"""closedPositions windows asked for several accounts at once, read once.

A page of accounts asks for their analytics together, and each account reads the
same 2-day windows of the look-back: 50 accounts trading for months were 50 x 60
calls.  Window reads that miss the cache within ``window_batch_seconds`` of each
other join one batch per window; a batch of more than ``single_read_limit`` accounts
is **one** ``closedPositions`` call without ``login`` (every trader the manager sees,
as ``openPositions`` is read for a page), split by login; a smaller one reads each
account's window with its ``login``, as before.  Windows stay ≤ 2 days (the vendor's
rule): only the ``login`` filter is dropped.  Each account's window is still its own
entry on the gateway's cache road, with its own finality.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from brokergraph_ctrader.csvwire import ClosedDealRow, format_timestamp, parse_closed_positions

__all__ = ["WindowBatcher"]

Fetch = Callable[[dict[str, str]], Awaitable[str]]


@dataclass
class _Batch:
    gate: asyncio.Semaphore
    logins: set[str] = field(default_factory=set)
    task: asyncio.Task[dict[str, list[ClosedDealRow] | BaseException]] | None = None


class WindowBatcher:
    def __init__(self, fetch: Fetch, *, window: timedelta, delay: float, shared_above: int):
        self._fetch = fetch
        self._window = window
        self._delay = max(delay, 0.0)
        self._shared_above = shared_above
        self._open: dict[datetime, _Batch] = {}

    async def rows(
        self, login: str, window_start: datetime, gate: asyncio.Semaphore
    ) -> list[ClosedDealRow]:
        """The account's closing deals of positions opened in the window."""
        batch = self._open.get(window_start)
        if batch is None:
            batch = self._open[window_start] = _Batch(gate)
            batch.task = asyncio.ensure_future(self._fire(window_start, batch))
        batch.logins.add(login)
        assert batch.task is not None
        found = (await asyncio.shield(batch.task))[login]
        if isinstance(found, BaseException):
            raise found
        return found

    async def _fire(
        self, window_start: datetime, batch: _Batch
    ) -> dict[str, list[ClosedDealRow] | BaseException]:
        await asyncio.sleep(self._delay)  # let the page's other accounts join
        if self._open.get(window_start) is batch:
            del self._open[window_start]
        logins = sorted(batch.logins)
        params = {
            "from": format_timestamp(window_start),
            "to": format_timestamp(window_start + self._window),
        }
        if len(logins) > self._shared_above:
            try:
                async with batch.gate:
                    text = await self._fetch(params)
                rows = parse_closed_positions(text)
            except Exception as error:  # every account of the batch gets it
                return dict.fromkeys(logins, error)
            wanted: dict[str, list[ClosedDealRow] | BaseException] = {login: [] for login in logins}
            for row in rows:
                bucket = wanted.get(row.login)
                if isinstance(bucket, list):
                    bucket.append(row)
            return wanted

        async def one(login: str) -> list[ClosedDealRow]:
            async with batch.gate:
                text = await self._fetch({**params, "login": login})
            return [r for r in parse_closed_positions(text) if r.login == login]

        results = await asyncio.gather(*(one(login) for login in logins), return_exceptions=True)
        return dict(zip(logins, results, strict=True))
