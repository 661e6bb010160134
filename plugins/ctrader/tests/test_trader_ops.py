"""End to end: cTrader's trader operations through GraphQL against the sandbox.

Moving a trader to another White Label (5.3) and its password (4.8 set, 4.9 check)
are staff-only and go through the one write path: a refused or malformed request
reaches cTrader with no call, every attempt leaves one audit row, and a password
shows in no answer, audit row or log line.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from typing import Any

import pytest
from brokergraph_ctrader.client import md5_hex
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


PASSWORD_WRITE = """
mutation($input: %sInput!) {
  %s(input: $input) { account { externalId } errors { code message field } }
}"""

CHECK = """
mutation($input: CheckCTraderAccountPasswordInput!) {
  checkCTraderAccountPassword(input: $input) { matches errors { code message field } }
}"""


async def _password_write(
    gateway: TestGateway, operation: str, input: dict[str, Any], token: str = "admin"
) -> dict[str, Any]:
    name = operation[0].upper() + operation[1:]
    data = await gateway.data(PASSWORD_WRITE % (name, operation), {"input": input}, token)
    payload: dict[str, Any] = data[operation]
    return payload


async def _check(gateway: TestGateway, login: str, password: str) -> dict[str, Any]:
    data = await gateway.data(
        CHECK, {"input": {"accountId": account_gid(login), "password": password}}
    )
    payload: dict[str, Any] = data["checkCTraderAccountPassword"]
    return payload


async def test_change_check_and_reset_a_trader_password(
    gateway: TestGateway, sandbox: CTraderSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    login = await _new_account(gateway)
    secret = f"Pw-{uuid.uuid4().hex}"
    payload = await _password_write(
        gateway,
        "changeCTraderAccountPassword",
        {"accountId": account_gid(login), "password": secret},
        token="manager",
    )
    assert payload == {"account": {"externalId": login}, "errors": []}
    assert sandbox.state.traders[int(login)].password_md5 == md5_hex(secret)

    before = Counter(sandbox.calls)
    assert await _check(gateway, login, secret) == {"matches": True, "errors": []}
    assert await _check(gateway, login, secret + "x") == {"matches": False, "errors": []}
    assert delta(before, sandbox.calls)["POST /v2/webserv/traders/{login}/checkpassword"] == 2

    payload = await _password_write(
        gateway, "resetCTraderAccountPassword", {"accountId": account_gid(login)}
    )
    assert payload["errors"] == []
    assert sandbox.state.traders[int(login)].password_md5 != md5_hex(secret)
    assert (await _check(gateway, login, secret))["matches"] is False

    # Audited, each attempt, and nowhere with the password or its hash.
    rows = [
        row
        for row in await gateway.services.store.list_audit(limit=500)
        if row.target == account_gid(login) and "Password" in row.operation
    ]
    assert sorted((r.operation, r.outcome, r.upstream_ref) for r in rows) == [
        ("changeCTraderAccountPassword", "ok", None),
        ("checkCTraderAccountPassword", "ok", "match"),
        ("checkCTraderAccountPassword", "ok", "mismatch"),
        ("checkCTraderAccountPassword", "ok", "mismatch"),
        ("resetCTraderAccountPassword", "ok", None),
    ]
    assert all(r.details.get("password") in (None, "***") for r in rows)
    for leak in (secret, md5_hex(secret)):
        assert all(leak not in repr(r) for r in rows)
        assert leak not in caplog.text


async def test_bad_passwords_and_foreign_viewers_send_nothing(
    gateway: TestGateway, sandbox: CTraderSandbox
) -> None:
    login = await _new_account(gateway)
    before = Counter(sandbox.calls)
    for bad in ("short", " padded-password ", "tab\tpassword", "x" * 129):
        payload = await _password_write(
            gateway,
            "changeCTraderAccountPassword",
            {"accountId": account_gid(login), "password": bad},
        )
        assert [(e["code"], e["field"]) for e in payload["errors"]] == [
            ("INVALID_INPUT", ["password"])
        ], bad
        assert bad not in payload["errors"][0]["message"]
    payload = await _check(gateway, login, "")
    assert [(e["code"], e["field"]) for e in payload["errors"]] == [("INVALID_INPUT", ["password"])]
    assert payload["matches"] is None
    for operation, extra in (
        ("changeCTraderAccountPassword", {"password": "a-fine-password"}),
        ("resetCTraderAccountPassword", {}),
    ):
        payload = await _password_write(
            gateway, operation, {"accountId": account_gid(login), **extra}, token="client"
        )
        assert [e["code"] for e in payload["errors"]] == ["PERMISSION_DENIED"]
    assert delta(before, sandbox.calls) == Counter()


ATTRIBUTES = """
query($id: ID!) { account(id: $id) { ... on CTraderAccount { attributes { name value } } } }"""

SET_ATTRIBUTES = """
mutation($input: SetCTraderAccountAttributesInput!) {
  setCTraderAccountAttributes(input: $input) {
    account { attributes { name value } } errors { code field }
  }
}"""

REMOVE_ATTRIBUTES = """
mutation($input: RemoveCTraderAccountAttributesInput!) {
  removeCTraderAccountAttributes(input: $input) {
    account { attributes { name value } } errors { code field }
  }
}"""


async def test_trader_attributes_are_set_read_and_removed(
    gateway: TestGateway, sandbox: CTraderSandbox
) -> None:
    login = await _new_account(gateway)
    gid = account_gid(login)
    data = await gateway.data(ATTRIBUTES, {"id": gid})
    assert data["account"]["attributes"] == []  # read, and now cached

    pairs = [{"name": "crmId", "value": "C-17"}, {"name": "segment", "value": "retail"}]
    data = await gateway.data(
        SET_ATTRIBUTES, {"input": {"accountId": gid, "attributes": pairs}}, "manager"
    )
    payload = data["setCTraderAccountAttributes"]
    assert payload == {"account": {"attributes": pairs}, "errors": []}
    # A later read sees the write, though the empty list was cached before it.
    assert (await gateway.data(ATTRIBUTES, {"id": gid}))["account"]["attributes"] == pairs
    data = await gateway.data(
        SET_ATTRIBUTES,
        {"input": {"accountId": gid, "attributes": [{"name": "segment", "value": "pro"}]}},
    )
    assert data["setCTraderAccountAttributes"]["account"]["attributes"] == [
        {"name": "crmId", "value": "C-17"},
        {"name": "segment", "value": "pro"},
    ]
    data = await gateway.data(
        REMOVE_ATTRIBUTES, {"input": {"accountId": gid, "names": ["crmId", "never-set"]}}
    )
    assert data["removeCTraderAccountAttributes"] == {
        "account": {"attributes": [{"name": "segment", "value": "pro"}]},
        "errors": [],
    }
    # The sandbox's own list (4.14) agrees.
    manager = sandbox.state.managers[next(iter(sandbox.state.managers))]
    listed = sandbox.state.attributes.list(
        "traders", {"ids": [int(login)]}, sandbox.state.authorise(manager), []
    )
    assert listed["items"][0]["attributes"] == [{"name": "segment", "value": "pro"}]
    rows = await gateway.services.store.list_audit(limit=500)
    mine = [(r.operation, r.outcome) for r in rows if r.target == gid]
    assert sorted(mine) == [
        ("removeCTraderAccountAttributes", "ok"),
        ("setCTraderAccountAttributes", "ok"),
        ("setCTraderAccountAttributes", "ok"),
    ]


async def test_bad_attributes_send_nothing(gateway: TestGateway, sandbox: CTraderSandbox) -> None:
    login = await _new_account(gateway)
    gid = account_gid(login)
    bad_sets: list[list[dict[str, str]]] = [
        [],
        [{"name": "", "value": "v"}],
        [{"name": "n" * 65, "value": "v"}],
        [{"name": "n", "value": ""}],
        [{"name": "n", "value": "v" * 513}],
        [{"name": "n", "value": "a"}, {"name": "n", "value": "b"}],
        [{"name": f"n{i}", "value": "v"} for i in range(101)],
    ]
    before = Counter(sandbox.calls)
    for attributes in bad_sets:
        data = await gateway.data(
            SET_ATTRIBUTES, {"input": {"accountId": gid, "attributes": attributes}}
        )
        assert data["setCTraderAccountAttributes"]["errors"] == [
            {"code": "INVALID_INPUT", "field": ["attributes"]}
        ], attributes
    for names in ([], [""], ["a", "a"]):
        data = await gateway.data(REMOVE_ATTRIBUTES, {"input": {"accountId": gid, "names": names}})
        assert data["removeCTraderAccountAttributes"]["errors"] == [
            {"code": "INVALID_INPUT", "field": ["names"]}
        ], names
    data = await gateway.data(
        SET_ATTRIBUTES,
        {"input": {"accountId": gid, "attributes": [{"name": "n", "value": "v"}]}},
        "client",
    )
    assert data["setCTraderAccountAttributes"]["errors"] == [
        {"code": "PERMISSION_DENIED", "field": None}
    ]
    assert delta(before, sandbox.calls) == Counter()


CREATE_ATTRIBUTED = """
mutation($input: CreateTraderInput!) {
  createTrader(input: $input) {
    accounts { externalId ... on CTraderAccount { introducingBrokers } }
    errors { code field }
  }
}"""


async def test_create_attributes_the_trader_to_introducing_brokers(
    gateway: TestGateway, sandbox: CTraderSandbox
) -> None:
    def create(options: dict[str, Any]) -> dict[str, Any]:
        email = f"ib-{uuid.uuid4().hex[:8]}@example.com"
        return {
            "input": {
                "platform": "ctrader",
                "partnerCode": "DEMO-002",
                "email": email,
                "options": options,
            }
        }

    data = await gateway.data(
        CREATE_ATTRIBUTED, create({"introducingBroker1": "IB-42", "introducingBroker2": "SUB-7"})
    )
    payload = data["createTrader"]
    assert payload["errors"] == [], payload
    (account,) = payload["accounts"]
    assert account["introducingBrokers"] == ["IB-42", "SUB-7"]
    contact = sandbox.state.traders[int(account["externalId"])].contact_details
    assert (contact["introducingBroker1"], contact["introducingBroker2"]) == ("IB-42", "SUB-7")
    await gateway.clear_cache()
    read = await gateway.data(
        "query($id: ID!) { account(id: $id) { ... on CTraderAccount { introducingBrokers } } }",
        {"id": account_gid(account["externalId"])},
    )
    assert read["account"]["introducingBrokers"] == ["IB-42", "SUB-7"]

    before = Counter(sandbox.calls)
    for bad in ("", " IB-42", "x" * 101, 42):
        data = await gateway.data(CREATE_ATTRIBUTED, create({"introducingBroker1": bad}))
        assert data["createTrader"]["errors"] == [
            {"code": "INVALID_INPUT", "field": ["options", "introducingBroker1"]}
        ], bad
    assert writes(delta(before, sandbox.calls)) == 0
