"""The two CSV grids of WebServices (4.12 openPositions, 4.13 closedPositions).

Both answer a comma-separated grid with a header row even when JSON is asked for
(A4.5).  Columns are read **by header name**, never by position, so a server that
adds or reorders columns still parses; a missing column we need is a
ProtocolError.  Numbers become exact ``Decimal``; timestamps
(``yyyy-MM-ddTHH:mm:ss.SSS``, UTC without a zone) become aware UTC datetimes.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from gateway.contract import ProtocolError

__all__ = [
    "CLOSED_POSITION_COLUMNS",
    "OPEN_POSITION_COLUMNS",
    "ClosedDealRow",
    "OpenPositionRow",
    "format_timestamp",
    "parse_closed_positions",
    "parse_open_positions",
    "parse_timestamp",
]

#: Columns the connector reads (the server sends more: bookType, stake, spreadBetting …).
OPEN_POSITION_COLUMNS = (
    "login",
    "positionId",
    "openTimestamp",
    "entryPrice",
    "direction",
    "volume",
    "symbol",
    "commission",
    "swap",
)
CLOSED_POSITION_COLUMNS = (
    "login",
    "positionId",
    "dealId",
    "openTimestamp",
    "closeTimestamp",
    "entryPrice",
    "closePrice",
    "direction",
    "volume",
    "symbol",
    "commission",
    "swap",
    "pnl",
)
_TIME_FORMATS = ("%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S")


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenPositionRow:
    login: str
    position_id: str
    opened_at: datetime
    entry_price: Decimal
    direction: str
    volume: Decimal
    symbol: str
    commission: Decimal
    swap: Decimal
    used_margin: Decimal | None
    raw: Mapping[str, str]


@dataclass(frozen=True, slots=True, kw_only=True)
class ClosedDealRow:
    login: str
    position_id: str
    deal_id: str
    opened_at: datetime
    closed_at: datetime
    entry_price: Decimal
    close_price: Decimal
    direction: str
    volume: Decimal
    symbol: str
    commission: Decimal
    swap: Decimal
    pnl: Decimal
    raw: Mapping[str, str]


def format_timestamp(value: datetime) -> str:
    """An aware datetime as cTrader's query/CSV form: ``2018-01-01T12:12:12.000`` (UTC)."""
    if value.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}"


def parse_timestamp(text: str, what: str = "timestamp") -> datetime:
    value = text.strip().removesuffix("Z")
    for pattern in _TIME_FORMATS:
        try:
            return datetime.strptime(value, pattern).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise ProtocolError(f"cTrader sent a {what} that is not yyyy-MM-ddTHH:mm:ss.SSS")


def _decimal(text: str, what: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise ProtocolError(f"cTrader sent a {what} that is not a number") from None
    if not value.is_finite():
        raise ProtocolError(f"cTrader sent a {what} that is not finite")
    return value


def _rows(text: str, required: Sequence[str], what: str) -> Iterator[dict[str, str]]:
    body = text.lstrip("\ufeff")
    if not body.strip():
        return
    try:
        # newline="": the csv module reads line ends itself (a lone CR, CRLF in quotes).
        reader = csv.DictReader(io.StringIO(body, newline=""))
        header = [name.strip() for name in (reader.fieldnames or [])]
        missing = [name for name in required if name not in header]
        if missing:
            raise ProtocolError(f"cTrader's {what} grid lacks the columns {', '.join(missing)}")
        reader.fieldnames = header
        for row in reader:
            if not any((value or "").strip() for value in row.values()):
                continue  # a blank line
            if None in row or any(row.get(name) is None for name in required):
                raise ProtocolError(f"cTrader's {what} grid has a row of the wrong width")
            yield {key: (value or "").strip() for key, value in row.items() if key is not None}
    except csv.Error as error:  # a field over the csv module's limit, a stray quote...
        raise ProtocolError(f"cTrader's {what} grid is not CSV: {error}") from None


def _direction(text: str) -> str:
    value = text.upper()
    if value not in ("BUY", "SELL"):
        raise ProtocolError("cTrader sent a direction that is neither BUY nor SELL")
    return value


def _id(text: str, what: str) -> str:
    if not text:
        raise ProtocolError(f"cTrader sent an empty {what}")
    return text


def parse_open_positions(text: str) -> list[OpenPositionRow]:
    """Rows of ``GET /v2/webserv/openPositions``."""
    rows: list[OpenPositionRow] = []
    for row in _rows(text, OPEN_POSITION_COLUMNS, "openPositions"):
        margin = row.get("usedMargin")
        rows.append(
            OpenPositionRow(
                login=_id(row["login"], "login"),
                position_id=_id(row["positionId"], "positionId"),
                opened_at=parse_timestamp(row["openTimestamp"], "openTimestamp"),
                entry_price=_decimal(row["entryPrice"], "entryPrice"),
                direction=_direction(row["direction"]),
                volume=_decimal(row["volume"], "volume"),
                symbol=_id(row["symbol"], "symbol"),
                commission=_decimal(row["commission"], "commission"),
                swap=_decimal(row["swap"], "swap"),
                used_margin=_decimal(margin, "usedMargin") if margin else None,
                raw=row,
            )
        )
    return rows


def parse_closed_positions(text: str) -> list[ClosedDealRow]:
    """Rows of ``GET /v2/webserv/closedPositions`` (one per closing deal)."""
    rows: list[ClosedDealRow] = []
    for row in _rows(text, CLOSED_POSITION_COLUMNS, "closedPositions"):
        rows.append(
            ClosedDealRow(
                login=_id(row["login"], "login"),
                position_id=_id(row["positionId"], "positionId"),
                deal_id=_id(row["dealId"], "dealId"),
                opened_at=parse_timestamp(row["openTimestamp"], "openTimestamp"),
                closed_at=parse_timestamp(row["closeTimestamp"], "closeTimestamp"),
                entry_price=_decimal(row["entryPrice"], "entryPrice"),
                close_price=_decimal(row["closePrice"], "closePrice"),
                direction=_direction(row["direction"]),
                volume=_decimal(row["volume"], "volume"),
                symbol=_id(row["symbol"], "symbol"),
                commission=_decimal(row["commission"], "commission"),
                swap=_decimal(row["swap"], "swap"),
                pnl=_decimal(row["pnl"], "pnl"),
                raw=row,
            )
        )
    return rows
