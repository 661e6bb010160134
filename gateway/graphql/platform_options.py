"""Typed platform options of the provisioning inputs.

``createTrader``, ``openAccount`` and ``reactivateTrader(newAccount)`` take settings
only one platform knows (DXtrade's account categories, cTrader's access rights).  A
plugin declares them as a Strawberry input subclassing :class:`TraderOptions`
(createTrader) or :class:`AccountOptions` (openAccount and newAccount), with the
class attribute ``platform``, and contributes it through ``brokergraph_schema_types``.
The schema then gives the core input one optional field named after the platform::

    createTrader(input: {platform: "dxtrade", partnerCode: "DEMO-001", email: "…",
                         currency: "USD", dxtrade: {accountType: DEMO, categories: […]}})

The field is typed, so GraphQL itself refuses a misspelt key or an enum value the
platform does not have, before the gateway runs.  What remains reaches the connector
exactly as the JSON ``options`` would (:meth:`TraderOptions.to_options`: the GraphQL
field names as keys), so a connector checks one shape whichever way a client sent it;
an ``InvalidInput`` it raises on ``options.<key>`` is reported on ``<platform>.<key>``.
A platform's field is refused on another platform's input, and with ``options`` at once.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, ClassVar, Final

import strawberry
from strawberry.types.base import has_object_definition
from strawberry.utils.str_converters import to_camel_case

from gateway.errors import InvalidInput
from gateway.plugins import PluginContractError

__all__ = [
    "AccountOptions",
    "PlatformOptions",
    "TraderOptions",
    "chosen_options",
    "options_errors",
    "specialise",
    "specialised_by",
]


class _Options:
    #: The platform (connector ``platform``) these options are for.
    platform: ClassVar[str]

    def to_options(self) -> dict[str, Any]:
        """The options as the JSON ``options`` carries them: GraphQL field names as keys,
        enums by value, Decimals as strings, nested inputs as objects; unset (null)
        fields left out.  Override for another mapping."""
        plain: dict[str, Any] = _plain(self)
        return plain


class TraderOptions(_Options):
    """Base of a platform's typed ``createTrader`` options (a Strawberry input)."""


class AccountOptions(_Options):
    """Base of a platform's typed ``openAccount`` / ``newAccount`` options (a Strawberry input)."""


def _plain(value: Any) -> Any:
    if has_object_definition(value):
        fields = value.__strawberry_definition__.fields
        out = {}
        for field in fields:
            item = getattr(value, field.python_name)
            if item is None or item is strawberry.UNSET:
                continue
            out[field.graphql_name or to_camel_case(field.python_name)] = _plain(item)
        return out
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


@dataclasses.dataclass(frozen=True, slots=True)
class PlatformOptions:
    """The typed options this install's plugins contribute, by platform."""

    trader: Mapping[str, type[TraderOptions]] = dataclasses.field(default_factory=dict)
    account: Mapping[str, type[AccountOptions]] = dataclasses.field(default_factory=dict)

    @classmethod
    def collect(cls, types: Sequence[Any]) -> PlatformOptions:
        """The option inputs among the contributed schema types, checked."""
        trader: dict[str, type[TraderOptions]] = {}
        account: dict[str, type[AccountOptions]] = {}
        for candidate in types:
            if not isinstance(candidate, type) or not issubclass(candidate, _Options):
                continue
            platform = getattr(candidate, "platform", None)
            definition = getattr(candidate, "__strawberry_definition__", None)
            if definition is None or not definition.is_input:
                raise PluginContractError(f"{candidate.__qualname__} must be a Strawberry input")
            if not isinstance(platform, str) or not platform.isidentifier():
                raise PluginContractError(
                    f"{candidate.__qualname__}.platform must name the platform (an identifier)"
                )
            for base, found in ((TraderOptions, trader), (AccountOptions, account)):
                if not issubclass(candidate, base):
                    continue
                if platform in found and found[platform] is not candidate:
                    raise PluginContractError(
                        f"two {base.__name__} inputs for platform {platform!r}: "
                        f"{found[platform].__qualname__} and {candidate.__qualname__}"
                    )
                found[platform] = candidate  # type: ignore[assignment]
        return cls(trader, account)


#: Root types rebuilt for the install's platform options (see :func:`specialise`).
_SPECIALISERS: Final[dict[type, Callable[[PlatformOptions], type]]] = {}


def specialised_by(default: type, build: Callable[[PlatformOptions], type]) -> None:
    """Declare that root type ``default`` (built without platform options) is rebuilt by
    ``build`` for an install's options, when the schema is assembled."""
    _SPECIALISERS[default] = build


def specialise(parts: Sequence[type], options: PlatformOptions) -> list[type]:
    """``parts`` with each type declared by :func:`specialised_by` rebuilt for ``options``."""
    if not options.trader and not options.account:
        return list(parts)
    return [_SPECIALISERS[part](options) if part in _SPECIALISERS else part for part in parts]


def extend_input(base: type, fields: Mapping[str, type], **overrides: type) -> type:
    """Core input ``base`` with one optional field per platform (its typed options) and
    fields retyped by ``overrides`` (a nested input that was itself extended); the same
    GraphQL name and description, so the schema shows one type."""
    if not fields and not overrides:
        return base
    definition = base.__strawberry_definition__  # type: ignore[attr-defined]
    annotations: dict[str, Any] = {}
    namespace: dict[str, Any] = {}
    for platform, options in sorted(fields.items()):
        if any(f.python_name == platform for f in definition.fields):
            raise PluginContractError(
                f"platform {platform!r} clashes with the field {definition.name}.{platform}"
            )
        annotations[platform] = options | None
        namespace[platform] = strawberry.field(
            default=None,
            name=to_camel_case(platform),
            description=f"Options only {platform} has, typed: only for {platform}, and "
            "not together with options.",
        )
    for name, annotation in overrides.items():
        annotations[name] = annotation | None
        namespace[name] = None
    cls = type(
        base.__name__,
        (base,),
        {
            "__annotations__": annotations,
            "__module__": base.__module__,
            "__qualname__": base.__qualname__,
            **namespace,
        },
    )
    extended: type = strawberry.input(name=definition.name, description=definition.description)(cls)
    return extended


def chosen_options(
    input: Any, platform: str, json_options: object, path: Sequence[str] = ()
) -> tuple[dict[str, Any], str]:
    """The options ``input`` gives for ``platform`` and the input field they came in:
    its typed field (a platform's :class:`TraderOptions`/:class:`AccountOptions`) or the
    JSON ``options`` — never both, never another platform's field.  No upstream call."""
    given = [
        (field.name, value)
        for field in dataclasses.fields(input)
        if isinstance(value := getattr(input, field.name), _Options)
    ]
    for name, value in given:
        if value.platform != platform:
            raise InvalidInput(
                f"{to_camel_case(name)} holds {value.platform} options; this input is "
                f"for platform {platform!r}",
                field=[*path, to_camel_case(name)],
            )
    if given:
        name, value = given[0]
        if json_options is not None:
            raise InvalidInput(
                f"give the options either typed ({to_camel_case(name)}) or as JSON "
                "(options), not both",
                field=[*path, "options"],
            )
        return value.to_options(), to_camel_case(name)
    if json_options is None:
        return {}, "options"
    if not isinstance(json_options, dict):
        raise InvalidInput("options must be a JSON object", field=[*path, "options"])
    return json_options, "options"


@contextmanager
def options_errors(came_in: str, path: Sequence[str] = ()) -> Iterator[None]:
    """Report a connector's ``InvalidInput`` on ``options.<key>`` on the field the
    options came in (``dxtrade.<key>``), under ``path`` (``newAccount``)."""
    try:
        yield
    except InvalidInput as error:
        if came_in != "options" and error.field[:1] == ("options",):
            error.field = (*path, came_in, *error.field[1:])
        raise
