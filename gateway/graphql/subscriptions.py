"""Root subscription fields (graphql-transport-ws).

Each checks the viewer may see the account or trader *before* the first event,
then relays the connector's stream.  A client that falls behind or loses the
connection resumes with a fresh subscription; the connector starts every stream
with a snapshot and numbers events per account, so gaps are visible.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import strawberry
from strawberry.types import Info

from gateway.connectors import AccountStream, Capability, MarketDataEntitlements, OrderStream
from gateway.graphql import access
from gateway.graphql.context import context_of
from gateway.graphql.mutations import decode_account, decode_trader
from gateway.graphql.types import AccountEvent, MarketDataSubscriptionEvent, OrderEvent

__all__ = ["CoreSubscription"]


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
        async for event in stream.order_events(native_id):
            yield OrderEvent.from_model(ctx, event)

    @strawberry.subscription(description="Balance and state changes of an account.")
    async def account_events(
        self, info: Info[Any, Any], account_id: strawberry.ID
    ) -> AsyncGenerator[AccountEvent, None]:
        ctx = context_of(info)
        platform, native_id = decode_account(account_id)
        await access.require_account(ctx, platform, native_id)
        stream = ctx.services.registry.require(platform, Capability.ACCOUNT_STREAM, AccountStream)
        async for event in stream.account_events(native_id):
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
        async for event in entitlements.market_data_events(native_id):
            yield MarketDataSubscriptionEvent.from_model(event)
