"""INSTRUMENTS: dxsca-web's account-scoped instrument query (B5, observed):
``GET /dxsca-web/accounts/{account}/instruments/query?symbols=a,b`` — the Instrument model
(``priceIncrement``, ``lotSize``, ``multiplier``, ``currency``, ``tradingHours``) plus the
account's ``tradingStatus`` and order sizes.  One read per call (the cost declared).

What the vendor notes leave open is read leniently, never guessed into data: the list
may come under ``instruments`` or bare [I]; a trading-hours entry is ``weekday``,
``time`` and ``type`` SESSION_OPEN/SESSION_CLOSE [I] — if any entry does not read so, the
instrument's hours are null (unknown), not a partial schedule.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from brokergraph_dxtrade.client import segment
from brokergraph_dxtrade.connector._base import DxTradeBase, items_of
from brokergraph_dxtrade.mapping import PLATFORM, decimal
from gateway.contract import (
    Instrument,
    InstrumentReads,
    ProtocolError,
    TradingHoursEvent,
    TradingSessionEvent,
    UpstreamCost,
    Weekday,
)

__all__ = ["DxTradeInstruments", "instrument_model"]

_EVENTS = {"SESSION_OPEN": TradingSessionEvent.OPEN, "SESSION_CLOSE": TradingSessionEvent.CLOSE}
_WEEKDAYS = {day.value: day for day in Weekday}


class DxTradeInstruments(DxTradeBase, InstrumentReads):
    """What an account may trade, as dxsca-web specifies it for that account."""

    def upstream_costs(self) -> Mapping[str, UpstreamCost]:
        return {**super().upstream_costs(), "get_instruments": UpstreamCost(calls=1)}

    async def get_instruments(
        self, account_id: str, symbols: Sequence[str] | None
    ) -> Sequence[Instrument]:
        self._account_parts(account_id)  # NotFound for what is no DXtrade account id
        params: dict[str, str] = {}
        if symbols is not None:
            # A comma cannot be sent inside the comma list: no DXtrade symbol has one.
            listed = [s for s in symbols if "," not in s]
            if not listed:
                return []
            params["symbols"] = ",".join(listed)
        response = await self._read_account(
            account_id,
            f"/accounts/{segment(account_id)}/instruments/query",
            "account",
            params,
        )
        return [instrument_model(i) for i in items_of(response.body, "instruments")]


def _number(body: Mapping[str, Any], key: str) -> Any:
    value = body.get(key)
    return None if value is None else decimal(value, key)


def _hours(entries: Any) -> tuple[TradingHoursEvent, ...] | None:
    if not isinstance(entries, list):
        return None
    events = []
    for entry in entries:
        if not isinstance(entry, Mapping):
            return None
        weekday = _WEEKDAYS.get(str(entry.get("weekday")).upper())
        event = _EVENTS.get(str(entry.get("type")))
        time = entry.get("time")
        if weekday is None or event is None or not isinstance(time, str):
            return None
        try:
            events.append(TradingHoursEvent(weekday=weekday, time=time[:5], event=event))
        except ValueError:
            return None
    return tuple(events)


def instrument_model(body: Mapping[str, Any]) -> Instrument:
    symbol = body.get("symbol")
    if not isinstance(symbol, str) or not symbol:
        raise ProtocolError("DXtrade sent an instrument without a symbol")
    increment = _number(body, "quantityIncrement")
    if increment is None:
        increment = _number(body, "minOrderSizeIncrement")
    text = {k: body.get(k) for k in ("description", "type", "currency", "tradingStatus")}
    return Instrument(
        platform=PLATFORM,
        symbol=symbol,
        description=text["description"] if isinstance(text["description"], str) else None,
        kind=text["type"] if isinstance(text["type"], str) else None,
        currency=text["currency"] if isinstance(text["currency"], str) else None,
        tick_size=_number(body, "priceIncrement"),
        contract_size=_number(body, "multiplier"),
        lot_size=_number(body, "lotSize"),
        min_quantity=_number(body, "minOrderSize"),
        max_quantity=_number(body, "maxOrderSize"),
        quantity_increment=increment,
        trading_status=text["tradingStatus"] if isinstance(text["tradingStatus"], str) else None,
        trading_hours=_hours(body.get("tradingHours")),
        raw=dict(body),
    )
