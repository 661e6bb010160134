"""dxsca-web's instrument catalogue, account-scoped (B5: ``/accounts/{account}/instruments/
query``, the Instrument model plus InstrumentDetails' trading status and order sizes).

The seeded instruments are the ones ``seed.QUOTES`` prices.  Field names are DXtrade's
(observed); what the vendor notes leave open is ours and marked [I]:

* the answer's list key ``instruments`` (the notes say "InstrumentDetails list");
* a trading-hours entry's keys ``weekday``, ``time`` ("HH:MM", UTC here) and ``type``
  (``SESSION_OPEN`` / ``SESSION_CLOSE``, the observed values);
* ``tradingStatus`` follows the account's status: FULL_TRADING -> FULL, CLOSE_ONLY ->
  CLOSE_ONLY, anything else -> NO.

``symbols=`` (comma list) narrows the answer to those symbols; an unknown one is left
out, as a query is not a lookup.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal as D
from typing import Any

from starlette.requests import Request

from brokergraph_dxtrade.sandbox.context import Context
from brokergraph_dxtrade.sandbox.model import Account

__all__ = ["INSTRUMENTS", "Spec", "instruments_query"]

#: FX trades from Sunday 22:00 to Friday 22:00 UTC; the others close an hour each day.
FX_WEEK = (("SUNDAY", "22:00", "SESSION_OPEN"), ("FRIDAY", "22:00", "SESSION_CLOSE"))
DAILY = tuple(
    entry
    for day in ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY")
    for entry in ((day, "22:00", "SESSION_CLOSE"), (day, "23:00", "SESSION_OPEN"))
)


@dataclass(frozen=True, slots=True)
class Spec:
    symbol: str
    type: str
    description: str
    currency: str
    price_increment: D
    pip_size: D
    lot_size: D
    multiplier: D
    min_order_size: D
    quantity_increment: D
    max_order_size: D
    margin_rate: D
    hours: tuple[tuple[str, str, str], ...]


INSTRUMENTS: dict[str, Spec] = {
    s.symbol: s
    for s in (
        Spec(
            "EUR/USD",
            "FOREX",
            "Euro vs US Dollar",
            "USD",
            D("0.00001"),
            D("0.0001"),
            D(100000),
            D(1),
            D(1000),
            D(1000),
            D(10000000),
            D("0.01"),
            FX_WEEK,
        ),
        Spec(
            "GBP/USD",
            "FOREX",
            "British Pound vs US Dollar",
            "USD",
            D("0.00001"),
            D("0.0001"),
            D(100000),
            D(1),
            D(1000),
            D(1000),
            D(10000000),
            D("0.01"),
            FX_WEEK,
        ),
        Spec(
            "XAU/USD",
            "CFD",
            "Gold vs US Dollar",
            "USD",
            D("0.01"),
            D("0.01"),
            D(100),
            D(1),
            D(1),
            D(1),
            D(10000),
            D("0.05"),
            DAILY,
        ),
        Spec(
            "US500",
            "CFD",
            "US 500 index",
            "USD",
            D("0.1"),
            D("0.1"),
            D(1),
            D(1),
            D(1),
            D(1),
            D(5000),
            D("0.05"),
            DAILY,
        ),
    )
}

_STATUS = {"FULL_TRADING": "FULL", "CLOSE_ONLY": "CLOSE_ONLY"}


def instrument_details(spec: Spec, account: Account) -> dict[str, Any]:
    return {
        "type": spec.type,
        "symbol": spec.symbol,
        "version": 1,
        "description": spec.description,
        "priceIncrement": spec.price_increment,
        "pipSize": spec.pip_size,
        "currency": spec.currency,
        "lotSize": spec.lot_size,
        "multiplier": spec.multiplier,
        "underlying": None,
        "product": None,
        "expirationDetails": None,
        "settlementType": None,
        "firstCurrency": spec.symbol.split("/")[0] if "/" in spec.symbol else None,
        "currencyType": spec.type,
        "tradingHours": [
            {"weekday": day, "time": time, "type": kind} for day, time, kind in spec.hours
        ],
        "tradingStatus": _STATUS.get(account.status, "NO"),
        "minOrderSize": spec.min_order_size,
        "minOrderSizeIncrement": spec.quantity_increment,
        "quantityIncrement": spec.quantity_increment,
        "maxOrderSize": spec.max_order_size,
        "marginRate": spec.margin_rate,
    }


async def instruments_query(request: Request, ctx: Context, account: Account) -> Any:
    wanted = [s for s in request.query_params.get("symbols", "").split(",") if s]
    specs = [INSTRUMENTS[s] for s in wanted if s in INSTRUMENTS] if wanted else INSTRUMENTS.values()
    return {"instruments": [instrument_details(s, account) for s in specs]}
