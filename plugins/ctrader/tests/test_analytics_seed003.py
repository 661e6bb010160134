"""Seed 003 analytics: win/loss per position (not per closing deal) and the open
volume per symbol in lots and notional, checked against the sandbox's own REST reads."""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
from brokergraph_ctrader.analytics import Opening, open_volumes, summarize
from brokergraph_ctrader.client import md5_hex
from brokergraph_ctrader.sandbox import CTraderSandbox
from brokergraph_ctrader.sandbox.market import BY_NAME

from gateway.contract import Deal, Money, OrderSide, Position
from gateway.testing import TestGateway

from .conftest import account_gid

START = datetime(2026, 1, 1, tzinfo=UTC)
END = datetime(2026, 2, 1, tzinfo=UTC)


def _deal(deal_id: str, position_id: str | None, pnl: str) -> Deal:
    return Deal(
        platform="ctrader",
        id=deal_id,
        account_id="1",
        symbol="EURUSD",
        side=OrderSide.SELL,
        volume=Decimal(1000),
        price=Decimal("1.1"),
        executed_at=datetime(2026, 1, 10, tzinfo=UTC),
        position_id=position_id,
        realized_pnl=Money(Decimal(pnl), "USD"),
    )


def test_position_closed_in_two_deals_is_one_win() -> None:
    deals = [
        _deal("d1", "P1", "5"),
        _deal("d2", "P1", "3"),  # second partial close of the same position
        _deal("d3", "P2", "4"),
        _deal("d4", "P2", "-6"),  # net loss over the position
        _deal("d5", None, "2"),  # no position id: its own position
    ]
    a = summarize(account_id="1", currency="USD", start=START, end=END, deals=deals, positions=[])
    assert (a.wins, a.losses) == (2, 1)
    assert a.realized_pnl.amount == Decimal(8)


# --------------------------------------------------- the gateway against the sandbox's REST

QUERY = """query($id: ID!, $from: DateTime!, $to: DateTime!) { account(id: $id) {
  analytics(from: $from, to: $to) {
    wins losses openVolume
    volumeBySymbol { symbol volume positions lots notional { amount currency } }
    mostOpenedSymbols { symbol positions volume }
  } } }"""
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
WINDOW = timedelta(days=2)
LOOKBACK = timedelta(days=90)  # the connector's default deals_lookback_days


def _utc(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp).replace(tzinfo=UTC)


async def _rest_grids(
    sandbox: CTraderSandbox, login: int, start: datetime, end: datetime
) -> tuple[list[dict[str, str]], list[dict[str, str]], str]:
    """The account's open positions (4.12), its closing deals of positions opened from
    the look-back before ``start`` to ``end`` (4.13, 2-day windows) and its deposit
    currency (4.2), read over WebServices as any client would, without the connector."""
    settings = sandbox.connector_settings()
    async with httpx.AsyncClient(
        base_url=sandbox.url,
        headers={"Accept": "application/json"},
        verify=sandbox.client_ssl_context(),
    ) as http:
        reply = await http.post(
            "/v2/webserv/managers/token",
            json={"login": settings["login"], "hashedPassword": md5_hex(settings["password"])},
        )
        token = {"token": reply.json()["webservToken"]}
        trader = (await http.get(f"/v2/webserv/traders/{login}", params=token)).json()
        reply = await http.get("/v2/webserv/openPositions", params={**token, "login": login})
        open_rows = list(csv.DictReader(io.StringIO(reply.text)))
        closed_rows: list[dict[str, str]] = []
        current = EPOCH + WINDOW * ((start - LOOKBACK - EPOCH) // WINDOW)
        while current < end:
            params = {
                **token,
                "login": login,
                "from": current.strftime("%Y-%m-%dT%H:%M:%S.000"),
                "to": (current + WINDOW).strftime("%Y-%m-%dT%H:%M:%S.000"),
            }
            reply = await http.get("/v2/webserv/closedPositions", params=params)
            assert reply.status_code == 200, reply.text
            closed_rows += csv.DictReader(io.StringIO(reply.text))
            current += WINDOW
    return open_rows, closed_rows, str(trader["depositCurrency"])


async def test_volumes_and_win_loss_match_the_sandbox_rest(
    gateway: TestGateway, sandbox: CTraderSandbox
) -> None:
    login = 9000001
    start, end = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)
    open_rows, all_closed, currency = await _rest_grids(sandbox, login, start, end)
    closed_rows = [r for r in all_closed if start <= _utc(r["closeTimestamp"]) < end]
    # Volumes per symbol: base units from 4.12, lots and currencies from the sandbox's
    # market (the broker's contract data, which WebServices does not serve).
    units: dict[str, Decimal] = defaultdict(Decimal)
    value: dict[str, Decimal] = defaultdict(Decimal)
    count: dict[str, int] = defaultdict(int)
    for row in open_rows:
        units[row["symbol"]] += Decimal(row["volume"])
        value[row["symbol"]] += Decimal(row["volume"]) * Decimal(row["entryPrice"])
        count[row["symbol"]] += 1
    assert len(units) >= 2, "the seed should hold positions in several symbols"
    expected = []
    for name in sorted(units):
        symbol = BY_NAME[name]
        notional: tuple[Decimal, str] | None = None
        if symbol.quote == currency:
            notional = (value[name], currency)
        elif symbol.base == currency:
            notional = (units[name], currency)
        expected.append((name, units[name], count[name], units[name] / symbol.lot_size, notional))
    # Win/loss per position: the closing deals' pnl summed by positionId.
    per_position: dict[str, Decimal] = defaultdict(Decimal)
    for row in closed_rows:
        per_position[row["positionId"]] += Decimal(row["pnl"])
    assert len(closed_rows) > len(per_position), "the seed should close a position twice"

    # Positions opened in the period, still open or since closed (by openTimestamp).
    opened_symbol: dict[str, str] = {}
    opened_volume: dict[str, Decimal] = defaultdict(Decimal)
    for row in [*open_rows, *all_closed]:
        if start <= _utc(row["openTimestamp"]) < end:
            opened_symbol[row["positionId"]] = row["symbol"]
            opened_volume[row["symbol"]] += Decimal(row["volume"])
    opened_count = Counter(opened_symbol.values())
    assert len(opened_count) >= 2, "the seed should open positions in several symbols"
    ranked = sorted(opened_count, key=lambda s: (-opened_count[s], -opened_volume[s], s))

    variables = {"id": account_gid(login), "from": start.isoformat(), "to": end.isoformat()}
    body = await gateway.query(QUERY, variables)
    assert "errors" not in body, body["errors"][:1]
    analytics = body["data"]["account"]["analytics"]
    assert analytics["wins"] == sum(1 for v in per_position.values() if v > 0)
    assert analytics["losses"] == sum(1 for v in per_position.values() if v < 0)
    got = [
        (
            v["symbol"],
            Decimal(v["volume"]),
            v["positions"],
            Decimal(v["lots"]),
            (Decimal(v["notional"]["amount"]), v["notional"]["currency"])
            if v["notional"]
            else None,
        )
        for v in analytics["volumeBySymbol"]
    ]
    assert got == expected
    assert [
        (o["symbol"], o["positions"], Decimal(o["volume"])) for o in analytics["mostOpenedSymbols"]
    ] == [(s, opened_count[s], opened_volume[s]) for s in ranked[:10]]
    # The deprecated total still sums base units across symbols, as documented.
    assert Decimal(analytics["openVolume"]) == sum(units.values(), Decimal(0))


def _position(position_id: str, symbol: str, volume: str, price: str) -> Position:
    return Position(
        platform="ctrader",
        id=position_id,
        account_id="1",
        symbol=symbol,
        side=OrderSide.BUY,
        volume=Decimal(volume),
        open_price=Decimal(price),
        opened_at=datetime(2026, 1, 10, tzinfo=UTC),
    )


def test_notional_needs_no_rate_or_is_null_and_unknown_lots_are_null() -> None:
    positions = [
        _position("1", "USDJPY", "20000", "151.320"),  # base = USD: notional is the volume
        _position("2", "GBPUSD", "10000", "1.27"),  # quote USD in a EUR account: no rate
        _position("3", "EURUSD", "5000", "1.08"),  # base = EUR
        _position("4", "GER40", "3", "18000"),  # not in the contract table
    ]
    usd = {v.symbol: v for v in open_volumes(positions, "USD")}
    assert usd["USDJPY"].lots == Decimal("0.2")
    assert usd["USDJPY"].notional == Money(Decimal(20000), "USD")
    assert usd["GBPUSD"].notional == Money(Decimal("12700.00"), "USD")
    assert usd["GER40"].lots is None
    assert usd["GER40"].notional is None
    eur = {v.symbol: v for v in open_volumes(positions, "EUR")}
    assert eur["GBPUSD"].notional is None
    assert eur["EURUSD"].notional == Money(Decimal(5000), "EUR")


def test_a_partly_closed_position_is_opened_once_with_its_whole_volume() -> None:
    at = datetime(2026, 1, 10, tzinfo=UTC)
    openings = [
        Opening("1", "EURUSD", at, Decimal(3000)),  # closed part of the open position 1
        Opening("2", "XAUUSD", at, Decimal(5)),
        Opening("3", "XAUUSD", at, Decimal(5)),
        Opening("4", "XAUUSD", datetime(2025, 12, 1, tzinfo=UTC), Decimal(5)),  # before
    ]
    positions = [_position("1", "EURUSD", "7000", "1.08")]
    a = summarize(
        account_id="1",
        currency="USD",
        start=START,
        end=END,
        deals=[],
        positions=positions,
        openings=openings,
    )
    assert [(o.symbol, o.positions, o.volume) for o in a.most_opened_symbols] == [
        ("XAUUSD", 2, Decimal(10)),
        ("EURUSD", 1, Decimal(10000)),
    ]
