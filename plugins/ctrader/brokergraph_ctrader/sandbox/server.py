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
``reset()`` restores the seed and every knob to its constructor value.
"""

from __future__ import annotations

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
from brokergraph_ctrader.sandbox.state import State
from brokergraph_ctrader.sandbox.times import utc
from brokergraph_ctrader.sandbox.wire import error_reply
from gateway.contract.sandbox import ASGIApp, AsgiSandbox, DemoLink

DEFAULT_CHUNK = 100_000
HOUR = 3600.0


class CTraderSandbox(AsgiSandbox):
    """The cTrader WebServices sandbox; see the module docstring for the knobs."""

    name: ClassVar[str] = "ctrader"
    display_name: ClassVar[str] = "the cTrader sandbox"

    def __init__(
        self,
        *,
        seed: int = 3,
        latency_seconds: float = 0.0,
        rate_limit_per_hour: int = 1000,
        allowed_ips: Sequence[str] = ("127.0.0.1", "::1"),
        now: datetime | None = None,
    ) -> None:
        super().__init__(latency_seconds=latency_seconds)
        self.seed = seed
        self._fixed_now = utc(now) if now is not None else None
        self._defaults = (rate_limit_per_hour, tuple(allowed_ips))
        #: Accepted non-GET requests per token in any sliding hour.
        self.rate_limit_per_hour = rate_limit_per_hour
        #: Client hosts allowed to call.
        self.allowed_ips: Sequence[str] = tuple(allowed_ips)
        #: The traders list's chunk size (hasMore beyond it).
        self.list_chunk_size = DEFAULT_CHUNK
        #: Requests that reached cTrader's app, keyed "METHOD /template".
        self.calls: Counter[str] = Counter()
        self._spent: dict[str, deque[float]] = {}
        self.state = State(seed, self.now)

    # -- knobs ----------------------------------------------------------------------

    def now(self) -> datetime:
        """The sandbox's clock: the ``now`` it was given (frozen), else the real time."""
        return self._fixed_now or datetime.now(UTC)

    def failure_body(self, status: int) -> tuple[bytes, str]:
        """``fail_next`` answers cTrader's error body with UNKNOWN_ERROR."""
        body = CTraderError("UNKNOWN_ERROR", "injected failure", status=status).body()
        return json.dumps(body).encode(), "application/json"

    def reset_state(self) -> None:
        """The seeded state (of ``seed``, which a test may change), knobs and counters."""
        self.state = State(self.seed, self.now)
        self.rate_limit_per_hour, self.allowed_ips = self._defaults
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

    def _route(self, endpoint: Endpoint, path: str) -> Route:
        async def serve(request: Request) -> Response:
            self.calls[endpoint.key] += 1
            try:
                manager = await self._gate(request, endpoint)
                call = Call(request, self.state, manager, self.list_chunk_size, endpoint.json_only)
                return await endpoint.handler(call)
            except CTraderError as error:
                return error_reply(request, error, endpoint.json_only)

        return Route(path, serve, methods=[endpoint.method])

    def _routes(self) -> list[Route]:
        return [self._route(e, path) for e in ENDPOINTS for path in e.paths]
