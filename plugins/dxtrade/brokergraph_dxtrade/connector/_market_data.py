"""MARKET_DATA_ENTITLEMENTS: a user's dxFeed subscriptions, read from the dxFeed API
stand-in, and the subscription events the webhook appends to the gateway's event log."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Mapping, Sequence

from brokergraph_dxtrade.connector._base import DxTradeBase
from brokergraph_dxtrade.webhook import events_from_payload, topic_for
from gateway.contract import (
    MarketDataEntitlements,
    MarketDataSubscription,
    MarketDataSubscriptionEvent,
    NotFound,
)

__all__ = ["DxTradeMarketData"]


class DxTradeMarketData(DxTradeBase, MarketDataEntitlements):
    """dxFeed subscriptions of a user and their change events."""

    async def _feed_id(self, tid: str) -> str | None:
        known = self._feed_ids.get(tid)
        if known is not None:
            return known
        client = await self._client_or_none(tid)
        feed_id = None if client is None else client.get("dxFeedAccountId")
        if isinstance(feed_id, str) and feed_id:
            self._feed_ids[tid] = feed_id
            return feed_id
        return None

    async def get_market_data_subscriptions(
        self, trader_ids: Sequence[str]
    ) -> Sequence[Sequence[MarketDataSubscription]]:
        """The user's dxFeed subscriptions; none for single-feed users (or XT users who
        never logged in: their dxFeed account is created at the first login)."""

        async def one(tid: str) -> Sequence[MarketDataSubscription]:
            feed_id = await self._feed_id(tid)
            if feed_id is None:
                return []
            try:
                return await self._subscriptions_of(tid, feed_id)
            except NotFound:
                return []

        return await self._each(trader_ids, one)

    async def market_data_events(
        self, trader_id: str, *, after: int | None = None
    ) -> AsyncIterator[MarketDataSubscriptionEvent]:
        """The callbacks the webhook logged for this user: those after ``after`` (the
        sequence a subscriber last got), then live ones; from now when it is None.
        The webhook logs each event of a callback as its own entry, so each event has
        its own sequence (entries logged whole before that share theirs)."""
        async with self.context.events.follow(topic_for(trader_id), after=after) as entries:
            async for entry in entries:
                payload = entry.event
                if not isinstance(payload, Mapping):
                    continue
                try:
                    events = events_from_payload(trader_id, payload)
                except (KeyError, TypeError, ValueError):
                    self.context.logger.warning("dropped an unreadable dxFeed event")
                    continue
                for event in events:
                    yield dataclasses.replace(event, sequence=entry.sequence)
