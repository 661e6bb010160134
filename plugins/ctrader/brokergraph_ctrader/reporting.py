"""The Reporting API's balance- and bonus-history snapshots: our definition of their wire.

WebServices has no balance-history read; cTrader's Reporting API has one: snapshots
over HTTP under ``/repo/…``, bodies in **protobuf (proto2)**, families including
"traders/balance/bonus", IP allow-listed, at most 2 concurrent snapshot requests per
server, a timeout of at least 20 s advised (vendor notes A9, verified).  The .proto
files come from Spotware support and are not public, so — as for every vendor whose
wire is not public — the sandbox and the connector share this one definition, built
from the documented names (the query style of ``/repo/tickData``, the fields of 4.7
and 4.10), and the real one can be swapped in here:

``GET /repo/balanceHistory`` and ``GET /repo/bonusHistory``, query ``login``,
``fromTimestamp``, ``toTimestamp`` (epoch ms, ``from ≤ t < to``) → a
``HistorySnapshot``::

    message HistoryEntry {
      optional int64 historyId = 1;          // balanceHistoryId / bonusHistoryId
      optional int64 login = 2;
      optional string operationType = 3;     // the 4.7 / 4.10 type
      optional int64 delta = 4;              // > 0, scaled by moneyDigits
      optional uint32 moneyDigits = 5;
      optional int64 changeTimestamp = 6;    // epoch ms
      optional string externalId = 7;
      optional string comment = 8;
      optional string externalNote = 9;
      optional string source = 10;
    }
    message HistorySnapshot { repeated HistoryEntry entry = 1; }

Paths, message and field names are ours [I]; only the existence of the snapshots,
protobuf and the limits above are the vendor's.  The codec is the few proto2 wire
types these messages use (varint, length-delimited); anything else in a body is
skipped as proto2 readers do, and a malformed body is a ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

__all__ = [
    "BALANCE_PATH",
    "BONUS_PATH",
    "HistoryEntry",
    "decode_snapshot",
    "encode_snapshot",
]

BALANCE_PATH = "/repo/balanceHistory"
BONUS_PATH = "/repo/bonusHistory"

_VARINT, _FIXED64, _DELIMITED, _FIXED32 = 0, 1, 2, 5
_MAX_VARINT_BYTES = 10
_INT64 = 1 << 64


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    history_id: int
    login: int
    operation_type: str
    delta: int
    money_digits: int
    change_timestamp_ms: int
    external_id: str | None = None
    comment: str | None = None
    external_note: str | None = None
    source: str | None = None


# -- encoding ------------------------------------------------------------------------


def _varint(value: int) -> bytes:
    value %= _INT64  # int64 negatives travel as their two's complement (10 bytes)
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _tag(number: int, wire_type: int) -> bytes:
    return _varint(number << 3 | wire_type)


def _int_field(number: int, value: int) -> bytes:
    return _tag(number, _VARINT) + _varint(value)


def _bytes_field(number: int, value: bytes) -> bytes:
    return _tag(number, _DELIMITED) + _varint(len(value)) + value


def _entry(entry: HistoryEntry) -> bytes:
    parts = [
        _int_field(1, entry.history_id),
        _int_field(2, entry.login),
        _bytes_field(3, entry.operation_type.encode()),
        _int_field(4, entry.delta),
        _int_field(5, entry.money_digits),
        _int_field(6, entry.change_timestamp_ms),
    ]
    texts = (entry.external_id, entry.comment, entry.external_note, entry.source)
    for number, text in enumerate(texts, start=7):
        if text is not None:  # proto2 optional: absent, not empty
            parts.append(_bytes_field(number, text.encode()))
    return b"".join(parts)


def encode_snapshot(entries: Sequence[HistoryEntry]) -> bytes:
    return b"".join(_bytes_field(1, _entry(e)) for e in entries)


# -- decoding ------------------------------------------------------------------------


def _read_varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    for index in range(at, min(at + _MAX_VARINT_BYTES, len(data))):
        byte = data[index]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value % _INT64, index + 1
        shift += 7
    raise ValueError("a truncated or overlong varint")


def _fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) pairs; fixed-width fields are skipped."""
    at = 0
    while at < len(data):
        key, at = _read_varint(data, at)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise ValueError("field number 0")
        if wire_type == _VARINT:
            value, at = _read_varint(data, at)
            yield number, value
        elif wire_type == _DELIMITED:
            size, at = _read_varint(data, at)
            if at + size > len(data):
                raise ValueError("a length-delimited field runs past the body")
            yield number, data[at : at + size]
            at += size
        elif wire_type in (_FIXED64, _FIXED32):
            at += 8 if wire_type == _FIXED64 else 4
            if at > len(data):
                raise ValueError("a fixed-width field runs past the body")
        else:
            raise ValueError(f"wire type {wire_type} is not used by these messages")


def _signed(value: int) -> int:
    return value - _INT64 if value >= _INT64 // 2 else value


def _decode_entry(data: bytes) -> HistoryEntry:
    ints: dict[int, int] = {}
    texts: dict[int, str] = {}
    for number, value in _fields(data):
        if isinstance(value, int):
            ints[number] = _signed(value)
        else:
            try:
                texts[number] = value.decode()
            except UnicodeDecodeError:
                raise ValueError(f"field {number} is not UTF-8") from None
    required = {1: "historyId", 2: "login", 4: "delta", 5: "moneyDigits", 6: "changeTimestamp"}
    missing = [name for number, name in required.items() if number not in ints]
    if missing or 3 not in texts:
        raise ValueError(f"a history entry without {', '.join(missing) or 'operationType'}")
    return HistoryEntry(
        history_id=ints[1],
        login=ints[2],
        operation_type=texts[3],
        delta=ints[4],
        money_digits=ints[5],
        change_timestamp_ms=ints[6],
        external_id=texts.get(7),
        comment=texts.get(8),
        external_note=texts.get(9),
        source=texts.get(10),
    )


def decode_snapshot(data: bytes) -> list[HistoryEntry]:
    """The entries of a ``HistorySnapshot``; ``ValueError`` when the body is malformed."""
    entries: list[HistoryEntry] = []
    for number, value in _fields(data):
        if number == 1:
            if not isinstance(value, bytes):
                raise ValueError("entry is not a message")
            entries.append(_decode_entry(value))
    return entries
