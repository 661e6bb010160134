"""The upstream calls of ``analytics``, counted on the sandbox: per account and period,
its closedPositions windows (4.13, ≤ 2 days each) and nothing the query's loaders hold.

An overview page asks for accounts, their balances and positions, and their analytics.
The account and its open positions are already read by the batched loaders (one call
for the whole page when it lists more than three accounts); analytics reuses those
entries instead of reading the trader and openPositions again per account.  Windows
start at the look-back before ``from`` but never before the account's registration
(no position of it is older), and end at ``to`` (or tomorrow, nothing opens later).
Positions opened in the period add one read of the symbol list (6.1, cached for
``symbols_cache_seconds``), which ranks them by category and asset class; accounts
that opened nothing in the period do not read it.
Counts are computed here independently of the connector.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from brokergraph_ctrader.sandbox import CTraderSandbox

from gateway.auth import Role
from gateway.testing import TestGateway

from .conftest import account_gid, delta, open_accounts

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
WINDOW = timedelta(days=2)
LOOKBACK = timedelta(days=90)  # the connector's default deals_lookback_days
ANALYTICS = """
  analytics(from: $from, to: $to) {
    realizedPnl { amount currency } wins losses openVolume
    mostTradedSymbols { symbol volume deals }
    copySubAccounts { accountId balance { amount } }
  }"""
ONE = (
    """query($id: ID!, $from: DateTime!, $to: DateTime!) { account(id: $id) {
    externalId balance { amount } positions { externalId volume }"""
    + ANALYTICS
    + "} }"
)
# The page leaves out the analytics' lists: fifty of each would pass the cost limit.
PAGE = """query($code: String!, $from: DateTime!, $to: DateTime!) {
  accounts(partnerCode: $code, first: 50) { edges { node {
    externalId balance { amount } positions { externalId volume }
    analytics(from: $from, to: $to) { realizedPnl { amount } wins losses openVolume }
  } } } }"""
SUBACCOUNTS = "GET /v2/webserv/traders/{login}/subaccounts"
CLOSED = "GET /v2/webserv/closedPositions"
SYMBOLS = "GET /v2/webserv/symbols"
SINGLE_READ_LIMIT = 3  # the connector's default single_read_limit


def windows(start: datetime, end: datetime) -> int:
    """2-day windows aligned on even epoch days that ``[start, end)`` touches."""
    current = EPOCH + WINDOW * ((start - EPOCH) // WINDOW)
    count = 0
    while current < end:
        count += 1
        current += WINDOW
    return count


def period_windows(sandbox: CTraderSandbox, login: int, start: datetime, end: datetime) -> int:
    """The windows one account's period needs: from the look-back (or the account's
    registration, if later) to ``end`` (or tomorrow, if earlier)."""
    registered = datetime.fromtimestamp(sandbox.state.traders[login].registration_ms / 1000, UTC)
    return windows(
        max(start - LOOKBACK, registered), min(end, datetime.now(UTC) + timedelta(days=1))
    )


def window_starts(
    sandbox: CTraderSandbox, login: int, start: datetime, end: datetime
) -> set[datetime]:
    """The starts of the windows :func:`period_windows` counts."""
    registered = datetime.fromtimestamp(sandbox.state.traders[login].registration_ms / 1000, UTC)
    first, last = max(start - LOOKBACK, registered), min(end, datetime.now(UTC) + timedelta(days=1))
    current = EPOCH + WINDOW * ((first - EPOCH) // WINDOW)
    found = set()
    while current < last:
        found.add(current)
        current += WINDOW
    return found


def page_window_calls(
    sandbox: CTraderSandbox, logins: list[int], start: datetime, end: datetime
) -> int:
    """closedPositions calls of a page whose accounts read their windows together: a
    window wanted by more than SINGLE_READ_LIMIT accounts is one call without login,
    otherwise one call per account."""
    wanted: Counter[datetime] = Counter()
    for login in logins:
        wanted.update(window_starts(sandbox, login, start, end))
    return sum(1 if n > SINGLE_READ_LIMIT else n for n in wanted.values())


async def cold_and_warm(
    gateway: TestGateway, sandbox: CTraderSandbox, query: str, variables: dict[str, Any]
) -> tuple[dict[str, Any], Counter[str]]:
    """The answer of ``query`` on an empty cache and its upstream calls; asked again,
    it must cost nothing."""
    await gateway.clear_cache()
    before = Counter(sandbox.calls)
    cold = await gateway.query(query, variables)
    assert "errors" not in cold, cold["errors"][:1]
    calls = delta(before, sandbox.calls)
    before = Counter(sandbox.calls)
    assert await gateway.query(query, variables) == cold
    assert delta(before, sandbox.calls) == {}
    return cold, calls


async def test_one_account_costs_its_windows_and_no_second_read_of_what_the_page_holds(
    gateway: TestGateway, sandbox: CTraderSandbox
) -> None:
    start, end = datetime(2026, 10, 16, tzinfo=UTC), datetime(2026, 11, 15, tzinfo=UTC)
    variables = {"id": account_gid("9000001"), "from": start.isoformat(), "to": end.isoformat()}
    await gateway.query(ONE, variables)  # the manager's token: not part of the count
    body, calls = await cold_and_warm(gateway, sandbox, ONE, variables)
    expected_windows = period_windows(sandbox, 9000001, start, end)
    assert expected_windows == 60  # 90 + 30 days, starting on an even epoch day
    assert calls == {
        # the account (its loader) and its two Copy sub-accounts (4.4's answer, read
        # one by one): analytics reads no trader of its own
        "GET /v2/webserv/traders/{login}": 3,
        "GET /v2/webserv/openPositions": 1,  # the positions loader's; analytics joins it
        SUBACCOUNTS: 1,
        CLOSED: expected_windows,
        # the symbol list, for the category and asset-class rankings (once per TTL)
        SYMBOLS: 1,
    }
    analytics = body["data"]["account"]["analytics"]
    truth = [d for d in sandbox.state.deals if d.login == 9000001 and start <= d.closed_at < end]
    per_position: dict[int, Decimal] = defaultdict(Decimal)  # win/loss is per position
    for d in truth:
        per_position[d.position_id] += d.pnl
    assert analytics["wins"] + analytics["losses"] == sum(1 for v in per_position.values() if v)
    assert sum(s["deals"] for s in analytics["mostTradedSymbols"]) == len(truth)


async def test_fifty_accounts_cost_their_windows_and_one_read_of_balances_and_positions(
    gateway: TestGateway, sandbox: CTraderSandbox
) -> None:
    logins = await open_accounts(sandbox, 50)
    store = gateway.services.store
    await store.upsert_partner("CALLS-050", broker="demo-broker", display_name="Calls")
    for login in logins:
        await store.link("CALLS-050", "ctrader", "account", login)
    # A period reaching today: each account's windows run from its registration on.
    end = datetime.now(UTC).replace(microsecond=0)
    start = end - timedelta(days=30)
    variables = {"code": "CALLS-050", "from": start.isoformat(), "to": end.isoformat()}
    body, calls = await cold_and_warm(gateway, sandbox, PAGE, variables)
    edges = body["data"]["accounts"]["edges"]
    assert sorted(e["node"]["externalId"] for e in edges) == sorted(logins)
    expected_windows = sum(period_windows(sandbox, int(login), start, end) for login in logins)
    assert 50 <= expected_windows <= 100  # one or two windows each: opened today
    # ... read together: one call per window for the whole page (was one per account)
    page_calls = page_window_calls(sandbox, [int(login) for login in logins], start, end)
    assert 1 <= page_calls <= 2
    assert calls == {
        "GET /v2/webserv/traders/": 1,  # every balance in one list call (4.3)
        "GET /v2/webserv/openPositions": 1,  # every account's positions in one call
        SUBACCOUNTS: 50,
        CLOSED: page_calls,
        # nothing opened in the period: no symbol list
    }
    for edge in edges:
        analytics = edge["node"]["analytics"]
        assert (analytics["wins"], analytics["losses"]) == (0, 0)
        assert Decimal(analytics["openVolume"]) == 0


async def test_a_period_before_the_account_existed_reads_no_window(
    gateway: TestGateway, sandbox: CTraderSandbox
) -> None:
    (login,) = await open_accounts(sandbox, 1)
    store = gateway.services.store
    await store.upsert_partner("CALLS-001", broker="demo-broker", display_name="Calls")
    await store.link("CALLS-001", "ctrader", "account", login)
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(days=10)
    start = end - timedelta(days=30)
    assert period_windows(sandbox, int(login), start, end) == 0
    variables = {"id": account_gid(login), "from": start.isoformat(), "to": end.isoformat()}
    _, calls = await cold_and_warm(gateway, sandbox, ONE, variables)
    assert CLOSED not in calls
    assert calls == {
        "GET /v2/webserv/traders/{login}": 1,
        "GET /v2/webserv/openPositions": 1,
        SUBACCOUNTS: 1,
    }


def overview(login: int, alias: str = "", positions: bool = True) -> str:
    """An overview of one account: its balance, positions (unless not) and analytics
    of 2026-10-16..11-15 (literal: the cost is exact)."""
    held = "positions { externalId volume }" if positions else ""
    return f"""{alias}account(id: "{account_gid(login)}") {{
      balance {{ amount }} {held}
      analytics(from: "2026-10-16T00:00:00Z", to: "2026-11-15T00:00:00Z") {{
        realizedPnl {{ amount currency }} wins losses mostTradedSymbols {{ symbol volume deals }}
        mostOpened(level: CATEGORY) {{ name positions share }}
      }} }}"""


@pytest.mark.parametrize("positions", [True, False], ids=["with-positions", "analytics-only"])
async def test_accounts_with_full_history_read_each_window_once_for_the_page(
    gateway: TestGateway, sandbox: CTraderSandbox, positions: bool
) -> None:
    """Four accounts trading since May, in one query: each of the 60 windows is one
    call without ``login`` (split by login), not four; every answer is the one the
    account gets alone (each window read with its ``login``)."""
    logins = [9000001, 9000002, 9000003, 9000004]
    start, end = datetime(2026, 10, 16, tzinfo=UTC), datetime(2026, 11, 15, tzinfo=UTC)
    token = gateway.issue(Role.ADMIN, subject=f"analytics-calls-four-{positions}")
    await gateway.clear_cache()
    before = Counter(sandbox.calls)
    page = "query {" + " ".join(overview(login, f"a{login}: ", positions) for login in logins) + "}"
    body = await gateway.query(page, None, token)
    assert "errors" not in body, body["errors"][:1]
    calls = delta(before, sandbox.calls)
    # The page's open positions in one call, by the positions loader or, without a
    # positions field, by the analytics' reads starting together (was one per account).
    assert calls["GET /v2/webserv/openPositions"] == 1
    per_account = sum(period_windows(sandbox, login, start, end) for login in logins)
    assert per_account == 4 * 60  # what the accounts read one by one
    assert calls[CLOSED] == page_window_calls(sandbox, logins, start, end) == 60
    # Alone, each account reads its own windows with its login, and answers the same.
    for login in logins:
        await gateway.clear_cache()
        before = Counter(sandbox.calls)
        alone = await gateway.query("query {" + overview(login, "", positions) + "}", None, token)
        assert "errors" not in alone, alone["errors"][:1]
        assert delta(before, sandbox.calls)[CLOSED] == 60
        assert alone["data"]["account"]["analytics"] == body["data"][f"a{login}"]["analytics"]
