"""ACCOUNT_HISTORY and ACCOUNT_ANALYTICS: deals in 2-day windows, balance operations
from the store, and the seed-003 analytics."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

from brokergraph_ctrader.analytics import Opening, RateSample, summarize, usd_rate
from brokergraph_ctrader.connector._base import EPOCH, _login_of, _now
from brokergraph_ctrader.connector._reads import ReadsMixin
from brokergraph_ctrader.connector._symbols import SymbolsMixin
from brokergraph_ctrader.connector._windows import WindowBatcher
from brokergraph_ctrader.csvwire import ClosedDealRow, format_timestamp
from brokergraph_ctrader.records import operation_from_record
from brokergraph_ctrader.wire import deal_from_row
from gateway.contract import (
    Account,
    AccountAnalytics,
    AccountAnalyticsReads,
    AccountHistory,
    BalanceOperation,
    Capability,
    Deal,
    NotFound,
    Position,
    UpstreamCost,
)

WINDOW = timedelta(days=2)  # closedPositions refuses longer windows (A8)


def _window_starts(start: datetime, end: datetime) -> list[datetime]:
    """2-day windows aligned on even epoch days, so different periods share them."""
    first = EPOCH + WINDOW * ((start - EPOCH) // WINDOW)
    starts: list[datetime] = []
    current = first
    while current < end:
        starts.append(current)
        current += WINDOW
    return starts


def _rate_sample(row: ClosedDealRow) -> RateSample | None:
    """A deal's conversion columns, or None when the grid lacks them or they are not
    numbers (the deal then gives no rate; nothing is guessed)."""
    try:
        deposit = Decimal(row.raw.get("depositConversionRate", ""))
        usd = Decimal(row.raw.get("usdConversionRate", ""))
    except InvalidOperation:
        return None
    if not (deposit.is_finite() and usd.is_finite()):
        return None
    return RateSample(row.deal_id, row.closed_at, row.close_price, deposit, usd)


class HistoryMixin(ReadsMixin, SymbolsMixin, AccountHistory, AccountAnalyticsReads):
    _window_batcher: WindowBatcher | None = None

    def _windows(self) -> WindowBatcher:
        """The connector's one batcher of window reads (see ``_windows``)."""
        if self._window_batcher is None:

            async def fetch(params: dict[str, str]) -> str:
                try:
                    return await self.client.get_text("/v2/webserv/closedPositions", params)
                except NotFound:
                    return ""

            self._window_batcher = WindowBatcher(
                fetch,
                window=WINDOW,
                delay=self.settings.window_batch_seconds,
                shared_above=self.settings.single_read_limit,
            )
        return self._window_batcher

    def upstream_costs(self) -> Mapping[str, UpstreamCost]:
        """A period is one closedPositions call per 2-day window of it and of the
        look-back (none before the account's registration: the bound is the worst
        case).  The account itself is never read again: the field's parent loaded it.
        Deals add the open-positions read (a sibling ``positions`` field of the same
        query shares it), analytics that and the Copy sub-accounts read; balance
        operations come from the gateway store.  Analytics may add the symbol list
        (6.1) for its category and asset-class rankings: one call per
        ``symbols_cache_seconds`` for every account, counted here as a worst case."""
        lookback = timedelta(days=max(0, self.settings.deals_lookback_days))
        return {
            "get_deals": UpstreamCost(calls=1, window=WINDOW, lookback=lookback),
            "get_analytics": UpstreamCost(calls=3, window=WINDOW, lookback=lookback),
            "get_balance_operations": UpstreamCost(calls=0),
        }

    async def _closed_rows(
        self,
        login: str,
        start: datetime,
        end: datetime,
        open_positions: Sequence[Position] | None = None,
    ) -> list[ClosedDealRow]:
        """Closing deals of positions *opened* in ``[start, end)``, in ≤ 2-day windows
        fetched ``window_concurrency`` at a time, deduplicated by ``dealId``.

        Each window is a shared read on the gateway's cache road (its upstream call
        joined with other accounts' calls of the same window, ``_windows``): a window that can
        no longer change (past, and none of the positions opened in it still open)
        is kept ``final_window_cache_seconds``; any other for the history TTL.  A page
        refreshed every minute then re-reads only the recent windows.
        """
        now = _now()
        starts = _window_starts(start, min(end, now + timedelta(days=1)))
        gate = asyncio.Semaphore(self.settings.window_concurrency)
        opened: asyncio.Task[list[datetime]] | None = None

        async def open_times() -> list[datetime]:
            # Read once, and only when a window misses the cache; before the window
            # itself, so a position that closes in between shows up in its window.
            nonlocal opened
            if opened is None:

                async def read() -> list[datetime]:
                    held = open_positions
                    if held is None:
                        held = await self._held_positions(login)
                    return [p.opened_at for p in held]

                opened = asyncio.ensure_future(read())
            return await opened

        async def fetch(window_start: datetime) -> tuple[bool, list[ClosedDealRow]]:
            window_end = window_start + WINDOW
            times = await open_times()
            # Joined with other accounts' reads of this window (a page's analytics).
            rows = await self._windows().rows(login, window_start, gate)
            final = window_end < now - timedelta(minutes=1) and not any(
                window_start <= t < window_end for t in times
            )
            return final, rows

        def ttl(window: tuple[bool, list[ClosedDealRow]]) -> float:
            final, _ = window
            if final:
                return self.settings.final_window_cache_seconds
            return self.cache_ttl_seconds[Capability.ACCOUNT_HISTORY]

        async def window_rows(window_start: datetime) -> list[ClosedDealRow]:
            key = f"{login}:{format_timestamp(window_start)}"
            _, rows = await self.context.reads.read(
                "closed-window", key, lambda: fetch(window_start), ttl=ttl
            )
            return rows

        unique: dict[str, ClosedDealRow] = {}
        for rows in await asyncio.gather(*(window_rows(s) for s in starts)):
            for row in rows:
                unique.setdefault(row.deal_id, row)
        return sorted(unique.values(), key=lambda r: (r.closed_at, r.deal_id))

    def _first_open(self, account: Account, start: datetime) -> datetime:
        """The earliest open time a deal closed from ``start`` on is looked for: the
        look-back before ``start``, but never before the account was registered
        (no position of it can be older), so a young account reads no empty windows."""
        lookback = start - timedelta(days=self.settings.deals_lookback_days)
        if account.created_at is None:
            return lookback
        return max(lookback, account.created_at)

    async def _account_of(self, account_id: str) -> Account:
        login = _login_of(account_id)
        if login is None:
            raise NotFound("account not found", field=["accountId"])
        return await self._held_account(login)  # NotFound for an unknown login

    async def get_deals(self, account_id: str, start: datetime, end: datetime) -> Sequence[Deal]:
        """Deals *closed* in ``[start, end)`` (positions opened up to the look-back before)."""
        account = await self._account_of(account_id)
        rows = await self._closed_rows(account.id, self._first_open(account, start), end)
        return [
            deal_from_row(row, self.platform, account.currency)
            for row in rows
            if start <= row.closed_at < end
        ]

    async def get_balance_operations(
        self, account_id: str, start: datetime, end: datetime
    ) -> Sequence[BalanceOperation]:
        """Operations made through this gateway (WebServices has no balance-history read)."""
        login = _login_of(account_id)
        if login is None:
            return []
        records = await self.context.store.list_flows(
            f"{self.name}-op", prefix=f"{self.name}-op:{login}:", limit=100_000
        )
        operations = [operation_from_record(self.platform, state) for _, state in records]
        return sorted((o for o in operations if start <= o.at < end), key=lambda o: (o.at, o.id))

    async def get_analytics(
        self, account_id: str, start: datetime, end: datetime
    ) -> AccountAnalytics:
        """The seed-003 analytics (see :mod:`brokergraph_ctrader.analytics`).

        The account, its open positions and its Copy sub-accounts are the entries the
        query's loaders hold (read here only when none does): the upstream calls of
        the period are its closedPositions windows and nothing more.
        """
        account = await self._account_of(account_id)
        login = account.id
        positions = await self._held_positions(login)
        # The windows are read after the open positions: a position that closes in
        # between shows up in its window rather than in neither.
        rows, subs = await asyncio.gather(
            self._closed_rows(login, self._first_open(account, start), end, positions),
            self._held_sub_accounts(login),
        )
        # The symbol list only when something was opened in the period to rank.
        opened_any = any(start <= p.opened_at < end for p in positions) or any(
            start <= r.opened_at < end for r in rows
        )
        classes = await self._symbol_classes() if opened_any else {}
        rates = []
        if self.settings.deal_conversion_rates:
            samples = [s for s in map(_rate_sample, rows) if s is not None]
            rate = usd_rate(account.currency, login, samples, end)
            rates = [rate] if rate is not None else []
        return summarize(
            account_id=login,
            currency=account.currency,
            start=start,
            end=end,
            deals=[deal_from_row(r, self.platform, account.currency) for r in rows],
            positions=positions,
            copy_sub_accounts=subs,
            # The windows cover every position opened from the look-back to ``to``.
            openings=[Opening(r.position_id, r.symbol, r.opened_at, r.volume) for r in rows],
            classes=classes,
            conversion_rates=rates,
        )
