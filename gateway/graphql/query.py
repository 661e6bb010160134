"""Root query fields of the core schema."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import strawberry
from strawberry.types import Info

from gateway.auth import Role
from gateway.connectors import Capability, InstrumentReads, OrderReads
from gateway.errors import BrokerGraphError, InvalidInput, NotFound
from gateway.graphql import access, audit
from gateway.graphql.audit import AuditEntry
from gateway.graphql.context import RequestContext, context_of
from gateway.graphql.ids import decode_id, encode_id
from gateway.graphql.types import (
    DIRECTORY_UNREADABLE,
    Account,
    AccountConnection,
    AccountEdge,
    BusinessPartner,
    Connection,
    ConnectorHealth,
    ConnectorInfo,
    Instrument,
    Node,
    Order,
    OrderFilter,
    OrderStatus,
    PageInfo,
    Trader,
    Transfer,
    ViewerInfo,
    connection,
    linked_account,
    load_account,
    load_order,
    load_partner,
    load_trader,
)
from gateway.models import Instrument as InstrumentModel
from gateway.models import Order as OrderModel

__all__ = ["CoreQuery", "resolve_node"]

MAX_NODES = 100
#: The most symbols one instruments query names, and the longest symbol.
MAX_SYMBOLS = 100
MAX_SYMBOL_LENGTH = 64


def check_symbols(symbols: list[str] | None) -> list[str] | None:
    """The named symbols without repeats, or INVALID_INPUT (before any upstream call)."""
    if symbols is None:
        return None
    if not 1 <= len(symbols) <= MAX_SYMBOLS:
        raise InvalidInput(
            f"name between 1 and {MAX_SYMBOLS} symbols (or none for all)", field=["symbols"]
        )
    for index, symbol in enumerate(symbols):
        if not (
            0 < len(symbol) <= MAX_SYMBOL_LENGTH
            and symbol.isprintable()
            and symbol == symbol.strip()
        ):
            raise InvalidInput(
                f"a symbol is 1 to {MAX_SYMBOL_LENGTH} printable characters without"
                " surrounding spaces",
                field=["symbols", str(index)],
            )
    return list(dict.fromkeys(symbols))


async def load_instruments(
    ctx: RequestContext, platform: str, account_id: str, symbols: list[str] | None
) -> list[InstrumentModel]:
    """The account's instruments named by ``symbols`` (in that order; NOT_FOUND names the
    ones the platform does not know), or all of them by symbol, on the read road."""
    key = "\x1f".join([account_id, *(symbols or ["*"])])  # symbols hold no control character
    found = await ctx.loaders.read(
        platform,
        Capability.INSTRUMENTS,
        InstrumentReads,
        "instruments",
        key,
        lambda reads: reads.get_instruments(account_id, symbols),
    )
    if symbols is None:
        return sorted(found, key=lambda i: i.symbol)
    by_symbol = {i.symbol: i for i in found}
    missing = [s for s in symbols if s not in by_symbol]
    if missing:
        raise NotFound(
            f"no instrument {', '.join(missing[:5])} on this account",
            field=["symbols"],
            details={"symbols": missing},
        )
    return [by_symbol[s] for s in symbols]


def _key_of(order: OrderModel) -> tuple[str, str]:
    """An order's place in a newest-first list: creation time (none sorts oldest), id."""
    # A fixed-width UTC text sorts as the time does.
    created = (
        order.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        if order.created_at
        else ""
    )
    return created, order.id


def _order_key(cursor: tuple[str, list[str]]) -> tuple[str, str]:
    _, parts = cursor
    if len(parts) != 2:
        raise InvalidInput("not an orders cursor", field=["after"])
    return parts[0], parts[1]


def check_page_size(ctx: RequestContext, first: int) -> None:
    limit = ctx.services.settings.limits.max_page_size
    if not 1 <= first <= limit:
        raise InvalidInput(f"`first` must be between 1 and {limit}", field=["first"])


async def resolve_node(ctx: RequestContext, global_id: str) -> Node:
    """Any Node by its global id, after the same access checks as its own field."""
    type_name, parts = decode_id(global_id)
    try:
        if type_name == "BusinessPartner" and len(parts) == 1:
            return await load_partner(ctx, parts[0])
        if type_name == "Trader" and len(parts) == 2:
            return await load_trader(ctx, parts[0], parts[1])
        if type_name == "Account" and len(parts) == 2:
            return await load_account(ctx, parts[0], parts[1])
        if type_name == "Order" and len(parts) == 3:
            return await load_order(ctx, parts[0], parts[1], parts[2])
    except ValueError as error:
        raise InvalidInput(str(error), field=["id"]) from error
    raise NotFound(f"no node with id {global_id[:40]!r}")


@strawberry.type
class CoreQuery:
    @strawberry.field(description="Any object by its global id.")
    async def node(self, info: Info[Any, Any], id: strawberry.ID) -> Node | None:
        return await resolve_node(context_of(info), id)

    @strawberry.field(description="Several objects by global id, in order; at most 100.")
    async def nodes(self, info: Info[Any, Any], ids: list[strawberry.ID]) -> list[Node | None]:
        if len(ids) > MAX_NODES:
            raise InvalidInput(f"at most {MAX_NODES} ids per call", field=["ids"])
        ctx = context_of(info)

        async def one(global_id: str) -> Node | None:
            try:
                return await resolve_node(ctx, global_id)
            except BrokerGraphError:
                return None

        return list(await asyncio.gather(*(one(i) for i in ids)))

    @strawberry.field(description="The authenticated viewer.")
    def viewer(self, info: Info[Any, Any]) -> ViewerInfo:
        viewer = context_of(info).require_viewer()
        return ViewerInfo(
            subject=viewer.subject,
            role=viewer.role.value,
            partner_code=viewer.partner_code,
            brokers=sorted(viewer.brokers),
        )

    @strawberry.field(description="The viewer's own business partner (clients only).")
    async def me(self, info: Info[Any, Any]) -> BusinessPartner | None:
        ctx = context_of(info)
        viewer = ctx.require_viewer()
        if viewer.role is not Role.CLIENT or viewer.partner_code is None:
            return None
        return await load_partner(ctx, viewer.partner_code)

    @strawberry.field
    async def business_partner(self, info: Info[Any, Any], code: str) -> BusinessPartner | None:
        ctx = context_of(info)
        if await access.visible_partner(ctx, code) is None:
            return None
        return await load_partner(ctx, code)

    @strawberry.field(description="Partners the viewer may see, by code.")
    async def business_partners(
        self, info: Info[Any, Any], first: int = 50, after: str | None = None
    ) -> Connection[BusinessPartner]:
        ctx = context_of(info)
        check_page_size(ctx, first)
        viewer = ctx.require_viewer()
        if viewer.role is Role.CLIENT:
            own = [viewer.partner_code] if viewer.partner_code and not after else []
            records = [r for r in await ctx.services.store.get_partners(own) if r is not None]
            next_cursor = None
        else:
            brokers = None if viewer.role is Role.ADMIN else viewer.brokers
            records, next_cursor = await ctx.services.store.list_partners(
                brokers=brokers, first=first, after=after
            )
        # Each partner's own outcome: load_many would raise the first failure for all.
        loader = ctx.loaders.partner_details
        details = await asyncio.gather(
            *(loader.load(r.code) for r in records), return_exceptions=True
        )
        nodes = [
            (
                r.code,
                BusinessPartner.from_records(r, None, d)
                if isinstance(d, DIRECTORY_UNREADABLE)
                else BusinessPartner.from_records(r, None if isinstance(d, BaseException) else d),
            )
            for r, d in zip(records, details, strict=True)
        ]
        return connection(nodes, next_cursor)

    @strawberry.field
    async def trader(self, info: Info[Any, Any], id: strawberry.ID) -> Trader:
        _, (platform, native_id) = decode_id(id, "Trader", size=2)
        return await load_trader(context_of(info), platform, native_id)

    @strawberry.field
    async def account(self, info: Info[Any, Any], id: strawberry.ID) -> Account:
        _, (platform, native_id) = decode_id(id, "Account", size=2)
        return await load_account(context_of(info), platform, native_id)

    @strawberry.field(
        description="A partner's linked accounts, a page at a time; one whose platform"
        " fails keeps its edge with a null node and its own error (as"
        " BusinessPartner.accounts), the others still answer."
    )
    async def accounts(
        self,
        info: Info[Any, Any],
        partner_code: str,
        platform: str | None = None,
        first: int = 50,
        after: str | None = None,
    ) -> AccountConnection:
        ctx = context_of(info)
        check_page_size(ctx, first)
        await access.require_partner(ctx, partner_code)
        links = await ctx.services.store.links_of_partner(
            partner_code, platform=platform, kind="account"
        )
        keys = sorted((link.platform, link.external_id) for link in links)
        cursors = [encode_id("cursor", p, i) for p, i in keys]
        start = cursors.index(after) + 1 if after in cursors else 0
        if after is not None and after not in cursors:
            raise InvalidInput("unknown cursor", field=["after"])
        page = keys[start : start + first]

        async def settle(key: tuple[str, str]) -> Account | BrokerGraphError | None:
            try:
                return await linked_account(ctx, key)
            except BrokerGraphError as error:  # the item's own error, at its edge's node
                return error

        found = await asyncio.gather(*(settle(key) for key in page))
        more = start + first < len(keys)
        return AccountConnection(
            edges=[AccountEdge(cursor=cursors[start + i], found=f) for i, f in enumerate(found)],
            page_info=PageInfo(
                has_next_page=more, end_cursor=cursors[start + first - 1] if more else None
            ),
            total_count=len(keys),
        )

    @strawberry.field(
        description="An account's orders, newest first, a page at a time (the cursor holds"
        " the last order's creation time and id, so a page follows on however the book has"
        " changed); filtered as Account.orders."
    )
    async def orders(
        self,
        info: Info[Any, Any],
        account_id: strawberry.ID,
        status: list[OrderStatus] | None = None,  # type: ignore[valid-type]
        symbol: str | None = None,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        first: int = 50,
        after: str | None = None,
    ) -> Connection[Order]:
        ctx = context_of(info)
        check_page_size(ctx, first)
        wanted = OrderFilter.of(status, symbol, created_from, created_to)
        _, (platform, native_id) = decode_id(account_id, "Account", field="accountId", size=2)
        start = None if after is None else _order_key(decode_id(after, "cursor", field="after"))
        await access.require_account(ctx, platform, native_id)
        ctx.services.registry.require(platform, Capability.ORDER_READS, OrderReads)
        book = await ctx.loaders.orders.load((platform, native_id))
        listed = sorted(
            ((_key_of(o), o) for o in book if wanted.matches(o)), key=lambda p: p[0], reverse=True
        )
        rest = [(k, o) for k, o in listed if start is None or k < start]
        page = rest[:first]
        nodes = [(encode_id("cursor", *k), Order.from_model(o)) for k, o in page]
        more = len(rest) > first
        return connection(nodes, nodes[-1][0] if more else None, total=len(listed))

    @strawberry.field(
        description="The instruments an account may trade and the rules a valid order"
        " follows (tick size, quantities, trading hours where the platform gives them), so a"
        " client can check an order before placing it: those named in `symbols`, in that"
        " order (NOT_FOUND with `symbols` listing any the platform does not know), or all"
        " of them by symbol. CAPABILITY_NOT_SUPPORTED on a platform that publishes no"
        " instrument specifications."
    )
    async def instruments(
        self,
        info: Info[Any, Any],
        account_id: strawberry.ID,
        symbols: list[str] | None = None,
    ) -> list[Instrument]:
        ctx = context_of(info)
        _, (platform, native_id) = decode_id(account_id, "Account", field="accountId", size=2)
        await access.require_account(ctx, platform, native_id)
        wanted = check_symbols(symbols)
        ctx.services.registry.require(platform, Capability.INSTRUMENTS, InstrumentReads)
        found = await load_instruments(ctx, platform, native_id, wanted)
        return [Instrument.from_model(i) for i in found]

    @strawberry.field
    async def order(self, info: Info[Any, Any], id: strawberry.ID) -> Order:
        _, (platform, account_id, order_id) = decode_id(id, "Order", size=3)
        return await load_order(context_of(info), platform, account_id, order_id)

    @strawberry.field(description="A transfer between two accounts, with its saga's steps.")
    async def transfer(self, info: Info[Any, Any], id: strawberry.ID) -> Transfer:
        ctx = context_of(info)
        _, parts = decode_id(id, "Transfer")
        record = await ctx.services.store.get_transfer(parts[0]) if len(parts) == 1 else None
        # Another partner's transfer is as invisible as an unknown one.
        if record is None or await access.visible_partner(ctx, record.partner_code) is None:
            raise NotFound("transfer not found", field=["id"])
        return Transfer.from_record(record)

    @strawberry.field(
        description="What was done to a partner (its traders, accounts, orders, transfers),"
        " newest first, a page at a time, from the audit log. Staff only."
    )
    async def audit_trail(
        self, info: Info[Any, Any], partner_code: str, first: int = 50, after: str | None = None
    ) -> Connection[AuditEntry]:
        return await audit.audit_trail(info, partner_code, first, after)

    @strawberry.field(description="Installed connectors, what they declare and their health.")
    async def connectors(self, info: Info[Any, Any]) -> list[ConnectorInfo]:
        ctx = context_of(info)
        ctx.require_viewer()
        # The last known health, never a live check: a query must not call vendors.
        health = ctx.services.upstream_health.report()
        now = datetime.now(UTC)
        return [
            ConnectorInfo(
                name=item.name,
                platform=item.platform,
                version=item.version,
                capabilities=sorted(item.capabilities, key=lambda c: c.value),
                configured=item.configured,
                health=ConnectorHealth(
                    status=health[item.name].health.status,
                    detail=health[item.name].health.detail,
                    latency_ms=health[item.name].health.latency_ms,
                    checked_at=health[item.name].checked_at,
                    age_seconds=health[item.name].age_seconds(now),
                ),
            )
            for item in ctx.services.registry.installed()
        ]
