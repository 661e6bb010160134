"""``/dxweb/rest``: logins and the DxRegister admin API (B3), plus the seed-004 disable route."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from brokergraph_dxtrade.sandbox.auth import (
    Principal,
    admit,
    check_credentials,
    split_username,
    token_of,
)
from brokergraph_dxtrade.sandbox.context import Access, Api, Context, Handler
from brokergraph_dxtrade.sandbox.errors import bad_request, forbidden, unauthorized
from brokergraph_dxtrade.sandbox.model import (
    ACCOUNT_STATUSES,
    ACCOUNT_TYPES,
    Client,
    account_wire,
    client_wire,
)
from brokergraph_dxtrade.sandbox.rules import LOGIN_ON_BEHALF
from brokergraph_dxtrade.sandbox.wire import (
    DxJSONResponse,
    form_or_json,
    json_body,
    json_object,
    text,
)

PREFIX = "/dxweb/rest"


# -- sessions (shared with /dxsca-web) ----------------------------------------------------


async def login(request: Request, ctx: Context) -> Any:
    """A session for ``{username, domain, password}``; or, with no password and the
    caller's own ``Authorization``, a session on behalf of ``username``: that needs the
    caller's LOGIN_ON_BEHALF permission (B2, [V] D1; how the caller is named is [I])."""
    body = await json_object(request)
    login, domain = split_username(text(body, "username"), body.get("domain"))
    password = body.get("password")
    if isinstance(password, str):
        principal = check_credentials(ctx.state, login, domain, password)
    elif password is None and request.headers.get("authorization"):
        principal = _on_behalf(
            ctx, ctx.sessions.authenticate(ctx.state, request.headers), login, domain
        )
    else:
        raise bad_request("password is required")
    return {"sessionToken": ctx.sessions.open(principal), "timeout": ctx.sessions.timeout_ms}


def _on_behalf(ctx: Context, caller: Principal, login: str, domain: str) -> Principal:
    if caller.key == (domain, login):
        return admit(ctx.state, login, domain)  # a second session of the caller itself
    allowed = LOGIN_ON_BEHALF in ctx.state.permissions.get(caller.key, set())
    ctx.state.on_behalf_logins.append(
        (f"{caller.login}@{caller.domain}", f"{login}@{domain}", allowed)
    )
    if not allowed:
        raise forbidden(
            f"{caller.login}@{caller.domain} lacks the LOGIN_ON_BEHALF permission",
            LOGIN_ON_BEHALF,
        )
    return admit(ctx.state, login, domain)


async def ping(request: Request, ctx: Context) -> Any:
    token = token_of(request.headers)
    if token is None:
        raise unauthorized("ping extends a session token: send Authorization: DXAPI <token>")
    ctx.sessions.ping(token, ctx.state.rules.expired_session_status)
    return {"sessionToken": token, "timeout": ctx.sessions.timeout_ms}


async def logout(request: Request, ctx: Context) -> Any:
    if ctx.principal.token is not None:
        ctx.sessions.close(ctx.principal.token)
    return Response(status_code=204)


async def logout_user_by_login(request: Request, ctx: Context) -> Any:
    fields = await form_or_json(request)
    login, domain = fields.get("login"), fields.get("domain") or "default"
    if not login:
        raise bad_request("login is required")
    closed = ctx.sessions.logout_user(domain, login)
    return PlainTextResponse(f"{closed} session(s) closed")


# -- users --------------------------------------------------------------------------------


def _client_response(ctx: Context, client: Client, status_code: int = 200) -> Response:
    body = client_wire(client, ctx.state.accounts_of(client))
    return DxJSONResponse(body, status_code=status_code, headers={"ETag": client.etag})


async def list_clients(request: Request, ctx: Context) -> Any:
    state = ctx.state
    return [client_wire(c, state.accounts_of(c)) for c in state.clients.values()]


async def create_client(request: Request, ctx: Context) -> Any:
    client = ctx.state.create_client(await json_object(request))
    return _client_response(ctx, client)


async def get_client(request: Request, ctx: Context) -> Any:
    p = request.path_params
    return _client_response(ctx, ctx.state.client(p["domain"], p["login"]))


async def update_client(request: Request, ctx: Context) -> Any:
    p = request.path_params
    body = await json_object(request)
    client = ctx.state.update_client(p["domain"], p["login"], body, request.headers.get("if-match"))
    return _client_response(ctx, client)


async def add_account(request: Request, ctx: Context) -> Any:
    p = request.path_params
    return account_wire(ctx.state.add_account(p["domain"], p["login"], await json_object(request)))


async def disable(request: Request, ctx: Context) -> Any:
    """Seed 004's convenience route; ``rules.disable_route`` answers as a host without it."""
    missing = ctx.state.rules.disable_route
    if missing == 400:
        raise bad_request("unknown operation disable-user-and-terminate-accounts")
    if missing is not None:  # a servlet container's own answer: no DXtrade error body
        return PlainTextResponse(HTTPStatus(missing).phrase, status_code=missing)
    p = request.path_params
    body = await json_object(request, required=False)
    cancel = body.get("cancelDxFeedSubscriptions", False)
    if not isinstance(cancel, bool):
        raise bad_request("cancelDxFeedSubscriptions must be a boolean")
    return _client_response(ctx, ctx.state.disable(p["domain"], p["login"], cancel))


# -- categories ---------------------------------------------------------------------------


async def list_categories(request: Request, ctx: Context) -> Any:
    """Every category domain and its allowed values (B3, observed D4); a host without
    the route answers as ``rules.category_route`` says."""
    missing = ctx.state.rules.category_route
    if missing == 400:
        raise bad_request("unknown operation category")
    if missing is not None:
        return PlainTextResponse(HTTPStatus(missing).phrase, status_code=missing)
    return [
        {"category": domain, "values": [{"value": v} for v in values]}
        for domain, values in ctx.state.categories.items()
    ]


# -- accounts -----------------------------------------------------------------------------


async def list_accounts(request: Request, ctx: Context) -> Any:
    kind, status = request.query_params.get("type"), request.query_params.get("status")
    if kind is not None and kind not in ACCOUNT_TYPES:
        raise bad_request(f"type must be one of {', '.join(ACCOUNT_TYPES)}")
    if status is not None and status not in ACCOUNT_STATUSES:
        raise bad_request(f"status must be one of {', '.join(ACCOUNT_STATUSES)}")
    return [
        account_wire(a)
        for a in ctx.state.accounts.values()
        if (kind is None or a.type == kind) and (status is None or a.status == status)
    ]


async def get_account(request: Request, ctx: Context) -> Any:
    p = request.path_params
    return account_wire(ctx.state.account(p["clearingCode"], p["accountCode"]))


async def update_account(request: Request, ctx: Context) -> Any:
    p = request.path_params
    account = ctx.state.account(p["clearingCode"], p["accountCode"])
    ctx.state.update_accounts([(account, await json_object(request))])
    return account_wire(account)


async def update_accounts(request: Request, ctx: Context) -> Any:
    body = await json_body(request)
    if not isinstance(body, list) or not all(isinstance(item, dict) for item in body):
        raise bad_request("the body must be a list of AccountUpdate objects")
    accounts = [ctx.state.account(text(i, "clearingCode"), text(i, "accountCode")) for i in body]
    ctx.state.update_accounts(list(zip(accounts, body, strict=True)))
    return [account_wire(a) for a in accounts]


def _cash(kind: str) -> Handler:
    async def handler(request: Request, ctx: Context) -> Any:
        p = request.path_params
        op = ctx.state.cash(
            kind, p["clearingCode"], p["accountCode"], p["id"], await json_object(request)
        )
        return op.wire()

    return handler


def routes() -> list[Api]:
    def api(method: str, path: str, handler: Handler, access: Access = "admin") -> Api:
        return Api("dxweb", method, f"{PREFIX}{path}", handler, access)

    register = "/api/register"
    client = f"{register}/client/{{domain}}/{{login}}"
    account = f"{register}/account/{{clearingCode}}/{{accountCode}}"
    return [
        api("POST", "/login", login, "none"),
        api("POST", "/ping", ping, "none"),
        api("POST", "/logout", logout, "user"),
        api("POST", "/logoutUserByLogin", logout_user_by_login),
        api("GET", f"{register}/client", list_clients),
        api("POST", f"{register}/client", create_client),
        api("GET", client, get_client),
        api("PUT", client, update_client),
        api("POST", f"{client}/account", add_account),
        api("POST", f"{client}/disable-user-and-terminate-accounts", disable),
        api("GET", f"{register}/category", list_categories),
        api("GET", f"{register}/account", list_accounts),
        api("PUT", f"{register}/account", update_accounts),
        api("GET", account, get_account),
        api("PUT", account, update_account),
        api("PUT", f"{account}/deposit/{{id}}", _cash("deposit")),
        api("PUT", f"{account}/withdrawal/{{id}}", _cash("withdrawal")),
        api("PUT", f"{account}/adjustment/{{id}}", _cash("adjustment")),
    ]
