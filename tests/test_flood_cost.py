"""The cost model charges period fields what their connector declares upstream.

cTrader answers deals two days at a time: a year of ``analytics`` is some 230 calls,
which the document alone does not show.  These tests validate documents against the
schema with the cost rule given declarations, and check the cost and the certain
upstream calls it reports against window counts made here independently.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import brokergraph_ctrader.plugin
import pytest
from graphql import ValidationRule, parse, validate

from gateway.contract import UpstreamCost
from gateway.graphql import build_schema
from gateway.graphql.cost import ASSUMED_PERIOD, DeclaredCosts, cost_limit_rule
from gateway.graphql.types import MAX_PERIOD
from gateway.plugins import load_plugins

WINDOW = timedelta(days=2)
LOOKBACK = timedelta(days=90)
DEALS = UpstreamCost(calls=1, window=WINDOW, lookback=LOOKBACK)
ANALYTICS = UpstreamCost(calls=2, window=WINDOW, lookback=LOOKBACK)
CTRADER = {
    "get_deals": DEALS,
    "get_analytics": ANALYTICS,
    "get_balance_operations": UpstreamCost(calls=0),
}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
LIST = 20  # the default list size


def windows(start: datetime, end: datetime) -> int:
    """2-day windows aligned on the epoch that ``[start, end)`` touches, counted one by one."""
    current = EPOCH + WINDOW * ((start - EPOCH) // WINDOW)
    count = 0
    while current < end:
        count += 1
        current += WINDOW
    return count


@pytest.fixture(scope="module")
def schema() -> Any:
    plugins = load_plugins(entry_points=False, extra=[brokergraph_ctrader.plugin])
    return build_schema(plugins)._schema


def refusal(
    schema: Any,
    query: str,
    declared: DeclaredCosts,
    *,
    max_cost: int = 1,
    max_upstream_calls: int = 0,
) -> dict[str, Any] | None:
    """The QUERY_TOO_COSTLY extensions of ``query`` (``max_cost=1``: every cost is told)."""
    rule: type[ValidationRule] = cost_limit_rule(
        max_cost, LIST, declared=declared, max_upstream_calls=max_upstream_calls
    )
    for error in validate(schema, parse(query), [rule]):
        if (error.extensions or {}).get("code") == "QUERY_TOO_COSTLY":
            return dict(error.extensions or {})
    return None


def cost(schema: Any, query: str, declared: DeclaredCosts) -> int:
    found = refusal(schema, query, declared)
    assert found is not None
    return int(found["cost"])


def certain_calls(schema: Any, query: str, declared: DeclaredCosts) -> int:
    """The upstream calls the rule is certain of, when more than one (a cap of 1 makes
    it tell them); 0 when at most one."""
    found = refusal(schema, query, declared, max_cost=10**9, max_upstream_calls=1)
    return 0 if found is None else int(found["upstreamCalls"])


def stamp(value: datetime) -> str:
    return value.isoformat()


JAN, FEB = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
CTRADER_ONLY = DeclaredCosts({"ctrader": CTRADER}, {"CTraderAccount": "ctrader"})


def account(selection: str) -> str:
    return '{ account(id: "x") { %s } }' % selection  # noqa: UP031


def deals(start: datetime, end: datetime, alias: str = "") -> str:
    return f'{alias}deals(from: "{stamp(start)}", to: "{stamp(end)}") {{ symbol }}'


def test_a_literal_period_costs_its_windows_and_the_look_back(schema: Any) -> None:
    spanned = windows(JAN - LOOKBACK, FEB)
    assert spanned == 61  # 90 + 31 days, from an even epoch day: ceil(121 / 2) windows
    calls = 1 + spanned
    query = account(deals(JAN, FEB))
    # account 1 + deals (its declared calls) + 20 symbols
    assert cost(schema, query, CTRADER_ONLY) == 1 + calls + LIST
    assert certain_calls(schema, query, CTRADER_ONLY) == calls


def test_variables_assume_the_longest_period_for_cost_and_nothing_for_certainty(
    schema: Any,
) -> None:
    assert ASSUMED_PERIOD == MAX_PERIOD
    query = (
        "query($id: ID!, $from: DateTime!, $to: DateTime!) { account(id: $id) "
        "{ deals(from: $from, to: $to) { symbol } } }"
    )
    worst = max(
        windows(start - LOOKBACK, start + MAX_PERIOD)
        for start in (JAN + timedelta(hours=h) for h in range(0, 48, 6))
    )
    assert cost(schema, query, CTRADER_ONLY) == 1 + 1 + worst + LIST
    # the one fixed call only, which is not more than one: nothing told
    assert certain_calls(schema, query, CTRADER_ONLY) == 0


def test_aliases_of_long_periods_are_refused_as_certain_to_spend_a_clients_budget(
    schema: Any,
) -> None:
    years = [
        (JAN - timedelta(days=365 * (i + 1)), JAN - timedelta(days=365 * i)) for i in range(10)
    ]
    query = account(
        " ".join(
            f'y{i}: analytics(from: "{stamp(s)}", to: "{stamp(e)}") {{ wins }}'
            for i, (s, e) in enumerate(years)
        )
    )
    expected = sum(2 + windows(s - LOOKBACK, e) for s, e in years)
    found = refusal(schema, query, CTRADER_ONLY, max_cost=20_000, max_upstream_calls=600)
    assert found == {"code": "QUERY_TOO_COSTLY", "upstreamCalls": expected, "limit": 600}
    one = account(f'analytics(from: "{stamp(years[0][0])}", to: "{stamp(years[0][1])}") {{ wins }}')
    assert refusal(schema, one, CTRADER_ONLY, max_cost=20_000, max_upstream_calls=600) is None


def test_the_interface_charges_the_costliest_platform_and_is_certain_of_the_cheapest(
    schema: Any,
) -> None:
    # A second platform that declares nothing: one call per read.
    two = DeclaredCosts({"ctrader": CTRADER, "other": {}}, {"CTraderAccount": "ctrader"})
    calls = 1 + windows(JAN - LOOKBACK, FEB)
    on_interface = account(deals(JAN, FEB))
    on_ctrader = account("... on CTraderAccount { %s }" % deals(JAN, FEB))  # noqa: UP031
    assert cost(schema, on_interface, two) == 1 + calls + LIST
    assert certain_calls(schema, on_interface, two) == 0  # at most the other's one call
    twice = account(deals(JAN, FEB, "a: ") + " " + deals(JAN, FEB, "b: "))
    assert certain_calls(schema, twice, two) == 2
    assert certain_calls(schema, on_ctrader, two) == calls


def test_a_literal_list_of_representations_multiplies_the_certain_calls(schema: Any) -> None:
    analytics = f'analytics(from: "{stamp(JAN)}", to: "{stamp(FEB)}") {{ wins }}'
    items = ", ".join('{__typename: "Account", id: "x"}' for _ in range(3))
    query = f"{{ _entities(representations: [{items}]) {{ ... on Account {{ {analytics} }} }} }}"
    assert certain_calls(schema, query, CTRADER_ONLY) == 3 * (2 + windows(JAN - LOOKBACK, FEB))


def test_a_period_longer_than_the_fields_accept_costs_the_longest_they_accept(
    schema: Any,
) -> None:
    decade = account(deals(JAN - timedelta(days=3650), JAN))
    year = account(deals(JAN - MAX_PERIOD, JAN))
    assert cost(schema, decade, CTRADER_ONLY) == cost(schema, year, CTRADER_ONLY)


def test_undeclared_reads_keep_the_plain_cost(schema: Any) -> None:
    query = account(
        deals(JAN, FEB) + f' balanceOperations(from: "{stamp(JAN)}", to: "{stamp(FEB)}") {{ kind }}'
    )
    nothing = DeclaredCosts()
    # account 1 + deals 1 + 20 symbols + balanceOperations 1 + 20 kinds
    assert cost(schema, query, nothing) == 1 + (1 + LIST) + (1 + LIST)
    # cTrader declares balance operations free upstream: the field still costs 1.
    with_deals = 1 + (1 + windows(JAN - LOOKBACK, FEB) + LIST) + (1 + LIST)
    assert cost(schema, query, CTRADER_ONLY) == with_deals


@pytest.mark.parametrize("hours", [0, 5, 24, 47])
def test_a_declared_span_is_never_fewer_calls_than_any_period_that_long(hours: int) -> None:
    start = JAN + timedelta(hours=hours)
    for days in (1, 2, 3, 30, 366):
        span = timedelta(days=days)
        exact = DEALS.of_period(start, start + span)
        assert exact == 1 + windows(start - LOOKBACK, start + span)
        assert DEALS.of_span(span) >= exact


def test_a_declaration_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="negative"):
        UpstreamCost(calls=-1)
    with pytest.raises(ValueError, match="longer than zero"):
        UpstreamCost(window=timedelta(0))
    with pytest.raises(ValueError, match="look-back"):
        UpstreamCost(window=WINDOW, lookback=-LOOKBACK)
    assert UpstreamCost().of_period(FEB, JAN) == 1  # no window: one call whatever the period
