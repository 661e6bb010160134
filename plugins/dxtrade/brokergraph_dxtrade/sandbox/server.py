"""``DxTradeSandbox``: the DXtrade host (``/dxweb/rest``, ``/dxsca-web``, the dxFeed helper)
as an :class:`AsgiSandbox`, with the knobs tests use to make it misbehave."""

from __future__ import annotations

import dataclasses
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
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
from brokergraph_dxtrade.sandbox.rules import REGISTER, Rules
from brokergraph_dxtrade.sandbox.seed import ADMIN_DOMAIN, ADMIN_LOGIN, ADMIN_PASSWORD
from brokergraph_dxtrade.sandbox.state import DxState, FeedEvent
from brokergraph_dxtrade.sandbox.wire import DxJSONResponse
from gateway.contract.sandbox import ASGIApp, AsgiSandbox, DemoLink

DEFAULT_WEBHOOK_SECRET = "dxfeed-demo-webhook-secret-0123456789"
REQUEST_LOG_SIZE = 1000


class DxTradeSandbox(AsgiSandbox):
    """A DXtrade platform on 127.0.0.1, seeded and deterministic; ``reset()`` re-seeds it.

    Knobs: the standard ``latency_seconds``, ``fail_next(n, status)`` and
    ``drop_next(n, after_apply=...)``; ``calls`` (a Counter keyed
    ``"METHOD /path/{template}"``); ``sessions`` (``reads_per_second``, ``clear()``);
    ``requests`` (the latest calls in order); ``before_next(route, change)`` (another
    writer between two calls); ``fail_next_call(route, status, after_apply=...)``;
    ``callbacks_enabled``; ``send_callback(...)``;
    ``callbacks`` (every delivery) and ``delivered_callbacks``; ``wait_callbacks()``;
    ``callback_retry_delays`` (seconds before each retry; three retries by default).

    Where the vendor facts only guess, ``rules`` (a :class:`Rules`) picks the answer:
    ``cash_id_repeat``, ``etag_checks``, ``disable_route`` (see :mod:`.rules`); given
    to the constructor they are what ``reset()`` restores.  ``grant(permission)`` gives
    the CRM account a permission (``LOGIN_ON_BEHALF``); ``state.on_behalf_logins``
    lists every login on behalf of another user.
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
        rules: Rules | None = None,
    ) -> None:
        super().__init__(latency_seconds=latency_seconds)
        self.webhook_secret = webhook_secret
        #: False: callbacks are logged as "skipped" and not sent.
        self.callbacks_enabled = True
        #: Calls per endpoint, keyed "METHOD /path/{template}" (failed ones too).
        self.calls: Counter[str] = Counter()
        #: The latest calls in arrival order (same keys as ``calls``), for ordering checks.
        self.requests: deque[str] = deque(maxlen=REQUEST_LOG_SIZE)
        self._before: dict[str, list[Callable[[DxState], None]]] = {}
        self._route_failures: dict[str, list[tuple[int, bool]]] = {}
        self._default_rules = rules or Rules()
        self.state = DxState(dataclasses.replace(self._default_rules))
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
            **self.tls_settings(),
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
    def rules(self) -> Rules:
        """The [I] behaviours in force (until ``reset()`` restores the constructor's)."""
        return self.state.rules

    @rules.setter
    def rules(self, rules: Rules) -> None:
        self.state.rules = rules

    def before_next(self, route: str, change: Callable[[DxState], None]) -> None:
        """Apply ``change`` to the state just before the next call of ``route`` (a
        ``calls`` key) is handled: another writer acting between two of our calls."""
        self._before.setdefault(route, []).append(change)

    def fail_next_call(self, route: str, status: int = 502, *, after_apply: bool = False) -> None:
        """The next call of ``route`` (a ``calls`` key) answers ``status`` in its surface's
        error body; with ``after_apply`` only once the platform has applied it."""
        self._route_failures.setdefault(route, []).append((status, after_apply))

    def grant(self, permission: str, login: str = ADMIN_LOGIN, domain: str = ADMIN_DOMAIN) -> None:
        """Give an admin user (by default the CRM account) a permission."""
        self.state.permissions.setdefault((domain, login), set()).add(permission)

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
        """Re-seed; clear sessions, counters, our failures and the callback log; restore
        the constructor's rules and permissions."""
        self._sender.cancel()
        self._sender.log = []
        self.state = DxState(dataclasses.replace(self._default_rules))
        self.sessions.clear()
        self.calls.clear()
        self.requests.clear()
        self._before.clear()
        self._route_failures.clear()
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
            self.requests.append(key)
            ctx = Context(self.state, self.sessions, self.webhook_secret)
            pending = self._before.get(key)
            if pending:
                pending.pop(0)(self.state)
            planned = self._route_failures.get(key)
            status, after_apply = planned.pop(0) if planned else (None, False)
            try:
                if self._surface_failures:
                    raise unavailable(self._surface_failures.pop(0))
                if status is not None and not after_apply:
                    raise unavailable(status)
                if api.access != "none":
                    ctx.caller = self.sessions.authenticate(ctx.state, request.headers)
                    # Checked live: a permission revoked meanwhile refuses an open session.
                    granted = ctx.state.permissions.get(ctx.caller.key, set())
                    if api.access == "admin" and REGISTER not in granted:
                        raise forbidden("the user lacks the register permission")
                    if api.read:
                        self.sessions.count_read(ctx.caller)
                result = await api.handler(request, ctx)
                if status is not None:  # applied, but the answer is a failure
                    raise unavailable(status)
            except DxError as error:
                headers = {"Retry-After": "1"} if error.status == 429 else None
                body = error.body(api.surface)
                return DxJSONResponse(body, status_code=error.status, headers=headers)
            finally:
                self._flush()
            return result if isinstance(result, Response) else DxJSONResponse(result)

        return Route(api.path, endpoint, methods=[api.method])
