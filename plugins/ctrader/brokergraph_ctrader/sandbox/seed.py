"""The seeded world: managers, groups, brokers, users, traders, links and trading history.

Everything here is deterministic for a given ``seed``: the history comes from
``random.Random`` seeded per trader.  Seeded facts (the shared contract):

* managers 30017/"manager-pass" (groups Default, Pro, Copy) and 30018/"limited-pass"
  (group Pro; broker OTHERBROKER disabled); brokers DEMOBROKER and OTHERBROKER;
  groups Default (1), Pro (2), Copy (3); environment "demo".
* users 1001, 1002, 1003; traders 9000001 (USD, Default, user 1001), 9000002 (EUR, Pro,
  user 1001), 9000003 (USD, Default, user 1002), 9000004 (BTC, Pro, user 1003),
  9000005 and 9000006 (USD, Copy, sub-accounts of 9000001), 9000007 (USD, Default,
  OTHERBROKER, no user).  Trader passwords are "trader-pass-<login>".
* 40-52 closed positions each for 9000001..9000004, opened from 2026-05-01 (no later
  than 3 days before 2026-11-15) and closed before 2026-11-15 UTC, over six symbols, wins
  and losses, about one in five closed in two deals; 2-3 open positions each, opened
  within the 5 days before 2026-11-15.  A seeded trader's balance is its first
  deposit plus the sum of its closing deals' net ``pnl``.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, Decimal

from brokergraph_ctrader.sandbox.market import SYMBOLS, Symbol, quote_rate, rate, usd_rate
from brokergraph_ctrader.sandbox.model import (
    ClosingDeal,
    Group,
    Link,
    Manager,
    Position,
    Trader,
    User,
)
from brokergraph_ctrader.sandbox.money import money_digits, to_scaled
from brokergraph_ctrader.sandbox.times import to_ms

D = Decimal
HISTORY_START = datetime(2026, 5, 1, tzinfo=UTC)
HISTORY_END = datetime(2026, 11, 15, tzinfo=UTC)
ENVIRONMENT = "demo"
BROKERS = ("DEMOBROKER", "OTHERBROKER")


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()  # noqa: S324 - the vendor's password hash


def trader_password(login: int) -> str:
    return f"trader-pass-{login}"


MANAGERS = (
    Manager(30017, md5("manager-pass"), frozenset({"Default", "Pro", "Copy"}), frozenset()),
    Manager(30018, md5("limited-pass"), frozenset({"Pro"}), frozenset({"OTHERBROKER"})),
)
GROUPS = (
    Group(1, "Default", "Retail: standard spreads, no commission"),
    Group(2, "Pro", "Professional: raw spreads plus commission"),
    Group(3, "Copy", "cTrader Copy sub-accounts"),
)

# user id, email, language, created (UTC)
USERS = [
    (1001, "anna.novak@demo.example", "EN", "2026-04-01T08:55:00"),
    (1002, "ben.okafor@demo.example", "EN", "2026-04-03T09:50:00"),
    (1003, "chen.li@other.example", "ZH", "2026-04-05T10:40:00"),
]
# login, user, currency, group, broker, leverage (cents), first deposit, credit, bonus,
# first name, last name, country, introducing broker, registered (UTC), sub-account of
TRADERS = [
    (9000001, 1001, "USD", "Default", "DEMOBROKER", 10000, "10000", "0", "0",
     "Anna", "Novak", 196, "DEMO-001", "2026-04-01T09:00:00", None),
    (9000002, 1001, "EUR", "Pro", "DEMOBROKER", 20000, "5000", "0", "25",
     "Anna", "Novak", 196, "DEMO-001", "2026-04-01T09:05:00", None),
    (9000003, 1002, "USD", "Default", "DEMOBROKER", 10000, "2500", "100", "0",
     "Ben", "Okafor", 826, "DEMO-002", "2026-04-03T10:00:00", None),
    (9000004, 1003, "BTC", "Pro", "DEMOBROKER", 5000, "0.5", "0", "0",
     "Chen", "Li", 840, "OTHER-001", "2026-04-05T11:00:00", None),
    (9000005, None, "USD", "Copy", "DEMOBROKER", 10000, "2500", "0", "0",
     "Anna", "Novak", 196, None, "2026-04-10T12:00:00", 9000001),
    (9000006, None, "USD", "Copy", "DEMOBROKER", 10000, "1200", "0", "0",
     "Anna", "Novak", 196, None, "2026-04-10T12:05:00", 9000001),
    (9000007, None, "USD", "Default", "OTHERBROKER", 10000, "750", "0", "0",
     "Dora", "Other", 8, None, "2026-04-12T08:00:00", None),
]  # fmt: skip
#: Traders with history, and the size of their trades relative to a 10,000 USD account.
HISTORY_SIZE = {9000001: D(1), 9000002: D("0.5"), 9000003: D("0.2"), 9000004: D(1)}
LAST_CONNECTION = datetime(2026, 11, 14, 18, 30, tzinfo=UTC)
FIRST_LINK_ID = 40000001
FIRST_BALANCE_HISTORY_ID = 6340001
FIRST_BONUS_HISTORY_ID = 7120001
FIRST_POSITION_ID = 5000001
FIRST_DEAL_ID = 7000001

VOLUMES = {
    "EURUSD": ("1000", "5000", "10000", "20000", "50000"),
    "GBPUSD": ("1000", "5000", "10000", "20000"),
    "USDJPY": ("1000", "5000", "10000", "20000"),
    "XAUUSD": ("1", "2", "5", "10"),
    "BTCUSD": ("0.01", "0.05", "0.1", "0.2"),
    "US500": ("1", "2", "5"),
}
#: Typical relative move of a price over one position's life.
VOLATILITY = {
    "EURUSD": 0.004,
    "GBPUSD": 0.005,
    "USDJPY": 0.005,
    "XAUUSD": 0.01,
    "BTCUSD": 0.03,
    "US500": 0.01,
}
COMMISSION_PER_SIDE = D("0.000035")  # of the USD notional
CENT = D("0.01")


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _path(symbol: Symbol, moment: datetime) -> Decimal:
    """A slow wave around the mark that fades to the mark at the end of the history."""
    span = (HISTORY_END - HISTORY_START).total_seconds()
    left = max(0.0, (HISTORY_END - moment).total_seconds()) / span
    days = (moment - HISTORY_START).total_seconds() / 86400
    wave = 0.04 * math.sin(days / 23 + symbol.id) * left
    return symbol.mark * D(f"{1 + wave:.8f}")


def _rollovers(start: datetime, end: datetime) -> int:
    """Swap nights (22:00 UTC) between two moments."""
    shift = timedelta(hours=22)
    return ((end - shift).date() - (start - shift).date()).days


@dataclass
class _Draft:
    """A position being generated: ids are given once all traders are done."""

    login: int
    symbol: Symbol
    direction: str
    volume: Decimal
    entry: Decimal
    opened_at: datetime
    deals: list[tuple[Decimal, Decimal, datetime]] = field(default_factory=list)
    swap_rate: Decimal = field(default_factory=Decimal)


@dataclass
class History:
    positions: list[Position]
    deals: list[ClosingDeal]


class _Generator:
    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.closed: list[_Draft] = []
        self.open: list[_Draft] = []

    def run(self, currencies: dict[int, str], deposits: dict[int, Decimal]) -> History:
        for login, size in HISTORY_SIZE.items():
            self._trader(login, size, currencies[login], deposits[login])
        return self._number(currencies)

    def _volume(self, rng: random.Random, symbol: Symbol, size: Decimal) -> Decimal:
        volume = (D(rng.choice(VOLUMES[symbol.name])) * size).quantize(CENT, ROUND_DOWN)
        return max(volume, CENT)

    def _trader(self, login: int, size: Decimal, currency: str, deposit: Decimal) -> None:
        rng = random.Random(self.seed * 1_000_003 + login)  # noqa: S311 - seeded data
        count = rng.randint(40, 52)
        last_open = HISTORY_END - timedelta(days=3)
        span = (last_open - HISTORY_START).total_seconds()
        starts = sorted(
            HISTORY_START
            + timedelta(seconds=int(rng.random() * span), milliseconds=rng.randrange(1000))
            for _ in range(count)
        )
        running = deposit
        for index, opened_at in enumerate(starts):
            symbol = SYMBOLS[index] if index < len(SYMBOLS) else rng.choice(SYMBOLS)
            direction = rng.choice(("BUY", "SELL"))
            side = 1 if direction == "BUY" else -1
            volume = self._volume(rng, symbol, size)
            noise = rng.gauss(0, VOLATILITY[symbol.name] / 4)
            entry = symbol.price(_path(symbol, opened_at) * D(f"{1 + noise:.8f}"))
            move = rng.gauss(0, VOLATILITY[symbol.name])
            if index < 2:  # the first trade wins, the second loses, whatever the seed
                move = abs(move) * side * (1 if index == 0 else -1)
            closed_at = opened_at + timedelta(minutes=rng.randint(15, 72 * 60))
            split = rng.random() < 0.2
            swap_rate = D(f"{rng.uniform(-0.00012, 0.00004):.7f}")
            draft = _Draft(login, symbol, direction, volume, entry, opened_at, swap_rate=swap_rate)
            self._close(draft, move, closed_at, split)
            if running + self._pnl_sum(draft, currency) < deposit * D("0.3"):
                self._close(draft, -move, closed_at, split)  # keep the account solvent
            running += self._pnl_sum(draft, currency)
            self.closed.append(draft)
        for _ in range(rng.randint(2, 3)):
            symbol = rng.choice(SYMBOLS)
            opened_at = HISTORY_END - timedelta(minutes=rng.randint(60, 5 * 24 * 60))
            noise = rng.gauss(0, VOLATILITY[symbol.name] / 3)
            draft = _Draft(
                login,
                symbol,
                rng.choice(("BUY", "SELL")),
                self._volume(rng, symbol, size),
                symbol.price(_path(symbol, opened_at) * D(f"{1 + noise:.8f}")),
                opened_at,
                swap_rate=D(f"{rng.uniform(-0.00012, 0.00004):.7f}"),
            )
            self.open.append(draft)

    @staticmethod
    def _close(draft: _Draft, move: float, closed_at: datetime, split: bool) -> None:
        symbol, volume = draft.symbol, draft.volume
        final = symbol.price(draft.entry * D(f"{1 + move:.8f}"))
        half = (volume / 2).quantize(CENT, ROUND_DOWN)
        draft.deals = []
        if split and half >= CENT:
            middle = draft.opened_at + (closed_at - draft.opened_at) / 2
            first = symbol.price(draft.entry * D(f"{1 + move / 2:.8f}"))
            draft.deals.append((half, first, middle))
            volume -= half
        draft.deals.append((volume, final, closed_at))

    @staticmethod
    def _costs(
        draft: _Draft, volume: Decimal, close: Decimal, closed_at: datetime
    ) -> tuple[Decimal, Decimal]:
        """Commission (both sides) and swap of a closing deal, in USD."""
        symbol = draft.symbol
        notional = volume * usd_rate(symbol, draft.entry)
        commission = (notional + volume * usd_rate(symbol, close)) * COMMISSION_PER_SIDE
        swap = notional * draft.swap_rate * _rollovers(draft.opened_at, closed_at)
        return commission.quantize(CENT), swap.quantize(CENT)

    def _deal_pnl(
        self, draft: _Draft, volume: Decimal, close: Decimal, closed_at: datetime, currency: str
    ) -> Decimal:
        side = 1 if draft.direction == "BUY" else -1
        gross = (close - draft.entry) * volume * side * quote_rate(draft.symbol, close, currency)
        commission, swap = self._costs(draft, volume, close, closed_at)
        net = gross + (swap - commission) * rate("USD", currency)
        return net.quantize(D(1).scaleb(-money_digits(currency)))

    def _pnl_sum(self, draft: _Draft, currency: str) -> Decimal:
        return sum(
            (self._deal_pnl(draft, v, p, t, currency) for v, p, t in draft.deals), start=D(0)
        )

    def _number(self, currencies: dict[int, str]) -> History:
        drafts = sorted(self.closed + self.open, key=lambda d: (d.opened_at, d.login))
        ids = {id(draft): FIRST_POSITION_ID + n for n, draft in enumerate(drafts)}
        positions = sorted(
            (self._position(d, ids[id(d)], currencies[d.login]) for d in self.open),
            key=lambda p: (p.login, p.position_id),
        )
        rows = sorted(
            ((t, ids[id(d)], d, v, p) for d in self.closed for v, p, t in d.deals),
            key=lambda row: (row[0], row[1]),
        )
        deals = []
        for number, (closed_at, position_id, draft, volume, price) in enumerate(rows):
            currency = currencies[draft.login]
            commission, swap = self._costs(draft, volume, price, closed_at)
            deals.append(
                ClosingDeal(
                    deal_id=FIRST_DEAL_ID + number,
                    position_id=position_id,
                    login=draft.login,
                    symbol=draft.symbol.name,
                    direction=draft.direction,
                    volume=volume,
                    entry_price=draft.entry,
                    close_price=price,
                    opened_at=draft.opened_at,
                    closed_at=closed_at,
                    commission=commission,
                    swap=swap,
                    pnl=self._deal_pnl(draft, volume, price, closed_at, currency),
                    deposit_conversion_rate=quote_rate(draft.symbol, price, currency),
                    usd_conversion_rate=usd_rate(draft.symbol, price),
                )
            )
        return History(positions, deals)

    @staticmethod
    def _position(draft: _Draft, position_id: int, currency: str) -> Position:
        symbol, volume = draft.symbol, draft.volume
        leverage = next(row[5] for row in TRADERS if row[0] == draft.login)
        notional = volume * draft.entry * rate(symbol.quote, currency)
        digits = money_digits(currency)
        notional_usd = volume * usd_rate(symbol, draft.entry)
        nights = _rollovers(draft.opened_at, HISTORY_END)
        return Position(
            position_id=position_id,
            login=draft.login,
            symbol=symbol.name,
            direction=draft.direction,
            volume=volume,
            entry_price=draft.entry,
            opened_at=draft.opened_at,
            commission=(notional_usd * COMMISSION_PER_SIDE).quantize(CENT),
            swap=(notional_usd * draft.swap_rate * nights).quantize(CENT),
            used_margin=(notional * 100 / leverage).quantize(D(1).scaleb(-digits)),
        )


@dataclass
class World:
    """What a fresh sandbox holds."""

    users: dict[int, User]
    traders: dict[int, Trader]
    links: dict[int, Link]
    positions: list[Position]
    deals: list[ClosingDeal]
    #: (login, type, scaled amount) of the seeded balance operations, in id order.
    balance_history: list[tuple[int, str, int]]
    bonus_history: list[tuple[int, str, int]]


def build_world(seed: int) -> World:
    currencies = {row[0]: row[2] for row in TRADERS}
    deposits = {row[0]: D(row[6]) for row in TRADERS}
    history = _Generator(seed).run(currencies, deposits)
    users = {
        user_id: User(
            user_id, email, f"ctid{user_id}", language, to_ms(_at(created)), "CTID_ACTIVE"
        )
        for user_id, email, language, created in USERS
    }
    traders: dict[int, Trader] = {}
    links: dict[int, Link] = {}
    balance_history: list[tuple[int, str, int]] = []
    bonus_history: list[tuple[int, str, int]] = []
    for row in TRADERS:
        login, user_id, currency, group, broker, leverage, deposit, credit, bonus = row[:9]
        first_name, last_name, country, ib, registered, parent = row[9:]
        digits = money_digits(currency)
        realised = sum((d.pnl for d in history.deals if d.login == login), start=D(0))
        contact: dict[str, object] = {
            "email": f"{first_name.lower()}.{last_name.lower()}.{login}@demo.example",
            "countryId": country,
        }
        if ib is not None:
            contact["introducingBroker1"] = ib
        trader = Trader(
            login=login,
            group_name=group,
            deposit_currency=currency,
            broker_name=broker,
            access_rights="FULL_ACCESS",
            account_type="HEDGED",
            leverage_in_cents=leverage,
            password_md5=md5(trader_password(login)),
            registration_ms=to_ms(_at(registered)),
            last_update_ms=to_ms(HISTORY_END),
            balance=to_scaled(D(deposit) + realised, digits),
            bonus=to_scaled(D(bonus), digits),
            non_withdrawable_bonus=to_scaled(D(credit), digits),
            contact_details=contact,
            name=first_name,
            last_name=last_name,
            last_connection_ms=to_ms(LAST_CONNECTION) if login in HISTORY_SIZE else None,
            sub_account_of=parent,
        )
        traders[login] = trader
        balance_history.append((login, "DEPOSIT", to_scaled(D(deposit), digits)))
        if trader.non_withdrawable_bonus:
            balance_history.append(
                (login, "DEPOSIT_NONWITHDRAWABLE_BONUS", trader.non_withdrawable_bonus)
            )
        if trader.bonus:
            bonus_history.append((login, "DEPOSIT", trader.bonus))
        if user_id is not None:
            link_id = FIRST_LINK_ID + len(links)
            links[login] = Link(link_id, user_id, login, broker, ENVIRONMENT)
    return World(
        users, traders, links, history.positions, history.deals, balance_history, bonus_history
    )
