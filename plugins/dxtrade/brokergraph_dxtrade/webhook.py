"""The dxFeed callback route: ``POST /webhooks/dxtrade/dxfeed`` (documented in the README).

dxFeed (through the partner's callback URL) tells the gateway when a user's
market-data subscriptions change.  The route trusts nothing it has not verified:

1. **Size.**  A body over :data:`MAX_BODY_BYTES` is refused (413) unread.
2. **Signature.**  ``X-DxFeed-Signature: sha256=<hex>`` must be the HMAC-SHA256 of
   ``f"{X-DxFeed-Timestamp}.{raw body}"`` under the shared secret (the connector's
   ``webhook_secret``; ``webhook_previous_secret`` is accepted too, for rotation),
   compared in constant time.  Missing or wrong: 401.
3. **Freshness.**  The timestamp (unix seconds) must be within ±:data:`WINDOW_SECONDS`
   of our clock, so a captured request cannot be replayed later: 401 otherwise.
4. **Shape.**  The body must be the documented JSON object and its ``deliveryId``
   must equal the ``X-DxFeed-Delivery`` header: 400 otherwise.
5. **Log, then acknowledge.**  Only now — after verification, so forged or broken
   requests cannot burn a delivery id — the callback is appended to the gateway's event
   log on ``dxtrade:md:{login}@{domain}``, one entry per subscription it names (one
   entry when it names none), so each event of a callback has its own sequence and a
   subscriber resumes exactly between two of them.  Each entry's append key is the
   delivery id (``#i`` after it for the i-th subscription past the first): the dedupe
   record and the entry are written in one step.  The route answers 202 only once every
   entry is stored; a log that cannot store one gets 503, and dxFeed's redelivery adds
   the entries still missing (those stored are repeats).  A redelivery of a stored
   callback answers 200 ``{"status": "duplicate"}`` and adds nothing.
   ``store.remember_delivery("dxfeed", deliveryId)`` keeps the long-term record (after
   the append: it may fail without losing the event).
6. **Relay.**  The GraphQL subscription ``marketDataSubscriptionEvents`` of that
   trader follows the log (:meth:`DxTradeConnector.market_data_events`), resuming
   after ``afterSequence`` when asked.

Refusals are logged with the reason, the sender's address and the (sanitised)
delivery header only: never the body, the signature or the secret.  Nothing is
written or published for a refused request.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from datetime import time as dt_time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from gateway.contract import (
    MarketDataSubscription,
    MarketDataSubscriptionEvent,
    PluginServices,
)

__all__ = [
    "DELIVERY_SOURCE",
    "MAX_BODY_BYTES",
    "PATH",
    "SUBSCRIPTION_TYPES",
    "WINDOW_SECONDS",
    "Callback",
    "WebhookRefused",
    "dxfeed_route",
    "events_from_payload",
    "parse_callback",
    "sign",
    "topic_for",
    "verify_signature",
]

PATH = "/webhooks/dxtrade/dxfeed"
DELIVERY_SOURCE = "dxfeed"
WINDOW_SECONDS = 300
MAX_BODY_BYTES = 64 * 1024
MAX_SUBSCRIPTIONS = 500
SUBSCRIPTION_TYPES = (
    "subscription.activated",
    "subscription.deactivated",
    "subscription.added",
    "subscription.removed",
)
PLATFORM = "dxtrade"
_ID = re.compile(r"^[A-Za-z0-9_.:@-]{1,128}\Z")  # \Z: "$" would allow a final newline
_SIGNATURE = re.compile(r"^sha256=([0-9a-fA-F]{64})$")

logger = logging.getLogger("brokergraph_dxtrade.webhook")


def topic_for(trader_id: str) -> str:
    """The event-log topic of one trader (``login@domain``)."""
    return f"dxtrade:md:{trader_id}"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-DxFeed-Signature`` value of ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def verify_signature(
    secrets: Sequence[str], timestamp: str, body: bytes, header: str | None
) -> bool:
    """True if ``header`` signs ``timestamp.body`` under one of ``secrets`` (constant time)."""
    if header is None:
        return False
    match = _SIGNATURE.match(header.strip())
    if match is None:
        return False
    given = match.group(1).lower().encode()
    valid = False
    for secret in secrets:  # every secret is checked: the time does not tell which matched
        expected = sign(secret, timestamp, body).removeprefix("sha256=").encode()
        valid |= hmac.compare_digest(expected, given)
    return valid


class WebhookRefused(Exception):
    """A callback is refused: ``status`` is answered and ``reason`` logged."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Callback:
    """A verified, well-formed dxFeed callback."""

    delivery_id: str
    type: str
    occurred_at: datetime
    dx_feed_account_id: str | None
    login: str | None
    domain: str | None
    subscriptions: tuple[Mapping[str, Any], ...]

    @property
    def trader_id(self) -> str | None:
        if self.login is None or self.domain is None:
            return None
        return f"{self.login}@{self.domain}"

    def parts(self) -> list[dict[str, Any]]:
        """What goes in the event log: one payload per subscription (``part`` of
        ``parts``; one payload when it names none), each one event with its own sequence."""
        whole = self.payload()
        subscriptions = whole["subscriptions"]
        if len(subscriptions) <= 1:
            return [{**whole, "part": 0, "parts": 1}]
        count = len(subscriptions)
        return [
            {**whole, "subscriptions": [s], "part": i, "parts": count}
            for i, s in enumerate(subscriptions)
        ]

    def payload(self) -> dict[str, Any]:
        """The whole callback as plain JSON data, safe to pickle across replicas."""
        return {
            "v": 1,
            "deliveryId": self.delivery_id,
            "type": self.type,
            "occurredAt": self.occurred_at.isoformat(),
            "dxFeedAccountId": self.dx_feed_account_id,
            "login": self.login,
            "domain": self.domain,
            "subscriptions": [dict(s) for s in self.subscriptions],
        }


def _text(body: Mapping[str, Any], name: str, *, pattern: re.Pattern[str] | None = None) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        raise WebhookRefused(400, f"{name} must be a non-empty string")
    if pattern is not None and not pattern.match(value):
        raise WebhookRefused(400, f"{name} has characters outside [A-Za-z0-9_.:@-]")
    return value


def _moment(value: Any) -> datetime:
    if not isinstance(value, str):
        raise WebhookRefused(400, "occurredAt must be an ISO-8601 string")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise WebhookRefused(400, "occurredAt is not an ISO-8601 time") from None
    if parsed.tzinfo is None:
        raise WebhookRefused(400, "occurredAt must carry a UTC offset")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59:59-05:00 is past datetime.max in UTC
        raise WebhookRefused(400, "occurredAt is out of range") from None


def _subscription(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise WebhookRefused(400, "each subscription must be an object")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise WebhookRefused(400, "subscription.name must be a non-empty string")
    active = raw.get("active")
    if not isinstance(active, bool):
        raise WebhookRefused(400, "subscription.active must be a boolean")
    end = raw.get("endDate")
    if end is not None:
        if not isinstance(end, str):
            raise WebhookRefused(400, "subscription.endDate must be a date string")
        try:
            date.fromisoformat(end[:10])
        except ValueError:
            raise WebhookRefused(400, "subscription.endDate is not a date") from None
    return {"name": name, "endDate": end, "active": active}


def parse_callback(body: bytes, delivery_header: str | None) -> Callback:
    """The callback in ``body`` (already verified), or :class:`WebhookRefused` (400)."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than json allows
        raise WebhookRefused(400, "the body is not JSON") from None
    if not isinstance(data, dict):
        raise WebhookRefused(400, "the body must be a JSON object")
    delivery_id = _text(data, "deliveryId", pattern=_ID)
    if delivery_header is not None and delivery_header != delivery_id:
        raise WebhookRefused(400, "deliveryId differs from the X-DxFeed-Delivery header")
    kind = _text(data, "type")
    occurred_at = _moment(data.get("occurredAt"))
    if kind not in SUBSCRIPTION_TYPES:
        # Other dxFeed callbacks (credentials, subscriber status) carry nothing for the
        # gateway, and credentials carry a password: accepted, never published.
        return Callback(delivery_id, kind, occurred_at, None, None, None, ())
    raw_subscriptions = data.get("subscriptions")
    if not isinstance(raw_subscriptions, list) or len(raw_subscriptions) > MAX_SUBSCRIPTIONS:
        raise WebhookRefused(400, f"subscriptions must be a list of at most {MAX_SUBSCRIPTIONS}")
    return Callback(
        delivery_id=delivery_id,
        type=kind,
        occurred_at=occurred_at,
        dx_feed_account_id=_text(data, "dxFeedAccountId", pattern=_ID),
        login=_text(data, "login", pattern=_ID),
        domain=_text(data, "domain", pattern=_ID),
        subscriptions=tuple(_subscription(s) for s in raw_subscriptions),
    )


def _end_of(end: Any) -> datetime | None:
    """A subscription's ``endDate`` (a day) as the aware UTC end of that day's start."""
    if not isinstance(end, str):
        return None
    try:
        day = date.fromisoformat(end[:10])
    except ValueError:
        return None
    return datetime.combine(day, dt_time(0, 0), tzinfo=UTC)


def subscription_model(trader_id: str, raw: Mapping[str, Any]) -> MarketDataSubscription:
    """A dxFeed ``{name, endDate, active}`` as the standard model (id: ``trader/name``)."""
    name = str(raw["name"])
    return MarketDataSubscription(
        platform=PLATFORM,
        id=f"{trader_id}/{name}",
        trader_id=trader_id,
        name=name,
        active=bool(raw.get("active")),
        ends_at=_end_of(raw.get("endDate")),
        raw=dict(raw),
    )


def events_from_payload(
    trader_id: str, payload: Mapping[str, Any]
) -> list[MarketDataSubscriptionEvent]:
    """The standard events of one published callback: one per subscription it names
    (one without a subscription when it names none).  ``kind`` is the callback type."""
    at = datetime.fromisoformat(str(payload["occurredAt"]))
    kind = str(payload["type"])
    subscriptions = payload.get("subscriptions") or []
    if not subscriptions:
        return [
            MarketDataSubscriptionEvent(platform=PLATFORM, trader_id=trader_id, kind=kind, at=at)
        ]
    return [
        MarketDataSubscriptionEvent(
            platform=PLATFORM,
            trader_id=trader_id,
            kind=kind,
            at=at,
            subscription=subscription_model(trader_id, s),
        )
        for s in subscriptions
    ]


def _safe(value: str | None) -> str:
    """A header value fit for a log line (the delivery id), never more."""
    if value is None:
        return "-"
    return value if _ID.match(value) else "<invalid>"


def dxfeed_route(services: PluginServices, secrets: Callable[[], Sequence[str]]) -> BaseRoute:
    """The Starlette route; ``secrets`` gives the accepted secrets (current first)."""

    async def receive(request: Request) -> Response:
        delivery_header = request.headers.get("X-DxFeed-Delivery")
        peer = request.client.host if request.client else "-"
        try:
            callback = await _verified(request, secrets(), delivery_header)
        except WebhookRefused as refused:
            logger.warning(
                "dxFeed callback refused: status=%s reason=%s delivery=%s peer=%s",
                refused.status,
                refused.reason,
                _safe(delivery_header),
                peer,
            )
            return JSONResponse({"error": refused.reason}, status_code=refused.status)
        if callback.trader_id is None:
            if not await services.store.remember_delivery(DELIVERY_SOURCE, callback.delivery_id):
                return JSONResponse({"status": "duplicate"}, status_code=200)
            logger.info(
                "dxFeed callback ignored: type=%s delivery=%s",
                _safe(callback.type),
                callback.delivery_id,
            )
            return JSONResponse({"status": "ignored"}, status_code=202)
        topic = topic_for(callback.trader_id)
        key = f"{DELIVERY_SOURCE}:{callback.delivery_id}"
        try:
            # In order, each part deduplicated on its own: a redelivery after a failure
            # stores only the parts still missing.  The first part's key is the whole
            # delivery's (as when a callback was one entry), so a single-subscription
            # callback logged before is still recognised.
            entries = [
                await services.events.append(topic, part, key=f"{key}#{i}" if i else key)
                for i, part in enumerate(callback.parts())
            ]
        except Exception as error:  # not (all) stored: dxFeed must deliver it again
            logger.error(
                "dxFeed callback not stored, answered 503 for redelivery: delivery=%s error=%s",
                callback.delivery_id,
                type(error).__name__,
            )
            return JSONResponse(
                {"error": "the event could not be stored; deliver it again"}, status_code=503
            )
        try:
            await services.store.remember_delivery(DELIVERY_SOURCE, callback.delivery_id)
        except Exception as error:  # the event is stored: the record is not what counts
            logger.warning(
                "dxFeed delivery stored but not recorded: delivery=%s error=%s",
                callback.delivery_id,
                type(error).__name__,
            )
        if all(entry.repeated for entry in entries):
            logger.info("dxFeed callback redelivered: delivery=%s", callback.delivery_id)
            return JSONResponse({"status": "duplicate"}, status_code=200)
        logger.info(
            "dxFeed callback accepted: type=%s trader=%s delivery=%s sequences=%s-%s",
            callback.type,
            callback.trader_id,
            callback.delivery_id,
            entries[0].sequence,
            entries[-1].sequence,
        )
        return JSONResponse({"status": "accepted"}, status_code=202)

    return Route(PATH, receive, methods=["POST"], name="dxtrade-dxfeed-webhook")


async def _verified(
    request: Request, secrets: Sequence[str], delivery_header: str | None
) -> Callback:
    if not secrets:
        raise WebhookRefused(503, "no webhook secret is configured")
    declared = request.headers.get("Content-Length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
        raise WebhookRefused(413, "the body is too large")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise WebhookRefused(413, "the body is too large")
    timestamp = request.headers.get("X-DxFeed-Timestamp")
    signature = request.headers.get("X-DxFeed-Signature")
    if timestamp is None or signature is None:
        raise WebhookRefused(401, "unsigned: X-DxFeed-Timestamp and X-DxFeed-Signature required")
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 12:  # not "²"
        raise WebhookRefused(401, "X-DxFeed-Timestamp must be unix seconds")
    if not verify_signature(secrets, timestamp, body, signature):
        raise WebhookRefused(401, "bad signature")
    if abs(time.time() - int(timestamp)) > WINDOW_SECONDS:
        raise WebhookRefused(401, f"stale: the timestamp is more than {WINDOW_SECONDS} s off")
    return parse_callback(body, delivery_header)
