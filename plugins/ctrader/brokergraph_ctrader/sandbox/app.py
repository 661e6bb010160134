"""What each cTrader endpoint does: the route table and its handlers.

Paths and bodies are the documented ones (A4); ``server.py`` wraps every handler in
the gate (IP allow-list, token, rate limit; the standard knobs act before it).  Each
``Endpoint`` has one counter key, ``"METHOD /path"`` with its first path, whichever path
was called: the traders collection answers with and without its trailing slash, and counts as
``GET /v2/webserv/traders/`` (list, the doc's spelling) and ``POST /v2/webserv/traders``
(create).  Also offered: ``POST /v2/webserv/traders/{login}/checkpassword`` (4.9, the
path is [I]); the 4.3 deal-time and open-positions filters as ``lastDealFrom`` /
``lastDealTo`` (given together) and ``hasOpenPositions`` (the names were not
recovered: [I]); the attributes calls 4.14-4.22 (``attributes.py``); 5.3 as
``POST /cid/ctid/changeCtidTraderAccount`` (the one client's path, [O]); and the
Reporting API's balance/bonus-history snapshots (``brokergraph_ctrader.reporting``),
which need no token.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from brokergraph_ctrader import reporting
from brokergraph_ctrader.sandbox import csvgrid, fields
from brokergraph_ctrader.sandbox.attributes import KINDS
from brokergraph_ctrader.sandbox.errors import invalid
from brokergraph_ctrader.sandbox.market import DEPOSIT_ASSETS, SYMBOLS
from brokergraph_ctrader.sandbox.model import Manager
from brokergraph_ctrader.sandbox.state import State
from brokergraph_ctrader.sandbox.times import from_ms, parse_wire_time
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
    deal_from, deal_to = query.get("lastDealFrom"), query.get("lastDealTo")
    if (deal_from is None) != (deal_to is None):
        raise invalid("lastDealFrom and lastDealTo must be given together")
    last_deal = None
    if deal_from is not None:
        last_deal = (
            parse_wire_time("lastDealFrom", deal_from),
            parse_wire_time("lastDealTo", deal_to),
        )
    holding = query.get("hasOpenPositions")
    page = call.state.list_traders(
        call.who,
        start,
        end,
        call.query_int("groupId"),
        keys,
        call.chunk_size,
        last_deal=last_deal,
        has_open_positions=None if holding is None else fields.boolean("hasOpenPositions", holding),
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


def _snapshot(ledger: str) -> Handler:
    async def serve(call: Call) -> Response:
        login = call.query_int("login")
        start, end = call.query_int("fromTimestamp"), call.query_int("toTimestamp")
        if login is None or start is None or end is None or start > end:
            raise invalid("login, fromTimestamp <= toTimestamp (epoch ms) are required")
        entries = call.state.history(ledger, login, from_ms(start), from_ms(end))
        trader = call.state.traders.get(login)
        digits = trader.money_digits if trader is not None else 2
        body = reporting.encode_snapshot(
            [
                reporting.HistoryEntry(
                    history_id=e.id,
                    login=e.login,
                    operation_type=e.type,
                    delta=e.amount,
                    money_digits=digits,
                    change_timestamp_ms=e.timestamp_ms,
                    external_id=e.external_id,
                    comment=e.comment,
                    external_note=e.external_note,
                    source=e.source,
                )
                for e in entries
            ]
        )
        return Response(body, media_type="application/x-protobuf")

    return serve


def _kind(call: Call) -> str:
    kind: str = call.request.path_params["kind"]
    if kind not in KINDS:
        raise invalid(f"no attributes of {kind!r}")
    return kind


async def list_attributes(call: Call) -> Response:
    kind, state = _kind(call), call.state
    visible = [t.login for t in state.visible(call.who)]
    found = state.attributes.list(kind, await call.body(), state.authorise(call.who), visible)
    return call.reply("attributes", found)


async def upsert_attributes(call: Call) -> Response:
    kind, state = _kind(call), call.state
    state.attributes.upsert(kind, await call.body(), state.authorise(call.who), state.stamp())
    return call.reply("attributes", {})


async def delete_attributes(call: Call) -> Response:
    kind, state = _kind(call), call.state
    state.attributes.delete(kind, await call.body(), state.authorise(call.who))
    return call.reply("attributes", {})


async def move_trader(call: Call) -> Response:
    call.state.move_trader(call.who, await call.body())
    return Response(status_code=200)  # "none per doc"


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
    #: A Reporting API snapshot: at most 2 served at once per server.
    snapshot: bool = False

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
    Endpoint("POST", ("/cid/ctid/changeCtidTraderAccount",), move_trader, json_only=True),
    _e("POST", f"{WEBSERV}/attributes/{{kind}}/list", list_attributes),
    _e("POST", f"{WEBSERV}/attributes/{{kind}}", upsert_attributes),
    _e("POST", f"{WEBSERV}/attributes/{{kind}}/delete", delete_attributes),
    Endpoint("GET", (reporting.BALANCE_PATH,), _snapshot("balance"), public=True, snapshot=True),
    Endpoint("GET", (reporting.BONUS_PATH,), _snapshot("bonus"), public=True, snapshot=True),
)
