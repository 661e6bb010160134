"""ACCOUNT_HISTORY and ACCOUNT_ANALYTICS: deals in 2-day windows, balance operations
from the store, and the seed-003 analytics."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta

from brokergraph_ctrader.analytics import summarize
from brokergraph_ctrader.connector._base import EPOCH, _login_of, _now
from brokergraph_ctrader.connector._reads import ReadsMixin
from brokergraph_ctrader.csvwire import ClosedDealRow, format_timestamp, parse_closed_positions
from brokergraph_ctrader.records import operation_from_record
from brokergraph_ctrader.wire import deal_from_row, position_from_row
from gateway.contract import (
    AccountAnalytics,
    AccountAnalyticsReads,
    AccountHistory,
    BalanceOperation,
    Deal,
    NotFound,
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


class HistoryMixin(ReadsMixin, AccountHistory, AccountAnalyticsReads):
    async def _closed_rows(self, login: str, start: datetime, end: datetime) -> list[ClosedDealRow]:
        """Closing deals of positions *opened* in ``[start, end)``, in ≤ 2-day windows
        fetched ``window_concurrency`` at a time, deduplicated by ``dealId``."""
        starts = _window_starts(start, min(end, _now() + timedelta(days=1)))
        gate = asyncio.Semaphore(self.settings.window_concurrency)

        async def fetch(window_start: datetime) -> list[ClosedDealRow]:
            params = {
                "from": format_timestamp(window_start),
                "to": format_timestamp(window_start + WINDOW),
                "login": login,
            }
            async with gate:
                try:
                    text = await self.client.get_text("/v2/webserv/closedPositions", params)
                except NotFound:
                    return []
            return [r for r in parse_closed_positions(text) if r.login == login]

        unique: dict[str, ClosedDealRow] = {}
        for rows in await asyncio.gather(*(fetch(s) for s in starts)):
            for row in rows:
                unique.setdefault(row.deal_id, row)
        return sorted(unique.values(), key=lambda r: (r.closed_at, r.deal_id))

    def _lookback(self, start: datetime) -> datetime:
        return start - timedelta(days=self.settings.deals_lookback_days)

    async def get_deals(self, account_id: str, start: datetime, end: datetime) -> Sequence[Deal]:
        """Deals *closed* in ``[start, end)`` (positions opened up to the look-back before)."""
        account = await self._read_account(account_id)
        rows = await self._closed_rows(account.id, self._lookback(start), end)
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
        """The seed-003 analytics (see :mod:`brokergraph_ctrader.analytics`)."""
        login = _login_of(account_id)
        if login is None:
            raise NotFound("account not found", field=["accountId"])
        account = await self._read_account(login)  # NotFound for an unknown login
        open_rows = await self._open_rows(login)
        # The windows are read after the open positions: a position that closes in
        # between shows up in its window rather than in neither.
        rows, subs = await asyncio.gather(
            self._closed_rows(login, self._lookback(start), end),
            self.get_copy_sub_accounts(login),
        )
        return summarize(
            account_id=login,
            currency=account.currency,
            start=start,
            end=end,
            deals=[deal_from_row(r, self.platform, account.currency) for r in rows],
            positions=[position_from_row(r, self.platform) for r in open_rows],
            copy_sub_accounts=subs,
        )
