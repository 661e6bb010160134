"""Who may see what: every resolver asks here before it reads or writes.

Owners and partners come from the store's in-memory copy (exact: see
:mod:`gateway.store._directory`), so these checks usually await nothing.

Objects the viewer may not see are reported as NOT_FOUND, never as
PERMISSION_DENIED, so a client cannot probe which ids exist.  An account or
trader not linked to any partner is visible to admins only, except a Copy
sub-account of a client's own account, which that client sees as its own (reads only).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, cast

from gateway.auth import Role
from gateway.connectors import Capability, Connector, CopySubAccountSource
from gateway.errors import BrokerGraphError, NotFound
from gateway.graphql.context import RequestContext
from gateway.models import CopySubAccount
from gateway.store import PartnerRecord

__all__ = [
    "require_account",
    "require_partner",
    "require_trader",
    "visible_partner",
]


async def visible_partner(ctx: RequestContext, code: str) -> PartnerRecord | None:
    known, record = ctx.services.store.known_partner(code)
    if not known:
        record = await ctx.loaders.partners.load(code)
    viewer = ctx.require_viewer()
    if record is None or not viewer.can_see_partner(record.code, record.broker):
        return None
    return record


async def require_partner(ctx: RequestContext, code: str) -> PartnerRecord:
    record = await visible_partner(ctx, code)
    if record is None:
        raise NotFound(f"business partner {code!r} not found", field=["partnerCode"])
    return record


async def _require_owned(ctx: RequestContext, owner: str | None, what: str) -> str | None:
    viewer = ctx.require_viewer()
    if owner is None:
        if viewer.role is Role.ADMIN:
            return None
        raise NotFound(f"{what} not found")
    if await visible_partner(ctx, owner) is None:
        raise NotFound(f"{what} not found")
    return owner


async def require_account(ctx: RequestContext, platform: str, account_id: str) -> str | None:
    """The owning partner's code (``None`` for an unlinked account seen by an admin)."""
    owner = await _owner(ctx, "account", platform, account_id)
    if owner is None:
        owner = await _copy_parent_owner(ctx, platform, account_id)
    return await _require_owned(ctx, owner, "account")


#: The read road's kind of a parent account's Copy sub-accounts.
COPY_SUB_ACCOUNTS = "copy-sub-accounts"


async def _copy_parent_owner(ctx: RequestContext, platform: str, account_id: str) -> str | None:
    """A client's own partner code when the unlinked account is a Copy sub-account of
    one of its accounts on the platform (read from the platform, cached on the read
    road); ``None`` otherwise, and for staff, who see the sub-accounts through the
    parent's analytics.  No upstream call where the platform has no Copy sub-accounts."""
    viewer = ctx.require_viewer()
    code = viewer.partner_code
    registry = ctx.services.registry
    if viewer.role is not Role.CLIENT or code is None:
        return None
    if not registry.has(platform, Capability.ACCOUNT_READS):
        return None
    connector = registry.require_any(platform)
    if not isinstance(connector, CopySubAccountSource):
        return None
    family = cast(type[Connector], type(connector))
    links = await ctx.loaders.partner_links.load((code, "account"))
    parents = [link.external_id for link in links if link.platform == platform]

    async def subs(parent: str) -> Sequence[CopySubAccount]:
        def fetch(source: Connector) -> Any:
            return cast(CopySubAccountSource, source).get_copy_sub_accounts(parent)

        try:
            found: Sequence[CopySubAccount] = await ctx.loaders.read(
                platform, Capability.ACCOUNT_READS, family, COPY_SUB_ACCOUNTS, parent, fetch
            )
        except BrokerGraphError:  # unreadable now: not shown as the partner's
            return ()
        return found

    found = await asyncio.gather(*(subs(parent) for parent in parents))
    return code if any(s.account_id == account_id for group in found for s in group) else None


async def require_linked_account(ctx: RequestContext, platform: str, account_id: str) -> str:
    """For writes: the account must be linked to a partner the viewer may see, whatever
    the role, so an unknown or mistyped id fails here without any upstream call."""
    owner = await _owner(ctx, "account", platform, account_id)
    if owner is None or await visible_partner(ctx, owner) is None:
        raise NotFound(
            "account not found (link it to a business partner first)", field=["accountId"]
        )
    return owner


async def require_trader(ctx: RequestContext, platform: str, trader_id: str) -> str | None:
    owner = await _owner(ctx, "trader", platform, trader_id)
    return await _require_owned(ctx, owner, "trader")


async def _owner(ctx: RequestContext, kind: str, platform: str, native_id: str) -> str | None:
    """Who owns the object: from the store's memory at once (no loader round on the
    event loop), or batched through the operation's loader while that is reloading."""
    known, owner = ctx.services.store.known_owner(platform, kind, native_id)
    if known:
        return owner
    loader = ctx.loaders.account_owners if kind == "account" else ctx.loaders.trader_owners
    return await loader.load((platform, native_id))
