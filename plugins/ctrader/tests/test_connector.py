"""The client and connector against the real sandbox (real sockets, no mocks).

Pure helpers (money, CSV, the error table) are checked first; then the connector
over HTTP: token handling, error mapping, the batched-read bounds, exact money,
deals split into windows, the five analytics against the sandbox's own truth,
money movements, provisioning (including resumption) and account updates.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from brokergraph_ctrader.client import ERRORS, error_for, md5_hex
from brokergraph_ctrader.connector import CTraderConnector
from brokergraph_ctrader.csvwire import (
    format_timestamp,
    parse_closed_positions,
    parse_open_positions,
)
from brokergraph_ctrader.money import (
    check_precision,
    from_scaled,
    leverage_from_cents,
    leverage_to_cents,
    to_scaled,
    wire_amount,
)
from brokergraph_ctrader.sandbox import CTraderSandbox
from brokergraph_ctrader.settings import CTraderSettings

from gateway.contract import (
    AccountStatus,
    BalanceOperationKind,
    Conflict,
    CreateTraderRequest,
    DeactivateTraderRequest,
    InsufficientFunds,
    InvalidInput,
    MoneyMovement,
    NotFound,
    OpenAccountRequest,
    ProtocolError,
    RateLimited,
    ReactivateTraderRequest,
    SettingsError,
    TraderStatus,
    UpdateAccountRequest,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
    exact_json_dumps,
)
from gateway.testing import new_key, open_connector

from .conftest import delta, writes

PERIOD = (datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC))


def _move(account: str, amount: str, key: str | None = None) -> MoneyMovement:
    return MoneyMovement(
        account_id=account, amount=Decimal(amount), idempotency_key=key or new_key()
    )


# --------------------------------------------------------------------------- pure helpers


def test_scaled_money_is_exact() -> None:
    assert from_scaled(1234512, 2) == Decimal("12345.12")
    assert str(from_scaled(1234512, 2)) == "12345.12"
    assert from_scaled(49601088, 8) == Decimal("0.49601088")
    assert from_scaled("00", 2) == 0  # the docs' own example sends a string
    assert to_scaled(Decimal("12345.12"), 2) == 1234512
    assert to_scaled(Decimal("0.00000001"), 8) == 1
    with pytest.raises(ProtocolError):
        from_scaled(12.5, 2)  # a float would already have lost digits
    with pytest.raises(InvalidInput):
        to_scaled(Decimal("1.005"), 2)


def test_precision_is_checked_against_money_digits() -> None:
    assert check_precision(Decimal("12.3400"), 2) == Decimal("12.3400")  # 2 significant
    assert check_precision(Decimal("0.00000001"), 8) == Decimal("0.00000001")
    with pytest.raises(InvalidInput) as raised:
        check_precision(Decimal("12.345"), 2)
    assert raised.value.field == ("amount",)
    assert raised.value.details == {"moneyDigits": 2}
    assert wire_amount(Decimal("100"), 2) == "100"
    assert wire_amount(Decimal("123.450"), 2) == "123.45"


def test_leverage_travels_in_cents() -> None:
    assert leverage_from_cents(10000) == Decimal(100)
    assert str(leverage_from_cents(10000)) == "100"
    assert leverage_from_cents(3333) == Decimal("33.33")
    assert leverage_to_cents(Decimal("33.33")) == 3333
    with pytest.raises(InvalidInput):
        leverage_to_cents(Decimal("33.333"))
    with pytest.raises(InvalidInput):
        leverage_to_cents(Decimal(0))


def test_json_body_carries_decimals_as_exact_numbers() -> None:
    body = {"preciseAmount": Decimal("123.45"), "login": 1, "nested": [Decimal("0.00000001")]}
    assert exact_json_dumps(body) == b'{"preciseAmount":123.45,"login":1,"nested":[0.00000001]}'


def test_csv_grids_are_read_by_header_name() -> None:
    # Columns reordered, one unknown column added: still parsed by name.
    text = (
        "symbol,login,extra,positionId,openTimestamp,entryPrice,direction,volume,commission,swap\r\n"
        "EURUSD,9013206,x,4325443,2020-08-28T05:35:37.682,1.18657,BUY,1000.00,1.69,2.54\r\n"
    )
    (row,) = parse_open_positions(text)
    assert row.login == "9013206"
    assert row.symbol == "EURUSD"
    assert row.volume == Decimal("1000.00")
    assert row.entry_price == Decimal("1.18657")
    assert row.opened_at == datetime(2020, 8, 28, 5, 35, 37, 682000, tzinfo=UTC)
    closed = (
        "login,positionId,dealId,openTimestamp,closeTimestamp,entryPrice,closePrice,direction,"
        "volume,symbol,commission,swap,pnl,depositConversionRate,usdConversionRate,bookType,"
        "stake,spreadBetting\n"
        "9013206,6101,4690813,2018-03-19T13:44:21.224,2020-01-02T09:01:53.613,0.69999,0.70132,"
        "BUY,1000.00,AUD/USD,0.01,142.74,76.17,0.96911,0.70132,BOOK_B,0.00,false\n"
    )
    (deal,) = parse_closed_positions(closed)
    assert (deal.deal_id, deal.pnl, deal.symbol) == ("4690813", Decimal("76.17"), "AUD/USD")
    assert parse_open_positions("") == []
    with pytest.raises(ProtocolError, match="lacks the columns"):
        parse_open_positions("login,positionId\n1,2\n")
    assert format_timestamp(datetime(2018, 1, 1, 12, 12, 12, tzinfo=UTC)) == (
        "2018-01-01T12:12:12.000"
    )


def test_error_table() -> None:
    expected = {
        "TRADER_NOT_FOUND": NotFound,
        "NOT_ENOUGH_MONEY": InsufficientFunds,
        "CHANGE_BALANCE_BAD_AMOUNT": InvalidInput,
        "INVALID_REQUEST": InvalidInput,
        "TRADER_GROUP_NOT_FOUND": InvalidInput,
        "CH_BROKER_NOT_FOUND": InvalidInput,
        "NOT_ENOUGH_RIGHTS": UpstreamRejected,
        "REQUEST_FREQUENCY_EXCEEDED": RateLimited,
    }
    for code, cls in expected.items():
        error = error_for(400, code)
        assert type(error) is cls, code
        assert error.details["vendorCode"] == code
        assert code in ERRORS.codes
    assert error_for(400, "TRADER_GROUP_NOT_FOUND").field == ("group",)
    assert type(error_for(503, "UNKNOWN_ERROR")) is UpstreamUnavailable
    assert type(error_for(500, None)) is UpstreamUnavailable
    assert isinstance(error_for(429, None), RateLimited)
    assert type(error_for(400, "SOMETHING_NEW")) is UpstreamRejected
    # A vendor description never reaches the client-visible message.
    assert "description" not in error_for(400, "INVALID_REQUEST").message


def test_settings_refuse_typos_and_take_a_digits_login() -> None:
    section = {"url": "https://x", "login": "30017", "password": "p", "broker_name": "B"}
    settings = CTraderSettings.from_section("ctrader", section)
    assert (settings.login, settings.default_currency, settings.is_live) == (30017, "USD", True)
    with pytest.raises(
        SettingsError, match=r"\[connectors.ctrader\] unknown keys \['timout_seconds'\]"
    ):
        CTraderSettings.from_section("ctrader", {**section, "timout_seconds": 5})
    with pytest.raises(SettingsError, match="login"):
        CTraderSettings.from_section("ctrader", {**section, "login": "manager"})
    with pytest.raises(SettingsError, match="broker_name is required"):
        CTraderSettings.from_section(
            "ctrader", {k: v for k, v in section.items() if k != "broker_name"}
        )


# --------------------------------------------------------------------------- transport


async def test_token_is_fetched_once_and_again_when_stale(tmp_path: Path) -> None:
    async with (
        CTraderSandbox() as sandbox,
        open_connector(CTraderConnector, sandbox.connector_settings(), tmp_path) as connector,
    ):
        await connector.get_accounts(["9000001"])
        await connector.get_accounts(["9000002"])
        assert sandbox.calls["POST /v2/webserv/managers/token"] == 1
        # cTrader kills the held token mid-session (as it does on a manager password
        # change); the connector's credentials are still good: one new login.
        sandbox.revoke_tokens()
        reads = sandbox.calls["GET /v2/webserv/traders/{login}"]
        (account,) = await connector.get_accounts(["9000001"])
        assert account is not None
        assert sandbox.calls["POST /v2/webserv/managers/token"] == 2
        assert sandbox.calls["GET /v2/webserv/traders/{login}"] == reads + 2  # refused, repeated
        await connector.get_accounts(["9000002"])
        assert sandbox.calls["POST /v2/webserv/managers/token"] == 2  # the new token is kept


async def test_wrong_manager_password_is_upstream_rejected(
    sandbox: CTraderSandbox, tmp_path: Path
) -> None:
    settings = {**sandbox.connector_settings(), "password": "not-the-password"}
    async with open_connector(CTraderConnector, settings, tmp_path) as stranger:
        with pytest.raises(UpstreamRejected):
            await stranger.get_accounts(["9000001"])
        health = await stranger.health()
        assert health.status.value == "DOWN"


async def test_upstream_failures_map_to_gateway_errors(
    sandbox: CTraderSandbox, connector: CTraderConnector, tmp_path: Path
) -> None:
    await connector.health()  # holds a token
    sandbox.fail_next(1, 503)
    with pytest.raises(UpstreamUnavailable):
        await connector.get_accounts(["9000001"])
    sandbox.fail_next(1, 500)
    with pytest.raises(UpstreamUnavailable):
        await connector.get_positions(["9000001"])
    with pytest.raises(NotFound):
        await connector.get_deals("8999999", *PERIOD)
    settings = {**sandbox.connector_settings(), "timeout_seconds": 0.05}
    tokens = sandbox.calls["POST /v2/webserv/managers/token"]
    async with open_connector(CTraderConnector, settings, tmp_path) as impatient:
        sandbox.latency_seconds = 0.3
        try:
            with pytest.raises(UpstreamTimeout):
                await impatient.get_accounts(["9000001"])
        finally:
            sandbox.latency_seconds = 0.0
    # The abandoned token request still sleeps in the sandbox: let it be counted now,
    # not in a later test's call counts (bounded: it may never have been read at all).
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(5):
            while sandbox.calls["POST /v2/webserv/managers/token"] == tokens:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
    limit = sandbox.rate_limit_per_hour
    sandbox.rate_limit_per_hour = 0
    try:
        with pytest.raises(RateLimited) as raised:
            await connector.deposit(_move("9000001", "1.00"))
        assert raised.value.details["vendorCode"] == "REQUEST_FREQUENCY_EXCEEDED"
        # GETs are not rate limited.
        assert (await connector.get_accounts(["9000001"]))[0] is not None
    finally:
        sandbox.rate_limit_per_hour = limit


# --------------------------------------------------------------------------- reads


async def test_batched_reads_and_their_bounds(
    sandbox: CTraderSandbox, connector: CTraderConnector
) -> None:
    await connector.health()  # the manager token is fetched outside the counted part
    before = Counter(sandbox.calls)
    found = await connector.get_accounts(["9000001", "42", "9000003", "x", "9000001"])
    assert [a.id if a else None for a in found] == ["9000001", None, "9000003", None, "9000001"]
    assert delta(before, sandbox.calls) == {"GET /v2/webserv/traders/{login}": 3}

    before = Counter(sandbox.calls)
    many = [str(login) for login in range(9000001, 9000008)] + ["123"]
    found = await connector.get_accounts(many)
    assert [a is not None for a in found] == [True] * 7 + [False]
    assert delta(before, sandbox.calls) == {"GET /v2/webserv/traders/": 1}

    before = Counter(sandbox.calls)
    lists = await connector.get_positions(["9000001", "9000002", "9000003", "77"])
    assert delta(before, sandbox.calls) == {"GET /v2/webserv/openPositions": 1}
    assert lists[3] == []
    for login, positions in zip(["9000001", "9000002", "9000003"], lists, strict=False):
        assert positions, f"{login} should hold seeded positions"
        assert all(p.account_id == login for p in positions)


async def test_the_trader_list_pages_backwards_on_has_more(
    sandbox: CTraderSandbox, connector: CTraderConnector
) -> None:
    await connector.health()
    sandbox.list_chunk_size = 3
    try:
        before = Counter(sandbox.calls)
        wanted = [str(login) for login in range(9000001, 9000008)]
        found = await connector.get_accounts(wanted)
        assert [a.id if a else None for a in found] == wanted
        pages = delta(before, sandbox.calls)["GET /v2/webserv/traders/"]
        assert pages == -(-len(sandbox.state.traders) // 3)  # every trader, 3 per page
    finally:
        sandbox.list_chunk_size = 100_000


async def test_accounts_carry_exact_money_and_the_mapping(
    sandbox: CTraderSandbox, connector: CTraderConnector
) -> None:
    trader = sandbox.state.traders[9000004]  # BTC, moneyDigits 8
    (account,) = await connector.get_accounts(["9000004"])
    assert account is not None
    assert account.currency == "BTC"
    assert account.balance is not None
    assert account.credit is not None
    assert account.balance.amount == Decimal(trader.balance).scaleb(-8)
    assert account.credit.amount == Decimal(trader.non_withdrawable_bonus).scaleb(-8)
    assert account.leverage == Decimal(trader.leverage_in_cents) / 100
    assert account.status is AccountStatus.FULL_TRADING
    assert account.trader_id == "1003"  # from the gateway's links
    assert account.is_live is False  # the sandbox is a demo environment
    assert account.raw is not None
    assert account.raw["moneyDigits"] == 8


async def test_traders_come_from_links_and_records(connector: CTraderConnector) -> None:
    traders = await connector.get_traders(["1001", "5555", "1002"])
    assert [t.id if t else None for t in traders] == ["1001", None, "1002"]
    lists = await connector.get_trader_accounts(["1001", "5555"])
    assert sorted(a.id for a in lists[0]) == ["9000001", "9000002"]
    assert all(a.trader_id == "1001" for a in lists[0])
    assert list(lists[1]) == []


def _truth_deals(sandbox: CTraderSandbox, login: int, start: datetime, end: datetime) -> list[Any]:
    return [d for d in sandbox.state.deals if d.login == login and start <= d.closed_at < end]


async def test_the_five_analytics_match_the_sandbox(
    sandbox: CTraderSandbox, connector: CTraderConnector
) -> None:
    start, end = PERIOD
    analytics = await connector.get_analytics("9000001", start, end)
    truth = _truth_deals(sandbox, 9000001, start, end)
    # a. realised P&L of the period, exact
    assert analytics.realized_pnl.amount == sum((d.pnl for d in truth), Decimal(0))
    assert analytics.realized_pnl.currency == "USD"
    # b. most-traded symbols by volume (and deal count) of the period
    volumes: dict[str, Decimal] = {}
    for d in truth:
        volumes[d.symbol] = volumes.get(d.symbol, Decimal(0)) + d.volume
    top = analytics.most_traded_symbols[0]
    assert top.volume == max(volumes.values())
    assert {s.symbol: s.volume for s in analytics.most_traded_symbols} == volumes
    assert sum(s.deals for s in analytics.most_traded_symbols) == len(truth)
    # c. total volume of the open positions
    open_volume = sum((p.volume for p in sandbox.state.positions if p.login == 9000001), Decimal(0))
    assert analytics.open_volume == open_volume
    # d. Copy sub-accounts' balance and equity
    subs = {s.account_id: s for s in analytics.copy_sub_accounts}
    assert set(subs) == {"9000005", "9000006"}
    for login, sub in subs.items():
        assert sub.balance.amount == Decimal(sandbox.state.traders[int(login)].balance).scaleb(-2)
        assert sub.equity is not None
    # e. wins, losses and their ratio
    per_position: dict[int, Decimal] = defaultdict(Decimal)  # win/loss is per position
    for d in truth:
        per_position[d.position_id] += d.pnl
    assert analytics.wins == sum(1 for v in per_position.values() if v > 0)
    assert analytics.losses == sum(1 for v in per_position.values() if v < 0)
    exact = Decimal(analytics.wins) / (analytics.wins + analytics.losses)
    assert analytics.win_ratio == exact.quantize(Decimal("0.0001"))


# --------------------------------------------------------------------------- money


async def _balance(connector: CTraderConnector, login: str, field: str = "balance") -> Decimal:
    connector_accounts = await connector.get_accounts([login])
    account = connector_accounts[0]
    assert account is not None
    money = getattr(account, field)
    assert money is not None
    amount: Decimal = money.amount
    return amount


async def test_deposit_withdraw_are_exact_idempotent_and_recorded(
    sandbox: CTraderSandbox, connector: CTraderConnector
) -> None:
    before = await _balance(connector, "9000003")
    started = datetime.now(UTC)
    key = new_key()
    deposit = await connector.deposit(_move("9000003", "100.10", key))
    assert deposit.kind is BalanceOperationKind.DEPOSIT
    assert deposit.amount.amount == Decimal("100.10")
    assert deposit.amount.currency == "USD"
    assert deposit.external_id == key
    replay = await connector.deposit(_move("9000003", "100.10", key))
    assert replay.id == deposit.id
    assert replay.at == deposit.at
    assert await _balance(connector, "9000003") == before + Decimal("100.10")
    withdrawal = await connector.withdraw(_move("9000003", "0.10"))
    assert withdrawal.kind is BalanceOperationKind.WITHDRAWAL
    assert await _balance(connector, "9000003") == before + 100
    operations = await connector.get_balance_operations(
        "9000003", started - timedelta(seconds=1), datetime.now(UTC) + timedelta(seconds=1)
    )
    assert [(o.id, o.kind) for o in operations] == [
        (deposit.id, BalanceOperationKind.DEPOSIT),
        (withdrawal.id, BalanceOperationKind.WITHDRAWAL),
    ]


async def test_bad_amounts_never_reach_changebalance(
    sandbox: CTraderSandbox, connector: CTraderConnector
) -> None:
    await connector.get_accounts(["9000001", "9000004"])  # moneyDigits are known from here
    before = Counter(sandbox.calls)
    with pytest.raises(InvalidInput) as raised:
        await connector.deposit(_move("9000001", "1.001"))  # USD: 2 digits
    assert raised.value.field == ("amount",)
    with pytest.raises(InvalidInput):
        await connector.change_credit(_move("9000001", "-0.001"))
    with pytest.raises(InvalidInput):
        await connector.deposit(_move("9000001", "0"))
    with pytest.raises(NotFound):
        await connector.deposit(_move("not-a-login", "1"))
    assert delta(before, sandbox.calls) == {}
    # 8 decimals are fine on a BTC account.
    operation = await connector.deposit(_move("9000004", "0.00000001"))
    assert operation.amount.amount == Decimal("0.00000001")


async def test_withdrawal_beyond_free_funds_moves_nothing(connector: CTraderConnector) -> None:
    before = await _balance(connector, "9000002")
    with pytest.raises(InsufficientFunds) as raised:
        await connector.withdraw(_move("9000002", str(before * 10 + 1)))
    assert raised.value.details["vendorCode"] == "NOT_ENOUGH_MONEY"
    assert await _balance(connector, "9000002") == before


async def test_credit_and_bonus_move_their_own_buckets(connector: CTraderConnector) -> None:
    credit, bonus = (
        await _balance(connector, "9000001", "credit"),
        await _balance(connector, "9000001", "bonus"),
    )
    added = await connector.change_credit(_move("9000001", "50"))
    assert added.kind is BalanceOperationKind.CREDIT_IN
    assert await _balance(connector, "9000001", "credit") == credit + 50
    removed = await connector.change_credit(_move("9000001", "-20.5"))
    assert removed.kind is BalanceOperationKind.CREDIT_OUT
    assert removed.amount.amount == Decimal("20.50")  # the size; the kind gives the direction
    assert await _balance(connector, "9000001", "credit") == credit + Decimal("29.5")
    given = await connector.change_bonus(_move("9000001", "7.25"))
    assert given.kind is BalanceOperationKind.BONUS_IN
    taken = await connector.change_bonus(_move("9000001", "-7.25"))
    assert taken.kind is BalanceOperationKind.BONUS_OUT
    assert await _balance(connector, "9000001", "bonus") == bonus
    with pytest.raises(InsufficientFunds):
        await connector.change_bonus(_move("9000001", "-1000000"))


# --------------------------------------------------------------------------- provisioning


def _request(email: str, **kwargs: Any) -> CreateTraderRequest:
    return CreateTraderRequest(partner_code="DEMO-001", email=email, name="Ann Example", **kwargs)


async def test_create_trader_checks_group_currency_and_options_before_writing(
    sandbox: CTraderSandbox, connector: CTraderConnector
) -> None:
    before = Counter(sandbox.calls)
    with pytest.raises(InvalidInput) as raised:
        await connector.create_trader(_request("nogroup@example.com", group="NoSuchGroup"))
    assert raised.value.field == ("group",)
    with pytest.raises(InvalidInput) as raised:
        await connector.create_trader(_request("nocur@example.com", currency="XYZ"))
    assert raised.value.field == ("currency",)
    with pytest.raises(InvalidInput):
        await connector.create_trader(_request("lev@example.com", leverage=Decimal("1.005")))
    with pytest.raises(InvalidInput):
        await connector.create_trader(
            _request("opt@example.com", options={"accountType": "SOMETHING"})
        )
    assert writes(delta(before, sandbox.calls)) == 0


async def test_create_trader_runs_the_three_steps(
    sandbox: CTraderSandbox, connector: CTraderConnector
) -> None:
    result = await connector.create_trader(
        _request("three-steps@example.com", group="Pro", currency="EUR", leverage=Decimal(50))
    )
    assert result.complete
    assert [s.name for s in result.steps] == ["create-user", "create-trader", "link-user"]
    assert result.trader is not None
    assert result.trader.email == "three-steps@example.com"
    (account,) = result.accounts
    assert (account.currency, account.group, account.leverage) == ("EUR", "Pro", Decimal(50))
    assert account.trader_id == result.trader.id
    link = sandbox.state.links[int(account.id)]
    assert link.user_id == int(result.trader.id)
    assert result.steps[2].reference == str(link.ctid_trader_account_id)
    # The trader password was generated: its hash is not kept once linked.
    flows = await connector.context.store.list_flows("ctrader-create-trader")
    states = [state for _, state in flows if state["email"] == "three-steps@example.com"]
    assert states
    assert all(state["passwordHash"] is None for state in states)
    lists = await connector.get_trader_accounts([result.trader.id])
    assert [a.id for a in lists[0]] == [account.id]


async def test_create_trader_resumes_at_the_failed_link(tmp_path: Path) -> None:
    # A fresh sandbox so the hourly write limit can stop the third write exactly.
    async with (
        CTraderSandbox() as sandbox,
        open_connector(CTraderConnector, sandbox.connector_settings(), tmp_path) as connector,
    ):
        sandbox.rate_limit_per_hour = 2  # create-user, create-trader: the link is refused
        partial = await connector.create_trader(_request("resume@example.com"))
        assert not partial.complete
        assert partial.resume_token
        assert [(s.name, s.succeeded) for s in partial.steps] == [
            ("create-user", True),
            ("create-trader", True),
            ("link-user", False),
        ]
        assert partial.steps[2].message
        assert "RATE_LIMITED" in partial.steps[2].message
        # What exists upstream is reported, so the gateway links it: no orphans.
        assert partial.trader is not None
        assert len(partial.accounts) == 1
        sandbox.rate_limit_per_hour = 1000
        before = Counter(sandbox.calls)
        with pytest.raises(Conflict) as raised:  # a retry that lost the token
            await connector.create_trader(_request("resume@example.com"))
        assert raised.value.details["resumeToken"] == partial.resume_token
        assert partial.resume_token in raised.value.message
        assert writes(delta(before, sandbox.calls)) == 0
        with pytest.raises(InvalidInput):  # a token is bound to its request's email
            await connector.create_trader(
                _request("other@example.com", resume_token=partial.resume_token)
            )
        done = await connector.create_trader(
            _request("resume@example.com", resume_token=partial.resume_token)
        )
        assert done.complete
        assert done.resume_token is None
        assert [s.message for s in done.steps[:2]] == ["done in an earlier attempt"] * 2
        assert done.trader == partial.trader
        assert [a.id for a in done.accounts] == [a.id for a in partial.accounts]
        assert sandbox.calls["POST /cid/ctid/create"] == 1
        assert sandbox.calls["POST /v2/webserv/traders"] == 1
        assert sandbox.calls["POST /cid/ctid/link"] == 2
        assert sandbox.state.links[int(done.accounts[0].id)].user_id == int(done.trader.id)
        with pytest.raises(InvalidInput):
            await connector.create_trader(
                _request("resume@example.com", resume_token="ctrader-ct-unknown")
            )


async def test_a_lost_create_answer_does_not_make_a_second_trader(tmp_path: Path) -> None:
    async with (
        CTraderSandbox(latency_seconds=0.3) as sandbox,
        open_connector(CTraderConnector, sandbox.connector_settings(), tmp_path) as connector,
    ):

        async def lose_the_trader_answer() -> None:
            # Once create-user has reached cTrader's app, the next request is
            # create-trader; its answer is lost after cTrader applied it (the knob
            # acts after the latency).
            while sandbox.calls["POST /cid/ctid/create"] == 0:  # noqa: ASYNC110 (a plain counter)
                await asyncio.sleep(0.002)
            sandbox.drop_next(1, after_apply=True)

        watcher = asyncio.create_task(lose_the_trader_answer())
        partial = await connector.create_trader(_request("lost@example.com"))
        await watcher
        assert [(s.name, s.succeeded) for s in partial.steps] == [
            ("create-user", True),
            ("create-trader", False),
        ]
        assert partial.resume_token is not None
        # A lost answer leaves the outcome open; cTrader did create the trader.
        state = await connector.context.store.get_flow(partial.resume_token)
        assert state is not None
        assert state["traderAttemptedAt"] is not None
        marker = state["body"]["description"]
        (created,) = [t for t in sandbox.state.traders.values() if t.description == marker]
        sandbox.latency_seconds = 0.0
        done = await connector.create_trader(
            _request("lost@example.com", resume_token=partial.resume_token)
        )
        assert done.complete
        assert [a.id for a in done.accounts] == [str(created.login)]
        assert sandbox.calls["POST /v2/webserv/traders"] == 1  # found, not created again
        assert sandbox.state.links[created.login].user_id == int(done.trader.id)  # type: ignore[union-attr]


async def test_open_account_and_update_it_with_patch_only(
    sandbox: CTraderSandbox, connector: CTraderConnector
) -> None:
    with pytest.raises(NotFound):
        await connector.open_account(OpenAccountRequest(trader_id="424242", currency="USD"))
    account = await connector.open_account(OpenAccountRequest(trader_id="1002", currency="EUR"))
    assert account.trader_id == "1002"
    assert account.currency == "EUR"
    assert sandbox.state.links[int(account.id)].user_id == 1002
    before = Counter(sandbox.calls)
    updated = await connector.update_account(
        UpdateAccountRequest(
            account_id=account.id,
            leverage=Decimal(30),
            status=AccountStatus.CLOSE_ONLY,
            group="Pro",
        )
    )
    assert (updated.leverage, updated.status, updated.group) == (
        Decimal(30),
        AccountStatus.CLOSE_ONLY,
        "Pro",
    )
    calls = delta(before, sandbox.calls)
    assert calls["PATCH /v2/webserv/traders/{login}"] == 1
    assert "PUT /v2/webserv/traders/{login}" not in calls
    trader = sandbox.state.traders[int(account.id)]
    assert trader.deposit_currency == "EUR"  # nothing omitted was reset
    before = Counter(sandbox.calls)
    with pytest.raises(InvalidInput) as raised:
        await connector.update_account(UpdateAccountRequest(account_id=account.id, group="Nope"))
    assert raised.value.field == ("group",)
    with pytest.raises(InvalidInput):
        await connector.update_account(
            UpdateAccountRequest(account_id=account.id, status=AccountStatus.TERMINATED)
        )
    assert writes(delta(before, sandbox.calls)) == 0
    with pytest.raises(NotFound):
        await connector.update_account(
            UpdateAccountRequest(account_id="8999999", leverage=Decimal(10))
        )


async def test_deactivate_and_reactivate_restore_access_rights(
    sandbox: CTraderSandbox, connector: CTraderConnector
) -> None:
    result = await connector.create_trader(_request("onoff@example.com"))
    assert result.trader is not None
    user = result.trader.id
    login = result.accounts[0].id
    await connector.update_account(
        UpdateAccountRequest(account_id=login, status=AccountStatus.NO_TRADING)
    )
    off = await connector.deactivate_trader(DeactivateTraderRequest(trader_id=user))
    assert off.trader is not None
    assert off.trader.status is TraderStatus.DISABLED
    assert sandbox.state.traders[int(login)].access_rights == "NO_LOGIN"
    on = await connector.reactivate_trader(ReactivateTraderRequest(trader_id=user))
    assert on.trader is not None
    assert on.trader.status is TraderStatus.ACTIVE
    assert sandbox.state.traders[int(login)].access_rights == "NO_TRADING"  # as it was


async def test_copy_sub_accounts(sandbox: CTraderSandbox, connector: CTraderConnector) -> None:
    subs = await connector.get_copy_sub_accounts("9000001")
    assert sorted(s.account_id for s in subs) == ["9000005", "9000006"]
    assert await connector.get_copy_sub_accounts("9000003") == []
    with pytest.raises(NotFound):
        await connector.get_copy_sub_accounts("8999999")


async def test_link_conflict_is_typed() -> None:
    assert isinstance(error_for(400, "TRADER_ALREADY_LINKED"), Conflict)
    assert md5_hex("manager-pass") == md5_hex("manager-pass").lower()
