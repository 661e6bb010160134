"""Request limits: costly, deep and aliased operations are refused before anything runs."""

from __future__ import annotations

import sys
from typing import Any

import orjson
import pytest
from graphql import ASTValidationRule, parse, validate

from gateway.config import LimitSettings
from gateway.graphql import build_schema
from gateway.graphql.cost import COST_CEILING, cost_limit_rule
from gateway.graphql.limits import (
    MAX_REPEATS,
    WALK_BUDGET,
    alias_limit_rule,
    depth_limit_rule,
)
from gateway.plugins import load_plugins


@pytest.fixture(scope="module")
def schema() -> Any:
    limits = LimitSettings(max_cost=1000, default_list_size=20)
    return build_schema(load_plugins(entry_points=False), limits)


async def cost_error(schema: Any, query: str) -> dict[str, Any] | None:
    result = await schema.execute(query)
    for error in result.errors or ():
        if (error.extensions or {}).get("code") == "QUERY_TOO_COSTLY":
            return dict(error.extensions)
    return None


async def test_a_cheap_query_passes_the_cost_check(schema: Any) -> None:
    assert await cost_error(schema, '{ businessPartner(code: "X") { code name } }') is None


async def test_nested_lists_multiply(schema: Any) -> None:
    query = """{ businessPartners(first: 100) { edges { node {
        accounts { positions { symbol volume } orders { symbol } } } } } }"""
    error = await cost_error(schema, query)
    assert error is not None and error["cost"] > 1000


async def test_first_sizes_the_page(schema: Any) -> None:
    small = "{ businessPartners(first: 2) { edges { node { accounts { externalId } } } } }"
    large = "{ businessPartners(first: 100) { edges { node { accounts { externalId } } } } }"
    assert await cost_error(schema, small) is None
    assert (await cost_error(schema, large)) is not None


async def test_fragments_and_aliases_are_counted(schema: Any) -> None:
    fragment = "fragment F on BusinessPartner { accounts { positions { symbol } } }"
    aliases = " ".join(f'p{i}: businessPartner(code: "{i}") {{ ...F }}' for i in range(5))
    error = await cost_error(schema, f"{{ {aliases} }} {fragment}")
    assert error is not None and error["cost"] == 5 * (1 + 1 + 20 * (1 + 20 * 1))


async def test_introspection_is_free(schema: Any) -> None:
    query = "{ __schema { types { name fields { name type { name ofType { name } } } } } }"
    assert await cost_error(schema, query) is None


async def test_a_flood_of_costly_queries_never_reaches_a_resolver(gateway: Any) -> None:
    limits = gateway.services.settings.limits
    first = limits.max_page_size
    costly = (
        f"{{ businessPartners(first: {first}) {{ edges {{ node {{ accounts {{ "
        "positions { symbol } orders { symbol } "
        'deals(from: "2026-01-01T00:00:00Z", to: "2026-02-01T00:00:00Z") { symbol } '
        "} } } } }"
    )
    calls = sum(gateway.sandbox.calls.values())
    for _ in range(50):
        status, body = await gateway.query(costly)
        assert status == 400, body
        assert body["errors"][0]["extensions"]["code"] == "QUERY_TOO_COSTLY"
    assert sum(gateway.sandbox.calls.values()) == calls


def doubling(levels: int, on: str = "Query", leaf: str = "viewer { role }") -> str:
    """``levels`` fragments, each spreading the previous one twice: 2**levels leaves."""
    fragments = [f"fragment F0 on {on} {{ {leaf} }}"]
    fragments += [f"fragment F{i} on {on} {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, levels)]
    return " ".join(fragments)


class CallCounter:
    """Counts Python function calls while active.

    Calls, not seconds: the count is the same on any machine, and an expansion of
    every spread (2**21 fragment visits) shows up as millions of them.
    """

    def __init__(self) -> None:
        self.calls = 0

    def _profile(self, _frame: Any, event: str, _arg: Any) -> None:
        if event == "call":
            self.calls += 1

    def __enter__(self) -> CallCounter:
        sys.setprofile(self._profile)
        return self

    def __exit__(self, *_: object) -> None:
        sys.setprofile(None)


async def counted(schema: Any, query: str) -> tuple[int, list[dict[str, Any]]]:
    """Run ``query`` through the whole schema: the calls taken, its errors' extensions."""
    with CallCounter() as counter:
        result = await schema.execute(query)
    return counter.calls, [dict(error.extensions or {}) for error in result.errors or ()]


def counted_rule(schema: Any, query: str, rule: type[ASTValidationRule]) -> tuple[int, list[Any]]:
    """Validate ``query`` with ``rule`` alone: the calls taken, the errors' extensions."""
    document = parse(query)
    with CallCounter() as counter:
        errors = validate(schema._schema, document, [rule])
    return counter.calls, [dict(error.extensions or {}) for error in errors]


def linear_bound(query: str) -> int:
    """Generous for a linear pass (about 20 calls per character are measured) plus the
    repeated-fields walk's fixed budget (3 calls a selection), and far below what
    expanding a 21-level doubling chain would take (millions)."""
    return 5_000 + 50 * len(query) + 3 * WALK_BUDGET


async def test_a_doubling_chain_of_fragments_is_costed_once_per_fragment(schema: Any) -> None:
    query = "{ ...F20 } " + doubling(21)
    calls, errors = counted_rule(schema, query, cost_limit_rule(1000, 20))
    assert errors == [{"code": "QUERY_TOO_COSTLY", "cost": 2 * 2**20, "limit": 1000}]
    assert calls <= linear_bound(query), calls
    # Through the whole schema the repeated `viewer` is refused first, as fast.
    calls, errors = await counted(schema, query)
    assert [e["code"] for e in errors] == ["TOO_MANY_REPEATED_FIELDS"]
    assert calls <= linear_bound(query), calls


@pytest.mark.parametrize(
    ("rule", "code"),
    [(depth_limit_rule(12), "QUERY_TOO_DEEP"), (alias_limit_rule(30), "TOO_MANY_ALIASES")],
)
async def test_depth_and_aliases_visit_each_fragment_once(
    schema: Any, rule: type[ASTValidationRule], code: str
) -> None:
    chain = " ".join(
        f"fragment F{i} on BusinessPartner {{ a: accounts {{ __typename }} "
        f"...F{i - 1} ...F{i - 1} }}"
        for i in range(1, 21)
    )
    query = (
        "{"
        + " viewer {" * 13
        + " role"
        + " }" * 13
        + ' businessPartner(code: "x") { ...F20 } } '
        + "fragment F0 on BusinessPartner { code } "
        + chain
    )
    calls, errors = counted_rule(schema, query, rule)
    assert [e["code"] for e in errors] == [code]
    assert calls <= linear_bound(query), calls


async def test_sixty_nested_fragments_saturate_at_a_json_safe_cost(schema: Any) -> None:
    query = '{ businessPartner(code: "x") { ...F59 } } ' + doubling(60, "BusinessPartner", "code")
    calls, errors = counted_rule(schema, query, cost_limit_rule(1000, 20))
    (refusal,) = [e for e in errors if e["code"] == "QUERY_TOO_COSTLY"]
    assert refusal["cost"] == COST_CEILING == 2**53 - 1
    assert orjson.loads(orjson.dumps(refusal)) == refusal
    assert calls <= linear_bound(query), calls


async def test_a_negative_first_does_not_make_a_query_cheaper(schema: Any) -> None:
    query = "{ businessPartners(first: -100000) { edges { node { accounts { externalId } } } } }"
    assert await cost_error(schema, query) is None  # sized by the default: cheap, not negative
    deep = (
        "{ businessPartners(first: -100000) { edges { node { accounts { "
        "positions { symbol } orders { symbol } } } } } }"
    )
    error = await cost_error(schema, deep)
    assert error is not None and error["cost"] > 0


REFUSALS = {
    "depth": ("{" + " viewer {" * 14 + " role" + " }" * 15, "QUERY_TOO_DEEP"),
    "depth through fragments": (
        "{ ...F12 } fragment F0 on Query { viewer { role } } "
        + " ".join(f"fragment F{i} on Query {{ viewer {{ ...F{i - 1} }} }}" for i in range(1, 13)),
        "QUERY_TOO_DEEP",
    ),
    "doubling fragments": (
        "{ ...F20 } " + doubling(21, leaf="a: viewer { role }"),
        "TOO_MANY_REPEATED_FIELDS",
    ),
    "tokens": ("{" + " viewer { role }" * 1300 + " }", "QUERY_TOO_LONG"),
    "nesting": ("{" + " viewer {" * 300 + " role" + " }" * 301, "QUERY_TOO_DEEP"),
    "fragment cycle": (
        "{ ...A } fragment A on Query { viewer { role } ...B } fragment B on Query { ...A ...A }",
        "GRAPHQL_VALIDATION_FAILED",
    ),
    "fragments chained beyond the stack": (
        "{ ...F299 } fragment F0 on Query { viewer { role } } "
        + " ".join(f"fragment F{i} on Query {{ ...F{i - 1} }}" for i in range(1, 300)),
        "QUERY_TOO_DEEP",
    ),
    "repeated fields": ("{" + " viewer { role }" * 600 + " }", "TOO_MANY_REPEATED_FIELDS"),
    "repeated through fragments": (
        "{ "
        + " ".join(f"...F{i}" for i in range(300))
        + " } "
        + " ".join(f"fragment F{i} on Query {{ viewer {{ role }} }}" for i in range(300)),
        "TOO_MANY_REPEATED_FIELDS",
    ),
    "repeated through inline fragments": (
        "{" + " ... { viewer { role } }" * 500 + " }",
        "TOO_MANY_REPEATED_FIELDS",
    ),
    "repeated through merged fields": (
        "{"
        + ' businessPartner(code: "x") { '
        + "accounts { externalId } " * 2
        + "}" * 1
        # 51 same-named parents merge into one: 102 ``accounts`` exceed MAX_REPEATS.
        + (' businessPartner(code: "x") { ' + "accounts { externalId } " * 2 + "}") * 50
        + " }",
        "TOO_MANY_REPEATED_FIELDS",
    ),
    "expansion beyond the walk's budget": (
        "{ ...F20 } " + doubling(21, leaf="...Missing"),
        "QUERY_TOO_COMPLEX",
    ),
    "unknown directive": ("{ viewer @nope { role } }", "GRAPHQL_VALIDATION_FAILED"),
    "syntax": ("{ viewer { role }", "GRAPHQL_PARSE_FAILED"),
}


@pytest.mark.parametrize("case", REFUSALS)
async def test_every_refusal_is_coded_and_linear(schema: Any, case: str) -> None:
    query, code = REFUSALS[case]
    calls, errors = await counted(schema, query)
    assert errors and all("code" in e for e in errors), errors
    assert code in {e["code"] for e in errors}, errors
    assert calls <= linear_bound(query), calls


async def test_a_field_may_repeat_up_to_the_limit(schema: Any) -> None:
    _calls, errors = await counted(schema, "{" + " viewer { role }" * MAX_REPEATS + " }")
    assert "TOO_MANY_REPEATED_FIELDS" not in {e.get("code") for e in errors}
    _calls, errors = await counted(schema, "{" + " viewer { role }" * (MAX_REPEATS + 1) + " }")
    assert [e["code"] for e in errors] == ["TOO_MANY_REPEATED_FIELDS"]
