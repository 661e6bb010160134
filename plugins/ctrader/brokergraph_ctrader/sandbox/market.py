"""The sandbox's market: six symbols at fixed marks, and currency conversion at those marks.

The market does not move: unrealised P&L of open positions, and so equity, are the
same on every read, which keeps tests and analytics deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

D = Decimal


@dataclass(frozen=True, slots=True)
class Symbol:
    id: int
    name: str
    description: str
    asset_class: str
    category: str
    base: str
    quote: str
    #: Price decimals.
    digits: int
    #: The current (fixed) price.
    mark: Decimal
    #: Base units in one lot.  Inferred: WebServices' symbols (6.1) carry no lot size
    #: and trade in base units; these are cTrader's customary contract sizes (FX
    #: 100,000, gold 100 oz, one coin, one index unit).  Not sent on the wire.
    lot_size: Decimal

    def wire(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "id": self.id,
            "description": self.description,
            "assetClass": self.asset_class,
            "category": self.category,
            "quotesEnabled": True,
            "showInCtrader": True,
        }

    def price(self, value: Decimal) -> Decimal:
        return value.quantize(D(1).scaleb(-self.digits))


SYMBOLS: tuple[Symbol, ...] = (
    Symbol(1, "EURUSD", "Euro vs US Dollar", "Forex", "Majors", "EUR", "USD", 5, D("1.08450"),
           D(100000)),
    Symbol(2, "GBPUSD", "British Pound vs US Dollar", "Forex", "Majors", "GBP", "USD", 5,
           D("1.27120"), D(100000)),
    Symbol(3, "USDJPY", "US Dollar vs Japanese Yen", "Forex", "Majors", "USD", "JPY", 3,
           D("151.320"), D(100000)),
    Symbol(4, "XAUUSD", "Gold vs US Dollar", "Metals", "Spot Metals", "XAU", "USD", 2,
           D("2650.40"), D(100)),
    Symbol(5, "BTCUSD", "Bitcoin vs US Dollar", "Crypto", "Cryptocurrencies", "BTC", "USD", 2,
           D("91250.00"), D(1)),
    Symbol(6, "US500", "US 500 Index", "Indices", "US Indices", "US500", "USD", 2,
           D("5890.50"), D(1)),
)  # fmt: skip
BY_NAME = {symbol.name: symbol for symbol in SYMBOLS}

#: Currencies a trader account may be opened in (GET /v2/webserv/depositAssets).
DEPOSIT_ASSETS = ("USD", "EUR", "GBP", "CHF", "BTC", "ETH")

#: What one unit of a currency is worth in USD, at the marks.
USD_VALUE: dict[str, Decimal] = {
    "USD": D(1),
    "EUR": BY_NAME["EURUSD"].mark,
    "GBP": BY_NAME["GBPUSD"].mark,
    "JPY": D(1) / BY_NAME["USDJPY"].mark,
    "CHF": D("1.13250"),
    "BTC": BY_NAME["BTCUSD"].mark,
    "ETH": D("3215.40"),
}


def rate(source: str, target: str) -> Decimal:
    """How many ``target`` one ``source`` is worth."""
    return USD_VALUE[source] / USD_VALUE[target]


def usd_rate(symbol: Symbol, price: Decimal) -> Decimal:
    """USD value of one unit of the symbol's base asset at ``price`` (CSV usdConversionRate)."""
    if symbol.quote == "USD":
        return price
    if symbol.base == "USD":
        return D(1)
    return price * USD_VALUE[symbol.quote]


def quote_rate(symbol: Symbol, price: Decimal, currency: str) -> Decimal:
    """One unit of the symbol's quote currency in ``currency`` when the symbol trades
    at ``price`` (CSV depositConversionRate): the quote in USD follows the price as
    :func:`usd_rate` does, so a deal's two rates agree with each other (USD per
    deposit unit = usdConversionRate / (closePrice * depositConversionRate))."""
    return usd_rate(symbol, price) / price / USD_VALUE[currency]
