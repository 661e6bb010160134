"""A cTrader user (cTID) belongs to one partner: through GraphQL, the real gateway and
sandbox, over real sockets.

The attack as filed: a manager of one broker called createTrader with another
broker's client e-mail; create-user (idempotent by e-mail) answered that client's
cTID, a trading account was created and linked under it, and only then the gateway
answered CONFLICT, naming the other link.  A flow stopped midway handed its resume
token to whoever sent the same e-mail, and resuming checked the e-mail only.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from brokergraph_ctrader.sandbox import CTraderSandbox

from gateway.auth import Role
from gateway.sandboxes import DEMO_PARTNERS
from gateway.testing import TestGateway

from .conftest import delta, writes

CREATE_TRADER = """
mutation($input: CreateTraderInput!) {
  createTrader(input: $input) {
    trader { externalId }
    accounts { externalId }
    steps { name succeeded reference message }
    resumeToken
    errors { code message field }
  }
}"""

#: The seeded cTID of OTHER-001's client (user 1003), never seen through the gateway.
OTHER_CLIENT_EMAIL = "chen.li@other.example"


def fresh_email(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}@example.com"


def trader_input(partner: str, email: str, **more: Any) -> dict[str, Any]:
    return {"input": {"platform": "ctrader", "partnerCode": partner, "email": email, **more}}


def assert_reveals_nothing(answer: Any, owner: str, *secrets: str) -> None:
    broker, name = DEMO_PARTNERS[owner]
    text = str(answer).lower()
    for secret in (owner, name, broker, *secrets):
        assert secret.lower() not in text, (secret, answer)


def upstream_objects(sandbox: CTraderSandbox) -> tuple[int, int, int]:
    """Users, traders and user-trader links on the platform."""
    state = sandbox.state
    return len(state.users), len(state.traders), len(state.links)


async def create(gateway: TestGateway, variables: dict[str, Any], token: str) -> dict[str, Any]:
    body = await gateway.query(CREATE_TRADER, variables, token=token)
    payload: dict[str, Any] = body["data"]["createTrader"]
    return payload


@contextmanager
def create_trader_fails(sandbox: CTraderSandbox) -> Iterator[None]:
    """The create-trader step of the next createTrader fails (503, nothing applied)."""
    before = sandbox.calls["POST /cid/ctid/create"]

    async def fail_after_create_user() -> None:
        # Latency holds every request, so the knob is set before create-trader arrives.
        while sandbox.calls["POST /cid/ctid/create"] == before:  # noqa: ASYNC110 (a plain counter)
            await asyncio.sleep(0.002)
        sandbox.fail_next(1, 503)

    sandbox.latency_seconds = 0.2
    watcher = asyncio.get_running_loop().create_task(fail_after_create_user())
    try:
        yield
    finally:
        sandbox.latency_seconds = 0.0
        watcher.cancel()


async def test_another_brokers_client_email_is_refused_before_any_write(
    gateway: TestGateway, sandbox: CTraderSandbox
) -> None:
    # OTHER-001's client, created through the gateway: its cTID is known by e-mail.
    email = fresh_email("other-client")
    theirs = await create(gateway, trader_input("OTHER-001", email), token="admin")
    assert theirs["errors"] == []
    their_user = theirs["trader"]["externalId"]
    (their_login,) = [a["externalId"] for a in theirs["accounts"]]

    objects = upstream_objects(sandbox)
    before = Counter(sandbox.calls)
    payload = await create(gateway, trader_input("DEMO-001", email.upper()), token="manager")
    (error,) = payload["errors"]
    assert error["code"] == "CONFLICT"
    assert error["field"] == ["email"]
    assert payload["trader"] is None and payload["accounts"] == []
    assert payload["resumeToken"] is None
    assert_reveals_nothing(payload, "OTHER-001", their_user, their_login)
    assert writes(delta(before, sandbox.calls)) == 0
    assert upstream_objects(sandbox) == objects
    assert await gateway.services.store.owners("ctrader", "trader", [their_user]) == ["OTHER-001"]


async def test_a_ctid_never_seen_through_the_gateway_is_checked_at_create_user(
    gateway: TestGateway, sandbox: CTraderSandbox
) -> None:
    # cTrader has no read of a user by e-mail: the first request learns the cTID from
    # create-user, which changes nothing for a known e-mail, and stops there.
    objects = upstream_objects(sandbox)
    before = Counter(sandbox.calls)
    payload = await create(gateway, trader_input("DEMO-001", OTHER_CLIENT_EMAIL), token="manager")
    (error,) = payload["errors"]
    assert error["code"] == "CONFLICT"
    assert_reveals_nothing(payload, "OTHER-001", "1003", "9000004")
    sent = delta(before, sandbox.calls)
    assert {k: n for k, n in sent.items() if not k.startswith("GET ") and "token" not in k} == {
        "POST /cid/ctid/create": 1
    }
    assert upstream_objects(sandbox) == objects
    assert sandbox.state.links[9000004].user_id == 1003
    # From now on the gateway knows the cTID: refused before any call at all.
    before = Counter(sandbox.calls)
    again = await create(gateway, trader_input("DEMO-002", OTHER_CLIENT_EMAIL), token="manager")
    assert again["errors"][0]["code"] == "CONFLICT"
    assert_reveals_nothing(again, "OTHER-001", "1003", "9000004")
    assert writes(delta(before, sandbox.calls)) == 0
    assert upstream_objects(sandbox) == objects


async def test_the_partners_own_ctid_is_reused(
    gateway: TestGateway, sandbox: CTraderSandbox
) -> None:
    # anna.novak@demo.example is DEMO-001's seeded cTID (user 1001): a second account.
    # Each with its own idempotencyKey: two creations meant, not a double submit.
    for _ in range(2):  # unknown to the gateway by e-mail, then known
        key = str(uuid.uuid4())
        payload = await create(
            gateway,
            trader_input("DEMO-001", "anna.novak@demo.example", idempotencyKey=key),
            token="manager",
        )
        assert payload["errors"] == [], payload
        assert payload["trader"]["externalId"] == "1001"
        (login,) = [a["externalId"] for a in payload["accounts"]]
        assert sandbox.state.links[int(login)].user_id == 1001
        owners = await gateway.services.store.owners("ctrader", "account", [login])
        assert owners == ["DEMO-001"]


async def test_a_resume_token_serves_only_the_partner_and_scope_it_was_issued_to(
    gateway: TestGateway, sandbox: CTraderSandbox
) -> None:
    store = gateway.services.store
    partner = f"IDS-{uuid.uuid4().hex[:6]}"
    await store.upsert_partner(partner, broker="demo-broker", display_name="Identity Partner")
    email = fresh_email("midway")
    with create_trader_fails(sandbox):
        partial = await create(gateway, trader_input(partner, email), token="manager")
    assert [(s["name"], s["succeeded"]) for s in partial["steps"]] == [
        ("create-user", True),
        ("create-trader", False),
    ]
    token = partial["resumeToken"]
    assert token
    objects = upstream_objects(sandbox)
    before = Counter(sandbox.calls)

    # Another partner, with the token: told it names nothing.
    stolen = await create(
        gateway, trader_input("DEMO-002", email, resumeToken=token), token="manager"
    )
    (error,) = stolen["errors"]
    assert (error["code"], error["field"]) == ("NOT_FOUND", ["resumeToken"])
    # Another partner, without it: refused, and no token handed out.
    asked = await create(gateway, trader_input("DEMO-002", email), token="manager")
    (error,) = asked["errors"]
    assert error["code"] == "CONFLICT"
    assert token not in str(asked) and partner not in str(asked)
    assert asked["resumeToken"] is None
    # The partner moves to another broker: that broker's manager sees it now, but the
    # token was issued in demo-broker's scope.
    await store.upsert_partner(partner, broker="other-broker")
    other_manager = gateway.issue(Role.MANAGER, subject="other-manager", brokers=["other-broker"])
    outside = await create(gateway, trader_input(partner, email, resumeToken=token), other_manager)
    assert outside["errors"][0]["code"] == "NOT_FOUND"
    assert writes(delta(before, sandbox.calls)) == 0
    assert upstream_objects(sandbox) == objects

    # The partner's own retry without the token is told the token; with it, it ends.
    await store.upsert_partner(partner, broker="demo-broker")
    retry = await create(gateway, trader_input(partner, email), token="manager")
    (error,) = retry["errors"]
    assert error["code"] == "CONFLICT" and token in error["message"]
    done = await create(gateway, trader_input(partner, email, resumeToken=token), "manager")
    assert done["errors"] == [], done
    assert done["resumeToken"] is None
    assert done["trader"]["externalId"] == partial["trader"]["externalId"]
    (login,) = [a["externalId"] for a in done["accounts"]]
    assert await store.owners("ctrader", "account", [login]) == [partner]
    # A finished flow's token resumes nothing any more.
    late = await create(gateway, trader_input(partner, email, resumeToken=token), "manager")
    assert late["errors"][0]["code"] == "NOT_FOUND"
