"""``CTraderSandbox``: the cTrader WebServices API on a local port, with test knobs.

An :class:`~gateway.contract.sandbox.AsgiSandbox`: the contract serves the Starlette
app on 127.0.0.1 (port 0 picks a free port) and gives the standard knobs, applied
before a request reaches cTrader's app: ``latency_seconds`` of sleep, ``drop_next``
(the answer is lost; with ``after_apply`` after the app applied the request) and
``fail_next`` (its status with an UNKNOWN_ERROR body, nothing applied).  A request
that reaches the app is counted in ``calls`` ("METHOD /template") and passes the
gate, in this order: the IP allow-list (``allowed_ips``, the client's host; 403
NOT_ENOUGH_RIGHTS); the ``?token=`` (403 NOT_ENOUGH_RIGHTS when missing or unknown;
the token call itself needs none); the hourly non-GET limit per token
(``rate_limit_per_hour``, a sliding hour; 429 REQUEST_FREQUENCY_EXCEEDED).
``list_chunk_size`` is the traders list's chunk (100,000 as documented).

cTrader's own knobs: ``fail_next_after_apply(n, status)`` (cTrader applies the
request, then a proxy answers ``status`` — a 502 after the money moved);
``dedupe_external_ids`` and ``refuse_reused_external_ids`` (the two [I] readings of
``externalId``, see ``state.py``); ``revoke_tokens()`` and
``change_manager_password(login, password)`` (a held token dies, as cTrader's do
when the manager password changes); ``snapshot_seconds`` (each Reporting API snapshot
takes this long, so its limit of 2 at once shows: a third is refused 429
REQUEST_FREQUENCY_EXCEEDED — the status and code are ours [I]).
``reset()`` restores the seed and every knob to its constructor value.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from brokergraph_ctrader.sandbox.app import ENDPOINTS, Call, Endpoint
from brokergraph_ctrader.sandbox.errors import CTraderError, no_rights
from brokergraph_ctrader.sandbox.model import Manager
from brokergraph_ctrader.sandbox.seed import md5
from brokergraph_ctrader.sandbox.state import State
from brokergraph_ctrader.sandbox.times import utc
from brokergraph_ctrader.sandbox.wire import error_reply
from gateway.contract.sandbox import ASGIApp, AsgiSandbox, DemoLink

DEFAULT_CHUNK = 100_000
HOUR = 3600.0
#: cTrader refuses non-GET calls "above an hourly threshold" [V] whose number it does
#: not publish: this default is ours [I]; tests that depend on the limit set it.
RATE_LIMIT_PER_HOUR = 1000
#: The Reporting API's limit per server (A9).
SNAPSHOTS_AT_ONCE = 2


class CTraderSandbox(AsgiSandbox):
    """The cTrader WebServices sandbox; see the module docstring for the knobs."""

    name: ClassVar[str] = "ctrader"
    display_name: ClassVar[str] = "the cTrader sandbox"

    def __init__(
        self,
        *,
        seed: int = 3,
        latency_seconds: float = 0.0,
        rate_limit_per_hour: int = RATE_LIMIT_PER_HOUR,
        allowed_ips: Sequence[str] = ("127.0.0.1", "::1"),
        now: datetime | None = None,
        dedupe_external_ids: bool = True,
        refuse_reused_external_ids: bool = True,
    ) -> None:
        super().__init__(latency_seconds=latency_seconds)
        self.seed = seed
        self._fixed_now = utc(now) if now is not None else None
        self._defaults = (rate_limit_per_hour, tuple(allowed_ips))
        self._external_id_rules = (dedupe_external_ids, refuse_reused_external_ids)
        self._fail_after_apply: list[int] = []
        #: How long each Reporting API snapshot takes to serve.
        self.snapshot_seconds = 0.0
        self._snapshots_running = 0
        #: Accepted non-GET requests per token in any sliding hour.
        self.rate_limit_per_hour = rate_limit_per_hour
        #: Client hosts allowed to call.
        self.allowed_ips: Sequence[str] = tuple(allowed_ips)
        #: The traders list's chunk size (hasMore beyond it).
        self.list_chunk_size = DEFAULT_CHUNK
        #: Requests that reached cTrader's app, keyed "METHOD /template".
        self.calls: Counter[str] = Counter()
        self._spent: dict[str, deque[float]] = {}
        self.state = self._new_state()

    def _new_state(self) -> State:
        state = State(self.seed, self.now)
        state.dedupe_external_ids, state.refuse_reused_external_ids = self._external_id_rules
        return state

    # -- knobs ----------------------------------------------------------------------

    def now(self) -> datetime:
        """The sandbox's clock: the ``now`` it was given (frozen), else the real time."""
        return self._fixed_now or datetime.now(UTC)

    @property
    def dedupe_external_ids(self) -> bool:
        """[I] A repeated ``externalId`` answers the first operation (off: moves again)."""
        return self.state.dedupe_external_ids

    @dedupe_external_ids.setter
    def dedupe_external_ids(self, value: bool) -> None:
        self.state.dedupe_external_ids = value

    @property
    def refuse_reused_external_ids(self) -> bool:
        """[I] With dedupe on, a repeat with another type or amount is INVALID_REQUEST."""
        return self.state.refuse_reused_external_ids

    @refuse_reused_external_ids.setter
    def refuse_reused_external_ids(self, value: bool) -> None:
        self.state.refuse_reused_external_ids = value

    def revoke_tokens(self, login: int | None = None) -> None:
        """Every token held for manager ``login`` (all managers when None) is refused."""
        self.state.revoke_tokens(login)

    def change_manager_password(self, login: int, password: str) -> None:
        """cBroker changes the manager's password: its tokens die, only the new one logs in."""
        self.state.change_manager_password(login, md5(password))

    def fail_next_after_apply(self, n: int = 1, status: int = 502) -> None:
        """The next ``n`` requests reaching cTrader's app are applied, then answered
        ``status`` (UNKNOWN_ERROR body), as a proxy failing after cTrader did the work."""
        self._fail_after_apply.extend([status] * n)

    def failure_body(self, status: int) -> tuple[bytes, str]:
        """``fail_next`` answers cTrader's error body with UNKNOWN_ERROR."""
        body = CTraderError("UNKNOWN_ERROR", "injected failure", status=status).body()
        return json.dumps(body).encode(), "application/json"

    def reset_state(self) -> None:
        """The seeded state (of ``seed``, which a test may change), knobs and counters."""
        self.state = self._new_state()
        self.rate_limit_per_hour, self.allowed_ips = self._defaults
        self._fail_after_apply.clear()
        self.snapshot_seconds = 0.0
        self.list_chunk_size = DEFAULT_CHUNK
        self._spent.clear()
        self.calls.clear()

    # -- the AsgiSandbox contract ---------------------------------------------------------

    def asgi_app(self) -> ASGIApp:
        return Starlette(routes=self._routes())

    def connector_settings(self) -> Mapping[str, Any]:
        return {
            "url": self.url,
            "login": 30017,
            "password": "manager-pass",
            "broker_name": "DEMOBROKER",
            "environment": "demo",
            **self.tls_settings(),
        }

    def demo_links(self) -> Sequence[DemoLink]:
        return [
            DemoLink("DEMO-001", "trader", "1001"),
            DemoLink("DEMO-001", "account", "9000001", trader_id="1001"),
            DemoLink("DEMO-001", "account", "9000002", trader_id="1001"),
            DemoLink("DEMO-002", "trader", "1002"),
            DemoLink("DEMO-002", "account", "9000003", trader_id="1002"),
            DemoLink("OTHER-001", "trader", "1003"),
            DemoLink("OTHER-001", "account", "9000004", trader_id="1003"),
        ]

    # -- plumbing -----------------------------------------------------------------------

    async def _gate(self, request: Request, endpoint: Endpoint) -> Manager | None:
        host = request.client.host if request.client is not None else ""
        if host not in self.allowed_ips:
            raise no_rights(f"calls from {host} are not allowed")
        if endpoint.public:
            return None
        token = request.query_params.get("token")
        manager = self.state.manager_for_token(token)
        if endpoint.method != "GET" and token is not None:
            self._spend(token)
        return manager

    def _spend(self, token: str) -> None:
        """One non-GET request of a token, refused beyond the hourly limit."""
        spent = self._spent.setdefault(token, deque())
        cutoff = time.monotonic() - HOUR
        while spent and spent[0] <= cutoff:
            spent.popleft()
        if len(spent) >= self.rate_limit_per_hour:
            raise CTraderError(
                "REQUEST_FREQUENCY_EXCEEDED",
                f"more than {self.rate_limit_per_hour} non-GET requests in an hour",
            )
        spent.append(time.monotonic())

    async def _snapshot(self, endpoint: Endpoint, call: Call) -> Response:
        """A Reporting API snapshot, at most ``SNAPSHOTS_AT_ONCE`` being served."""
        if self._snapshots_running >= SNAPSHOTS_AT_ONCE:
            raise CTraderError(
                "REQUEST_FREQUENCY_EXCEEDED",
                f"more than {SNAPSHOTS_AT_ONCE} snapshot requests at once",
            )
        self._snapshots_running += 1
        try:
            if self.snapshot_seconds > 0:
                await asyncio.sleep(self.snapshot_seconds)
            return await endpoint.handler(call)
        finally:
            self._snapshots_running -= 1

    def _route(self, endpoint: Endpoint, path: str) -> Route:
        async def serve(request: Request) -> Response:
            self.calls[endpoint.key] += 1
            try:
                manager = await self._gate(request, endpoint)
                call = Call(request, self.state, manager, self.list_chunk_size, endpoint.json_only)
                if endpoint.snapshot:
                    response = await self._snapshot(endpoint, call)
                else:
                    response = await endpoint.handler(call)
            except CTraderError as error:
                response = error_reply(request, error, endpoint.json_only)
            if self._fail_after_apply:
                status = self._fail_after_apply.pop(0)
                body, media_type = self.failure_body(status)
                return Response(body, status_code=status, media_type=media_type)
            return response

        return Route(path, serve, methods=[endpoint.method])

    def _routes(self) -> list[Route]:
        return [self._route(e, path) for e in ENDPOINTS for path in e.paths]
