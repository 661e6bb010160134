"""Who may see what: every resolver asks here before it reads or writes.

Owners and partners come from the store's in-memory copy (exact: see
:mod:`gateway.store._directory`), so these checks usually await nothing.

Objects the viewer may not see are reported as NOT_FOUND, never as
PERMISSION_DENIED, so a client cannot probe which ids exist.  An account or
trader not linked to any partner is visible to admins only.
"""

from __future__ import annotations

from gateway.auth import Role
from gateway.errors import NotFound
from gateway.graphql.context import RequestContext
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
    return await _require_owned(ctx, owner, "account")


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
