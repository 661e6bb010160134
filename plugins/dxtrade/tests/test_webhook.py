"""The dxFeed callback route on a running gateway: signed callbacks reach a GraphQL
subscriber once; replayed, forged, unsigned, stale and malformed ones change nothing
(no event, no delivery remembered) and are refused with a 4xx, logged without payload."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from typing import Any

import pytest
from brokergraph_dxtrade.sandbox import DEFAULT_WEBHOOK_SECRET, DxTradeSandbox
from brokergraph_dxtrade.webhook import (
    PATH,
    WebhookRefused,
    events_from_payload,
    parse_callback,
    sign,
    verify_signature,
)

from gateway.contract.schema import encode_id
from gateway.testing import TestGateway

from .conftest import receive, subscribe, unique, websocket

SECRET = DEFAULT_WEBHOOK_SECRET
EVENTS = """
subscription($id: ID!) { marketDataSubscriptionEvents(traderId: $id) {
  kind vendorKind subscription { name active } } }"""


def callback(user: str, kind: str = "subscription.activated", **extra: Any) -> dict[str, Any]:
    body = {
        "deliveryId": str(uuid.uuid4()),
        "type": kind,
        "occurredAt": "2025-03-14T09:30:00.000Z",
        "dxFeedAccountId": str(uuid.uuid4()),
        "login": user,
        "domain": "default",
        "subscriptions": [
            {"name": "CME Globex Top of Book", "endDate": "2027-01-31", "active": True}
        ],
    }
    body.update(extra)
    return body


async def post(
    gateway: TestGateway,
    body: bytes | dict[str, Any],
    *,
    secret: str | None = SECRET,
    timestamp: int | None = None,
    delivery: str | None = None,
) -> int:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    headers = {"Content-Type": "application/json", "X-DxFeed-Timestamp": stamp}
    if secret is not None:
        headers["X-DxFeed-Signature"] = sign(secret, stamp, raw)
    if delivery is None and isinstance(body, dict):
        delivery = body.get("deliveryId")
    if delivery is not None:
        headers["X-DxFeed-Delivery"] = delivery
    response = await gateway.http.post(f"{gateway.url}{PATH}", content=raw, headers=headers)
    status: int = response.status_code
    return status


async def test_only_verified_new_callbacks_reach_the_subscriber(
    dx_gateway: TestGateway, caplog: pytest.LogCaptureFixture
) -> None:
    gateway = dx_gateway
    login = unique("ghost")
    store = gateway.services.store
    caplog.set_level(logging.INFO, logger="brokergraph_dxtrade.webhook")
    async with websocket(gateway, "admin") as socket:
        gid = encode_id("Trader", "dxtrade", f"{login}@default")
        operation = await subscribe(socket, EVENTS, {"id": gid})
        await asyncio.sleep(0.3)  # let the stream attach before the first callback
        first = callback(login)
        assert await post(gateway, first) == 202
        message = await receive(socket)
        assert message["id"] == operation
        event = message["payload"]["data"]["marketDataSubscriptionEvents"]
        assert (event["kind"], event["vendorKind"]) == ("ACTIVATED", "subscription.activated")
        refused_ids = []

        # Replayed: the same delivery, freshly signed (as the sandbox retries) -> no effect.
        assert await post(gateway, first) == 200
        # Forged: signed with another secret.
        forged = callback(login, "subscription.deactivated")
        assert await post(gateway, forged, secret="not-the-shared-secret-at-all") == 401
        # Unsigned.
        unsigned = callback(login, "subscription.deactivated")
        assert await post(gateway, unsigned, secret=None) == 401
        # Stale (and from the future): correctly signed, outside the ±300 s window.
        stale = callback(login, "subscription.deactivated")
        assert await post(gateway, stale, timestamp=int(time.time()) - 301) == 401
        future = callback(login, "subscription.deactivated")
        assert await post(gateway, future, timestamp=int(time.time()) + 301) == 401
        # Signed, but not the documented shape.
        malformed = [
            callback(login, login=None),
            callback(login, subscriptions=[{"name": "X"}]),
            callback(login, occurredAt="yesterday"),
            callback(login, deliveryId="has spaces in it"),
        ]
        for body in malformed:
            assert await post(gateway, body) == 400, body
        mismatch = callback(login)
        assert await post(gateway, mismatch, delivery=str(uuid.uuid4())) == 400
        not_json = str(uuid.uuid4())
        assert await post(gateway, b"{not json", delivery=not_json) == 400
        refused_ids += [b["deliveryId"] for b in (forged, unsigned, stale, future, mismatch)]

        # The next event the subscriber sees is the next valid callback's.
        last = callback(login, "subscription.removed")
        assert await post(gateway, last) == 202
        message = await receive(socket)
        event = message["payload"]["data"]["marketDataSubscriptionEvents"]
        assert event["kind"] == "REMOVED"

    # Nothing refused was remembered (a first remember succeeds now); the replayed was.
    for delivery_id in refused_ids:
        assert await store.remember_delivery("dxfeed", delivery_id), delivery_id
    assert not await store.remember_delivery("dxfeed", first["deliveryId"])
    # Logged with the reason, never the body or a secret.
    assert "bad signature" in caplog.text
    assert "stale" in caplog.text
    assert SECRET not in caplog.text
    assert "CME Globex" not in caplog.text


async def test_other_callback_types_are_accepted_but_never_published(
    dx_gateway: TestGateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    body = {
        "deliveryId": str(uuid.uuid4()),
        "type": "credentials.generated",
        "occurredAt": "2025-03-14T09:30:00Z",
        "dxFeedAccountId": "x",
        "login": "someone",
        "password": "s3cr3t-user-password",
    }
    assert await post(dx_gateway, body) == 202
    assert "s3cr3t-user-password" not in caplog.text


async def test_an_oversized_body_is_refused_unread(dx_gateway: TestGateway) -> None:
    body = callback("ghost", subscriptions=[{"name": "x" * 100, "active": True}] * 1000)
    assert await post(dx_gateway, body) == 413


async def test_sandbox_callbacks_are_signed_with_the_shared_secret(
    dx_gateway: TestGateway, dx_sandbox: DxTradeSandbox
) -> None:
    sandbox = dx_sandbox
    delivery = sandbox.send_callback("activated", "alice")
    await sandbox.wait_callbacks()
    (sent,) = [d for d in sandbox.callbacks if d.delivery_id == delivery]
    assert sent.status == "delivered"
    assert sent.attempts == [202]
    assert not await dx_gateway.services.store.remember_delivery("dxfeed", delivery)


# -- the pure parts --------------------------------------------------------------------


def test_signature_checks() -> None:
    body, stamp = b'{"a":1}', "1700000000"
    good = sign(SECRET, stamp, body)
    assert verify_signature([SECRET], stamp, body, good)
    assert verify_signature([SECRET], stamp, body, good.upper().replace("SHA256=", "sha256="))
    assert verify_signature(["new-secret-0123456789", SECRET], stamp, body, good), "rotation"
    assert not verify_signature([SECRET], "1700000001", body, good), "timestamp is signed"
    assert not verify_signature([SECRET], stamp, body + b" ", good), "body is signed"
    assert not verify_signature([SECRET], stamp, body, good.removeprefix("sha256="))
    assert not verify_signature([SECRET], stamp, body, None)
    assert not verify_signature([], stamp, body, good)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"[]", "JSON object"),
        (b"\xff", "not JSON"),
        (json.dumps(callback("a", type=None)).encode(), "type"),
        (json.dumps(callback("a", subscriptions={})).encode(), "subscriptions"),
        (json.dumps(callback("a", occurredAt="2025-03-14T09:30:00")).encode(), "UTC offset"),
        (
            json.dumps(callback("a", subscriptions=[{"name": "n", "active": True, "endDate": 5}])),
            "endDate",
        ),
    ],
)
def test_malformed_callbacks(body: bytes | str, reason: str) -> None:
    raw = body.encode() if isinstance(body, str) else body
    with pytest.raises(WebhookRefused, match=reason) as refused:
        parse_callback(raw, None)
    assert refused.value.status == 400


def test_events_of_a_callback() -> None:
    payload = parse_callback(json.dumps(callback("bob")).encode(), None).payload()
    (event,) = events_from_payload("bob@default", payload)
    assert event.kind == "subscription.activated"
    assert event.trader_id == "bob@default"
    assert event.subscription is not None
    assert event.subscription.active
    assert event.at.tzinfo is not None
    empty = {**payload, "subscriptions": []}
    (bare,) = events_from_payload("bob@default", empty)
    assert bare.subscription is None


SEQUENCED = """
subscription($id: ID!, $after: Int) {
  marketDataSubscriptionEvents(traderId: $id, afterSequence: $after) {
    sequence subscription { name } } }"""


async def next_event(socket: Any) -> tuple[int, str]:
    message = await receive(socket)
    assert message["type"] == "next", message
    event = message["payload"]["data"]["marketDataSubscriptionEvents"]
    return event["sequence"], event["subscription"]["name"]


async def test_a_resume_between_two_events_of_one_callback_is_exact(
    dx_gateway: TestGateway,
) -> None:
    """A callback naming three subscriptions is three events: a client that got only
    the first before its socket was cut resumes after that one's sequence and gets the
    other two, then live events, with nothing repeated (they shared one sequence: after
    it skipped the other two, after the one before repeated the first)."""
    gateway = dx_gateway
    login = unique("three")
    gid = encode_id("Trader", "dxtrade", f"{login}@default")
    names = ["CME Globex Top of Book", "NASDAQ TotalView", "ICE Futures Europe"]
    three = callback(
        login,
        subscriptions=[{"name": n, "endDate": "2027-01-31", "active": True} for n in names],
    )
    async with websocket(gateway, "admin") as socket:
        await subscribe(socket, SEQUENCED, {"id": gid})
        await asyncio.sleep(0.3)  # let the stream attach before the callback
        assert await post(gateway, three) == 202
        first, name = await next_event(socket)
        assert name == names[0]
    # The socket is cut: the other two events were sent to it but never read.

    async with websocket(gateway, "admin") as socket:
        await subscribe(socket, SEQUENCED, {"id": gid, "after": first})
        resumed = [await next_event(socket), await next_event(socket)]
        assert resumed == [(first + 1, names[1]), (first + 2, names[2])]
        assert await post(gateway, three) == 200  # a redelivery adds nothing
        later = callback(login, subscriptions=[{"name": "LSE Level 2", "active": True}])
        assert await post(gateway, later) == 202
        assert await next_event(socket) == (first + 3, "LSE Level 2")
