"""The write path's JSON-safe values, with each class's rule worked out once.

:func:`jsonable` answers exactly what :func:`gateway.serialization.to_jsonable` does
(the idempotency fingerprint and the stored result must not change with it), but
the generic function asks every value up to six questions (a dataclass? a Decimal?
a datetime? an enum? a mapping? a sequence?) and lists a dataclass's fields anew
each time: a placed order's request, result and audit details cost about a tenth
of the write.  Here the first value of a class picks its rule, and later values of
that class go straight to it.  ``tests/test_hotpath.py`` checks the two agree.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

__all__ = ["jsonable"]

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
