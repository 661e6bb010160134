"""cTrader's typed provisioning options: ``createTrader(input: {…, ctrader: {…}})`` and
``openAccount`` / ``reactivateTrader(newAccount)`` with ``ctrader: {…}``.

They carry what the JSON ``options`` carried (the README's createTrader section), with
cTrader's value sets (A4.1, verified) as enums — those ``CTraderAccount`` reads back —
so a misspelt key or value is refused by GraphQL itself; the connector checks the rest
as it checks ``options``.
"""

from __future__ import annotations

import enum

import strawberry

from brokergraph_ctrader.schema import CTraderAccessRights, CTraderAccountKind
from gateway.contract.schema import AccountOptions, TraderOptions

__all__ = [
    "CTraderAccountOptions",
    "CTraderMarginCalculation",
    "CTraderTraderOptions",
]

PLATFORM = "ctrader"


@strawberry.enum(description="A trader's totalMarginCalculationType (A4.1).")
class CTraderMarginCalculation(enum.Enum):
    MAX = "MAX"
    SUM = "SUM"
    NET = "NET"


@strawberry.input
class _CTraderAccountFields:
    """The settings of a new trader (4.1's body)."""

    access_rights: CTraderAccessRights | None = strawberry.field(
        default=None, description="Default FULL_ACCESS."
    )
    account_type: CTraderAccountKind | None = strawberry.field(
        default=None, description="Default HEDGED."
    )
    total_margin_calculation_type: CTraderMarginCalculation | None = strawberry.field(
        default=None, description="Default MAX."
    )
    swap_free: bool | None = strawberry.field(default=None, description="Default false.")
    introducing_broker1: str | None = strawberry.field(
        default=None,
        name="introducingBroker1",
        description="The partner (IB) who brought the client: 1-100 characters, kept in "
        "contactDetails (A1).",
    )
    introducing_broker2: str | None = strawberry.field(
        default=None, name="introducingBroker2", description="A second partner id."
    )


@strawberry.input(description="cTrader's settings of a new trader (openAccount, newAccount).")
class CTraderAccountOptions(_CTraderAccountFields, AccountOptions):
    platform = PLATFORM


@strawberry.input(description="cTrader's settings of a new cTID and its first trader.")
class CTraderTraderOptions(_CTraderAccountFields, TraderOptions):
    platform = PLATFORM

    preferred_language: str | None = strawberry.field(
        default=None,
        description="Of a new cTID (5.1); default: the connector's preferred_language.",
    )
