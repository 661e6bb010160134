"""Provisioning mutations: traders and their accounts on a trading platform.

What a flow creates is linked to the partner even when the flow stops midway, so
nothing is orphaned; the payload lists the steps and a token to resume with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import strawberry
from strawberry.types import Info

from gateway import models
from gateway.connectors import (
    Capability,
    CreateTraderRequest,
    DeactivateTraderRequest,
    OpenAccountRequest,
    ProvisioningResult,
    ReactivateTraderRequest,
    TraderProvisioning,
    UpdateAccountRequest,
)
from gateway.errors import InvalidInput, UpstreamError
from gateway.graphql import access
from gateway.graphql.context import RequestContext
from gateway.graphql.errors import UserError, to_user_error
from gateway.graphql.loaders import cache_key
from gateway.graphql.mutations._inputs import (
    CreateTraderInput,
    DeactivateTraderInput,
    OpenAccountInput,
    ReactivateTraderInput,
    UpdateAccountInput,
)
from gateway.graphql.mutations._payloads import (
    AccountPayload,
    ProvisioningPayload,
    ProvisioningStep,
)
from gateway.graphql.mutations._validate import (
    check_amount,
    check_text,
    decode_account,
    decode_trader,
    json_object,
)
from gateway.graphql.mutations._write_path import (
    STAFF,
    AccountWrite,
    invalidate_account,
    send,
    write,
)
from gateway.graphql.types import Trader, account_type

__all__ = ["ProvisioningMutation"]


@strawberry.type
class ProvisioningMutation:
    @strawberry.mutation(
        description="Create a trader (and its accounts) and link them to a partner."
    )
    async def create_trader(
        self, info: Info[Any, Any], input: CreateTraderInput
    ) -> ProvisioningPayload:
        return await write(
            info,
            input,
            "createTrader",
            target=input.partner_code,
            authorise=STAFF,
            validate=_new_trader,
            dispatch=_create_trader,
            payload=ProvisioningPayload,
            reference=lambda p: p.trader.external_id if p.trader else None,
        )

    @strawberry.mutation
    async def open_account(self, info: Info[Any, Any], input: OpenAccountInput) -> AccountPayload:
        return await write(
            info,
            input,
            "openAccount",
            target=input.trader_id,
            authorise=STAFF,
            validate=_new_account,
            dispatch=_open_account,
            payload=AccountPayload,
            reference=lambda p: p.account.external_id if p.account else None,
        )

    @strawberry.mutation(description="Change leverage, access rights or group of an account.")
    async def update_account(
        self, info: Info[Any, Any], input: UpdateAccountInput
    ) -> AccountPayload:
        return await write(
            info,
            input,
            "updateAccount",
            target=input.account_id,
            authorise=STAFF,
            validate=_account_change,
            dispatch=_update_account,
            payload=AccountPayload,
        )

    @strawberry.mutation
    async def deactivate_trader(
        self, info: Info[Any, Any], input: DeactivateTraderInput
    ) -> ProvisioningPayload:
        return await write(
            info,
            input,
            "deactivateTrader",
            target=input.trader_id,
            authorise=STAFF,
            validate=_visible_trader,
            dispatch=_deactivate_trader,
            payload=ProvisioningPayload,
        )

    @strawberry.mutation
    async def reactivate_trader(
        self, info: Info[Any, Any], input: ReactivateTraderInput
    ) -> ProvisioningPayload:
        return await write(
            info,
            input,
            "reactivateTrader",
            target=input.trader_id,
            authorise=STAFF,
            validate=_visible_trader,
            dispatch=_reactivate_trader,
            payload=ProvisioningPayload,
        )


# --------------------------------------------------------------------------- validate


class _NamesTrader(Protocol):
    @property
    def trader_id(self) -> str: ...


NT = TypeVar("NT", bound=_NamesTrader)


@dataclass(frozen=True, slots=True)
class _OfTrader(Generic[NT]):
    """The input and the trader it names, which the viewer may see."""

    input: NT
    platform: str
    trader_id: str
    owner: str | None  # the partner it is linked to; None: unlinked, seen by an admin


async def _visible_trader(ctx: RequestContext, input: NT) -> _OfTrader[NT]:
    platform, trader_id = decode_trader(input.trader_id)
    owner = await access.require_trader(ctx, platform, trader_id)
    return _OfTrader(input, platform, trader_id, owner)


async def _new_account(ctx: RequestContext, input: OpenAccountInput) -> _OfTrader[OpenAccountInput]:
    trader = await _visible_trader(ctx, input)
    if input.leverage is not None:
        check_amount(input.leverage, field="leverage")
    return trader


@dataclass(frozen=True, slots=True)
class _NewTrader:
    input: CreateTraderInput
    email: str


async def _new_trader(ctx: RequestContext, input: CreateTraderInput) -> _NewTrader:
    await access.require_partner(ctx, input.partner_code)
    email = check_text(input.email, "email", max_length=254)
    if "@" not in email:
        raise InvalidInput("email is not an address", field=["email"])
    if input.leverage is not None:
        check_amount(input.leverage, field="leverage")
    return _NewTrader(input, email)


async def _account_change(
    ctx: RequestContext, input: UpdateAccountInput
) -> AccountWrite[UpdateAccountRequest, models.Account]:
    platform, account_id = decode_account(input.account_id)
    if input.leverage is None and input.status is None and input.group is None:
        raise InvalidInput("nothing to change", field=["leverage"])
    if input.leverage is not None:
        check_amount(input.leverage, field="leverage")
    await access.require_linked_account(ctx, platform, account_id)
    provisioning = _provisioning(ctx, platform)
    request = UpdateAccountRequest(
        account_id=account_id, leverage=input.leverage, status=input.status, group=input.group
    )
    return AccountWrite(platform, account_id, request, provisioning.update_account)


# --------------------------------------------------------------------------- dispatch


def _provisioning(ctx: RequestContext, platform: str) -> TraderProvisioning:
    registry = ctx.services.registry
    return registry.require(platform, Capability.TRADER_PROVISIONING, TraderProvisioning)


async def _create_trader(ctx: RequestContext, new: _NewTrader) -> ProvisioningPayload:
    input = new.input
    result = await _provisioning(ctx, input.platform).create_trader(
        CreateTraderRequest(
            partner_code=input.partner_code,
            email=new.email,
            name=input.name,
            password=input.password,
            group=input.group,
            currency=input.currency,
            leverage=input.leverage,
            is_live=input.is_live,
            options=json_object(input.options, "options"),
            resume_token=input.resume_token,
        )
    )
    await _link_result(ctx, input.partner_code, result)
    return _provisioning_payload(ctx, result)


async def _open_account(ctx: RequestContext, trader: _OfTrader[OpenAccountInput]) -> AccountPayload:
    input = trader.input
    account = await _provisioning(ctx, trader.platform).open_account(
        OpenAccountRequest(
            trader_id=trader.trader_id,
            currency=check_text(input.currency, "currency", max_length=12).upper(),
            group=input.group,
            leverage=input.leverage,
            is_live=input.is_live,
            options=json_object(input.options, "options"),
        )
    )
    if trader.owner is not None:
        await ctx.services.store.link(
            trader.owner, trader.platform, "account", account.id, trader_id=trader.trader_id
        )
    return AccountPayload(account=account_type(ctx, account))


async def _update_account(
    ctx: RequestContext, change: AccountWrite[UpdateAccountRequest, models.Account]
) -> AccountPayload:
    return AccountPayload(account=account_type(ctx, await send(ctx, change)))


async def _deactivate_trader(
    ctx: RequestContext, trader: _OfTrader[DeactivateTraderInput]
) -> ProvisioningPayload:
    result = await _provisioning(ctx, trader.platform).deactivate_trader(
        DeactivateTraderRequest(
            trader_id=trader.trader_id,
            cancel_market_data_subscriptions=trader.input.cancel_market_data_subscriptions,
        )
    )
    await _invalidate_trader(ctx, trader.platform, trader.trader_id)
    for account in result.accounts:
        await invalidate_account(ctx, trader.platform, account.id)
    return _provisioning_payload(ctx, result)


async def _reactivate_trader(
    ctx: RequestContext, trader: _OfTrader[ReactivateTraderInput]
) -> ProvisioningPayload:
    provisioning = _provisioning(ctx, trader.platform)
    new = trader.input.new_account
    result = await provisioning.reactivate_trader(
        ReactivateTraderRequest(
            trader_id=trader.trader_id,
            new_account=None
            if new is None
            else OpenAccountRequest(
                trader_id=trader.trader_id,
                currency=check_text(new.currency, "currency", max_length=12).upper(),
                group=new.group,
                leverage=new.leverage,
                is_live=new.is_live,
                options=json_object(new.options, "options"),
            ),
        )
    )
    await _invalidate_trader(ctx, trader.platform, trader.trader_id)
    if trader.owner is not None:
        await _link_result(ctx, trader.owner, result)
    return _provisioning_payload(ctx, result)


async def _invalidate_trader(ctx: RequestContext, platform: str, trader_id: str) -> None:
    await ctx.services.cache.delete(
        cache_key("trader", platform, trader_id),
        cache_key("trader-accounts", platform, trader_id),
        cache_key("md-subscriptions", platform, trader_id),
    )


async def _link_result(ctx: RequestContext, partner_code: str, result: ProvisioningResult) -> None:
    """Record what a flow created, even when it stopped midway, so nothing is orphaned."""
    store = ctx.services.store
    if result.trader is not None:
        await store.link(partner_code, result.trader.platform, "trader", result.trader.id)
    for account in result.accounts:
        await store.link(
            partner_code, account.platform, "account", account.id, trader_id=account.trader_id
        )


def _provisioning_payload(ctx: RequestContext, result: ProvisioningResult) -> ProvisioningPayload:
    errors: list[UserError] = []
    if not result.complete:
        failed = next((s for s in result.steps if not s.succeeded), None)
        where = f"at step {failed.name!r}" if failed else "midway"
        detail = f": {failed.message}" if failed and failed.message else ""
        then = "; send resumeToken to continue" if result.resume_token else ""
        errors.append(
            to_user_error(
                UpstreamError(f"the flow stopped {where}{detail}; what was created is linked{then}")
            )
        )
    return ProvisioningPayload(
        errors=errors,
        trader=Trader.from_model(result.trader) if result.trader else None,
        accounts=[account_type(ctx, a) for a in result.accounts],
        steps=[
            ProvisioningStep(
                name=s.name, succeeded=s.succeeded, reference=s.reference, message=s.message
            )
            for s in result.steps
        ],
        resume_token=result.resume_token,
    )
