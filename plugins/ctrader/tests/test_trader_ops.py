"""End to end: cTrader's trader operations through GraphQL against the sandbox.

Moving a trader to another White Label (5.3) is staff-only and goes through the one
write path: a refused or malformed request reaches cTrader with no write, and every
attempt leaves one audit row.
"""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

from brokergraph_ctrader.sandbox import CTraderSandbox

from gateway.testing import TestGateway

from .conftest import account_gid, delta, writes

CREATE_TRADER = """
mutation($input: CreateTraderInput!) {
  createTrader(input: $input) { accounts { externalId } errors { code message } }
}"""

MOVE = """
mutation($input: MoveCTraderAccountToWhiteLabelInput!) {
  moveCTraderAccountToWhiteLabel(input: $input) {
    account { externalId brokerName }
    errors { code message field }
  }
}"""


async def _new_account(gateway: TestGateway) -> str:
    """A fresh account of DEMO-002: the session's demo accounts stay where they are."""
    email = f"wl-{uuid.uuid4().hex[:8]}@example.com"
    data = await gateway.data(
        CREATE_TRADER,
        {"input": {"platform": "ctrader", "partnerCode": "DEMO-002", "email": email}},
    )
    payload = data["createTrader"]
    assert payload["errors"] == [], payload
    login: str = payload["accounts"][0]["externalId"]
    return login


async def _move(
    gateway: TestGateway, login: str, broker: str, token: str = "admin"
) -> dict[str, Any]:
    data = await gateway.data(
        MOVE, {"input": {"accountId": account_gid(login), "brokerName": broker}}, token
    )
    payload: dict[str, Any] = data["moveCTraderAccountToWhiteLabel"]
    return payload


async def _audit(gateway: TestGateway, login: str) -> list[tuple[str, str | None]]:
    rows = await gateway.services.store.list_audit(operation="moveCTraderAccountToWhiteLabel")
    return [(r.outcome, r.error_code) for r in rows if r.target == account_gid(login)]


async def test_staff_moves_a_trader_to_another_white_label(
    gateway: TestGateway, sandbox: CTraderSandbox
) -> None:
    login = await _new_account(gateway)
    assert sandbox.state.traders[int(login)].broker_name != "OTHERBROKER"
    before = Counter(sandbox.calls)
    payload = await _move(gateway, login, "OTHERBROKER", token="manager")
    assert payload["errors"] == [], payload
    assert payload["account"] == {"externalId": login, "brokerName": "OTHERBROKER"}
    assert sandbox.state.traders[int(login)].broker_name == "OTHERBROKER"
    assert delta(before, sandbox.calls)["POST /cid/ctid/changeCtidTraderAccount"] == 1
    assert await _audit(gateway, login) == [("ok", None)]


async def test_a_client_may_not_move_a_trader(
    gateway: TestGateway, sandbox: CTraderSandbox
) -> None:
    login = await _new_account(gateway)
    before = Counter(sandbox.calls)
    payload = await _move(gateway, login, "OTHERBROKER", token="client")
    assert [e["code"] for e in payload["errors"]] == ["PERMISSION_DENIED"]
    assert payload["account"] is None
    assert writes(delta(before, sandbox.calls)) == 0
    assert sandbox.state.traders[int(login)].broker_name != "OTHERBROKER"
    assert await _audit(gateway, login) == [("error", "PERMISSION_DENIED")]


async def test_bad_white_labels_are_typed_errors(
    gateway: TestGateway, sandbox: CTraderSandbox
) -> None:
    login = await _new_account(gateway)
    broker = sandbox.state.traders[int(login)].broker_name
    # Malformed: refused before any call.
    before = Counter(sandbox.calls)
    for bad in ("", "  ", " OTHERBROKER", "x" * 101):
        payload = await _move(gateway, login, bad)
        assert [(e["code"], e["field"]) for e in payload["errors"]] == [
            ("INVALID_INPUT", ["brokerName"])
        ], bad
    assert writes(delta(before, sandbox.calls)) == 0
    # Well-formed but not a White Label of the plant: cTrader's CH_PLANT_INVALID.
    payload = await _move(gateway, login, "NO-SUCH-BROKER")
    assert [(e["code"], e["field"]) for e in payload["errors"]] == [
        ("INVALID_INPUT", ["brokerName"])
    ]
    assert sandbox.state.traders[int(login)].broker_name == broker
    # An unknown or another platform's account: NOT_FOUND, nothing sent.
    before = Counter(sandbox.calls)
    unknown = await gateway.data(
        MOVE, {"input": {"accountId": account_gid("1"), "brokerName": "OTHERBROKER"}}
    )
    assert [e["code"] for e in unknown["moveCTraderAccountToWhiteLabel"]["errors"]] == ["NOT_FOUND"]
    assert writes(delta(before, sandbox.calls)) == 0
    assert [outcome for outcome, _ in await _audit(gateway, login)] == ["error"] * 5
