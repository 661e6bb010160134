"""The sandbox's market: four futures contracts whose prices follow a seeded random walk.

Every tick each contract moves by -1, 0 or +1 tick size, chosen by ``random.Random(seed)``
in a fixed contract order, so the same seed always gives the same path (the wall-clock
time of the ticks is the only thing that varies).  A price never falls below one tick.
Prices are ``Decimal``; the wire shows them as strings, grains also in QST's
``whole^eighths`` notation ("450^2" = 450 2/8).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal, InvalidOperation

D = Decimal


@dataclass(frozen=True, slots=True)
class ContractSpec:
    symbol: str
    start: Decimal
    tick: Decimal
    #: USD per 1.0 of price per contract (P&L = quantity x price move x multiplier).
    multiplier: Decimal
    #: Initial margin per contract, USD.
    margin: Decimal
    #: The largest quantity one order may have (QST's limit is not public [I]).
    max_order_size: Decimal
    #: Grain-style quoting of the last tick ("588^2").
    eighths: bool = False

    @property
    def exponent(self) -> int:
        exponent = self.tick.as_tuple().exponent
        assert isinstance(exponent, int)
        return exponent


CONTRACTS: dict[str, ContractSpec] = {
    spec.symbol: spec
    for spec in (
        ContractSpec("ESZ26", D("6000.00"), D("0.25"), D(50), D(15000), D(500)),
        ContractSpec("6EZ26", D("1.0850"), D("0.00005"), D(125000), D(2500), D(1000)),
        ContractSpec("ZCZ26", D("450.00"), D("0.25"), D(50), D(1500), D(2000), eighths=True),
        ContractSpec("CLF27", D("72.50"), D("0.01"), D(1000), D(6000), D(300)),
    )
}


def parse_decimal(text: str) -> Decimal | None:
    """A finite decimal from a wire string, or None."""
    try:
        value = D(text.strip())
    except (InvalidOperation, ValueError):
        return None
    return value if value.is_finite() else None


def format_price(symbol: str, value: Decimal) -> str:
    """A price with the contract's decimals ("6000.25", "1.08500")."""
    return format(value.quantize(D(10) ** CONTRACTS[symbol].exponent), "f")


def format_average(symbol: str, value: Decimal) -> str:
    """An average price, two more decimals than the contract's tick."""
    return format(value.quantize(D(10) ** (CONTRACTS[symbol].exponent - 2)), "f")


def last_tick(symbol: str, value: Decimal) -> str:
    """The price as QST shows it in ``lastTick``: grains as "588^2", others as decimals."""
    if not CONTRACTS[symbol].eighths:
        return format_price(symbol, value)
    whole = value.to_integral_value(rounding=ROUND_FLOOR)
    eighths = ((value - whole) * 8).to_integral_value(rounding=ROUND_FLOOR)
    return f"{whole}^{eighths}"


def on_tick_grid(symbol: str, value: Decimal) -> bool:
    return value % CONTRACTS[symbol].tick == 0


class Market:
    """Current prices; ``step()`` advances the seeded walk by one tick."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)  # noqa: S311 - a price path, not a secret
        self.prices: dict[str, Decimal] = {s: c.start for s, c in CONTRACTS.items()}
        self.steps = 0

    def price(self, symbol: str) -> Decimal:
        return self.prices[symbol]

    def step(self) -> None:
        self.steps += 1
        for symbol in sorted(CONTRACTS):
            tick = CONTRACTS[symbol].tick
            moved = self.prices[symbol] + tick * self._rng.choice((-1, 0, 1))
            if moved >= tick:
                self.prices[symbol] = moved

    def set_price(self, symbol: str, value: Decimal) -> None:
        if symbol not in CONTRACTS:
            raise KeyError(f"unknown contract {symbol!r}")
        if not value.is_finite() or value <= 0:
            raise ValueError(f"price must be positive, got {value}")
        self.prices[symbol] = value
