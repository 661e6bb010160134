"""Admin mutations: record or forget which partner a trader or account belongs to.

Links decide who may see and trade what, so only admins change them by hand;
provisioning links what it creates by itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import strawberry
from strawberry.types import Info

from gateway.errors import InvalidInput
from gateway.graphql import access
from gateway.graphql.context import RequestContext
from gateway.graphql.mutations._inputs import LinkToPartnerInput, UnlinkFromPartnerInput
from gateway.graphql.mutations._payloads import LinkPayload
from gateway.graphql.mutations._validate import decode_account, decode_trader
from gateway.graphql.mutations._write_path import ADMIN, write
from gateway.graphql.types import load_partner

__all__ = ["AdminMutation"]


@strawberry.type
class AdminMutation:
    @strawberry.mutation(description="Admin: record that a trader or account belongs to a partner.")
    async def link_to_partner(self, info: Info[Any, Any], input: LinkToPartnerInput) -> LinkPayload:
        return await write(
            info,
            input,
            "linkToPartner",
            target=input.partner_code,
            authorise=ADMIN,
            validate=_new_link,
            dispatch=_link,
            payload=LinkPayload,
        )

    @strawberry.mutation(description="Admin: forget that a trader or account belongs to a partner.")
    async def unlink_from_partner(
        self, info: Info[Any, Any], input: UnlinkFromPartnerInput
    ) -> LinkPayload:
        return await write(
            info,
            input,
            "unlinkFromPartner",
            target=input.trader_id or input.account_id,
            authorise=ADMIN,
            validate=_linked,
            dispatch=_unlink,
            payload=LinkPayload,
        )


@dataclass(frozen=True, slots=True)
class _Linked:
    """A trader or account (``kind``) by platform and native id."""

    kind: str
    platform: str
    native_id: str


@dataclass(frozen=True, slots=True)
class _NewLink:
    partner_code: str
    target: _Linked


def _target(trader_id: str | None, account_id: str | None) -> _Linked:
    if (trader_id is None) == (account_id is None):
        raise InvalidInput("give exactly one of traderId and accountId", field=["traderId"])
    if trader_id is not None:
        return _Linked("trader", *decode_trader(trader_id))
    assert account_id is not None
    return _Linked("account", *decode_account(account_id))


async def _new_link(ctx: RequestContext, input: LinkToPartnerInput) -> _NewLink:
    await access.require_partner(ctx, input.partner_code)
    return _NewLink(input.partner_code, _target(input.trader_id, input.account_id))


async def _linked(ctx: RequestContext, input: UnlinkFromPartnerInput) -> _Linked:
    return _target(input.trader_id, input.account_id)


async def _link(ctx: RequestContext, link: _NewLink) -> LinkPayload:
    target = link.target
    await ctx.services.store.link(link.partner_code, target.platform, target.kind, target.native_id)
    return LinkPayload(business_partner=await load_partner(ctx, link.partner_code))


async def _unlink(ctx: RequestContext, linked: _Linked) -> LinkPayload:
    await ctx.services.store.unlink(linked.platform, linked.kind, linked.native_id)
    return LinkPayload()
