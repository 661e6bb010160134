"""Time on the cTrader wire: epoch milliseconds in JSON, ``yyyy-MM-ddTHH:mm:ss.SSS`` (UTC,
no zone) in query strings and CSV."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from brokergraph_ctrader.sandbox.errors import invalid

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_WIRE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?")


def to_ms(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(milliseconds=1)


def from_ms(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


def wire_time(moment: datetime) -> str:
    """2018-01-01T12:12:12.000"""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def parse_wire_time(name: str, text: str | None) -> datetime:
    """A required query timestamp; milliseconds are optional, a zone is refused."""
    if text is None or not _WIRE.fullmatch(text):
        raise invalid(f"{name} is required as yyyy-MM-ddTHH:mm:ss.SSS (UTC), got {text!r}")
    try:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)
    except ValueError:
        raise invalid(f"{name}: {text!r} is not a valid time") from None


def utc(moment: datetime) -> datetime:
    """Naive datetimes are taken as UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
