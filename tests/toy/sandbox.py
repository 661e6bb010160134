"""The toy platform's sandbox: a small Starlette JSON API under uvicorn on a local port.

Tests reach it over real sockets, as they would a vendor.  Every API call needs
``X-Api-Key`` (401 without it; a stream closes with code 4401); money travels as
strings; ``/_knobs`` and ``/_calls`` (and the same Python attributes) let a test
slow it down, make it fail, and count calls.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from gateway.contract.sandbox import ASGIApp, AsgiSandbox, DemoLink
from tests.toy._state import Feed, ToyError, ToyState, iso, now

API_KEY = "toy-secret-key"

Handler = Callable[[Request, ToyState], Awaitable[Any]]
# A stream handler gives the feed to follow and the messages a new follower gets first.
StreamSource = Callable[[Mapping[str, str], ToyState], tuple[Feed, list[dict[str, Any]]]]


def _ids(request: Request, name: str) -> list[str]:
    return [i for i in request.query_params.get(name, "").split(",") if i]


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise ToyError(400, "BAD_JSON", "the body is not JSON") from None
    if not isinstance(body, dict):
        raise ToyError(400, "BAD_JSON", "the body must be an object")
    return body


def _decimal(value: Any) -> Decimal:
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        raise ToyError(422, "INVALID_AMOUNT", f"{value!r} is not a number") from None
    if not result.is_finite():
        raise ToyError(422, "INVALID_AMOUNT", "amount must be finite")
    return result


class ToySandbox(AsgiSandbox):
    """The toy platform on 127.0.0.1; ``reset()`` re-seeds it.

    ``latency_seconds`` and ``fail_next`` act after the call is counted and the key
    checked (so tests count retries), hence the toy's own gate instead of the base's.
    """

    name: ClassVar[str] = "toy"
    display_name: ClassVar[str] = "the toy sandbox"
    #: The toy stands for no vendor and its connector speaks plain HTTP (no TLS settings).
    plaintext = True

    def __init__(self) -> None:
        super().__init__()
        self.state = ToyState()
        #: The next n API calls answer 503.
        self.fail_next_n = 0
        #: Seconds to hold an answer AFTER the change was applied (a lost response).
        self.respond_delay_seconds = 0.0
        #: Calls per endpoint, keyed "METHOD /path/{template}" ("WS ..." for streams).
        self.calls: Counter[str] = Counter()

    # -- the Sandbox contract -------------------------------------------------------

    def asgi_app(self) -> ASGIApp:
        return Starlette(routes=self._routes())

    def connector_settings(self) -> Mapping[str, Any]:
        return {"url": self.url, "api_key": API_KEY}

    def demo_links(self) -> Sequence[DemoLink]:
        return [
            DemoLink("DEMO-001", "trader", "T1"),
            DemoLink("DEMO-001", "account", "1001", trader_id="T1"),
            DemoLink("DEMO-001", "account", "1002", trader_id="T1"),
            DemoLink("DEMO-002", "trader", "T2"),
            DemoLink("DEMO-002", "account", "2001", trader_id="T2"),
            DemoLink("OTHER-001", "trader", "T3"),
            DemoLink("OTHER-001", "account", "3001", trader_id="T3"),
        ]

    def fail_next(self, n: int, status: int = 503) -> None:
        """The next ``n`` API calls are counted, then answer 503 (the toy has one failure)."""
        self.fail_next_n += n

    def reset_state(self) -> None:
        """Re-seed, clear the toy's knobs and counters (open streams keep their old feeds)."""
        self.state = ToyState()
        self.fail_next_n, self.respond_delay_seconds = 0, 0.0
        self.calls.clear()

    # -- plumbing -------------------------------------------------------------------

    async def _gate(self, key: str, headers: Mapping[str, str]) -> ToyError | None:
        """Count the call, then apply the key check and the knobs, in that order."""
        self.calls[key] += 1
        if headers.get("x-api-key") != API_KEY:
            return ToyError(401, "UNAUTHORIZED", "missing or wrong X-Api-Key")
        if self.latency_seconds > 0:
            await asyncio.sleep(self.latency_seconds)
        if self.fail_next_n > 0:
            self.fail_next_n -= 1
            return ToyError(503, "UNAVAILABLE", "the toy platform is unavailable")
        return None

    def _api(self, method: str, path: str, handler: Handler) -> Route:
        key = f"{method} {path}"

        async def endpoint(request: Request) -> Response:
            try:
                refused = await self._gate(key, request.headers)
                if refused is not None:
                    raise refused
                result = await handler(request, self.state)
                if self.respond_delay_seconds > 0:  # done, but the answer is slow or lost
                    await asyncio.sleep(self.respond_delay_seconds)
                return JSONResponse(result)
            except ToyError as error:
                body = {"error": error.code, "message": error.message}
                return JSONResponse(body, status_code=error.status)

        return Route(path, endpoint, methods=[method])

    def _stream(self, path: str, source: StreamSource) -> WebSocketRoute:
        key = f"WS {path}"

        async def endpoint(websocket: WebSocket) -> None:
            # Refusals are close codes 4000 + HTTP status after accepting, as many vendor
            # streams do (uvicorn logs an error for an HTTP denial of a WebSocket).
            await websocket.accept()
            try:
                refused = await self._gate(key, websocket.headers)
                if refused is not None:
                    raise refused
                # No await between reading the snapshot and joining the feed: no event
                # can fall between the two.
                feed, first = source(websocket.path_params, self.state)
            except ToyError as error:
                await websocket.close(code=4000 + error.status, reason=error.code)
                return
            queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
            feed.queues.add(queue)
            try:
                for message in first:
                    await websocket.send_json(message)
                await self._relay(websocket, queue)
            finally:
                feed.queues.discard(queue)

        return WebSocketRoute(path, endpoint)

    @staticmethod
    async def _relay(websocket: WebSocket, queue: asyncio.Queue[dict[str, Any]]) -> None:
        """Send queued events until the client leaves or the server shuts down."""

        async def pump() -> None:
            with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
                while True:
                    await websocket.send_json(await queue.get())

        sender = asyncio.create_task(pump())
        try:
            while (await websocket.receive())["type"] != "websocket.disconnect":
                pass
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender

    # -- control plane ----------------------------------------------------------------

    async def _knobs(self, request: Request) -> Response:
        body = await request.json()
        self.latency_seconds = float(body.get("latency_seconds", self.latency_seconds))
        self.fail_next_n = int(body.get("fail_next_n", self.fail_next_n))
        if body.get("reset_calls"):
            self.calls.clear()
        return JSONResponse(
            {"latency_seconds": self.latency_seconds, "fail_next_n": self.fail_next_n}
        )

    async def _calls(self, request: Request) -> Response:
        return JSONResponse(dict(self.calls))

    async def _reset(self, request: Request) -> Response:
        self.reset()
        return JSONResponse({"reset": True})

    def _routes(self) -> list[BaseRoute]:
        api = self._api
        return [
            # The control plane is the test's, not the connector's: no key, not counted.
            Route("/_knobs", self._knobs, methods=["POST"]),
            Route("/_calls", self._calls, methods=["GET"]),
            Route("/_reset", self._reset, methods=["POST"]),
            api("GET", "/health", _health),
            api("GET", "/traders", _get_traders),
            api("POST", "/traders", _create_trader),
            api("POST", "/traders/{id}/deactivate", _deactivate),
            api("POST", "/traders/{id}/reactivate", _reactivate),
            api("POST", "/traders/{id}/market-data-subscriptions/cancel", _cancel_subscriptions),
            api("GET", "/trader-accounts", _trader_accounts),
            api("GET", "/market-data-subscriptions", _subscriptions),
            api("GET", "/accounts", _get_accounts),
            api("POST", "/accounts", _open_account),
            api("PATCH", "/accounts/{id}", _update_account),
            api("GET", "/positions", _positions),
            api("GET", "/orders", _orders),
            api("GET", "/accounts/{id}/deals", _deals),
            api("GET", "/accounts/{id}/balance-operations", _operations),
            api("POST", "/accounts/{id}/balance", _balance),
            api("POST", "/accounts/{id}/orders", _place),
            api("POST", "/accounts/{id}/orders/cancel", _cancel_many),
            api("DELETE", "/accounts/{id}/orders/{order}", _cancel),
            api("PUT", "/accounts/{id}/orders/{order}", _replace),
            self._stream("/accounts/{id}/events", _order_stream),
            self._stream("/accounts/{id}/account-events", _account_stream),
            self._stream("/traders/{id}/market-data-events", _md_stream),
        ]


# --------------------------------------------------------------------------- handlers


async def _health(request: Request, state: ToyState) -> Any:
    return {"status": "ok"}


async def _get_traders(request: Request, state: ToyState) -> Any:
    ids = _ids(request, "ids")
    return {"traders": [state.traders[i].wire() for i in ids if i in state.traders]}


async def _create_trader(request: Request, state: ToyState) -> Any:
    return state.create_trader(await _body(request)).wire()


async def _deactivate(request: Request, state: ToyState) -> Any:
    return state.set_trader_enabled(request.path_params["id"], False).wire()


async def _reactivate(request: Request, state: ToyState) -> Any:
    return state.set_trader_enabled(request.path_params["id"], True).wire()


async def _cancel_subscriptions(request: Request, state: ToyState) -> Any:
    return {"subscriptions": state.cancel_subscriptions(request.path_params["id"])}


async def _trader_accounts(request: Request, state: ToyState) -> Any:
    ids = _ids(request, "traderIds")
    accounts = state.accounts.values()
    return {
        "accounts": {i: [state.account_wire(a) for a in accounts if a.trader_id == i] for i in ids}
    }


async def _subscriptions(request: Request, state: ToyState) -> Any:
    ids = set(_ids(request, "traderIds"))
    return {"subscriptions": [s for s in state.subscriptions if s["traderId"] in ids]}


async def _get_accounts(request: Request, state: ToyState) -> Any:
    ids = _ids(request, "ids")
    return {"accounts": [state.account_wire(state.accounts[i]) for i in ids if i in state.accounts]}


async def _open_account(request: Request, state: ToyState) -> Any:
    return state.account_wire(state.open_account(await _body(request)))


async def _update_account(request: Request, state: ToyState) -> Any:
    account = state.update_account(request.path_params["id"], await _body(request))
    return state.account_wire(account)


async def _positions(request: Request, state: ToyState) -> Any:
    ids = set(_ids(request, "accountIds"))
    return {"positions": [state.position_wire(p) for p in state.positions if p.account_id in ids]}


async def _orders(request: Request, state: ToyState) -> Any:
    ids = set(_ids(request, "accountIds"))
    return {"orders": [o.wire() for o in state.orders.values() if o.account_id in ids]}


def _period(request: Request) -> tuple[str, str]:
    start, end = request.query_params.get("from"), request.query_params.get("to")
    if not start or not end:
        raise ToyError(422, "PERIOD_REQUIRED", "from and to are required")
    return start, end


async def _deals(request: Request, state: ToyState) -> Any:
    account_id = request.path_params["id"]
    deals = state.in_period(state.deals, "executedAt", account_id, *_period(request))
    return {"deals": deals}


async def _operations(request: Request, state: ToyState) -> Any:
    account_id = request.path_params["id"]
    operations = state.in_period(state.operations, "at", account_id, *_period(request))
    return {"operations": operations}


async def _balance(request: Request, state: ToyState) -> Any:
    body = await _body(request)
    amount = _decimal(body.get("amount"))
    kind, client_id = str(body.get("kind")), str(body.get("clientId") or "")
    return state.move_money(request.path_params["id"], kind, amount, client_id)


async def _place(request: Request, state: ToyState) -> Any:
    return state.place_order(request.path_params["id"], await _body(request)).wire()


async def _cancel(request: Request, state: ToyState) -> Any:
    return state.cancel_order(request.path_params["id"], request.path_params["order"]).wire()


async def _cancel_many(request: Request, state: ToyState) -> Any:
    """Cancel the listed working orders, or every working order of ``symbol``."""
    account_id, body = request.path_params["id"], await _body(request)
    state.account(account_id)
    if "symbol" in body:
        ids = [
            o.id
            for o in state.orders.values()
            if o.account_id == account_id and o.symbol == body["symbol"] and o.state == "WORKING"
        ]
    else:
        ids = [str(i) for i in body.get("orderIds", [])]
        for order_id in ids:  # all or nothing: check before cancelling any
            if state.order(account_id, order_id).state != "WORKING":
                raise ToyError(409, "ORDER_NOT_WORKING", f"order {order_id} is not working")
    return {"orders": [state.cancel_order(account_id, i).wire() for i in ids]}


async def _replace(request: Request, state: ToyState) -> Any:
    account_id, order_id = request.path_params["id"], request.path_params["order"]
    return state.replace_order(account_id, order_id, await _body(request)).wire()


def _order_stream(params: Mapping[str, str], state: ToyState) -> tuple[Feed, list[dict[str, Any]]]:
    account_id = state.account(params["id"]).id
    return state.order_feeds[account_id], state.order_snapshot(account_id)


def _account_stream(
    params: Mapping[str, str], state: ToyState
) -> tuple[Feed, list[dict[str, Any]]]:
    """Starts with the account as it is, numbered with the feed's current sequence."""
    account = state.account(params["id"])
    feed = state.account_feeds[account.id]
    wire = state.account_wire(account)
    return feed, [{"sequence": feed.sequence, "at": iso(now()), "account": wire, "operation": None}]


def _md_stream(params: Mapping[str, str], state: ToyState) -> tuple[Feed, list[dict[str, Any]]]:
    return state.md_feeds[state.trader(params["id"]).id], []
