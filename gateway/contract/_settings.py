"""Secrets and the settings base every connector's ``[connectors.<name>]`` section uses.

The gateway wraps setting values whose key looks secret (``password``, ``token``,
``secret``, ``key``) in :class:`Secret` before a connector sees them, so a dump of
the settings never prints one.  :class:`ConnectorSettings` reveals them where the
dataclass asks for a plain ``str``, coerces numbers, and refuses unknown keys: a
typo such as ``timout_seconds`` stops the gateway at start instead of being ignored.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar, Self

__all__ = ["ConnectorSettings", "Secret", "SettingsError", "reveal", "setting"]


class Secret:
    """A string that refuses to be printed."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


def reveal(value: Any) -> Any:
    """The plain value of a setting: a :class:`Secret`'s content, anything else as is."""
    return value.reveal() if isinstance(value, Secret) else value


class SettingsError(ValueError):
    """A connector's settings section is invalid; the message names the key, never a secret."""


def setting(
    default: Any = dataclasses.MISSING, *, minimum: float | None = None, doc: str = ""
) -> Any:
    """A settings field with a lower bound (exclusive) for numbers and a one-line doc."""
    metadata = {"minimum": minimum, "doc": doc}
    return dataclasses.field(default=default, metadata=metadata)


class ConnectorSettings:
    """Base of a connector's settings: subclass it as a frozen, keyword-only dataclass.

    Each field's annotation says how its value is read: ``str`` (non-empty, stripped,
    a Secret revealed), ``int``/``float``/``Decimal`` (numbers; by default > 0, or
    > ``setting(minimum=...)``), ``bool``, and ``X | None`` for optional ones.
    ``from_section`` refuses unknown keys and names the section in every message.
    """

    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]

    @classmethod
    def from_section(cls, name: str, section: Mapping[str, Any]) -> Self:
        """Read and check ``[connectors.<name>]``; raise :class:`SettingsError` on a bad key."""
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"{cls.__name__} must be a dataclass")
        where = f"[connectors.{name}]"
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(section) - set(fields))
        if unknown:
            raise SettingsError(f"{where} unknown keys {unknown}; known: {sorted(fields)}")
        hints = typing.get_type_hints(cls)
        values: dict[str, Any] = {}
        for key, field in fields.items():
            if key not in section:
                if field.default is dataclasses.MISSING and (
                    field.default_factory is dataclasses.MISSING
                ):
                    raise SettingsError(f"{where} {key} is required")
                continue
            values[key] = _coerce(f"{where} {key}", hints[key], section[key], field.metadata)
        return cls(**values)


def _coerce(where: str, annotation: Any, raw: Any, metadata: Mapping[str, Any]) -> Any:
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args:
        if raw is None:
            return None
        (annotation,) = [a for a in args if a is not type(None)]
    value = reveal(raw)
    if annotation is str:
        if not isinstance(value, str) or not value.strip():
            raise SettingsError(f"{where} must be a non-empty string")
        return value.strip()
    if annotation is bool:
        if not isinstance(value, bool):
            raise SettingsError(f"{where} must be true or false")
        return value
    if annotation in (int, float, Decimal):
        return _number(where, annotation, value, metadata.get("minimum"))
    if annotation is Secret:
        if not isinstance(value, str) or not value:
            raise SettingsError(f"{where} must be a non-empty string")
        return Secret(value)
    return value  # anything richer (lists, tables) is the subclass's to check


def _number(where: str, kind: type, value: Any, minimum: float | None) -> int | float | Decimal:
    bound = 0.0 if minimum is None else minimum
    if isinstance(value, str) and kind is not float:
        try:
            value = Decimal(value.strip())
        except InvalidOperation:
            raise SettingsError(f"{where} must be a number > {bound:g}") from None
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal) or value <= bound:
        raise SettingsError(f"{where} must be a number > {bound:g}")
    if kind is int:
        if value != int(value):
            raise SettingsError(f"{where} must be a whole number > {bound:g}")
        return int(value)
    if kind is Decimal:
        return Decimal(str(value))
    return float(value)
