"""A CRM's double submit of createTrader / openAccount makes one cTrader account for the
cTID: with an idempotencyKey a second answer is a replay (nothing sent), one meeting the
first in flight is IDEMPOTENCY_CONFLICT; a create-trader whose answer cTrader lost after
creating it stops the flow with that step OUTCOME_UNKNOWN, a same-key retry replays that
stop (its resume token, nothing sent), and the same key with the token resumes it by
reading cTrader for the trader, never creating a second.  Counted on the sandbox's own
calls and links; GraphQL over HTTP, real sockets."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import brokergraph_ctrader.plugin
import pytest
import pytest_asyncio
from brokergraph_ctrader.sandbox import CTraderSandbox

from gateway.testing import TestGateway, open_test_gateway

from .conftest import seed_links, trader_gid

CREATE = """
mutation($input: CreateTraderInput!) { createTrader(input: $input) {
  trader { externalId } accounts { externalId } replayed resumeToken
  steps { name succeeded code } errors { code message field }
} }"""
OPEN = """
mutation($input: OpenAccountInput!) { openAccount(input: $input) {
  account { externalId } replayed errors { code message }
} }"""
CREATE_USER = "POST /cid/ctid/create"
CREATE_TRADER = "POST /v2/webserv/traders"
LINK = "POST /cid/ctid/link"
CHECKS = ("GET /v2/webserv/tradergroups", "GET /v2/webserv/depositAssets")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def lease_over(
    sandbox: CTraderSandbox, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[TestGateway]:
    """A gateway whose claims are at once older than the lease (0 s): a retry of an
    unknown attempt that the read cannot settle re-sends it (the key's own flow)."""
    directory = tmp_path_factory.mktemp("ctrader-keyed-lease-over")
    async with open_test_gateway(
        brokergraph_ctrader.plugin, [sandbox], directory, limits={"idempotency_lease_seconds": 0}
    ) as running:
        await seed_links(running.services.store, sandbox)
        yield running


def _input(email: str, key: str, **more: Any) -> dict[str, Any]:
    fields = {
        "platform": "ctrader",
        "partnerCode": "DEMO-002",
        "email": email,
        "group": "Default",
        "currency": "USD",
        "idempotencyKey": key,
    }
    return {"input": {**fields, **more}}


async def _create(gateway: TestGateway, variables: dict[str, Any]) -> dict[str, Any]:
    body = await gateway.query(CREATE, variables)
    assert "errors" not in body, body
    payload: dict[str, Any] = body["data"]["createTrader"]
    return payload


def _logins(sandbox: CTraderSandbox, user_id: str) -> list[int]:
    return [link.login for link in sandbox.state.links.values() if link.user_id == int(user_id)]


def _email() -> str:
    return f"retry.{uuid.uuid4().hex[:8]}@example.com"


async def test_a_double_submit_with_one_key_makes_one_account(
    gateway: TestGateway, sandbox: CTraderSandbox
) -> None:
    email, key = _email(), str(uuid.uuid4())
    traders = sandbox.calls[CREATE_TRADER]
    first = await _create(gateway, _input(email, key))
    assert first["errors"] == [] and first["replayed"] is False
    second = await _create(gateway, _input(email, key))
    assert second["errors"] == [] and second["replayed"] is True
    assert second["trader"] == first["trader"] and second["accounts"] == first["accounts"]
    assert sandbox.calls[CREATE_TRADER] == traders + 1
    assert len(_logins(sandbox, first["trader"]["externalId"])) == 1
    refused = await _create(gateway, _input(email, key, leverage="50"))
    assert [e["code"] for e in refused["errors"]] == ["IDEMPOTENCY_CONFLICT"]
    assert sandbox.calls[CREATE_TRADER] == traders + 1


async def test_a_concurrent_double_submit_makes_one_account(
    gateway: TestGateway, sandbox: CTraderSandbox
) -> None:
    email, key = _email(), str(uuid.uuid4())
    traders = sandbox.calls[CREATE_TRADER]
    sandbox.latency_seconds = 0.05
    try:
        answers = await asyncio.gather(*(_create(gateway, _input(email, key)) for _ in "ab"))
    finally:
        sandbox.latency_seconds = 0.0
    assert sandbox.calls[CREATE_TRADER] == traders + 1
    made = [a for a in answers if a["errors"] == [] and not a["replayed"]]
    assert len(made) == 1
    (other,) = [a for a in answers if a is not made[0]]
    assert [e["code"] for e in other["errors"]] == ["IDEMPOTENCY_CONFLICT"] or (
        other["replayed"] and other["trader"] == made[0]["trader"]
    )
    assert len(_logins(sandbox, made[0]["trader"]["externalId"])) == 1


async def test_a_lost_answer_is_resumed_by_reading_never_created_twice(
    gateway: TestGateway, sandbox: CTraderSandbox
) -> None:
    email, key = _email(), str(uuid.uuid4())
    traders, users = sandbox.calls[CREATE_TRADER], sandbox.calls[CREATE_USER]

    async def lose_the_trader_answer() -> None:
        # Once create-user reached cTrader, the next request is create-trader: its
        # answer is lost after cTrader created the trader (the knob acts after latency).
        while sandbox.calls[CREATE_USER] == users:  # noqa: ASYNC110 (a plain counter)
            await asyncio.sleep(0.002)
        sandbox.drop_next(1, after_apply=True)

    sandbox.latency_seconds = 0.2
    try:
        watcher = asyncio.create_task(lose_the_trader_answer())
        stopped = await _create(gateway, _input(email, key))
        await watcher
    finally:
        sandbox.latency_seconds = 0.0
    assert [e["code"] for e in stopped["errors"]] == ["OUTCOME_UNKNOWN"]
    assert [(s["name"], s["succeeded"], s["code"]) for s in stopped["steps"]] == [
        ("create-user", True, None),
        ("create-trader", False, "OUTCOME_UNKNOWN"),
    ]
    token = stopped["resumeToken"]
    assert token is not None
    assert sandbox.calls[CREATE_TRADER] == traders + 1

    # The same key again: the stop replayed with its token, nothing sent.
    again = await _create(gateway, _input(email, key))
    assert again["replayed"] is True and again["resumeToken"] == token
    assert sandbox.calls[CREATE_TRADER] == traders + 1

    # The same key with the token resumes it: the trader is read back, then linked.
    done = await _create(gateway, _input(email, key, resumeToken=token))
    assert done["errors"] == [] and done["resumeToken"] is None
    assert sandbox.calls[CREATE_TRADER] == traders + 1  # found, never created again
    user = done["trader"]["externalId"]
    assert _logins(sandbox, user) == [int(done["accounts"][0]["externalId"])]
    replay = await _create(gateway, _input(email, key, resumeToken=token))
    assert replay["replayed"] is True and replay["accounts"] == done["accounts"]


async def test_a_double_submit_of_open_account_with_one_key_opens_one(
    gateway: TestGateway, sandbox: CTraderSandbox
) -> None:
    created = await _create(gateway, _input(_email(), str(uuid.uuid4())))
    user = created["trader"]["externalId"]
    variables = {
        "input": {
            "traderId": trader_gid(user),
            "currency": "USD",
            "idempotencyKey": str(uuid.uuid4()),
        }
    }
    traders = sandbox.calls[CREATE_TRADER]
    first = (await gateway.query(OPEN, variables))["data"]["openAccount"]
    second = (await gateway.query(OPEN, variables))["data"]["openAccount"]
    assert first["errors"] == [] and first["replayed"] is False
    assert second["replayed"] is True and second["account"] == first["account"]
    assert sandbox.calls[CREATE_TRADER] == traders + 1
    assert len(_logins(sandbox, user)) == 2


async def test_a_keyless_double_submit_is_refused_not_made_twice(
    gateway: TestGateway, sandbox: CTraderSandbox
) -> None:
    """Without a key, the same request again for an e-mail whose createTrader just
    finished would make create-user answer the same cTID and a second account: it is
    refused CONFLICT naming the first's account, with nothing sent; another request for
    the e-mail (another currency) still makes one."""
    email = _email()
    keyless = _input(email, "unused")
    del keyless["input"]["idempotencyKey"]
    first = await _create(gateway, keyless)
    assert first["errors"] == []
    login = first["accounts"][0]["externalId"]
    traders, users = sandbox.calls[CREATE_TRADER], sandbox.calls[CREATE_USER]
    second = await _create(gateway, keyless)
    assert [e["code"] for e in second["errors"]] == ["CONFLICT"]
    assert login in second["errors"][0]["message"]
    assert (sandbox.calls[CREATE_TRADER], sandbox.calls[CREATE_USER]) == (traders, users)
    assert len(_logins(sandbox, first["trader"]["externalId"])) == 1
    other = await _create(gateway, {"input": {**keyless["input"], "currency": "EUR"}})
    assert other["errors"] == []
    assert len(_logins(sandbox, first["trader"]["externalId"])) == 2


async def test_an_open_account_whose_answer_was_lost_is_linked_never_made_twice(
    lease_over: TestGateway, sandbox: CTraderSandbox
) -> None:
    created = await _create(lease_over, _input(_email(), str(uuid.uuid4())))
    user = created["trader"]["externalId"]
    variables = {
        "input": {
            "traderId": trader_gid(user),
            "currency": "USD",
            "idempotencyKey": str(uuid.uuid4()),
        }
    }
    before = {route: sandbox.calls[route] for route in (*CHECKS, CREATE_TRADER, LINK)}

    async def lose_the_trader_answer() -> None:
        # Both checks reached cTrader: the next request is create-trader, whose answer
        # is lost after cTrader created it (the knob acts after the latency).
        while any(sandbox.calls[r] == before[r] for r in CHECKS):  # noqa: ASYNC110
            await asyncio.sleep(0.002)
        sandbox.drop_next(1, after_apply=True)

    sandbox.latency_seconds = 0.2
    try:
        watcher = asyncio.create_task(lose_the_trader_answer())
        lost = (await lease_over.query(OPEN, variables))["data"]["openAccount"]
        await watcher
    finally:
        sandbox.latency_seconds = 0.0
    assert [e["code"] for e in lost["errors"]] == ["OUTCOME_UNKNOWN"]
    assert sandbox.calls[CREATE_TRADER] == before[CREATE_TRADER] + 1
    assert len(_logins(sandbox, user)) == 1  # made, not yet linked to the cTID

    # The read finds it unlinked (not settled); the re-sent key finds it by its marker
    # and links it: one trader, never a second.
    settled = (await lease_over.query(OPEN, variables))["data"]["openAccount"]
    assert settled["errors"] == [], settled
    assert sandbox.calls[CREATE_TRADER] == before[CREATE_TRADER] + 1
    assert sandbox.calls[LINK] == before[LINK] + 1
    assert sorted(_logins(sandbox, user))[-1] == int(settled["account"]["externalId"])
    assert len(_logins(sandbox, user)) == 2
    again = (await lease_over.query(OPEN, variables))["data"]["openAccount"]
    assert again["replayed"] is True and again["account"] == settled["account"]
    assert sandbox.calls[CREATE_TRADER] == before[CREATE_TRADER] + 1
