"""The write path's JSON-safe values, with each class's rule worked out once.

:func:`jsonable` answers exactly what :func:`gateway.serialization.to_jsonable` does
(the idempotency fingerprint and the stored result must not change with it), but
the generic function asks every value up to six questions (a dataclass? a Decimal?
a datetime? an enum? a mapping? a sequence?) and lists a dataclass's fields anew
each time: a placed order's request, result and audit details cost about a tenth
of the write.  Here the first value of a class picks its rule, and later values of
that class go straight to it.  :func:`from_json` does the same for
:func:`gateway.serialization.from_jsonable` (the payload is made from the stored
result, so that a replay answers exactly as the first answer did): each type hint's
decoder is worked out once.  ``tests/test_hotpath.py`` checks each pair agrees.
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

__all__ = ["from_json", "jsonable"]

T = TypeVar("T")
Rule = Callable[[Any], Any]

#: Each class's rule, by the class of the value (classes are few: the models' own).
_RULES: dict[type, Rule] = {}


def jsonable(value: Any) -> Any:
    """Dataclasses, Decimal, dates and times and enums as JSON-safe values (``raw`` is dropped)."""
    rule = _RULES.get(type(value))
    if rule is None:
        rule = _RULES[type(value)] = _rule(type(value))
    return rule(value)


def _as_is(value: Any) -> Any:
    return value


def _rule(cls: type) -> Rule:
    # The order of to_jsonable's questions, asked of the class instead of each value.
    if dataclasses.is_dataclass(cls) and not issubclass(cls, type):
        names = tuple(f.name for f in dataclasses.fields(cls) if f.name != "raw")
        return lambda value: {name: jsonable(getattr(value, name)) for name in names}
    if issubclass(cls, Decimal):
        return lambda value: format(value, "f")
    if issubclass(cls, datetime):
        return datetime.isoformat
    if issubclass(cls, date):
        return date.isoformat
    if issubclass(cls, enum.Enum):
        return lambda value: value.value
    if issubclass(cls, Mapping):
        return lambda value: {str(k): jsonable(v) for k, v in value.items()}
    if issubclass(cls, list | tuple):
        return lambda value: [jsonable(v) for v in value]
    return _as_is


#: Each type hint's decoder (hints are the models' own: few, and hashable).
_DECODERS: dict[Any, Rule] = {}


def from_json(cls: type[T], data: Any) -> T:
    """:func:`gateway.serialization.from_jsonable`, each hint's decoder worked out once."""
    return typing.cast(T, _decoder(cls)(data))


def _decoder(hint: Any) -> Rule:
    decoder = _DECODERS.get(hint)
    if decoder is None:
        _DECODERS[hint] = _lazy(hint)  # a dataclass that refers to itself finds this one
        decoder = _DECODERS[hint] = _make_decoder(hint)
    return decoder


def _lazy(hint: Any) -> Rule:
    return lambda data: _DECODERS[hint](data)


def _none_or(decode: Rule) -> Rule:
    return lambda data: None if data is None else decode(data)


def _make_decoder(hint: Any) -> Rule:
    # The order of from_jsonable's questions, asked of the hint instead of each value.
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return _none_or(_decoder(options[0]))
    if origin in (list, tuple, Sequence) or hint in (list, tuple):
        (item,) = typing.get_args(hint)[:1] or (Any,)
        each = _decoder(item)
        return _none_or(lambda data: tuple(each(v) for v in data))
    if origin in (dict, Mapping):
        return _none_or(dict)
    if isinstance(hint, type):
        if dataclasses.is_dataclass(hint):
            hints = typing.get_type_hints(hint)
            fields = {f.name: _decoder(hints[f.name]) for f in dataclasses.fields(hint) if f.init}
            build: Callable[..., Any] = hint
            return _none_or(
                lambda data: build(**{k: fields[k](v) for k, v in data.items() if k in fields})
            )
        if issubclass(hint, enum.Enum):
            return _none_or(hint)
        if hint is Decimal:
            return _none_or(Decimal)
        if hint is datetime:
            return _none_or(datetime.fromisoformat)
        if hint is date:
            return _none_or(date.fromisoformat)
    return _as_is
