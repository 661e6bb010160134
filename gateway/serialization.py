"""Standard models to JSON-safe data and back, driven by their type hints.

Idempotency records store the first result of a mutation so a retry returns it
unchanged; Decimal travels as a string so no digit is lost.

Both directions are on the write path (a keyed request's fingerprint, its stored
result, the audit details, and the payload rebuilt from the stored result), so each
is worked out once rather than per value: :func:`to_jsonable` picks a rule by the
value's class the first time it meets the class (a dataclass's field names listed
then), and :func:`from_jsonable` builds one decoder per type hint.  A class's rule is
what these questions, asked of each value in this order, would answer: a dataclass? a
Decimal? a date (a datetime is one)? an enum? a mapping? a list or tuple?  (The write
path had its own copy of these rules; two copies drifted once, on dates.)
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar

__all__ = ["from_jsonable", "to_jsonable"]

T = TypeVar("T")
Rule = Callable[[Any], Any]


def _as_is(value: Any) -> Any:
    return value


#: Each class's rule, by the class of the value (classes are few: the models' own).
_ENCODERS: dict[type, Rule] = dict.fromkeys((str, int, float, bool, type(None)), _as_is)


def to_jsonable(value: Any) -> Any:
    """Dataclasses, Decimal, dates and times and enums as JSON-safe values (``raw`` is dropped)."""
    rule = _ENCODERS.get(type(value))
    if rule is None:
        rule = _ENCODERS[type(value)] = _encoder(type(value))
    return value if rule is _as_is else rule(value)


def _encoder(cls: type) -> Rule:
    if dataclasses.is_dataclass(cls) and not issubclass(cls, type):
        return _dataclass_encoder(tuple(f.name for f in dataclasses.fields(cls) if f.name != "raw"))
    if issubclass(cls, Decimal):
        return _decimal
    if issubclass(cls, date):  # a datetime is a date too; each answers its own isoformat
        return cls.isoformat
    if issubclass(cls, enum.Enum):
        return _enum_value
    if issubclass(cls, Mapping):
        return lambda value: {str(k): to_jsonable(v) for k, v in value.items()}
    if issubclass(cls, list | tuple):
        return lambda value: [to_jsonable(v) for v in value]
    return _as_is


def _dataclass_encoder(names: tuple[str, ...]) -> Rule:
    def encode(value: Any) -> dict[str, Any]:
        data = {}
        for name in names:
            field = getattr(value, name)
            # A str, a number or None (most fields) without a call of its own.
            data[name] = field if _ENCODERS.get(type(field)) is _as_is else to_jsonable(field)
        return data

    return encode


def _decimal(value: Decimal) -> str:
    return format(value, "f")


def _enum_value(value: enum.Enum) -> Any:
    return value.value


#: Each type hint's decoder of a value that is not None (None is None whatever the
#: hint).  Hints are the models' own: few, and hashable.
_DECODERS: dict[Any, Rule] = {}


def from_jsonable(cls: type[T], data: Any) -> T:
    """Rebuild ``cls`` (a dataclass or a hinted type) from :func:`to_jsonable` output."""
    if data is None:
        return typing.cast(T, None)
    try:
        decoder = _DECODERS.get(cls) or _decoder(cls, {})
    except TypeError:  # an unhashable hint (Annotated metadata)
        decoder = _decoder(cls, {})
    return typing.cast(T, decoder(data))


def _decoder(hint: Any, building: dict[Any, list[Rule]]) -> Rule:
    """The decoder of ``hint``; ``building`` holds the hints being worked out above this
    one (a dataclass that refers to itself finds its own decoder there, once made)."""
    try:
        found = _DECODERS.get(hint)
    except TypeError:  # an unhashable hint (Annotated metadata): worked out each time
        return _make_decoder(hint, building)
    if found is not None:
        return found
    if hint in building:
        cell = building[hint]
        return lambda data: cell[0](data)
    building[hint] = cell = []
    try:
        decoder = _make_decoder(hint, building)
    finally:
        del building[hint]
    cell.append(decoder)
    _DECODERS[hint] = decoder  # published whole: another thread never sees it half made
    return decoder


def _make_decoder(hint: Any, building: dict[Any, list[Rule]]) -> Rule:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return _decoder(options[0], building)
    if origin in (list, tuple, Sequence) or hint in (list, tuple):
        (item,) = typing.get_args(hint)[:1] or (Any,)
        each = _decoder(item, building)
        if each is _as_is:
            return tuple
        return lambda data: tuple(None if v is None else each(v) for v in data)
    if origin in (dict, Mapping):
        return dict
    if isinstance(hint, type):
        if dataclasses.is_dataclass(hint):
            return _dataclass_decoder(hint, building)
        if issubclass(hint, enum.Enum):
            return hint
        if hint is Decimal:
            return Decimal
        if hint is datetime:
            return datetime.fromisoformat
        if hint is date:
            return date.fromisoformat
    return _as_is


def _dataclass_decoder(cls: type, building: dict[Any, list[Rule]]) -> Rule:
    hints = typing.get_type_hints(cls)
    fields = {f.name: _decoder(hints[f.name], building) for f in dataclasses.fields(cls) if f.init}
    build: Callable[..., Any] = cls

    def decode(data: Mapping[str, Any]) -> Any:
        kwargs = {}
        for name, value in data.items():
            field = fields.get(name)
            if field is not None:  # a key that is no field (any more) is left out
                kwargs[name] = value if value is None or field is _as_is else field(value)
        return build(**kwargs)

    return decode
