"""A dxFeed account belongs to one partner: through GraphQL, the real gateway and sandbox.

The attack as filed: a trader created for DEMO-002 naming DEMO-001's
``dxFeedAccountId`` was accepted, and deactivating it with subscription cancellation
cancelled DEMO-001's trader's subscriptions (XT refuses a login with none).  Each
refusal here happens before any DXtrade write (the sandbox's call counter), says
nothing of the other partner, and leaves the other trader's subscriptions active.
"""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

from brokergraph_dxtrade.sandbox import DxTradeSandbox
from brokergraph_dxtrade.sandbox.seed import ALICE_FEED_ID

from gateway.sandboxes import DEMO_PARTNERS
from gateway.testing import TestGateway

from .conftest import trader_gid, unique

CREATE = """
mutation($input: CreateTraderInput!) { createTrader(input: $input) {
  trader { externalId }
  accounts { externalId }
  steps { name succeeded }
  resumeToken
  errors { code message field }
} }"""

DEACTIVATE = """
mutation($input: DeactivateTraderInput!) { deactivateTrader(input: $input) {
  trader { status }
  steps { name succeeded }
  errors { code message field }
} }"""

#: Requests that change DXtrade's state (a session login or ping changes none).
SESSION = ("/login", "/ping", "/logout")


def writes(before: Counter[str], after: Counter[str]) -> int:
    return sum(
        after[key] - before[key]
        for key in after
        if not key.startswith("GET ") and not key.endswith(SESSION)
    )


def crm_input(partner: str, feed_id: str) -> dict[str, Any]:
    login = unique("feed")
    return {
        "platform": "dxtrade",
        "partnerCode": partner,
        "email": f"{login}@example.com",
        "password": "test",
        "currency": "USD",
        "isLive": False,
        "options": {"mode": "CRM", "dxFeedAccountId": feed_id, "login": login},
    }


def assert_reveals_nothing(message: str, owner: str, *secrets: str) -> None:
    _, name = DEMO_PARTNERS[owner]
    for secret in (owner, name, *secrets):
        assert secret.lower() not in message.lower(), (secret, message)


def alice_subscribed(sandbox: DxTradeSandbox) -> bool:
    return any(s.active for s in sandbox.state.feeds[ALICE_FEED_ID])


async def test_another_partners_dxfeed_account_is_refused_before_any_write(
    dx_gateway: TestGateway, dx_sandbox: DxTradeSandbox
) -> None:
    gateway, sandbox = dx_gateway, dx_sandbox
    assert alice_subscribed(sandbox)  # alice@default: DEMO-001's trader, seeded
    users = len(sandbox.state.clients)
    before = Counter(sandbox.calls)
    body = await gateway.query(
        CREATE, {"input": crm_input("DEMO-002", ALICE_FEED_ID)}, token="manager"
    )
    payload = body["data"]["createTrader"]
    (error,) = payload["errors"]
    assert error["code"] == "CONFLICT"
    assert error["field"] == ["options", "dxFeedAccountId"]
    assert_reveals_nothing(str(body), "DEMO-001", "alice")
    assert payload["trader"] is None and payload["resumeToken"] is None
    assert writes(before, sandbox.calls) == 0
    assert len(sandbox.state.clients) == users
    assert alice_subscribed(sandbox)
    # Nothing of the refused request stays in the gateway's links.
    assert await gateway.services.store.owners(
        "dxtrade", "identity", [f"dxfeed-account:{ALICE_FEED_ID}"]
    ) == [None]


async def test_a_feed_account_created_through_the_gateway_stays_its_partners(
    dx_gateway: TestGateway, dx_sandbox: DxTradeSandbox
) -> None:
    gateway, sandbox = dx_gateway, dx_sandbox
    feed_id = str(uuid.uuid4())
    first = await gateway.query(CREATE, {"input": crm_input("DEMO-001", feed_id)}, token="manager")
    assert first["data"]["createTrader"]["errors"] == []
    owner_login = first["data"]["createTrader"]["trader"]["externalId"].partition("@")[0]
    store = gateway.services.store
    key = f"dxfeed-account:{feed_id}"
    assert await store.owners("dxtrade", "identity", [key]) == ["DEMO-001"]

    before = Counter(sandbox.calls)
    users = len(sandbox.state.clients)
    refused = await gateway.query(
        CREATE, {"input": crm_input("DEMO-002", feed_id)}, token="manager"
    )
    (error,) = refused["data"]["createTrader"]["errors"]
    assert error["code"] == "CONFLICT"
    assert_reveals_nothing(str(refused), "DEMO-001", owner_login)
    assert writes(before, sandbox.calls) == 0
    assert len(sandbox.state.clients) == users

    # The partner that owns the feed account may give it to a second trader of its own.
    again = await gateway.query(CREATE, {"input": crm_input("DEMO-001", feed_id)}, token="manager")
    assert again["data"]["createTrader"]["errors"] == []
    assert len(sandbox.state.clients) == users + 1
    assert await store.owners("dxtrade", "identity", [key]) == ["DEMO-001"]


async def test_deactivation_never_cancels_another_partners_dxfeed_account(
    dx_gateway: TestGateway, dx_sandbox: DxTradeSandbox
) -> None:
    gateway, sandbox = dx_gateway, dx_sandbox
    # A DEMO-002 user naming alice's dxFeed account, made before the gateway checked
    # (straight on the platform), then linked to DEMO-002.
    login = unique("shared")
    sandbox.state.create_client(
        {"domain": "default", "login": login, "dxFeedAccountId": ALICE_FEED_ID}
    )
    tid = f"{login}@default"
    await gateway.services.store.link("DEMO-002", "dxtrade", "trader", tid)

    before = Counter(sandbox.calls)
    body = await gateway.query(
        DEACTIVATE,
        {"input": {"traderId": trader_gid(tid), "cancelMarketDataSubscriptions": True}},
        token="manager",
    )
    (error,) = body["data"]["deactivateTrader"]["errors"]
    assert error["code"] == "CONFLICT"
    assert error["field"] == ["cancelMarketDataSubscriptions"]
    assert_reveals_nothing(str(body), "DEMO-001", "alice")
    assert writes(before, sandbox.calls) == 0
    assert sandbox.state.client("default", login).status != "DISABLED"
    assert alice_subscribed(sandbox)

    # Without the cancellation the user is the partner's to deactivate; alice keeps
    # her subscriptions.
    done = await gateway.query(
        DEACTIVATE, {"input": {"traderId": trader_gid(tid)}}, token="manager"
    )
    assert done["data"]["deactivateTrader"]["errors"] == []
    assert sandbox.state.client("default", login).status == "DISABLED"
    assert alice_subscribed(sandbox)
    assert sandbox.state.client("default", "alice").status != "DISABLED"
