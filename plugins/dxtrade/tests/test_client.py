"""The DXtrade HTTP client and connector plumbing against the sandbox, over real sockets:
sessions (DXAPI token, one re-login on 401), the error table, the read limiter, URL
encoding of ``clearing:code`` and kebab-case parameters, exact decimals."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from brokergraph_dxtrade.client import DXSCA, DXWEB, ERRORS, DxTradeClient, ReadLimiter
from brokergraph_dxtrade.connector import DxTradeConnector
from brokergraph_dxtrade.sandbox import DxTradeSandbox

from gateway.contract import (
    Conflict,
    DeactivateTraderRequest,
    InsufficientFunds,
    InvalidInput,
    MoneyMovement,
    NotFound,
    Outcome,
    RateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
    exact_json_dumps,
)
from gateway.testing import open_connector


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def sandbox() -> AsyncIterator[DxTradeSandbox]:
    async with DxTradeSandbox() as started:
        yield started


def make_client(sandbox: DxTradeSandbox, **overrides: Any) -> DxTradeClient:
    settings: dict[str, Any] = {
        "base_url": sandbox.url,
        "username": "crm-admin",
        "domain": "default",
        "password": "crm-pass",
        "dxfeed_token": sandbox.webhook_secret,
        "verify": sandbox.client_ssl_context(),
    }
    settings.update(overrides)
    return DxTradeClient(**settings)


@pytest_asyncio.fixture(loop_scope="session")
async def client(sandbox: DxTradeSandbox) -> AsyncIterator[DxTradeClient]:
    sandbox.reset()
    made = make_client(sandbox)
    try:
        yield made
    finally:
        await made.close()


async def test_logs_in_once_and_sends_the_dxapi_token(
    client: DxTradeClient, sandbox: DxTradeSandbox
) -> None:
    for _ in range(3):
        response = await client.get(DXWEB, "/api/register/client/default/alice", what="user")
        assert response.body["login"] == "alice"
        assert response.etag is not None
    assert sandbox.calls["POST /dxweb/rest/login"] == 1
    # Each surface keeps its own session (the real platform need not share them).
    await client.get(DXSCA, "/accounts/metrics", what="metrics")
    assert sandbox.calls["POST /dxsca-web/login"] == 1


async def test_an_expired_session_logs_in_again_once(
    client: DxTradeClient, sandbox: DxTradeSandbox
) -> None:
    await client.get(DXWEB, "/api/register/client/default/alice", what="user")
    sandbox.sessions.clear()  # every token is now unknown: the next call gets a 401
    response = await client.get(DXWEB, "/api/register/client/default/bob", what="user")
    assert response.body["login"] == "bob"
    assert sandbox.calls["POST /dxweb/rest/login"] == 2


async def test_a_session_near_its_end_is_extended_with_a_ping(
    client: DxTradeClient, sandbox: DxTradeSandbox
) -> None:
    # A 60.5 s session is fresh for half a second, then within the 60 s renew margin.
    sandbox.sessions.timeout_ms = 60_500
    try:
        await client.get(DXWEB, "/api/register/client/default/alice", what="user")
        await asyncio.sleep(0.6)
        response = await client.get(DXWEB, "/api/register/client/default/bob", what="user")
    finally:
        sandbox.sessions.timeout_ms = 1_800_000
    assert response.body["login"] == "bob"
    assert sandbox.calls["POST /dxweb/rest/ping"] == 1
    assert sandbox.calls["POST /dxweb/rest/login"] == 1


async def test_wrong_credentials_are_upstream_rejected(sandbox: DxTradeSandbox) -> None:
    stranger = make_client(sandbox, password="wrong")
    try:
        with pytest.raises(UpstreamRejected, match="credentials"):
            await stranger.get(DXWEB, "/api/register/client/default/alice", what="user")
    finally:
        await stranger.close()


async def test_vendor_errors_map_through_the_table(
    client: DxTradeClient, sandbox: DxTradeSandbox
) -> None:
    with pytest.raises(NotFound) as missing:
        await client.get(DXWEB, "/api/register/client/default/nobody", what="user")
    assert missing.value.details == {"platform": "dxtrade", "status": 404, "vendorCode": 404}
    body = {"currency": "USD", "amount": Decimal("1"), "description": "x"}
    path = "/api/register/account/default/carol-usd/deposit/client-id-1"
    await client.call(DXWEB, "PUT", path, what="deposit", body=body)
    with pytest.raises(Conflict):  # the same id with another body
        await client.call(DXWEB, "PUT", path, what="deposit", body={**body, "amount": 2})
    with pytest.raises(InvalidInput):  # the wrong currency
        await client.call(
            DXWEB, "PUT", path + "-2", what="deposit", body={**body, "currency": "EUR"}
        )
    big = {**body, "amount": Decimal("1e9")}
    with pytest.raises(InsufficientFunds) as poor:
        await client.call(
            DXWEB, "PUT", "/api/register/account/default/carol-usd/withdrawal/w-1",
            what="withdrawal", body=big,
        )  # fmt: skip
    assert poor.value.details["vendorCode"] == 30005
    sandbox.fail_next(1, 503)
    with pytest.raises(UpstreamUnavailable):
        await client.get(DXWEB, "/api/register/client/default/alice", what="user")


def test_error_table_for_statuses_the_sandbox_rarely_gives() -> None:
    stale = ERRORS.error(status=412, what="user update")
    assert isinstance(stale, Conflict)
    assert "stale ETag" in stale.message
    assert "stale ETag" not in ERRORS.error(status=409, what="user").message
    limited = ERRORS.error(code="TOO_MANY", status=429, what="metrics", retry_after=1.5)
    assert isinstance(limited, RateLimited)
    assert limited.retry_after == 1.5
    assert isinstance(ERRORS.error(status=403, what="user"), UpstreamRejected)
    assert isinstance(ERRORS.error(status=502, what="user"), UpstreamUnavailable)
    assert isinstance(ERRORS.error(code=30005, status=422, what="x"), InsufficientFunds)
    assert isinstance(ERRORS.error(code=1, status=422, what="x"), InvalidInput)
    # A 5xx may have been applied; a refusal certainly was not.
    assert ERRORS.rule_for(status=503).outcome is Outcome.UNKNOWN
    assert ERRORS.rule_for(code=30005, status=422).outcome is Outcome.NOT_APPLIED


async def test_timeouts_and_unreachable_hosts(sandbox: DxTradeSandbox) -> None:
    impatient = make_client(sandbox, timeout_seconds=0.1)
    sandbox.latency_seconds = 0.5
    try:
        with pytest.raises(UpstreamTimeout):
            await impatient.get(DXWEB, "/api/register/client/default/alice", what="user")
    finally:
        sandbox.latency_seconds = 0.0
        await impatient.close()
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    nowhere = make_client(sandbox, base_url=f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(UpstreamUnavailable):
            await nowhere.get(DXWEB, "/api/register/client/default/alice", what="user")
    finally:
        await nowhere.close()


async def test_reads_stay_under_the_platforms_rate(sandbox: DxTradeSandbox) -> None:
    sandbox.reset()
    sandbox.sessions.reads_per_second = 3
    limited = make_client(sandbox, reads_per_second=3)
    started = time.monotonic()
    try:
        await asyncio.gather(
            *(limited.get(DXSCA, "/accounts/metrics", what="metrics") for _ in range(7))
        )
    finally:
        sandbox.sessions.reads_per_second = 10
        await limited.close()
    assert time.monotonic() - started >= 2.0, "7 reads at 3/s take two windows"
    assert sandbox.calls["GET /dxsca-web/accounts/metrics"] == 7  # none refused with 429


async def test_read_limiter_window() -> None:
    limiter = ReadLimiter(2, window=0.2)
    started = time.monotonic()
    for _ in range(5):
        await limiter.acquire()
    assert time.monotonic() - started >= 0.4


def test_decimals_are_sent_exactly() -> None:
    body = {"amount": Decimal("123456789012.12345678"), "n": [Decimal("0.1"), 2, None, True]}
    assert exact_json_dumps(body) == b'{"amount":123456789012.12345678,"n":[0.1,2,null,true]}'


@pytest_asyncio.fixture(loop_scope="session")
async def connector(sandbox: DxTradeSandbox, tmp_path: Path) -> AsyncIterator[DxTradeConnector]:
    sandbox.reset()
    async with open_connector(DxTradeConnector, sandbox.connector_settings(), tmp_path) as made:
        yield made


async def test_batched_reads_are_one_call_with_encoded_ids(
    connector: DxTradeConnector, sandbox: DxTradeSandbox
) -> None:
    ids = ["default:alice-usd", "default:bob-usd", "default:carol-usd", "default:nope"]
    accounts = await connector.get_accounts(ids)
    assert [a.id if a else None for a in accounts] == [*ids[:3], None]
    assert sandbox.calls["GET /dxsca-web/accounts/metrics"] == 1
    alice = accounts[0]
    assert alice is not None
    assert alice.equity is not None
    assert alice.margin is not None
    positions = await connector.get_positions(ids)
    assert sandbox.calls["GET /dxsca-web/accounts/positions"] == 1
    assert {p.id for p in positions[0]} == {"alice-p-1", "alice-p-2"}
    assert positions[3] == []
    # One account: "default:alice-usd" travels as default%3Aalice-usd, params kebab-case.
    operations = await connector.get_balance_operations(
        "default:alice-usd", datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 2, 15, tzinfo=UTC)
    )
    assert sandbox.calls["GET /dxsca-web/accounts/{account}/transfers"] == 1
    assert [(o.kind.value, o.amount.amount) for o in operations] == [
        ("DEPOSIT", Decimal("20000.00")),
        ("DEPOSIT", Decimal("6000.00")),
    ]


async def test_money_keys_are_dxtrades_client_ids(
    connector: DxTradeConnector, sandbox: DxTradeSandbox
) -> None:
    key = f"key:{uuid.uuid4()}"  # a colon too: it is URL-encoded in the path
    movement = MoneyMovement(
        account_id="default:carol-usd", amount=Decimal("10.5"), idempotency_key=key
    )
    first = await connector.deposit(movement)
    second = await connector.deposit(movement)
    assert first.id == second.id == key
    assert sandbox.state.account("default", "carol-usd").balance == Decimal("5010.50")
    assert ("default", "carol-usd", key) in sandbox.state.cash_ops


async def test_credit_retry_is_recognised(
    connector: DxTradeConnector, sandbox: DxTradeSandbox
) -> None:
    movement = MoneyMovement(
        account_id="default:bob-usd", amount=Decimal("100"), idempotency_key=f"c-{uuid.uuid4()}"
    )
    await connector.change_credit(movement)
    await connector.change_credit(movement)  # a retry of the same key
    assert sandbox.state.account("default", "bob-usd").credit == Decimal("100")
    with pytest.raises(InsufficientFunds):
        await connector.change_credit(
            MoneyMovement(
                account_id="default:bob-usd", amount=Decimal("-101"), idempotency_key="c-too-much"
            )
        )
    assert sandbox.state.account("default", "bob-usd").credit == Decimal("100")


async def test_deactivation_without_the_route_takes_the_documented_steps(
    sandbox: DxTradeSandbox, tmp_path: Path
) -> None:
    sandbox.reset()
    settings = {**sandbox.connector_settings(), "use_disable_route": False}
    async with open_connector(DxTradeConnector, settings, tmp_path) as two_step:
        result = await two_step.deactivate_trader(
            DeactivateTraderRequest(
                trader_id="alice@default", cancel_market_data_subscriptions=True
            )
        )
    assert [(s.name, s.succeeded) for s in result.steps] == [
        ("disable user", True),
        ("terminate accounts", True),
        ("cancel market-data subscriptions", False),
    ]
    assert "dxFeed" in (result.steps[-1].message or "")
    assert sandbox.state.client("default", "alice").status == "DISABLED"
    assert sandbox.state.account("default", "alice-usd").status == "TERMINATED"
    route = "/dxweb/rest/api/register/client/{domain}/{login}/disable-user-and-terminate-accounts"
    assert sandbox.calls[f"POST {route}"] == 0
    sandbox.reset()
