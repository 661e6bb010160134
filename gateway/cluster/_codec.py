"""A connector call and its answer as JSON, driven by the method's type hints.

Leaves (Decimal as an exact string, datetimes, enums) go through
:mod:`gateway.serialization`; on top of it, a routed answer keeps what an
idempotency record may drop: the models' ``raw`` payload (plugins' schema fields
read it), ``bytes`` (report downloads) and fixed-length tuples.  A typed
:class:`~gateway.errors.BrokerGraphError` travels as its code, message, field and
details, and comes back as the same core class.
"""

from __future__ import annotations

import base64
import collections.abc
import dataclasses
import enum
import functools
import inspect
import types
import typing
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from gateway.errors import BrokerGraphError, RateLimited, error_class_for
from gateway.serialization import from_jsonable, to_jsonable

__all__ = [
    "decode",
    "decode_arguments",
    "decode_error",
    "encode",
    "encode_arguments",
    "encode_error",
    "method_hints",
]

_BYTES = "$bytes"
_SEQUENCES = (list, tuple, set, frozenset, collections.abc.Sequence, collections.abc.Set)


def encode(value: Any) -> Any:
    """``value`` as JSON-safe data (dataclasses whole, ``raw`` included)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, bytes):
        return {_BYTES: base64.b64encode(value).decode("ascii")}
    if isinstance(value, Mapping):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [encode(v) for v in value]
    return to_jsonable(value)


def decode(hint: Any, data: Any) -> Any:
    """Rebuild a value of type ``hint`` from :func:`encode` output."""
    if data is None or hint is Any:
        return data
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return _decode_union([a for a in args if a is not type(None)], data)
    if hint is bytes:
        return base64.b64decode(data[_BYTES])
    if origin is tuple and args and args[-1] is not Ellipsis:
        return tuple(decode(a, v) for a, v in zip(args, data, strict=True))
    if origin in _SEQUENCES or hint in (list, tuple):
        item = args[0] if args else Any
        items = [decode(item, v) for v in data]
        return frozenset(items) if origin in (frozenset, collections.abc.Set) else tuple(items)
    if origin in (dict, Mapping, collections.abc.Mapping):
        value_hint = args[1] if len(args) == 2 else Any
        return {k: decode(value_hint, v) for k, v in data.items()}
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        hints = _type_hints(hint)
        fields = {f.name for f in dataclasses.fields(hint) if f.init}
        return hint(**{k: decode(hints[k], v) for k, v in data.items() if k in fields})
    if isinstance(hint, type) and issubclass(hint, enum.Enum | Decimal | datetime):
        return from_jsonable(hint, data)
    return data


def _decode_union(options: list[Any], data: Any) -> Any:
    if len(options) == 1:
        return decode(options[0], data)
    for option in options:  # the first option whose shape fits the data
        if isinstance(option, type) and isinstance(data, option):
            return data
        if isinstance(data, dict) and isinstance(option, type) and dataclasses.is_dataclass(option):
            return decode(option, data)
    return decode(options[0], data)


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


@functools.cache
def method_hints(cls: type, name: str) -> tuple[inspect.Signature, dict[str, Any]]:
    """The signature and resolved hints of ``cls.name`` (the most derived that resolves)."""
    for klass in cls.__mro__:
        function = vars(klass).get(name)
        if function is None:
            continue
        try:
            return inspect.signature(function), typing.get_type_hints(function)
        except (NameError, TypeError):
            continue  # annotations only a type checker can resolve: try the family's
    raise LookupError(f"{cls.__qualname__}.{name} has no resolvable signature")


def encode_arguments(
    cls: type, name: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> dict[str, Any]:
    """The call's arguments by parameter name, as JSON-safe data."""
    signature, _ = method_hints(cls, name)
    bound = signature.bind(None, *args, **kwargs)  # None stands for self
    self_name = next(iter(signature.parameters))
    return {k: encode(v) for k, v in bound.arguments.items() if k != self_name}


def decode_arguments(cls: type, name: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments for ``cls.name`` from :func:`encode_arguments` output."""
    signature, hints = method_hints(cls, name)
    parameters = list(signature.parameters)[1:]
    unknown = set(data) - set(parameters)
    if unknown:
        raise ValueError(f"{name} takes no argument {sorted(unknown)[0]!r}")
    return {k: decode(hints.get(k, Any), v) for k, v in data.items()}


def encode_error(error: BrokerGraphError) -> dict[str, Any]:
    return error.to_dict()


def decode_error(data: Mapping[str, Any]) -> BrokerGraphError:
    """The core class of the code, with the holder's message, field and details."""
    cls: Callable[..., BrokerGraphError] = error_class_for(str(data.get("code")))
    details = dict(data.get("details") or {})
    message = str(data.get("message", ""))
    field = data.get("field") or None
    if cls is RateLimited:
        return RateLimited(
            message, retry_after=details.get("retryAfter"), field=field, details=details
        )
    return cls(message, field=field, details=details)
