"""Order mutations: place, cancel and replace orders on an account.

Any viewer may trade the accounts they may see.  Placing and replacing run under
the client's idempotency key (scope ``order:<platform>:<account>``); cancelling named
orders is idempotent by nature and runs without one.  Cancelling *every* working order
is not: a retry after new orders were placed would cancel those too, so
``cancelAllOrders`` runs under a key (scope ``orders:<platform>:<account>``) and a
retry replays the first result.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any

import strawberry
from strawberry.types import Info

from gateway import models
from gateway.connectors import (
    CancelOrdersRequest,
    Capability,
    OrderReads,
    OrderRouting,
    PlaceOrderRequest,
    ReplaceOrderRequest,
)
from gateway.errors import InvalidInput
from gateway.graphql import access, client_order_ids
from gateway.graphql.context import RequestContext
from gateway.graphql.errors import UserError
from gateway.graphql.mutations._inputs import (
    CancelOrderInput,
    CancelOrdersForContractInput,
    CancelOrdersInput,
    PlaceOrderInput,
    ReplaceOrderInput,
)
from gateway.graphql.mutations._payloads import OrderPayload, OrdersPayload
from gateway.graphql.mutations._validate import (
    check_amount,
    check_text,
    decode_account,
    decode_order,
)
from gateway.graphql.mutations._write_path import AccountWrite, Once, send, write
from gateway.graphql.types import Order
from gateway.idempotency import check_idempotency_key

__all__ = ["CancelAllOrdersInput", "CancelAllOrdersPayload", "OrdersMutation"]

MAX_CANCEL = 100
# The states an order can still be cancelled in.
RESTING = frozenset(
    {models.OrderStatus.PENDING, models.OrderStatus.WORKING, models.OrderStatus.PARTIALLY_FILLED}
)


@strawberry.input
class CancelAllOrdersInput:
    account_id: strawberry.ID
    idempotency_key: str


@strawberry.type
class CancelAllOrdersPayload:
    """Every order that was working, each in the state its cancellation left it."""

    orders: list[Order] = strawberry.field(default_factory=list)
    replayed: bool = False
    errors: list[UserError] = strawberry.field(default_factory=list)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class CancelAllOrdersRequest:
    account_id: str
    idempotency_key: str


@dataclasses.dataclass(frozen=True, slots=True)
class CancelledOrders:
    """What ``cancelAllOrders`` stores under its key: the orders it cancelled."""

    orders: tuple[models.Order, ...]


def _payload(order: models.Order | None, errors: list[UserError], replayed: bool) -> OrderPayload:
    return OrderPayload(
        order=Order.from_model(order) if order else None, replayed=replayed, errors=errors
    )


def _reference(payload: OrderPayload) -> str | None:
    return payload.order.external_id if payload.order else None


ORDER = Once(scope="order", model=models.Order, present=_payload)


def _all_payload(
    result: CancelledOrders | None, errors: list[UserError], replayed: bool
) -> CancelAllOrdersPayload:
    orders = [Order.from_model(o) for o in result.orders] if result else []
    return CancelAllOrdersPayload(orders=orders, replayed=replayed, errors=errors)


ALL_ORDERS = Once(scope="orders", model=CancelledOrders, present=_all_payload)


@strawberry.type
class OrdersMutation:
    @strawberry.mutation
    async def place_order(self, info: Info[Any, Any], input: PlaceOrderInput) -> OrderPayload:
        return await write(
            info,
            input,
            "placeOrder",
            target=input.account_id,
            validate=_placement,
            once=ORDER,
            reference=_reference,
        )

    @strawberry.mutation
    async def cancel_order(self, info: Info[Any, Any], input: CancelOrderInput) -> OrderPayload:
        return await write(
            info,
            input,
            "cancelOrder",
            target=input.order_id,
            validate=_cancellation,
            dispatch=_cancel_one,
            payload=OrderPayload,
        )

    @strawberry.mutation
    async def cancel_orders(self, info: Info[Any, Any], input: CancelOrdersInput) -> OrdersPayload:
        return await write(
            info,
            input,
            "cancelOrders",
            target=input.account_id,
            validate=_cancellations,
            dispatch=_cancel_many,
            payload=OrdersPayload,
        )

    @strawberry.mutation
    async def cancel_orders_for_contract(
        self, info: Info[Any, Any], input: CancelOrdersForContractInput
    ) -> OrdersPayload:
        return await write(
            info,
            input,
            "cancelOrdersForContract",
            target=input.account_id,
            validate=_contract_cancellation,
            dispatch=_cancel_many,
            payload=OrdersPayload,
        )

    @strawberry.mutation(
        description="Cancel every working order of the account, each by its id; a retry"
        " with the same idempotencyKey replays the first result (and cancels nothing new)."
    )
    async def cancel_all_orders(
        self, info: Info[Any, Any], input: CancelAllOrdersInput
    ) -> CancelAllOrdersPayload:
        return await write(
            info,
            input,
            "cancelAllOrders",
            target=input.account_id,
            validate=_cancel_all,
            once=ALL_ORDERS,
        )

    @strawberry.mutation
    async def replace_order(self, info: Info[Any, Any], input: ReplaceOrderInput) -> OrderPayload:
        return await write(
            info,
            input,
            "replaceOrder",
            target=input.order_id,
            validate=_replacement,
            once=ORDER,
            reference=_reference,
        )


# --------------------------------------------------------------------------- validate


async def _router(ctx: RequestContext, platform: str, account_id: str) -> OrderRouting:
    """The order router of an account the viewer may trade."""
    await access.require_linked_account(ctx, platform, account_id)
    return ctx.services.registry.require(platform, Capability.ORDER_ROUTING, OrderRouting)


async def _placement(
    ctx: RequestContext, input: PlaceOrderInput
) -> AccountWrite[PlaceOrderRequest, models.Order]:
    platform, account_id = decode_account(input.account_id)
    symbol = check_text(input.symbol, "symbol", max_length=64)
    quantity = check_amount(input.quantity, field="quantity")
    key = check_idempotency_key(input.idempotency_key)
    needs_price = input.type in (models.OrderType.LIMIT, models.OrderType.STOP_LIMIT)
    needs_stop = input.type in (models.OrderType.STOP, models.OrderType.STOP_LIMIT)
    if needs_price and input.price is None:
        raise InvalidInput("a limit order needs a price", field=["price"])
    if needs_stop and input.stop_price is None:
        raise InvalidInput("a stop order needs a stopPrice", field=["stopPrice"])
    for name, value in (("price", input.price), ("stopPrice", input.stop_price)):
        if value is not None:
            check_amount(value, field=name)
    if input.time_in_force is models.TimeInForce.GTD and input.expires_at is None:
        raise InvalidInput("a GTD order needs expiresAt", field=["expiresAt"])
    client_order_id = (
        None
        if input.client_order_id is None
        else check_text(input.client_order_id, "clientOrderId", max_length=64)
    )
    router = await _router(ctx, platform, account_id)
    request = PlaceOrderRequest(
        account_id=account_id,
        symbol=symbol,
        side=input.side,
        type=input.type,
        quantity=quantity,
        idempotency_key=key,
        price=input.price,
        stop_price=input.stop_price,
        time_in_force=input.time_in_force,
        expires_at=input.expires_at,
        client_order_id=client_order_id,
    )

    async def place(request: PlaceOrderRequest) -> models.Order:
        order = await router.place_order(request)
        if request.client_order_id is None or order.client_order_id is not None:
            return order  # nothing to keep, or the platform keeps it
        await client_order_ids.remember(ctx.services.store, order, request.client_order_id)
        return dataclasses.replace(order, client_order_id=request.client_order_id)

    return AccountWrite(platform, account_id, request, place)


async def _replacement(
    ctx: RequestContext, input: ReplaceOrderInput
) -> AccountWrite[ReplaceOrderRequest, models.Order]:
    platform, account_id, order_id = decode_order(input.order_id)
    key = check_idempotency_key(input.idempotency_key)
    if input.quantity is None and input.price is None and input.stop_price is None:
        raise InvalidInput("nothing to replace", field=["quantity"])
    for name, value in (
        ("quantity", input.quantity),
        ("price", input.price),
        ("stopPrice", input.stop_price),
    ):
        if value is not None:
            check_amount(value, field=name)
    router = await _router(ctx, platform, account_id)
    request = ReplaceOrderRequest(
        account_id=account_id,
        order_id=order_id,
        idempotency_key=key,
        quantity=input.quantity,
        price=input.price,
        stop_price=input.stop_price,
    )
    return AccountWrite(platform, account_id, request, router.replace_order)


async def _cancellation(
    ctx: RequestContext, input: CancelOrderInput
) -> AccountWrite[str, models.Order]:
    platform, account_id, order_id = decode_order(input.order_id)
    router = await _router(ctx, platform, account_id)
    return AccountWrite(
        platform, account_id, order_id, functools.partial(router.cancel_order, account_id)
    )


async def _cancellations(
    ctx: RequestContext, input: CancelOrdersInput
) -> AccountWrite[CancelOrdersRequest, Sequence[models.Order]]:
    platform, account_id = decode_account(input.account_id)
    if not 1 <= len(input.order_ids) <= MAX_CANCEL:
        raise InvalidInput(f"orderIds must hold 1-{MAX_CANCEL} ids", field=["orderIds"])
    order_ids = []
    for global_id in input.order_ids:
        order_platform, order_account, order_id = decode_order(global_id)
        if (order_platform, order_account) != (platform, account_id):
            raise InvalidInput("every order must belong to the account", field=["orderIds"])
        order_ids.append(order_id)
    router = await _router(ctx, platform, account_id)
    request = CancelOrdersRequest(account_id=account_id, order_ids=order_ids)
    return AccountWrite(platform, account_id, request, router.cancel_orders)


async def _contract_cancellation(
    ctx: RequestContext, input: CancelOrdersForContractInput
) -> AccountWrite[str, Sequence[models.Order]]:
    platform, account_id = decode_account(input.account_id)
    symbol = check_text(input.symbol, "symbol", max_length=64)
    router = await _router(ctx, platform, account_id)
    return AccountWrite(
        platform,
        account_id,
        symbol,
        functools.partial(router.cancel_orders_for_contract, account_id),
    )


async def _cancel_all(
    ctx: RequestContext, input: CancelAllOrdersInput
) -> AccountWrite[CancelAllOrdersRequest, CancelledOrders]:
    platform, account_id = decode_account(input.account_id)
    key = check_idempotency_key(input.idempotency_key)
    router = await _router(ctx, platform, account_id)
    # The working orders come from the platform's own book, read as the cancel is sent:
    # the gateway's cached orders may miss some placed elsewhere (a desk, another app).
    reads = ctx.services.registry.require(platform, Capability.ORDER_READS, OrderReads)

    async def cancel_all(request: CancelAllOrdersRequest) -> CancelledOrders:
        (book,) = await reads.get_orders([request.account_id])
        working = [o.id for o in book if o.status in RESTING]
        cancelled: list[models.Order] = []
        # In batches no larger than cancelOrders takes, so a platform sees familiar sizes.
        for start in range(0, len(working), MAX_CANCEL):
            ids = working[start : start + MAX_CANCEL]
            batch = CancelOrdersRequest(account_id=request.account_id, order_ids=ids)
            cancelled.extend(await router.cancel_orders(batch))
        return CancelledOrders(tuple(cancelled))

    request = CancelAllOrdersRequest(account_id=account_id, idempotency_key=key)
    return AccountWrite(platform, account_id, request, cancel_all)


# --------------------------------------------------------------------------- dispatch


async def _cancel_one(
    ctx: RequestContext, cancellation: AccountWrite[str, models.Order]
) -> OrderPayload:
    return OrderPayload(order=Order.from_model(await send(ctx, cancellation)))


async def _cancel_many(
    ctx: RequestContext, cancellation: AccountWrite[Any, Sequence[models.Order]]
) -> OrdersPayload:
    return OrdersPayload(orders=[Order.from_model(o) for o in await send(ctx, cancellation)])
