"""``/dxsca-web``: sessions, users and the account reads (B5), single and batched.

Reads count against the caller's per-session budget (429 past it).  A caller sees its
own accounts (an admin every account, unless ``rules.crm_sees_all_accounts`` is off);
an account it cannot see is a 404, and in a batched read (``accounts=a,b``) it is left
out.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from starlette.requests import Request

from brokergraph_dxtrade.sandbox import admin, instruments, reads
from brokergraph_dxtrade.sandbox.auth import Principal
from brokergraph_dxtrade.sandbox.context import Api, Context, Handler
from brokergraph_dxtrade.sandbox.errors import bad_request, not_found
from brokergraph_dxtrade.sandbox.model import Account
from brokergraph_dxtrade.sandbox.state import DxState
from brokergraph_dxtrade.sandbox.wire import at, iso

PREFIX = "/dxsca-web"


def _visible(state: DxState, caller: Principal) -> list[Account]:
    sees_all = caller.admin and state.rules.crm_sees_all_accounts
    return [a for a in state.accounts.values() if sees_all or a.owner == caller.key]


def _selected(request: Request, ctx: Context) -> list[Account]:
    """The accounts a read is about: ``{account}`` in the path, or ``accounts=``, or all."""
    visible = _visible(ctx.state, ctx.principal)
    single = request.path_params.get("account")
    if single is not None:
        found = [a for a in visible if a.id == single]
        if not found:
            raise not_found(f"account {single} not found or not permitted for the user")
        return found
    wanted = [i for i in request.query_params.get("accounts", "").split(",") if i]
    if not wanted:
        return visible
    by_id = {a.id: a for a in visible}
    return [by_id[i] for i in wanted if i in by_id]


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "false").lower() == "true"


def _limit(request: Request) -> int | None:
    raw = request.query_params.get("limit")
    if raw is None:
        return None
    if not raw.isdigit():
        raise bad_request("limit must be a non-negative integer")
    return int(raw)


def _time(request: Request, name: str) -> datetime | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        return at(raw)
    except ValueError:
        raise bad_request(f"{name} must be an ISO-8601 time") from None


async def metrics(request: Request, ctx: Context) -> Any:
    positions = _flag(request, "include-positions")
    return {
        "metrics": [
            reads.metrics(ctx.state, a, include_positions=positions)
            for a in _selected(request, ctx)
        ]
    }


async def positions(request: Request, ctx: Context) -> Any:
    accounts = _selected(request, ctx)
    return {"positions": [reads.position(p) for a in accounts for p in ctx.state.positions_of(a)]}


async def orders(request: Request, ctx: Context) -> Any:
    accounts = _selected(request, ctx)
    return {"orders": [reads.order(o) for a in accounts for o in ctx.state.orders_of(a)]}


async def order_history(request: Request, ctx: Context) -> Any:
    """Orders in a final status (B5): ``in-status`` (comma list), ``completed-from`` /
    ``completed-to`` on the completion time, ``limit`` (the rest: ``nextPageTransactionTime``)."""
    accounts = _selected(request, ctx)
    statuses = {s for s in request.query_params.get("in-status", "").split(",") if s}
    start, end = _time(request, "completed-from"), _time(request, "completed-to")
    found = [
        o
        for a in accounts
        for o in ctx.state.history_of(a)
        if (not statuses or o.status in statuses)
        and (start is None or (o.completed or o.issued) >= start)
        and (end is None or (o.completed or o.issued) < end)
    ]
    limit = _limit(request)
    page, rest = found[:limit], found[len(found[:limit]) :]
    return {
        "orders": [reads.order(o) for o in page],
        "nextPageTransactionTime": iso(rest[0].completed or rest[0].issued) if rest else None,
    }


async def transfers(request: Request, ctx: Context) -> Any:
    accounts = _selected(request, ctx)
    kinds = {k for k in request.query_params.get("of-type", "").split(",") if k}
    start, end = _time(request, "time-from"), _time(request, "time-to")
    found = [
        t
        for a in accounts
        for t in ctx.state.transfers_of(a)
        if (not kinds or t.kind in kinds)
        and (start is None or t.at >= start)
        and (end is None or t.at < end)
    ]
    limit = _limit(request)
    if limit is None:  # the host's own page size, if it has one (rules.py)
        limit = ctx.state.rules.transfers_page_size
    return {"transfers": [reads.transfer(t) for t in found[:limit]]}


async def users(request: Request, ctx: Context) -> Any:
    caller = ctx.principal
    clients = [c for c in ctx.state.clients.values() if caller.admin or c.key == caller.key]
    limit = _limit(request)
    return {"userDetails": [reads.user(ctx.state, c) for c in clients[:limit]]}


async def user(request: Request, ctx: Context) -> Any:
    caller = ctx.principal
    login, _, domain = request.path_params["username"].rpartition("@")
    client = ctx.state.clients.get((domain, login))
    if client is None or not (caller.admin or client.key == caller.key):
        raise not_found(f"user {request.path_params['username']} not found")
    return {"userDetails": [reads.user(ctx.state, client)]}


async def account_instruments(request: Request, ctx: Context) -> Any:
    """The account-scoped instrument query (B5): specs plus its trading status."""
    (account,) = _selected(request, ctx)
    return await instruments.instruments_query(request, ctx, account)


def routes() -> list[Api]:
    def read(path: str, handler: Handler) -> Api:
        return Api("dxsca", "GET", f"{PREFIX}{path}", handler, "user", read=True)

    reads_by_name: dict[str, Handler] = {
        "metrics": metrics,
        "positions": positions,
        "orders": orders,
        "transfers": transfers,
    }
    table = [
        Api("dxsca", "POST", f"{PREFIX}/login", admin.login, "none"),
        Api("dxsca", "POST", f"{PREFIX}/ping", admin.ping, "none"),
        Api("dxsca", "POST", f"{PREFIX}/logout", admin.logout, "user"),
        read("/users", users),
        read("/users/{username}", user),
        read("/accounts/{account}/instruments/query", account_instruments),
    ]
    reads_by_name["orders/history"] = order_history
    for name, handler in reads_by_name.items():
        table.append(read(f"/accounts/{name}", handler))
        table.append(read(f"/accounts/{{account}}/{name}", handler))
    return table
