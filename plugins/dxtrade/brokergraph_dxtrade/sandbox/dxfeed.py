"""The dxFeed side: signed subscription callbacks to the gateway, retried with one delivery id.

Callback (our format, shared contract): ``POST <gateway>/webhooks/dxtrade/dxfeed`` with
``{"deliveryId", "type", "occurredAt", "dxFeedAccountId", "login", "domain",
"subscriptions"}`` and headers ``X-DxFeed-Delivery``, ``X-DxFeed-Timestamp`` (unix seconds)
and ``X-DxFeed-Signature: sha256=<hex HMAC-SHA256(secret, f"{timestamp}.{raw body}")>``.
A 2xx accepts it; a non-2xx or a connection error is retried ``len(retry_delays)`` times
(3 by default) with the same delivery id and body, a fresh timestamp and signature.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.requests import Request

from brokergraph_dxtrade.sandbox.context import Api, Context
from brokergraph_dxtrade.sandbox.errors import not_found, unauthorized
from brokergraph_dxtrade.sandbox.state import FeedEvent
from brokergraph_dxtrade.sandbox.wire import iso, now
from gateway.contract import exact_json_dumps

WEBHOOK_PATH = "/webhooks/dxtrade/dxfeed"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-DxFeed-Signature`` value of a body sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


@dataclass
class Delivery:
    """One callback and what became of it.

    ``status``: ``pending`` (being sent), ``delivered`` (a 2xx), ``failed`` (every attempt
    refused), ``skipped`` (callbacks disabled or no gateway attached).  ``attempts`` holds
    each attempt's HTTP status, or the name of the connection error.
    """

    delivery_id: str
    payload: dict[str, Any]
    body: bytes
    url: str | None
    status: str = "pending"
    attempts: list[int | str] = field(default_factory=list)

    @property
    def type(self) -> str:
        return str(self.payload["type"])


class CallbackSender:
    """Sends callbacks on background tasks; ``wait()`` lets a test see them through."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.retry_delays: tuple[float, ...] = (0.05, 0.2, 0.5)
        self.timeout_seconds = 5.0
        self.log: list[Delivery] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None

    def build(self, event: FeedEvent, url: str | None) -> Delivery:
        delivery_id = str(uuid.uuid4())
        payload = {
            "deliveryId": delivery_id,
            "type": event.type,
            "occurredAt": iso(now()),
            "dxFeedAccountId": event.dx_feed_account_id,
            "login": event.login,
            "domain": event.domain,
            "subscriptions": [dict(s) for s in event.subscriptions],
        }
        delivery = Delivery(delivery_id, payload, exact_json_dumps(payload), url)
        self.log.append(delivery)
        return delivery

    def send(self, delivery: Delivery) -> None:
        task = asyncio.get_running_loop().create_task(self._deliver(delivery))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, delivery: Delivery) -> None:
        assert delivery.url is not None
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout_seconds)
        for delay in (0.0, *self.retry_delays):
            if delay:
                await asyncio.sleep(delay)
            timestamp = str(int(time.time()))
            headers = {
                "Content-Type": "application/json",
                "X-DxFeed-Delivery": delivery.delivery_id,
                "X-DxFeed-Timestamp": timestamp,
                "X-DxFeed-Signature": sign(self.secret, timestamp, delivery.body),
            }
            try:
                response = await self._client.post(
                    delivery.url, content=delivery.body, headers=headers
                )
            except httpx.HTTPError as error:
                delivery.attempts.append(type(error).__name__)
                continue
            delivery.attempts.append(response.status_code)
            if response.is_success:
                delivery.status = "delivered"
                return
        delivery.status = "failed"

    async def wait(self, within: float = 10.0) -> None:
        """Wait until every pending delivery has finished (or ``within`` seconds pass)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=within)

    def cancel(self) -> None:
        for task in self._tasks:
            task.cancel()

    async def close(self) -> None:
        tasks = set(self._tasks)
        self.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        if self._client is not None:
            await self._client.aclose()
            self._client = None


# -- the dxFeed Retail Services stand-in (sandbox-only helper API) ------------------------


async def subscriptions(request: Request, ctx: Context) -> Any:
    """``GET /dxfeed/accounts/{dxFeedAccountId}/subscriptions`` with ``Bearer <secret>``."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip(), ctx.webhook_secret):
        raise unauthorized("send Authorization: Bearer <webhook secret>")
    feed_id = request.path_params["dxFeedAccountId"]
    found = ctx.state.feeds.get(feed_id)
    if found is None:
        raise not_found(f"no dxFeed account {feed_id}")
    return {"subscriptions": [s.wire() for s in found]}


def routes() -> list[Api]:
    path = "/dxfeed/accounts/{dxFeedAccountId}/subscriptions"
    return [Api("dxsca", "GET", path, subscriptions, "none")]
