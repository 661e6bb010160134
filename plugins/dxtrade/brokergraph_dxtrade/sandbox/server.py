"""``DxTradeSandbox``: the DXtrade host (``/dxweb/rest``, ``/dxsca-web``, the dxFeed helper)
as an :class:`AsgiSandbox`, with the knobs tests use to make it misbehave."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from brokergraph_dxtrade.sandbox import admin, dxfeed, sca
from brokergraph_dxtrade.sandbox.auth import Sessions
from brokergraph_dxtrade.sandbox.context import Api, Context
from brokergraph_dxtrade.sandbox.dxfeed import WEBHOOK_PATH, CallbackSender, Delivery
from brokergraph_dxtrade.sandbox.errors import DxError, forbidden, unavailable
from brokergraph_dxtrade.sandbox.seed import ADMIN_DOMAIN, ADMIN_LOGIN, ADMIN_PASSWORD
from brokergraph_dxtrade.sandbox.state import DxState, FeedEvent
from brokergraph_dxtrade.sandbox.wire import DxJSONResponse
from gateway.contract.sandbox import ASGIApp, AsgiSandbox, DemoLink

DEFAULT_WEBHOOK_SECRET = "dxfeed-demo-webhook-secret-0123456789"


class DxTradeSandbox(AsgiSandbox):
    """A DXtrade platform on 127.0.0.1, seeded and deterministic; ``reset()`` re-seeds it.

    Knobs: the standard ``latency_seconds``, ``fail_next(n, status)`` and
    ``drop_next(n, after_apply=...)``; ``calls`` (a Counter keyed
    ``"METHOD /path/{template}"``); ``sessions`` (``reads_per_second``, ``clear()``);
    ``callbacks_enabled``; ``send_callback(...)``; ``callbacks`` (every delivery) and
    ``delivered_callbacks``; ``wait_callbacks()``; ``callback_retry_delays`` (seconds
    before each retry; three retries by default).
    """

    name: ClassVar[str] = "dxtrade"
    display_name: ClassVar[str] = "the DXtrade sandbox"

    def __init__(
        self,
        *,
        latency_seconds: float = 0.0,
        session_timeout_ms: int = 1_800_000,
        webhook_secret: str = DEFAULT_WEBHOOK_SECRET,
        reads_per_second: int = 10,
    ) -> None:
        super().__init__(latency_seconds=latency_seconds)
        self.webhook_secret = webhook_secret
        #: False: callbacks are logged as "skipped" and not sent.
        self.callbacks_enabled = True
        #: Calls per endpoint, keyed "METHOD /path/{template}" (failed ones too).
        self.calls: Counter[str] = Counter()
        self.state = DxState()
        self.sessions = Sessions(session_timeout_ms, reads_per_second)
        self._sender = CallbackSender(webhook_secret)
        self._surface_failures: list[int] = []
        self._gateway_url: str | None = None

    # -- the AsgiSandbox contract ------------------------------------------------------

    def asgi_app(self) -> ASGIApp:
        return Starlette(routes=[self._route(api) for api in self._table()])

    async def stop(self) -> None:
        await self._sender.close()
        await super().stop()

    def connector_settings(self) -> Mapping[str, Any]:
        return {
            "url": self.url,
            "username": ADMIN_LOGIN,
            "domain": ADMIN_DOMAIN,
            "password": ADMIN_PASSWORD,
            "webhook_secret": self.webhook_secret,
            "clearing_code": "default",
        }

    def attach_gateway(self, base_url: str) -> None:
        self._gateway_url = base_url.rstrip("/")

    def demo_links(self) -> Sequence[DemoLink]:
        links = []
        for partner, login in (("DEMO-001", "alice"), ("DEMO-002", "bob"), ("OTHER-001", "carol")):
            trader = f"{login}@default"
            links.append(DemoLink(partner, "trader", trader))
            links.append(DemoLink(partner, "account", f"default:{login}-usd", trader_id=trader))
        return links

    # -- knobs ----------------------------------------------------------------------

    @property
    def webhook_url(self) -> str | None:
        """Where callbacks go: the attached gateway's dxFeed webhook."""
        return None if self._gateway_url is None else f"{self._gateway_url}{WEBHOOK_PATH}"

    def fail_next(self, n: int, status: int = 503) -> None:
        """The next ``n`` API calls answer ``status`` in their surface's error body.

        DXtrade's two surfaces answer in two shapes (dxweb ``errorCode: int``, dxsca
        ``errorCode: str``), and the base's ``failure_body(status)`` cannot tell which
        surface a request was for, so the failure is given inside the app, where the
        route is known; like any call it is counted in ``calls``.  Nothing is applied.
        """
        self._surface_failures.extend([status] * n)

    @property
    def callbacks(self) -> list[Delivery]:
        """Every callback since the last reset, oldest first, with its attempts."""
        return self._sender.log

    @property
    def delivered_callbacks(self) -> list[Delivery]:
        return [d for d in self._sender.log if d.status == "delivered"]

    @property
    def callback_retry_delays(self) -> tuple[float, ...]:
        return self._sender.retry_delays

    @callback_retry_delays.setter
    def callback_retry_delays(self, delays: tuple[float, ...]) -> None:
        self._sender.retry_delays = tuple(delays)

    async def wait_callbacks(self, within: float = 10.0) -> None:
        """Wait until every pending callback is delivered or has failed (at most ``within`` s)."""
        await self._sender.wait(within)

    def send_callback(
        self,
        kind: str,
        login: str,
        domain: str = "default",
        subscriptions: list[dict[str, Any]] | None = None,
    ) -> str:
        """Apply a dxFeed-side change and emit its callback now; returns the delivery id.

        ``kind``: ``activated``, ``deactivated``, ``added`` or ``removed`` (with or
        without the ``subscription.`` prefix).  ``subscriptions``: ``[{name, endDate?}]``
        the change is about; None means all of the user's (``added``: one default).
        """
        event = self.state.feed_change(kind, domain, login, subscriptions)
        sent = self._flush()
        return next(d.delivery_id for e, d in sent if e is event)

    def reset_state(self) -> None:
        """Re-seed; clear sessions, counters, our failures and the callback log."""
        self._sender.cancel()
        self._sender.log = []
        self.state = DxState()
        self.sessions.clear()
        self.calls.clear()
        self._surface_failures.clear()
        self.callbacks_enabled = True

    # -- plumbing -------------------------------------------------------------------

    def _flush(self) -> list[tuple[FeedEvent, Delivery]]:
        """Carry out what the state asked for: log users out, send callbacks."""
        events, logouts = self.state.drain()
        for domain, login in logouts:
            self.sessions.logout_user(domain, login)
        sent = []
        for event in events:
            url = self.webhook_url if self.callbacks_enabled else None
            delivery = self._sender.build(event, url)
            if url is None:
                delivery.status = "skipped"
            else:
                self._sender.send(delivery)
            sent.append((event, delivery))
        return sent

    @staticmethod
    def _table() -> list[Api]:
        return [*admin.routes(), *sca.routes(), *dxfeed.routes()]

    def _route(self, api: Api) -> Route:
        key = f"{api.method} {api.path}"

        async def endpoint(request: Request) -> Response:
            self.calls[key] += 1
            ctx = Context(self.state, self.sessions, self.webhook_secret)
            try:
                if self._surface_failures:
                    raise unavailable(self._surface_failures.pop(0))
                if api.access != "none":
                    ctx.caller = self.sessions.authenticate(ctx.state, request.headers)
                    if api.access == "admin" and not ctx.caller.admin:
                        raise forbidden("the user lacks the register permission")
                    if api.read:
                        self.sessions.count_read(ctx.caller)
                result = await api.handler(request, ctx)
            except DxError as error:
                headers = {"Retry-After": "1"} if error.status == 429 else None
                body = error.body(api.surface)
                return DxJSONResponse(body, status_code=error.status, headers=headers)
            finally:
                self._flush()
            return result if isinstance(result, Response) else DxJSONResponse(result)

        return Route(api.path, endpoint, methods=[api.method])
