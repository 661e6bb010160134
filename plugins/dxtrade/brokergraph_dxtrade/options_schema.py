"""DXtrade's typed provisioning options: ``createTrader(input: {…, dxtrade: {…}})`` and
``openAccount`` / ``reactivateTrader(newAccount)`` with ``dxtrade: {…}``.

They carry what the JSON ``options`` carried (the README's options table), with
DXtrade's value sets as enums (B6), so a misspelt key or value is refused by GraphQL
itself.  The connector checks the rest as it checks ``options`` (the value reaches it
as ``options``): categories against DXtrade's own category list, the balance, codes.
"""

from __future__ import annotations

import enum
from decimal import Decimal

import strawberry

from gateway.contract.schema import AccountOptions, TraderOptions

__all__ = [
    "DxTradeAccountCashType",
    "DxTradeAccountKind",
    "DxTradeAccountMode",
    "DxTradeAccountOptions",
    "DxTradeCategoryInput",
    "DxTradeFeedMode",
    "DxTradeOpeningStatus",
    "DxTradeTraderOptions",
]

PLATFORM = "dxtrade"


@strawberry.enum(description="An account's accountType (B6, verified): live or demo money.")
class DxTradeAccountMode(enum.Enum):
    LIVE = "LIVE"
    DEMO = "DEMO"


@strawberry.enum(description="An account's type (B6, observed); seed 004 opens CLIENT accounts.")
class DxTradeAccountKind(enum.Enum):
    CLIENT = "CLIENT"
    OFFSET = "OFFSET"
    REFERENCE = "REFERENCE"


@strawberry.enum(
    description="The status an account may be opened in (B6, observed). TERMINATED and "
    "EXPIRED are final: an account opened in them could never trade."
)
class DxTradeOpeningStatus(enum.Enum):
    FULL_TRADING = "FULL_TRADING"
    CLOSE_ONLY = "CLOSE_ONLY"
    NO_TRADING = "NO_TRADING"


@strawberry.enum(description="An account's accountCashType (B6, observed).")
class DxTradeAccountCashType(enum.Enum):
    MARGIN = "MARGIN"
    CASH = "CASH"


@strawberry.enum(
    description="How the user's dxFeed account is made (seed 004 §1). Single-feed mode is "
    "not offered: DxTradeXT reads an email without a dxFeed account as DxTradeXT mode, "
    "so the user's email would be lost."
)
class DxTradeFeedMode(enum.Enum):
    DXTRADE_XT = "DXTRADE_XT"
    CRM = "CRM"


@strawberry.input(description="One account setting: a category domain and its value.")
class DxTradeCategoryInput:
    category: str = strawberry.field(
        description="The domain (Trading, Margining, Commissions, TRADE_TYPE …): one DXtrade "
        "lists at /api/register/category."
    )
    value: str = strawberry.field(description="One of the values DXtrade lists for the domain.")


@strawberry.input
class _DxTradeAccountFields:
    """The settings of a new account (seed 004 §2.1 and §2.4 bodies)."""

    account_type: DxTradeAccountMode | None = strawberry.field(
        default=None, description="Default: from isLive (null: LIVE)."
    )
    type: DxTradeAccountKind | None = strawberry.field(default=None, description="Default CLIENT.")
    status: DxTradeOpeningStatus | None = strawberry.field(
        default=None, description="Default FULL_TRADING."
    )
    account_cash_type: DxTradeAccountCashType | None = strawberry.field(
        default=None, description="Default MARGIN."
    )
    categories: list[DxTradeCategoryInput] | None = strawberry.field(
        default=None,
        description="At most 50, each domain once; checked against DXtrade's category list "
        "before any write.",
    )
    account_code: str | None = strawberry.field(
        default=None, description="Default: derived from the login and currency, made unique."
    )
    clearing_code: str | None = strawberry.field(
        default=None, description="Default: the connector's clearing_code."
    )
    balance: Decimal | None = strawberry.field(
        default=None,
        description="Starting money of a DEMO account; a LIVE one is funded with deposit.",
    )


@strawberry.input(description="DXtrade's settings of a new account (openAccount, newAccount).")
class DxTradeAccountOptions(_DxTradeAccountFields, AccountOptions):
    platform = PLATFORM


@strawberry.input(
    description="DXtrade's settings of a new user and, with a currency, its first account."
)
class DxTradeTraderOptions(_DxTradeAccountFields, TraderOptions):
    platform = PLATFORM

    mode: DxTradeFeedMode | None = strawberry.field(
        default=None, description="Default: CRM with a dxFeedAccountId, else DXTRADE_XT."
    )
    dx_feed_account_id: str | None = strawberry.field(
        default=None,
        name="dxFeedAccountId",
        description="The dxFeed account the CRM made (CRM mode only, required there).",
    )
    login: str | None = strawberry.field(
        default=None, description="Default: the email's local part, made unique."
    )
    domain: str | None = strawberry.field(
        default=None, description="Default: the connector's domain."
    )
    broker_code: str | None = strawberry.field(
        default=None, description="Default: the connector's broker_code."
    )
