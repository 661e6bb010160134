"""Root subscription fields (graphql-transport-ws).

Each checks the viewer may see the account or trader *before* the first event,
then relays the connector's stream.  A client that falls behind or loses the
connection resumes with a fresh subscription; the connector starts every stream
with a snapshot and numbers events per account, so gaps are visible.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, TypeVar

import strawberry
from strawberry.types import Info

from gateway.connectors import AccountStream, Capability, MarketDataEntitlements, OrderStream
from gateway.graphql import access
from gateway.graphql.context import context_of
from gateway.graphql.mutations import decode_account, decode_trader
from gateway.graphql.types import AccountEvent, MarketDataSubscriptionEvent, OrderEvent

__all__ = ["CoreSubscription"]

T = TypeVar("T")


@contextlib.asynccontextmanager
async def closing(stream: AsyncIterator[T]) -> AsyncIterator[AsyncIterator[T]]:
    """Close a connector's stream when the subscriber leaves (if it can be closed)."""
    try:
        yield stream
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()


@strawberry.type
class CoreSubscription:
    @strawberry.subscription(description="Order, position, account and text events of an account.")
    async def order_events(
        self, info: Info[Any, Any], account_id: strawberry.ID
    ) -> AsyncGenerator[OrderEvent, None]:
        ctx = context_of(info)
        platform, native_id = decode_account(account_id)
        await access.require_account(ctx, platform, native_id)
        stream = ctx.services.registry.require(platform, Capability.ORDER_STREAM, OrderStream)
        # When the client leaves, the connector's stream is closed at once,
        # not whenever the async generator happens to be finalised.
        async with closing(stream.order_events(native_id)) as events:
            async for event in events:
                yield OrderEvent.from_model(ctx, event)

    @strawberry.subscription(description="Balance and state changes of an account.")
    async def account_events(
        self, info: Info[Any, Any], account_id: strawberry.ID
    ) -> AsyncGenerator[AccountEvent, None]:
        ctx = context_of(info)
        platform, native_id = decode_account(account_id)
        await access.require_account(ctx, platform, native_id)
        stream = ctx.services.registry.require(platform, Capability.ACCOUNT_STREAM, AccountStream)
        async with closing(stream.account_events(native_id)) as events:
            async for event in events:
                yield AccountEvent.from_model(ctx, event)

    @strawberry.subscription(description="Market-data entitlement changes of a trader.")
    async def market_data_subscription_events(
        self, info: Info[Any, Any], trader_id: strawberry.ID
    ) -> AsyncGenerator[MarketDataSubscriptionEvent, None]:
        ctx = context_of(info)
        platform, native_id = decode_trader(trader_id, field="traderId")
        await access.require_trader(ctx, platform, native_id)
        entitlements = ctx.services.registry.require(
            platform, Capability.MARKET_DATA_ENTITLEMENTS, MarketDataEntitlements
        )
        async with closing(entitlements.market_data_events(native_id)) as events:
            async for event in events:
                yield MarketDataSubscriptionEvent.from_model(event)
