"""Standard models to JSON-safe data and back, driven by their type hints.

Idempotency records store the first result of a mutation so a retry returns it
unchanged; Decimal travels as a string so no digit is lost.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
import typing
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar

__all__ = ["from_jsonable", "to_jsonable"]

T = TypeVar("T")


def to_jsonable(value: Any) -> Any:
    """Dataclasses, Decimal, dates and times and enums as JSON-safe values (``raw`` is dropped)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: to_jsonable(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if f.name != "raw"
        }
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, date):  # a datetime is a date too
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_jsonable(cls: type[T], data: Any) -> T:
    """Rebuild ``cls`` (a dataclass or a hinted type) from :func:`to_jsonable` output."""
    return typing.cast(T, _decode(cls, data))


def _decode(hint: Any, data: Any) -> Any:
    if data is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return _decode(options[0], data)
    if origin in (list, tuple, Sequence) or hint in (list, tuple):
        (item,) = typing.get_args(hint)[:1] or (Any,)
        return tuple(_decode(item, v) for v in data)
    if origin in (dict, Mapping):
        return dict(data)
    if isinstance(hint, type):
        if dataclasses.is_dataclass(hint):
            hints = _hints(hint)
            names = {f.name for f in dataclasses.fields(hint) if f.init}
            return hint(**{k: _decode(hints[k], v) for k, v in data.items() if k in names})
        if issubclass(hint, enum.Enum):
            return hint(data)
        if hint is Decimal:
            return Decimal(data)
        if hint is datetime:
            return datetime.fromisoformat(data)
        if hint is date:
            return date.fromisoformat(data)
    return data
