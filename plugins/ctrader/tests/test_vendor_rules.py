"""The connector against the sandbox's step-9b vendor rules, over real sockets.

Token invalidation (revoked, or the manager password changed) drives the client's
real re-token path; a withdrawal past what open losing positions leave is refused
as the product's INSUFFICIENT_FUNDS; ``find_movement`` reads the Reporting API; a
repeated key is answered by the connector without a second call even where cTrader
does not deduplicate ``externalId``; and the White Label move (5.3).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from brokergraph_ctrader.connector import CTraderConnector
from brokergraph_ctrader.sandbox import CTraderSandbox

from gateway.contract import (
    BalanceOperationKind,
    IdempotencyConflict,
    InvalidInput,
    MoneyMovement,
    NotFound,
    UpstreamRejected,
)
from gateway.testing import TestGateway, open_connector

from .conftest import account_gid, writes

TOKEN = "POST /v2/webserv/managers/token"
READ = "GET /v2/webserv/traders/{login}"
CHANGE_BALANCE = "POST /v2/webserv/traders/{login}/changebalance"
MOVE = "POST /cid/ctid/changeCtidTraderAccount"


@pytest_asyncio.fixture(loop_scope="session")
async def own(tmp_path: Path) -> AsyncIterator[tuple[CTraderSandbox, CTraderConnector]]:
    """A sandbox and connector of the test's own: these tests change managers and brokers."""
    async with (
        CTraderSandbox() as sandbox,
        open_connector(CTraderConnector, sandbox.connector_settings(), tmp_path) as connector,
    ):
        yield sandbox, connector


def _movement(login: str, amount: str, key: str | None = None) -> MoneyMovement:
    return MoneyMovement(
        account_id=login, amount=Decimal(amount), idempotency_key=key or str(uuid.uuid4())
    )


# --------------------------------------------------------------------------- tokens


async def test_a_password_change_is_a_refused_credential_after_one_login(
    own: tuple[CTraderSandbox, CTraderConnector],
) -> None:
    sandbox, connector = own
    await connector.get_accounts(["9000001"])
    sandbox.change_manager_password(30017, "rotated-pass")
    with pytest.raises(UpstreamRejected):
        await connector.get_accounts(["9000001"])
    # One refused read, one login attempt with the old password, no loop.
    assert sandbox.calls[TOKEN] == 2
    assert sandbox.calls[READ] == 2
    health = await connector.health()
    assert (health.status.value, health.detail) == ("DOWN", "UPSTREAM_REJECTED")


async def test_tokens_revoked_under_concurrent_reads_cost_one_login(
    own: tuple[CTraderSandbox, CTraderConnector],
) -> None:
    sandbox, connector = own
    await connector.get_accounts(["9000001"])
    sandbox.revoke_tokens()
    logins = ["9000001", "9000002", "9000003"]
    found = await connector.get_accounts(logins)  # three reads at once, one stale token
    assert [a.id for a in found if a is not None] == logins
    assert sandbox.calls[TOKEN] == 2


# --------------------------------------------------------------------------- money


async def test_withdrawal_past_losing_positions_is_insufficient_funds(
    gateway: TestGateway, sandbox: CTraderSandbox
) -> None:
    trader = sandbox.state.traders[9000003]  # credit 100.00, positions at a loss
    figures = sandbox.state.figures(trader)
    assert figures.cash_equity < trader.balance < figures.free_margin
    whole = str(Decimal(trader.balance).scaleb(-2))
    variables = {
        "input": {
            "accountId": account_gid(9000003),
            "amount": whole,
            "idempotencyKey": str(uuid.uuid4()),
        }
    }
    body = await gateway.query(
        "mutation($input: MoneyMovementInput!) { withdraw(input: $input) "
        "{ operation { externalId } errors { code field } } }",
        variables,
    )
    assert body["data"]["withdraw"] == {
        "operation": None,
        "errors": [{"code": "INSUFFICIENT_FUNDS", "field": ["amount"]}],
    }
    assert sandbox.state.traders[9000003].balance == trader.balance


async def test_find_movement_reads_the_reporting_api(
    own: tuple[CTraderSandbox, CTraderConnector],
) -> None:
    sandbox, connector = own
    since = datetime.now(UTC) - timedelta(minutes=10)
    key = str(uuid.uuid4())
    done = await connector.withdraw(_movement("9000001", "12.34", key))
    found = await connector.find_movement("9000001", key, since)
    assert found is not None
    assert (found.id, found.kind, found.amount) == (
        done.id,
        BalanceOperationKind.WITHDRAWAL,
        done.amount,
    )
    assert found.external_id == key
    bonus_key = str(uuid.uuid4())
    bonus = await connector.change_bonus(_movement("9000001", "3", bonus_key))
    found_bonus = await connector.find_movement("9000001", bonus_key, since)
    assert found_bonus is not None and found_bonus.id == bonus.id
    assert found_bonus.kind is BalanceOperationKind.BONUS_IN
    assert await connector.find_movement("9000001", str(uuid.uuid4()), since) is None
    later = datetime.now(UTC) + timedelta(seconds=30)
    assert await connector.find_movement("9000001", key, later) is None  # outside the window
    assert sandbox.calls["GET /repo/balanceHistory"] == 4
    sandbox.allowed_ips = ("10.0.0.1",)
    with pytest.raises(UpstreamRejected):  # a failed read never says "absent"
        await connector.find_movement("9000001", key, since)
    with pytest.raises(NotFound):
        await connector.find_movement("not-a-login", key, since)


@pytest.mark.parametrize("dedupe", [True, False], ids=["dedupe-on", "dedupe-off"])
async def test_a_repeated_key_is_answered_without_a_second_call(
    own: tuple[CTraderSandbox, CTraderConnector], dedupe: bool
) -> None:
    sandbox, connector = own
    sandbox.dedupe_external_ids = dedupe
    key = str(uuid.uuid4())
    first = await connector.deposit(_movement("9000005", "10", key))
    before = sandbox.calls.copy()
    second = await connector.deposit(_movement("9000005", "10", key))
    assert second.id == first.id
    with pytest.raises(IdempotencyConflict):
        await connector.deposit(_movement("9000005", "11", key))
    assert writes(sandbox.calls - before) == 0
    assert [e.external_id for e in sandbox.state.balance_history].count(key) == 1


# --------------------------------------------------------------------------- White Label


async def test_move_to_white_label(own: tuple[CTraderSandbox, CTraderConnector]) -> None:
    sandbox, connector = own
    await connector.move_to_white_label("9000002", "OTHERBROKER")
    assert sandbox.calls[MOVE] == 1
    assert sandbox.state.traders[9000002].broker_name == "OTHERBROKER"
    assert sandbox.state.links[9000002].broker_name == "OTHERBROKER"
    (account,) = await connector.get_accounts(["9000002"])
    assert account is not None and account.raw is not None
    assert account.raw["brokerName"] == "OTHERBROKER"

    with pytest.raises(InvalidInput) as unknown:
        await connector.move_to_white_label("9000002", "NOBROKER")
    assert unknown.value.details["vendorCode"] == "CH_PLANT_INVALID"
    with pytest.raises(NotFound):
        await connector.move_to_white_label("9999999", "DEMOBROKER")
    assert sandbox.calls[MOVE] == 3
    bad: list[tuple[str, str, type[Exception]]] = [
        ("9000002", " DEMOBROKER", InvalidInput),
        ("9000002", "", InvalidInput),
        ("abc", "DEMOBROKER", NotFound),
    ]
    for login, broker, error in bad:
        with pytest.raises(error):
            await connector.move_to_white_label(login, broker)
    assert sandbox.calls[MOVE] == 3  # refused before any call
    raw: dict[str, Any] = sandbox.state.wire(sandbox.state.traders[9000002])
    assert raw["brokerName"] == "OTHERBROKER"


async def test_find_movement_keeps_to_two_snapshots_at_once(
    own: tuple[CTraderSandbox, CTraderConnector],
) -> None:
    sandbox, connector = own
    since = datetime.now(UTC) - timedelta(minutes=10)
    keys = [str(uuid.uuid4()) for _ in range(3)]
    for key in keys:
        await connector.deposit(_movement("9000001", "1", key))
    sandbox.snapshot_seconds = 0.3  # the three reads overlap; cTrader serves 2 at once
    found = await asyncio.gather(*(connector.find_movement("9000001", k, since) for k in keys))
    assert [f.external_id for f in found if f is not None] == keys
    assert sandbox.calls["GET /repo/balanceHistory"] == 3  # none refused, none repeated
