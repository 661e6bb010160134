"""Typed platform options (gateway.graphql.platform_options): a plugin's option inputs
become fields of the provisioning inputs, reach the connector as its ``options``, and
are refused on another platform's input or next to the JSON ``options``.  End to end
against real sandboxes: plugins/dxtrade and plugins/ctrader tests/test_typed_platform_options.py."""

from __future__ import annotations

import enum
import re
from decimal import Decimal
from typing import Any

import pytest
import strawberry

from gateway.contract.schema import AccountOptions, TraderOptions
from gateway.errors import InvalidInput
from gateway.graphql import build_schema
from gateway.graphql.platform_options import PlatformOptions, chosen_options, options_errors
from gateway.hookspecs import hookimpl
from gateway.plugins import PluginContractError, load_plugins


@strawberry.enum
class AcmeTier(enum.Enum):
    GOLD = "GOLD"
    SILVER = "SILVER"


@strawberry.input
class AcmeTag:
    tag_name: str
    weight: Decimal | None = None


@strawberry.input
class AcmeTraderOptions(TraderOptions):
    platform = "acme"
    tier: AcmeTier | None = None
    starting_credit: Decimal | None = None
    tags: list[AcmeTag] | None = None
    desk_code: str | None = strawberry.field(default=None, name="deskCODE")


@strawberry.input
class AcmeAccountOptions(AccountOptions):
    platform = "acme"
    tier: AcmeTier | None = None


class AcmePlugin:
    def __init__(self, *types: type) -> None:
        self.types = types or (AcmeTraderOptions, AcmeAccountOptions)

    @hookimpl
    def brokergraph_schema_types(self) -> list[type]:
        return list(self.types)


def _block(sdl: str, name: str) -> str:
    return sdl.split(f"input {name} {{", 1)[1].split("\n}", 1)[0]


def _input_fields(sdl: str, name: str) -> list[str]:
    return re.findall(r"^  ([A-Za-z_]\w*): ", _block(sdl, name), flags=re.MULTILINE)


def test_option_inputs_become_a_field_of_each_provisioning_input() -> None:
    plain = str(build_schema(load_plugins(entry_points=False)))
    assert "acme" not in _input_fields(plain, "CreateTraderInput")
    sdl = str(build_schema(load_plugins(entry_points=False, extra=[AcmePlugin()])))
    assert "acme: AcmeTraderOptions" in _block(sdl, "CreateTraderInput")
    for name in ("OpenAccountInput", "NewAccountInput"):
        assert _input_fields(sdl, name)[-1] == "acme", name
        assert "acme: AcmeAccountOptions" in _block(sdl, name)
    # The rest of each input is as before, the typed field last.
    assert _input_fields(sdl, "CreateTraderInput")[:-1] == _input_fields(plain, "CreateTraderInput")
    assert "newAccount: NewAccountInput" in _block(sdl, "ReactivateTraderInput")


def test_the_options_reach_the_connector_as_its_json_would() -> None:
    typed = AcmeTraderOptions(
        tier=AcmeTier.GOLD,
        starting_credit=Decimal("10.50"),
        tags=[AcmeTag(tag_name="vip"), AcmeTag(tag_name="b", weight=Decimal("0.1"))],
        desk_code="D1",
    )
    assert typed.to_options() == {
        "tier": "GOLD",
        "startingCredit": "10.50",
        "tags": [{"tagName": "vip"}, {"tagName": "b", "weight": "0.1"}],
        "deskCODE": "D1",
    }


@strawberry.input
class _Input:
    platform: str
    options: strawberry.scalars.JSON | None = None
    acme: AcmeTraderOptions | None = None


def test_the_typed_field_or_the_json_never_both_never_another_platforms() -> None:
    typed = AcmeTraderOptions(tier=AcmeTier.SILVER)
    assert chosen_options(_Input(platform="acme", acme=typed), "acme", None) == (
        {"tier": "SILVER"},
        "acme",
    )
    assert chosen_options(_Input(platform="acme"), "acme", {"a": 1}) == ({"a": 1}, "options")
    assert chosen_options(_Input(platform="acme"), "acme", None) == ({}, "options")
    refusals: list[tuple[_Input, Any, tuple[str, ...]]] = [
        (_Input(platform="other", acme=typed), None, ("acme",)),
        (_Input(platform="acme", acme=typed), {"a": 1}, ("options",)),
        (_Input(platform="acme"), [1], ("options",)),
    ]
    for value, json, field in refusals:
        with pytest.raises(InvalidInput) as refused:
            chosen_options(value, value.platform, json)
        assert refused.value.field == field
    with pytest.raises(InvalidInput) as nested:
        chosen_options(_Input(platform="x", acme=typed), "x", None, path=("newAccount",))
    assert nested.value.field == ("newAccount", "acme")


def test_a_connectors_options_error_names_the_field_they_came_in() -> None:
    for came_in, path, expected in (
        ("acme", (), ("acme", "tier")),
        ("acme", ("newAccount",), ("newAccount", "acme", "tier")),
        ("options", (), ("options", "tier")),  # JSON: as the connector said
    ):
        with pytest.raises(InvalidInput) as refused, options_errors(came_in, path):
            raise InvalidInput("bad tier", field=["options", "tier"])
        assert refused.value.field == expected
    with pytest.raises(InvalidInput) as other, options_errors("acme"):
        raise InvalidInput("bad currency", field=["currency"])
    assert other.value.field == ("currency",)


def test_malformed_option_inputs_are_contract_errors() -> None:
    class NotAnInput(TraderOptions):
        platform = "acme"

    @strawberry.input
    class NoPlatform(TraderOptions):
        tier: AcmeTier | None = None

    @strawberry.input(name="AcmeTraderOptionsTwo")
    class Twice(TraderOptions):
        platform = "acme"

    @strawberry.input(name="EmailOptions")
    class Clashing(TraderOptions):
        platform = "email"  # CreateTraderInput has an email field

    for types, message in (
        ((NotAnInput,), "must be a Strawberry input"),
        ((NoPlatform,), "must name the platform"),
        ((AcmeTraderOptions, Twice), "two TraderOptions inputs for platform 'acme'"),
    ):
        with pytest.raises(PluginContractError, match=message):
            PlatformOptions.collect(types)
    with pytest.raises(PluginContractError, match="clashes with the field"):
        build_schema(load_plugins(entry_points=False, extra=[AcmePlugin(Clashing)]))
