"""What each cTrader endpoint does: the route table and its handlers.

Paths and bodies are the documented ones (A4); ``server.py`` wraps every handler in
the gate (IP allow-list, token, rate limit; the standard knobs act before it).  Each
``Endpoint`` has one counter key, ``"METHOD /path"`` with its first path, whichever path
was called: the traders collection answers with and without its trailing slash, and counts as
``GET /v2/webserv/traders/`` (list, the doc's spelling) and ``POST /v2/webserv/traders``
(create).  Also offered: ``POST /v2/webserv/traders/{login}/checkpassword`` (4.9, the
path is [I]).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from brokergraph_ctrader.sandbox import csvgrid, fields
from brokergraph_ctrader.sandbox.errors import invalid
from brokergraph_ctrader.sandbox.market import DEPOSIT_ASSETS, SYMBOLS
from brokergraph_ctrader.sandbox.model import Manager
from brokergraph_ctrader.sandbox.state import State
from brokergraph_ctrader.sandbox.times import parse_wire_time
from brokergraph_ctrader.sandbox.wire import csv_reply, read_body, reply

#: The longest closedPositions window.
CLOSED_WINDOW = timedelta(days=2)
WEBSERV = "/v2/webserv"
TRADER = f"{WEBSERV}/traders/{{login}}"


@dataclass
class Call:
    """One authorised request, as a handler sees it."""

    request: Request
    state: State
    manager: Manager | None
    chunk_size: int
    json_only: bool = False

    @property
    def who(self) -> Manager:
        if self.manager is None:
            raise RuntimeError("a public endpoint has no manager")
        return self.manager

    @property
    def login(self) -> int:
        return fields.integer("login", self.request.path_params["login"])

    def query_int(self, name: str) -> int | None:
        value = self.request.query_params.get(name)
        return None if value is None else fields.integer(name, value)

    async def body(self) -> dict[str, Any]:
        return await read_body(self.request, self.json_only)

    def reply(self, root: str, data: dict[str, Any]) -> Response:
        return reply(self.request, root, data, json_only=self.json_only)


Handler = Callable[[Call], Awaitable[Response]]


def no_content() -> Response:
    return Response(status_code=204)


async def token(call: Call) -> Response:
    return call.reply("token", {"webservToken": call.state.issue_token(await call.body())})


async def create_trader(call: Call) -> Response:
    trader = call.state.create_trader(call.who, await call.body())
    return call.reply("trader", call.state.wire(trader))


async def get_trader(call: Call) -> Response:
    return call.reply("trader", call.state.wire(call.state.trader(call.who, call.login)))


async def list_traders(call: Call) -> Response:
    query = call.request.query_params
    start = parse_wire_time("from", query.get("from"))
    end = parse_wire_time("to", query.get("to"))
    if start > end:
        raise invalid("from must not be after to")
    keys = [k.strip() for k in query.get("fields", "").split(",") if k.strip()] or None
    page = call.state.list_traders(
        call.who, start, end, call.query_int("groupId"), keys, call.chunk_size
    )
    return call.reply("traders", page)


async def replace_trader(call: Call) -> Response:
    call.state.replace_trader(call.who, call.login, await call.body())
    return no_content()


async def patch_trader(call: Call) -> Response:
    call.state.patch_trader(call.who, call.login, await call.body())
    return no_content()


async def delete_trader(call: Call) -> Response:
    call.state.delete_trader(call.who, call.login)
    return no_content()


async def change_balance(call: Call) -> Response:
    entry = call.state.change_balance(call.who, call.login, await call.body())
    return call.reply("balanceHistory", {"balanceHistoryId": entry})


async def change_bonus(call: Call) -> Response:
    entry = call.state.change_bonus(call.who, call.login, await call.body())
    return call.reply("bonusHistory", {"bonusHistoryId": entry})


async def change_password(call: Call) -> Response:
    call.state.change_password(call.who, call.login, await call.body())
    return no_content()


async def check_password(call: Call) -> Response:
    call.state.check_password(call.who, call.login, await call.body())
    return no_content()


async def subaccounts(call: Call) -> Response:
    return call.reply("subAccounts", call.state.subaccounts(call.who, call.login))


async def trader_groups(call: Call) -> Response:
    return call.reply("traderGroups", {"traderGroup": call.state.groups_of(call.who)})


async def symbols(call: Call) -> Response:
    return call.reply("symbols", {"symbol": [symbol.wire() for symbol in SYMBOLS]})


async def deposit_assets(call: Call) -> Response:
    return call.reply("depositAssets", {"depositAsset": list(DEPOSIT_ASSETS)})


async def open_positions(call: Call) -> Response:
    state = call.state
    positions = state.open_positions(call.who, call.query_int("login"))
    rows = (csvgrid.open_row(p, state.traders[p.login].money_digits) for p in positions)
    return csv_reply(csvgrid.render(csvgrid.OPEN_HEADER, rows))


async def closed_positions(call: Call) -> Response:
    query, state = call.request.query_params, call.state
    start = parse_wire_time("from", query.get("from"))
    end = parse_wire_time("to", query.get("to"))
    if start > end or end - start > CLOSED_WINDOW:
        raise invalid("from..to must be a window of at most 2 days")
    deals = state.closed_deals(call.who, start, end, call.query_int("login"))
    rows = (csvgrid.closed_row(d, state.traders[d.login].money_digits) for d in deals)
    return csv_reply(csvgrid.render(csvgrid.CLOSED_HEADER, rows))


async def create_user(call: Call) -> Response:
    return call.reply("user", call.state.create_user(await call.body()))


async def link_trader(call: Call) -> Response:
    body = await call.body()
    details = body.get("returnAccountDetails")
    wanted = details is None or fields.boolean("returnAccountDetails", details)
    link = call.state.link(call.who, body)
    if not wanted:
        return Response(status_code=200)  # "or an empty body"
    return call.reply("link", {"ctidTraderAccountId": link.ctid_trader_account_id})


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    #: The first path is the one the calls counter names.
    paths: tuple[str, ...]
    handler: Handler
    #: The token call itself needs no token.
    public: bool = False
    #: /cid/*: JSON only.
    json_only: bool = False

    @property
    def key(self) -> str:
        return f"{self.method} {self.paths[0]}"


def _e(method: str, path: str, handler: Handler) -> Endpoint:
    return Endpoint(method, (path,), handler)


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("POST", (f"{WEBSERV}/managers/token",), token, public=True),
    Endpoint("POST", (f"{WEBSERV}/traders", f"{WEBSERV}/traders/"), create_trader),
    Endpoint("GET", (f"{WEBSERV}/traders/", f"{WEBSERV}/traders"), list_traders),
    _e("GET", TRADER, get_trader),
    _e("PUT", TRADER, replace_trader),
    _e("PATCH", TRADER, patch_trader),
    _e("DELETE", TRADER, delete_trader),
    _e("GET", f"{TRADER}/subaccounts", subaccounts),
    _e("POST", f"{TRADER}/changebalance", change_balance),
    _e("POST", f"{TRADER}/changebonus", change_bonus),
    _e("POST", f"{TRADER}/changepassword", change_password),
    _e("POST", f"{TRADER}/checkpassword", check_password),
    _e("GET", f"{WEBSERV}/tradergroups", trader_groups),
    _e("GET", f"{WEBSERV}/symbols", symbols),
    _e("GET", f"{WEBSERV}/depositAssets", deposit_assets),
    _e("GET", f"{WEBSERV}/openPositions", open_positions),
    _e("GET", f"{WEBSERV}/closedPositions", closed_positions),
    Endpoint("POST", ("/cid/ctid/create",), create_user, json_only=True),
    Endpoint("POST", ("/cid/ctid/link",), link_trader, json_only=True),
)
