"""What tests/test_fuzz_schema.py found, pinned one case each: every one was an INTERNAL
(or an error with no code) for input a client may send, now a coded refusal before any
upstream call.  Against the session's toy gateway over real HTTP."""

from __future__ import annotations

from typing import Any

import strawberry
from graphql import ASTValidationRule, FieldNode
from strawberry.extensions import AddValidationRules

from gateway.graphql.errors import MaskUnexpectedErrors
from gateway.graphql.ids import encode_id
from tests.gateway_fixtures import GatewayUnderTest

ACCOUNT = encode_id("Account", "toy", "1001")


def codes(body: Any) -> list[str]:
    return [e["extensions"]["code"] for e in body["errors"]]


def calls(gateway: GatewayUnderTest) -> int:
    return sum(gateway.sandbox.calls.values())


async def test_a_literal_its_scalar_refuses_is_a_validation_refusal(
    gateway: GatewayUnderTest,
) -> None:
    """The scalar's ValueError rode on the validation error and was masked INTERNAL."""
    before = calls(gateway)
    for document in (
        f'{{ account(id: "{ACCOUNT}") {{ deals(from: "2026-10-01T00:00:00", '
        'to: "2026-10-02T00:00:00Z") { externalId } } }',
        f"""mutation {{ placeOrder(input: {{accountId: "{ACCOUNT}", symbol: "EURUSD",
            side: BUY, type: MARKET, quantity: "NaN", idempotencyKey: "fuzz-nan-0001",
            timeInForce: DAY}}) {{ errors {{ code }} }} }}""",
    ):
        status, body = await gateway.query(document, token="admin")
        assert status == 400, body  # a refused document (graphql-response+json)
        assert codes(body) == ["GRAPHQL_VALIDATION_FAILED"], body
        assert "Internal error" not in str(body)
    assert calls(gateway) == before


async def test_a_date_outside_1970_to_8999_is_refused_before_any_call(
    gateway: GatewayUnderTest,
) -> None:
    """Year 1 overflowed cTrader's lookback (INTERNAL) and reached DXtrade; a literal
    year 9999 overflowed the cost rule, answered with Python's text and no code."""
    before = calls(gateway)
    status, body = await gateway.query(
        """query($id: ID!, $from: DateTime!, $to: DateTime!) {
            account(id: $id) { deals(from: $from, to: $to) { externalId } } }""",
        {"id": ACCOUNT, "from": "0001-01-01T00:00:00Z", "to": "0001-01-02T00:00:00Z"},
    )
    assert status == 200, body
    assert codes(body) == ["INVALID_INPUT", "INVALID_INPUT"], body  # $from and $to
    assert "1970" in body["errors"][0]["message"]
    status, body = await gateway.query(
        f'{{ account(id: "{ACCOUNT}") {{ analytics(from: "9999-12-30T00:00:00Z", '
        'to: "9999-12-31T00:00:00Z") { wins } } }'
    )
    assert status == 400, body
    assert codes(body) == ["GRAPHQL_VALIDATION_FAILED", "GRAPHQL_VALIDATION_FAILED"], body
    assert calls(gateway) == before


async def test_an_id_with_too_few_or_too_many_parts_is_invalid_input(
    gateway: GatewayUnderTest,
) -> None:
    """Unpacking ``platform, account, order`` out of a 1-part id was a ValueError."""
    before = calls(gateway)
    for field, global_id in (
        ("order", encode_id("Order", "toy")),
        ("order", encode_id("Order", "toy", "1001", "1", "2")),
        ("account", encode_id("Account", "toy", "1001", "extra")),
        ("trader", encode_id("Trader", "toy")),
    ):
        status, body = await gateway.query(
            f"query($id: ID!) {{ {field}(id: $id) {{ id }} }}", {"id": global_id}
        )
        assert status == 200, body
        assert codes(body) == ["INVALID_INPUT"], (field, body)
    assert calls(gateway) == before


async def test_junk_entity_representations_are_refused_one_by_one(
    gateway: GatewayUnderTest,
) -> None:
    """Strawberry's ``_entities`` indexed its type map with any ``__typename`` and called
    ``resolve_reference`` with any keys: KeyError, TypeError, AttributeError, INTERNAL."""
    junk: list[Any] = [
        {"__typename": "Account"},
        {"__typename": ""},
        {"__typename": "Money", "id": "x"},
        {"__typename": "Trader", "id": 5},
        {"__typename": "Account", "id": ACCOUNT, "extra": 1},
        "junk",
        {"id": ACCOUNT},
    ]
    status, body = await gateway.query(
        """query($r: [_Any!]!) { _entities(representations: $r) {
            ... on Account { number } } }""",
        {"r": [*junk, {"__typename": "Account", "id": ACCOUNT}]},
    )
    assert status == 200, body
    assert codes(body) == ["INVALID_INPUT"] * len(junk), body
    paths = sorted(e["path"][1] for e in body["errors"])
    assert paths == list(range(len(junk))), body
    assert body["data"]["_entities"] == [None] * len(junk) + [{"number": "1001"}]


class CrashingRule(ASTValidationRule):
    def enter_field(self, node: FieldNode, *_: Any) -> None:
        raise OverflowError("date value out of range")


@strawberry.type
class Query:
    answer: int = 42


async def test_a_crash_in_a_validation_rule_is_masked_with_a_code() -> None:
    """An exception out of validation skipped the masking: the client saw Python's text
    with no ``extensions.code`` (the cost rule's overflow did)."""
    schema = strawberry.Schema(
        query=Query, extensions=[MaskUnexpectedErrors, lambda: AddValidationRules([CrashingRule])]
    )
    result = await schema.execute("{ answer }")
    assert result.errors is not None
    [error] = result.errors
    assert error.message == "Internal error"
    assert error.extensions is not None
    assert error.extensions["code"] == "INTERNAL"
