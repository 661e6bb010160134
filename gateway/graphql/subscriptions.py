"""Root subscription fields (graphql-transport-ws).

Each checks the viewer may see the account or trader *before* the first event,
then relays the connector's stream.  Streams whose events are in the gateway's
event log carry its per-topic ``sequence`` (the same on every replica); a client
whose stream broke subscribes again with ``afterSequence`` = the last one it got
and receives what it missed, then live events, with no gap and no duplicate
(RESUME_POINT_EXPIRED when the log no longer holds that point: subscribe without
it for a fresh snapshot).  A connector whose stream cannot resume refuses
``afterSequence`` with CAPABILITY_NOT_SUPPORTED.

Every stream goes through :func:`relay`, which tells the WebSocket fan-out (see
:mod:`gateway.graphql._fanout`) each event's sequence and lets it start the stream
after a sequence of its choosing: that is how subscribers of the same stream come to
share one execution per event.  The access check stays here, per subscriber, before
the first event.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Annotated, Any, Protocol, TypeVar

import strawberry
from strawberry.types import Info

from gateway.connectors import AccountStream, Capability, MarketDataEntitlements, OrderStream
from gateway.errors import CapabilityNotSupported, InvalidInput
from gateway.graphql import access
from gateway.graphql._fanout import current_tap
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


AfterSequence = Annotated[
    int | None,
    strawberry.argument(
        description=(
            "Resume after this sequence (the last one received): the events missed "
            "since, then live ones.  Omitted: a fresh start."
        )
    ),
]


def can_resume(method: Callable[..., AsyncIterator[Any]]) -> bool:
    # Guarded methods keep their signature (functools.wraps): this sees the connector's.
    return "after" in inspect.signature(method).parameters


def resumable(
    method: Callable[..., AsyncIterator[T]], key: str, after: int | None, platform: str
) -> AsyncIterator[T]:
    """``method(key)``, resuming after ``after`` when given (the connector must take it)."""
    if after is None:
        return method(key)
    if after < 0:
        raise InvalidInput("afterSequence must not be negative", field=["afterSequence"])
    if not can_resume(method):
        raise CapabilityNotSupported(
            f"{platform} streams cannot resume; subscribe without afterSequence",
            field=["afterSequence"],
            details={"platform": platform},
        )
    return method(key, after=after)


class _Sequenced(Protocol):
    @property
    def sequence(self) -> int: ...


E = TypeVar("E", bound=_Sequenced)
G = TypeVar("G")


async def relay(
    method: Callable[..., AsyncIterator[E]],
    key: str,
    after: int | None,
    platform: str,
    convert: Callable[[E], G],
) -> AsyncGenerator[G, None]:
    """The connector's stream of ``key`` as GraphQL objects, reporting to the fan-out.

    The fan-out may start the stream after another sequence than the document's
    (:attr:`StreamTap.resume_after`); it is told each event's sequence before the
    event is yielded, and whether the stream can resume at all.
    """
    tap = current_tap()
    if tap is not None:
        after = tap.after(after)
        tap.resumable = can_resume(method)
    # When the client leaves, the connector's stream is closed at once,
    # not whenever the async generator happens to be finalised.
    async with closing(resumable(method, key, after, platform)) as events:
        async for event in events:
            if tap is not None:
                tap.sequence = event.sequence
            yield convert(event)


@strawberry.type
class CoreSubscription:
    @strawberry.subscription(description="Order, position, account and text events of an account.")
    async def order_events(
        self,
        info: Info[Any, Any],
        account_id: strawberry.ID,
        after_sequence: AfterSequence = None,
    ) -> AsyncGenerator[OrderEvent, None]:
        ctx = context_of(info)
        platform, native_id = decode_account(account_id)
        await access.require_account(ctx, platform, native_id)
        stream = ctx.services.registry.require(platform, Capability.ORDER_STREAM, OrderStream)
        events = relay(
            stream.order_events,
            native_id,
            after_sequence,
            platform,
            lambda event: OrderEvent.from_model(ctx, event),
        )
        async with contextlib.aclosing(events):
            async for event in events:
                yield event

    @strawberry.subscription(description="Balance and state changes of an account.")
    async def account_events(
        self,
        info: Info[Any, Any],
        account_id: strawberry.ID,
        after_sequence: AfterSequence = None,
    ) -> AsyncGenerator[AccountEvent, None]:
        ctx = context_of(info)
        platform, native_id = decode_account(account_id)
        await access.require_account(ctx, platform, native_id)
        stream = ctx.services.registry.require(platform, Capability.ACCOUNT_STREAM, AccountStream)
        events = relay(
            stream.account_events,
            native_id,
            after_sequence,
            platform,
            lambda event: AccountEvent.from_model(ctx, event),
        )
        async with contextlib.aclosing(events):
            async for event in events:
                yield event

    @strawberry.subscription(description="Market-data entitlement changes of a trader.")
    async def market_data_subscription_events(
        self,
        info: Info[Any, Any],
        trader_id: strawberry.ID,
        after_sequence: AfterSequence = None,
    ) -> AsyncGenerator[MarketDataSubscriptionEvent, None]:
        ctx = context_of(info)
        platform, native_id = decode_trader(trader_id, field="traderId")
        await access.require_trader(ctx, platform, native_id)
        entitlements = ctx.services.registry.require(
            platform, Capability.MARKET_DATA_ENTITLEMENTS, MarketDataEntitlements
        )
        events = relay(
            entitlements.market_data_events,
            native_id,
            after_sequence,
            platform,
            MarketDataSubscriptionEvent.from_model,
        )
        async with contextlib.aclosing(events):
            async for event in events:
                yield event
