"""``auditTrail``: a partner's audited writes, newest first, staff only, paged by cursor.

A gateway of its own (toy platform over a real socket, a fresh store), so the log holds
only what these tests write: money moved through the one write path, and rows appended
through the store for order ids (which the toy's write path makes too, but whose
neighbouring-account case needs an id crafted to share the prefix).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_asyncio

from gateway.auth import Role
from gateway.graphql.audit import _order_prefix
from gateway.graphql.ids import encode_id
from gateway.store import AuditEntry
from tests.gateway_fixtures import GatewayUnderTest, open_gateway
from tests.toy.sandbox import ToySandbox

TRAIL = """query($code: String!, $first: Int!, $after: String) {
  auditTrail(partnerCode: $code, first: $first, after: $after) {
    edges { cursor node { at actor role action targetId targetType targetExternalId outcome
      errorCode upstreamRef idempotencyKey amount settledBy } }
    pageInfo { hasNextPage endCursor }
  } }"""
MOVE = """mutation($input: MoneyMovementInput!) {
  deposit(input: $input) { replayed errors { code } }
}"""
WITHDRAW = """mutation($input: MoneyMovementInput!) {
  withdraw(input: $input) { replayed errors { code } }
}"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gw(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[GatewayUnderTest]:
    async with (
        ToySandbox() as sandbox,
        open_gateway(sandbox, tmp_path_factory.mktemp("audit")) as running,
    ):
        yield running


async def trail(
    gw: GatewayUnderTest, code: str, first: int, after: str | None = None, token: str = "manager"
) -> dict[str, Any]:
    status, body = await gw.query(TRAIL, {"code": code, "first": first, "after": after}, token)
    assert status == 200, body
    result: dict[str, Any] = body
    return result


async def move(gw: GatewayUnderTest, mutation: str, account: str, amount: str, key: str) -> None:
    variables = {
        "input": {"accountId": gw.account_id(account), "amount": amount, "idempotencyKey": key}
    }
    _, body = await gw.query(mutation, variables, "manager")
    assert "errors" not in body, body


@pytest.mark.asyncio(loop_scope="module")
async def test_a_partners_writes_newest_first_a_page_at_a_time(gw: GatewayUnderTest) -> None:
    first_key, second_key = f"d-{uuid.uuid4()}", f"w-{uuid.uuid4()}"
    await move(gw, MOVE, "1001", "12.50", first_key)
    await move(gw, MOVE, "1001", "12.50", first_key)  # a double click: replayed
    await move(gw, MOVE, "2001", "7.00", f"o-{uuid.uuid4()}")  # DEMO-002's: not in the trail
    await move(gw, WITHDRAW, "1002", "3.25", second_key)

    page = (await trail(gw, "DEMO-001", 2))["data"]["auditTrail"]
    nodes = [edge["node"] for edge in page["edges"]]
    assert [(n["action"], n["outcome"], n["amount"], n["idempotencyKey"]) for n in nodes] == [
        ("withdraw", "OK", "3.25", second_key),
        ("deposit", "REPLAYED", "12.50", first_key),
    ]
    assert nodes[0]["targetId"] == gw.account_id("1002")
    assert (nodes[0]["targetType"], nodes[0]["targetExternalId"]) == ("Account", "1002")
    assert (nodes[0]["actor"], nodes[0]["role"]) == ("test-manager", "manager")
    assert nodes[0]["at"] >= nodes[1]["at"]
    assert page["pageInfo"]["hasNextPage"] is True

    rest = (await trail(gw, "DEMO-001", 10, page["pageInfo"]["endCursor"]))["data"]["auditTrail"]
    later = [edge["node"] for edge in rest["edges"]]
    assert [(n["action"], n["outcome"], n["idempotencyKey"]) for n in later] == [
        ("deposit", "OK", first_key)
    ]
    assert later[0]["upstreamRef"]  # the toy's operation id
    assert rest["pageInfo"] == {"hasNextPage": False, "endCursor": None}

    other = (await trail(gw, "DEMO-002", 10))["data"]["auditTrail"]["edges"]
    assert [(e["node"]["action"], e["node"]["amount"]) for e in other] == [("deposit", "7.00")]


@pytest.mark.asyncio(loop_scope="module")
async def test_orders_of_its_accounts_count_and_a_neighbours_do_not(gw: GatewayUnderTest) -> None:
    """An order id starts like its account's.  Only whole 3-byte groups of an id encode
    to a fixed text, so an account "77" of DEMO-001's has its orders' prefix shared by
    account "778"'s: that order must not show in DEMO-001's trail."""
    store = gw.services.store
    await store.link("DEMO-001", "toy", "account", "77", trader_id="T1")

    def row(target: str, operation: str) -> AuditEntry:
        return AuditEntry(
            id=None,
            at=datetime.now(UTC),
            actor="test-manager",
            role="manager",
            operation=operation,
            target=target,
            outcome="unknown",
            error_code="OUTCOME_UNKNOWN",
            upstream_ref=None,
            idempotency_key=None,
            details={},
        )

    ours = encode_id("Order", "toy", "77", "ord-1")
    neighbours = encode_id("Order", "toy", "778", "ord-2")
    assert neighbours.startswith(_order_prefix("toy", "77"))  # the case the filter must drop
    await store.append_audit(row(ours, "cancelOrder"))
    await store.append_audit(row(neighbours, "replaceOrder"))
    await store.append_audit(row("DEMO-001", "updateBusinessPartner"))

    nodes = [e["node"] for e in (await trail(gw, "DEMO-001", 2))["data"]["auditTrail"]["edges"]]
    assert [(n["action"], n["targetType"], n["targetExternalId"]) for n in nodes] == [
        ("updateBusinessPartner", "BusinessPartner", "DEMO-001"),
        ("cancelOrder", "Order", "ord-1"),
    ]
    assert nodes[0]["targetId"] == encode_id("BusinessPartner", "DEMO-001")
    assert nodes[1]["outcome"] == "UNKNOWN"


@pytest.mark.asyncio(loop_scope="module")
async def test_clients_and_other_brokers_managers_read_nothing(gw: GatewayUnderTest) -> None:
    await move(gw, MOVE, "1001", "1.00", f"d-{uuid.uuid4()}")
    for token in ("client", "other_client"):
        body = await trail(gw, "DEMO-001", 5, token=token)
        assert body["data"] is None
        assert [e["extensions"]["code"] for e in body["errors"]] == ["PERMISSION_DENIED"]

    other = gw.services.authenticator.issue(
        subject="other-manager", role=Role.MANAGER, brokers=["other-broker"], ttl_seconds=600
    )
    body = await trail(gw, "DEMO-001", 5, token=other)
    assert body["data"] is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["NOT_FOUND"]
    # Its own broker's partner it may read (nothing written there yet), and an admin all.
    assert (await trail(gw, "OTHER-001", 5, token=other))["data"]["auditTrail"]["edges"] == []
    admin = (await trail(gw, "DEMO-001", 1, token="admin"))["data"]["auditTrail"]["edges"]
    assert admin[0]["node"]["action"] == "deposit"


@pytest.mark.asyncio(loop_scope="module")
async def test_a_bad_page_size_or_cursor_is_invalid_input(gw: GatewayUnderTest) -> None:
    for first, after in ((0, None), (10_000, None), (5, "not-a-cursor"), (5, encode_id("x", "y"))):
        body = await trail(gw, "DEMO-001", first, after)
        assert [e["extensions"]["code"] for e in body["errors"]] == ["INVALID_INPUT"], body
