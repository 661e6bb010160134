"""A CRM's double submit of createTrader / openAccount creates one DXtrade user and
account: with an idempotencyKey, a second answer is a replay (nothing sent), one that
meets the first in flight is IDEMPOTENCY_CONFLICT, the key with another request is
IDEMPOTENCY_CONFLICT, and an attempt whose answer DXtrade lost after creating the user
is OUTCOME_UNKNOWN and its same-key retry reads the user back instead of creating
``retry.x-2``.  Counted on the sandbox's own users and calls; GraphQL over HTTP,
real sockets."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from brokergraph_dxtrade.sandbox import DxTradeSandbox

from gateway.testing import TestGateway

from .conftest import trader_gid

CREATE = """
mutation($input: CreateTraderInput!) { createTrader(input: $input) {
  trader { externalId email } accounts { externalId } replayed resumeToken
  steps { name succeeded message } errors { code message field }
} }"""
OPEN = """
mutation($input: OpenAccountInput!) { openAccount(input: $input) {
  account { externalId currency } replayed errors { code message field }
} }"""
PARTNER = """
{ businessPartner(code: "DEMO-001") { traders(platform: "dxtrade") { externalId } } }"""
CREATE_USER = "POST /dxweb/rest/api/register/client"
ADD_ACCOUNT = "POST /dxweb/rest/api/register/client/{domain}/{login}/account"
READ_ACCOUNT = "GET /dxweb/rest/api/register/account/{clearingCode}/{accountCode}"


def _input(email: str, key: str | None, **more: Any) -> dict[str, Any]:
    fields = {
        "platform": "dxtrade",
        "partnerCode": "DEMO-001",
        "email": email,
        "currency": "USD",
        "isLive": False,
        "dxtrade": {"accountType": "DEMO"},
    }
    if key is not None:
        fields["idempotencyKey"] = key
    return {"input": {**fields, **more}}


async def _create(gateway: TestGateway, variables: dict[str, Any]) -> dict[str, Any]:
    body = await gateway.query(CREATE, variables)
    assert "errors" not in body, body
    payload: dict[str, Any] = body["data"]["createTrader"]
    return payload


def _users(sandbox: DxTradeSandbox, email: str) -> list[str]:
    return [c.login for c in sandbox.state.clients.values() if c.email == email]


async def _audit(gateway: TestGateway, key: str) -> list[tuple[str, str | None, str | None]]:
    rows = await gateway.services.store.list_audit(limit=50, operation="createTrader")
    return [
        (r.outcome, r.error_code, r.upstream_ref)
        for r in reversed(rows)
        if r.idempotency_key == key
    ]


def _email() -> str:
    return f"retry.{uuid.uuid4().hex[:8]}@example.com"


async def test_a_double_submit_with_one_key_creates_one_user(
    dx_gateway: TestGateway, dx_sandbox: DxTradeSandbox
) -> None:
    email, key = _email(), str(uuid.uuid4())
    posts = dx_sandbox.calls[CREATE_USER]
    first = await _create(dx_gateway, _input(email, key))
    assert first["errors"] == [] and first["replayed"] is False
    second = await _create(dx_gateway, _input(email, key))
    assert second["errors"] == [] and second["replayed"] is True
    assert {k: v for k, v in second.items() if k != "replayed"} == {
        k: v for k, v in first.items() if k != "replayed"
    }
    assert dx_sandbox.calls[CREATE_USER] == posts + 1  # the replay sent nothing
    assert len(_users(dx_sandbox, email)) == 1

    # The same key with another request is refused, and creates nothing either.
    other = await _create(dx_gateway, _input(email, key, name="Someone Else"))
    assert [e["code"] for e in other["errors"]] == ["IDEMPOTENCY_CONFLICT"]
    assert dx_sandbox.calls[CREATE_USER] == posts + 1
    assert await _audit(dx_gateway, key) == [
        ("ok", None, first["trader"]["externalId"]),
        ("replayed", None, first["trader"]["externalId"]),
        ("error", "IDEMPOTENCY_CONFLICT", None),
    ]

    # Without a key, the same request again is a double submit DXtrade lets us see (a
    # user of this e-mail and name made moments ago with such an account): refused,
    # naming that user.  A live user beside the demo one is another request: made.
    keyless = await _create(dx_gateway, _input(email, None))
    assert [e["code"] for e in keyless["errors"]] == ["CONFLICT"]
    assert first["trader"]["externalId"] in keyless["errors"][0]["message"]
    assert len(_users(dx_sandbox, email)) == 1
    live = _input(email, None, isLive=True, dxtrade={"accountType": "LIVE"})
    made = await _create(dx_gateway, live)
    assert made["errors"] == [] and made["replayed"] is False
    assert len(_users(dx_sandbox, email)) == 2


async def test_a_concurrent_double_submit_creates_one_user(
    dx_gateway: TestGateway, dx_sandbox: DxTradeSandbox
) -> None:
    email, key = _email(), str(uuid.uuid4())
    posts = dx_sandbox.calls[CREATE_USER]
    dx_sandbox.latency_seconds = 0.05  # both in flight at once
    try:
        answers = await asyncio.gather(*(_create(dx_gateway, _input(email, key)) for _ in "ab"))
    finally:
        dx_sandbox.latency_seconds = 0.0
    assert dx_sandbox.calls[CREATE_USER] == posts + 1
    assert len(_users(dx_sandbox, email)) == 1
    made = [a for a in answers if a["errors"] == [] and not a["replayed"]]
    assert len(made) == 1
    (other,) = [a for a in answers if a is not made[0]]
    # The second met the first in flight, or read back what it made.
    assert [e["code"] for e in other["errors"]] == ["IDEMPOTENCY_CONFLICT"] or (
        other["replayed"] and other["trader"] == made[0]["trader"]
    )
    again = await _create(dx_gateway, _input(email, key))
    assert again["replayed"] is True and again["trader"] == made[0]["trader"]
    assert dx_sandbox.calls[CREATE_USER] == posts + 1


async def test_a_lost_answer_retried_with_its_key_reads_the_user_back(
    dx_gateway: TestGateway, dx_sandbox: DxTradeSandbox
) -> None:
    email, key = _email(), str(uuid.uuid4())
    posts = dx_sandbox.calls[CREATE_USER]
    # The account-code check is the flow's last call before the create: the create's
    # answer is lost after DXtrade made the user and its account.
    dx_sandbox.before_next(READ_ACCOUNT, lambda state: dx_sandbox.drop_next(1, after_apply=True))
    lost = await _create(dx_gateway, _input(email, key))
    assert [e["code"] for e in lost["errors"]] == ["OUTCOME_UNKNOWN"]
    assert dx_sandbox.calls[CREATE_USER] == posts + 1
    (login,) = _users(dx_sandbox, email)

    settled = await _create(dx_gateway, _input(email, key))
    assert settled["errors"] == [] and settled["replayed"] is True
    assert settled["trader"]["externalId"] == f"{login}@default"
    assert len(settled["accounts"]) == 1
    assert dx_sandbox.calls[CREATE_USER] == posts + 1  # read back, never sent again
    assert _users(dx_sandbox, email) == [login]  # no retry.x-2
    # What it made is linked to the partner, as a first answer's would be.
    partner = (await dx_gateway.query(PARTNER))["data"]["businessPartner"]
    assert f"{login}@default" in {t["externalId"] for t in partner["traders"]}
    again = await _create(dx_gateway, _input(email, key))
    assert again["replayed"] is True and again["trader"] == settled["trader"]


async def test_a_double_submit_of_open_account_with_one_key_opens_one(
    dx_gateway: TestGateway, dx_sandbox: DxTradeSandbox
) -> None:
    created = await _create(dx_gateway, _input(_email(), str(uuid.uuid4())))
    trader = created["trader"]["externalId"]
    login, domain = trader.split("@")
    key = str(uuid.uuid4())
    variables = {
        "input": {"traderId": trader_gid(trader), "currency": "USD", "idempotencyKey": key}
    }
    posts = dx_sandbox.calls[ADD_ACCOUNT]
    first = (await dx_gateway.query(OPEN, variables))["data"]["openAccount"]
    second = (await dx_gateway.query(OPEN, variables))["data"]["openAccount"]
    assert first["errors"] == [] and first["replayed"] is False
    assert second["replayed"] is True and second["account"] == first["account"]
    assert dx_sandbox.calls[ADD_ACCOUNT] == posts + 1
    client = dx_sandbox.state.clients[(domain, login)]
    owned = [a for a in dx_sandbox.state.accounts.values() if a.owner == client.key]
    assert len(owned) == 2  # the first account and the one opened once

    # The answer lost after DXtrade opened it: the same key reads it back.
    variables["input"]["idempotencyKey"] = str(uuid.uuid4())
    dx_sandbox.before_next(READ_ACCOUNT, lambda state: dx_sandbox.drop_next(1, after_apply=True))
    lost = (await dx_gateway.query(OPEN, variables))["data"]["openAccount"]
    assert [e["code"] for e in lost["errors"]] == ["OUTCOME_UNKNOWN"]
    assert dx_sandbox.calls[ADD_ACCOUNT] == posts + 2
    settled = (await dx_gateway.query(OPEN, variables))["data"]["openAccount"]
    assert settled["errors"] == [] and settled["replayed"] is True
    assert dx_sandbox.calls[ADD_ACCOUNT] == posts + 2
    owned = [a for a in dx_sandbox.state.accounts.values() if a.owner == client.key]
    assert len(owned) == 3
    assert settled["account"]["externalId"] in {
        f"{a.clearing_code}:{a.account_code}" for a in owned
    }
