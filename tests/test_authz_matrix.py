"""The authorization matrix: every query, mutation and subscription by every role by own vs
other partner's data.  A client can never read or move another client's money, orders,
reports or events — also not through node(id), _entities, aliases or subscriptions.

"own" is partner DEMO-001 (broker demo-broker: the client's partner, in the manager's
scope); "other" is OTHER-001 (broker other-broker: nobody's but the admin's).
``allowed`` means the answer carries no NOT_FOUND / PERMISSION_DENIED / UNAUTHENTICATED
(it may carry a business error such as CAPABILITY_NOT_SUPPORTED: authorization passed).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, TypedDict

import pytest
import pytest_asyncio
import websockets
from websockets.typing import Subprotocol

from gateway.graphql.ids import encode_id
from tests.gateway_fixtures import GatewayUnderTest, open_gateway
from tests.toy.sandbox import ToySandbox

DENIED = {"NOT_FOUND", "PERMISSION_DENIED", "UNAUTHENTICATED"}
ROLES = ("client", "manager", "admin")


class Target(TypedDict):
    partner: str
    account: str
    trader: str
    order: str | None  # None: the target has no order to read


TARGETS: dict[str, Target] = {
    "own": {"partner": "DEMO-001", "account": "1001", "trader": "T1", "order": "O1"},
    "other": {"partner": "OTHER-001", "account": "3001", "trader": "T3", "order": None},
}


def ids(target: str) -> dict[str, str]:
    t = TARGETS[target]
    return {
        "partner": t["partner"],
        "partnerId": encode_id("BusinessPartner", t["partner"]),
        "account": encode_id("Account", "toy", t["account"]),
        "trader": encode_id("Trader", "toy", t["trader"]),
        "order": encode_id("Order", "toy", t["account"], t["order"] or "O-none"),
    }


def key() -> str:
    return f"authz-{uuid.uuid4()}"


@dataclass(frozen=True)
class Case:
    name: str
    kind: str  # "query" | "mutation" | "subscription"
    build: Callable[[dict[str, str]], tuple[str, dict[str, Any]]]
    #: roles allowed on their own partner (the other partner is admin-only, always)
    own: frozenset[str]


def q(text: str, **variables: str) -> Callable[[dict[str, str]], tuple[str, dict[str, Any]]]:
    return lambda i: (text, {name: i[source] for name, source in variables.items()})


def m(field: str, input_type: str, make: Callable[[dict[str, str]], dict[str, Any]]) -> Any:
    text = f"mutation($input: {input_type}!) {{ {field}(input: $input) {{ errors {{ code }} }} }}"
    return lambda i: (text, {"input": make(i)})


EVERYONE = frozenset(ROLES)
STAFF = frozenset({"manager", "admin"})
ADMIN = frozenset({"admin"})

CASES = [
    # -- queries
    Case("account", "query", q("query($a: ID!) { account(id: $a) { id } }", a="account"), EVERYONE),
    Case("trader", "query", q("query($t: ID!) { trader(id: $t) { id } }", t="trader"), EVERYONE),
    Case("order", "query", q("query($o: ID!) { order(id: $o) { id } }", o="order"), EVERYONE),
    Case(
        "orders",
        "query",
        q("query($a: ID!) { orders(accountId: $a) { totalCount } }", a="account"),
        EVERYONE,
    ),
    Case(
        "instruments",
        "query",
        q("query($a: ID!) { instruments(accountId: $a) { symbol } }", a="account"),
        EVERYONE,
    ),
    Case(
        "businessPartner",
        "query",
        q("query($p: String!) { businessPartner(code: $p) { code accounts { id } } }", p="partner"),
        EVERYONE,
    ),
    Case(
        "accounts",
        "query",
        q(
            "query($p: String!) { accounts(partnerCode: $p) { edges { node { id } } } }",
            p="partner",
        ),
        EVERYONE,
    ),
    Case(
        "auditTrail",
        "query",
        q(
            "query($p: String!) { auditTrail(partnerCode: $p, first: 5) { edges { cursor } } }",
            p="partner",
        ),
        STAFF,
    ),
    Case(
        "node(partner)",
        "query",
        q("query($n: ID!) { node(id: $n) { id } }", n="partnerId"),
        EVERYONE,
    ),
    Case(
        "node(account)", "query", q("query($n: ID!) { node(id: $n) { id } }", n="account"), EVERYONE
    ),
    Case(
        "node(trader)", "query", q("query($n: ID!) { node(id: $n) { id } }", n="trader"), EVERYONE
    ),
    Case("nodes", "query", q("query($n: ID!) { nodes(ids: [$n]) { id } }", n="account"), EVERYONE),
    Case(
        "_entities",
        "query",
        lambda i: (
            "query($r: [_Any!]!) { _entities(representations: $r) { __typename } }",
            {"r": [{"__typename": "ToyAccount", "id": i["account"]}]},
        ),
        EVERYONE,
    ),
    Case(
        "positions",
        "query",
        q("query($a: ID!) { account(id: $a) { positions { symbol } } }", a="account"),
        EVERYONE,
    ),
    Case(
        "deals",
        "query",
        q(
            'query($a: ID!) { account(id: $a) { deals(from: "2026-01-01T00:00:00Z", '
            'to: "2026-02-01T00:00:00Z") { symbol } } }',
            a="account",
        ),
        EVERYONE,
    ),
    Case(
        "reports",
        "query",
        q("query($p: String!) { businessPartner(code: $p) { reports { id } } }", p="partner"),
        EVERYONE,
    ),
    # -- money
    *(
        Case(
            name,
            "mutation",
            m(
                name,
                "MoneyMovementInput",
                lambda i: {"accountId": i["account"], "amount": "1", "idempotencyKey": key()},
            ),
            STAFF,
        )
        for name in ("deposit", "withdraw", "changeCredit", "changeBonus")
    ),
    # Both ends the same account: past authorization, it is INVALID_INPUT (nothing moves).
    Case(
        "transferFunds",
        "mutation",
        m(
            "transferFunds",
            "TransferFundsInput",
            lambda i: {
                "fromAccountId": i["account"],
                "toAccountId": i["account"],
                "amount": "1",
                "idempotencyKey": key(),
            },
        ),
        STAFF,
    ),
    # -- orders
    Case(
        "placeOrder",
        "mutation",
        m(
            "placeOrder",
            "PlaceOrderInput",
            lambda i: {
                "accountId": i["account"],
                "symbol": "EURUSD",
                "side": "BUY",
                "type": "LIMIT",
                "quantity": "1000",
                "price": "0.5",
                "idempotencyKey": key(),
            },
        ),
        EVERYONE,
    ),
    Case(
        "cancelOrder",
        "mutation",
        m("cancelOrder", "CancelOrderInput", lambda i: {"orderId": i["order"]}),
        EVERYONE,
    ),
    Case(
        "cancelOrders",
        "mutation",
        m(
            "cancelOrders",
            "CancelOrdersInput",
            lambda i: {"accountId": i["account"], "orderIds": [i["order"]]},
        ),
        EVERYONE,
    ),
    Case(
        "cancelOrdersForContract",
        "mutation",
        m(
            "cancelOrdersForContract",
            "CancelOrdersForContractInput",
            lambda i: {"accountId": i["account"], "symbol": "NOSUCH"},
        ),
        EVERYONE,
    ),
    Case(
        "replaceOrder",
        "mutation",
        m(
            "replaceOrder",
            "ReplaceOrderInput",
            lambda i: {"orderId": i["order"], "price": "0.4", "idempotencyKey": key()},
        ),
        EVERYONE,
    ),
    Case(
        "cancelAllOrders",
        "mutation",
        m(
            "cancelAllOrders",
            "CancelAllOrdersInput",
            lambda i: {"accountId": i["account"], "idempotencyKey": key()},
        ),
        EVERYONE,
    ),
    # -- provisioning
    Case(
        "createTrader",
        "mutation",
        m(
            "createTrader",
            "CreateTraderInput",
            lambda i: {
                "platform": "toy",
                "partnerCode": i["partner"],
                "email": f"{uuid.uuid4().hex}@x.example",
            },
        ),
        STAFF,
    ),
    Case(
        "openAccount",
        "mutation",
        m(
            "openAccount",
            "OpenAccountInput",
            lambda i: {"traderId": i["trader"], "currency": "USD"},
        ),
        STAFF,
    ),
    Case(
        "updateAccount",
        "mutation",
        m(
            "updateAccount",
            "UpdateAccountInput",
            lambda i: {"accountId": i["account"], "leverage": "50"},
        ),
        STAFF,
    ),
    Case(
        "deactivateTrader",
        "mutation",
        m("deactivateTrader", "DeactivateTraderInput", lambda i: {"traderId": i["trader"]}),
        STAFF,
    ),
    Case(
        "reactivateTrader",
        "mutation",
        m("reactivateTrader", "ReactivateTraderInput", lambda i: {"traderId": i["trader"]}),
        STAFF,
    ),
    # -- back office
    Case(
        "updateBusinessPartner",
        "mutation",
        m(
            "updateBusinessPartner",
            "UpdateBusinessPartnerInput",
            lambda i: {"code": i["partner"], "email": "a@b.c"},
        ),
        STAFF,
    ),
    Case(
        "enableTrading",
        "mutation",
        m("enableTrading", "PartnerOnPlatformInput", lambda i: {"partnerCode": i["partner"]}),
        STAFF,
    ),
    Case(
        "setTradingLeverage",
        "mutation",
        m(
            "setTradingLeverage",
            "SetTradingLeverageInput",
            lambda i: {"partnerCode": i["partner"], "leverage": "2"},
        ),
        STAFF,
    ),
    Case(
        "calculateTax",
        "mutation",
        m(
            "calculateTax",
            "CalculateTaxInput",
            lambda i: {"partnerCode": i["partner"], "kind": "WITHDRAWAL", "amount": "10"},
        ),
        EVERYONE,
    ),
    Case(
        "requestClientReport",
        "mutation",
        m(
            "requestClientReport",
            "RequestClientReportInput",
            lambda i: {
                "partnerCode": i["partner"],
                "format": "CSV",
                "periodFrom": "2026-01-01T00:00:00Z",
                "periodTo": "2026-02-01T00:00:00Z",
            },
        ),
        EVERYONE,
    ),
    Case(
        "linkToPartner",
        "mutation",
        m(
            "linkToPartner",
            "LinkToPartnerInput",
            lambda i: {
                "partnerCode": i["partner"],
                "accountId": encode_id("Account", "toy", "1002"),
            },
        ),
        ADMIN,
    ),
    # deleteBusinessPartner last: it removes the partner for the cases after it
    # -- subscriptions
    Case(
        "orderEvents",
        "subscription",
        q("subscription($a: ID!) { orderEvents(accountId: $a) { sequence } }", a="account"),
        EVERYONE,
    ),
    Case(
        "accountEvents",
        "subscription",
        q("subscription($a: ID!) { accountEvents(accountId: $a) { sequence } }", a="account"),
        EVERYONE,
    ),
    Case(
        "marketDataSubscriptionEvents",
        "subscription",
        q(
            "subscription($t: ID!) { marketDataSubscriptionEvents(traderId: $t) { kind } }",
            t="trader",
        ),
        EVERYONE,
    ),
]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def matrix_gateway(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[GatewayUnderTest]:
    async with (
        ToySandbox() as sandbox,
        open_gateway(sandbox, tmp_path_factory.mktemp("authz")) as running,
    ):
        yield running


async def fresh_order(gateway: GatewayUnderTest, target: str) -> str:
    """A new working order on the target's account, placed by the admin."""
    account = TARGETS[target]["account"]
    _, body = await gateway.query(
        """mutation($input: PlaceOrderInput!) { placeOrder(input: $input) {
            order { externalId } errors { code } } }""",
        {
            "input": {
                "accountId": encode_id("Account", "toy", account),
                "symbol": "EURUSD",
                "side": "BUY",
                "type": "LIMIT",
                "quantity": "1000",
                "price": "0.5",
                "idempotencyKey": key(),
            }
        },
    )
    order_id: str = body["data"]["placeOrder"]["order"]["externalId"]
    return encode_id("Order", "toy", account, order_id)


def codes_of(body: Any) -> set[str]:
    """Every error code in a response: top-level errors and payload errors."""
    found = {e.get("extensions", {}).get("code", "") for e in body.get("errors") or ()}
    for value in (body.get("data") or {}).values():
        if isinstance(value, dict):
            found |= {e["code"] for e in value.get("errors") or () if isinstance(e, dict)}
    return found


def hides_everything(body: Any) -> bool:
    """A lookup that answers null (or a list of nulls) shows nothing: that is a denial too."""
    data = body.get("data")
    if not data:
        return True
    for value in data.values():
        if isinstance(value, list):
            if any(item is not None for item in value):
                return False
        elif value is not None:
            return False
    return True


async def first_subscription_answer(
    gateway: GatewayUnderTest, role: str, query: str, variables: dict[str, Any]
) -> dict[str, Any]:
    async with websockets.connect(
        gateway.websocket_url, subprotocols=[Subprotocol("graphql-transport-ws")]
    ) as ws:
        await ws.send(
            json.dumps(
                {
                    "type": "connection_init",
                    "payload": {"Authorization": f"Bearer {gateway.tokens[role]}"},
                }
            )
        )
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"
        await ws.send(
            json.dumps(
                {
                    "id": "1",
                    "type": "subscribe",
                    "payload": {"query": query, "variables": variables},
                }
            )
        )
        try:
            message = json.loads(await asyncio.wait_for(ws.recv(), 1.5))
        except TimeoutError:
            return {"data": {}}  # accepted and waiting for events: access was granted
    if message["type"] == "error":
        return {"errors": message["payload"]}
    payload: dict[str, Any] = message.get("payload", {})
    return payload


MATRIX = [
    (case, role, target)
    for case in CASES
    for role in ROLES
    for target in ("own", "other")
    if not (
        target == "other"
        and TARGETS["other"]["order"] is None
        and "rder" in case.name
        and case.kind == "query"
    )
]


@pytest.mark.parametrize(
    ("case", "role", "target"), MATRIX, ids=[f"{c.name}-{r}-{t}" for c, r, t in MATRIX]
)
async def test_authorization(
    matrix_gateway: GatewayUnderTest, case: Case, role: str, target: str
) -> None:
    target_ids = ids(target)
    if "rder" in case.name and case.kind == "mutation" and case.name != "placeOrder":
        target_ids["order"] = await fresh_order(matrix_gateway, target)
    query, variables = case.build(target_ids)
    if case.kind == "subscription":
        body = await first_subscription_answer(matrix_gateway, role, query, variables)
    else:
        _, body = await matrix_gateway.query(query, variables, token=role)
    allowed = role == "admin" or (target == "own" and role in case.own)
    # A query refused as CAPABILITY_NOT_SUPPORTED passed authorization first (the toy
    # serves no instruments): its null data hides nothing.
    unsupported = "CAPABILITY_NOT_SUPPORTED" in codes_of(body)
    hidden = case.kind == "query" and hides_everything(body) and not unsupported
    denied = bool(codes_of(body) & DENIED) or hidden
    if allowed:
        assert not denied, f"{role} should be allowed {case.name} on {target}: {body}"
    else:
        assert denied, f"{role} must not {case.name} on {target}: {body}"


async def test_aliases_cannot_smuggle_another_partners_data(
    matrix_gateway: GatewayUnderTest,
) -> None:
    own, other = ids("own"), ids("other")
    _, body = await matrix_gateway.query(
        "query($a: ID!, $b: ID!) { mine: account(id: $a) { balance { amount } } "
        "theirs: account(id: $b) { balance { amount } } }",
        {"a": own["account"], "b": other["account"]},
        token="client",
    )
    assert body["data"] is None or body["data"].get("theirs") is None
    assert any(
        e["extensions"]["code"] == "NOT_FOUND" and e["path"] == ["theirs"] for e in body["errors"]
    )


async def test_a_client_cannot_download_another_clients_report(
    matrix_gateway: GatewayUnderTest,
) -> None:
    report = encode_id("ClientReport", "toy", "OTHER-001", "R1")
    response = await matrix_gateway.http.get(
        f"{matrix_gateway.url}/reports/{report}",
        headers={"Authorization": f"Bearer {matrix_gateway.tokens['client']}"},
    )
    assert response.status_code == 404


@pytest.mark.parametrize("role", ["client", "manager"])
async def test_only_admins_may_delete_partners_outside_their_scope(
    matrix_gateway: GatewayUnderTest, role: str
) -> None:
    _, body = await matrix_gateway.query(
        'mutation { deleteBusinessPartner(input: {code: "OTHER-001"}) { errors { code } } }',
        token=role,
    )
    assert codes_of(body) & DENIED


def test_every_root_field_is_in_the_matrix() -> None:
    from gateway.graphql import build_schema
    from gateway.plugins import load_plugins

    schema = build_schema(load_plugins(entry_points=False))
    covered = {c.name.split("(")[0] for c in CASES} | {
        "deleteBusinessPartner",
        "createBusinessPartner",
        "unlinkFromPartner",
        "viewer",
        "me",
        "businessPartners",
        "connectors",
        "_service",
        "transfer",  # by role and partner in plugins/dxtrade/tests/test_transfers.py
    }
    gql = schema._schema
    for root in (gql.query_type, gql.mutation_type, gql.subscription_type):
        assert root is not None
        missing = set(root.fields) - covered
        assert not missing, f"{root.name} fields without an authorization case: {missing}"
