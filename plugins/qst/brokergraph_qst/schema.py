"""What QST adds to the schema: ``QstAccount`` (implements ``Account``) with QST's
order activity log and account information, which have no standard field."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Self

import strawberry
from strawberry.types import Info

from brokergraph_qst import wire
from brokergraph_qst.connector import QstConnector
from gateway.contract import Account as AccountModel
from gateway.contract import (
    AccountType,
    CapabilityNotSupported,
    InvalidInput,
    account_fields,
    context_of,
    encode_id,
)

if TYPE_CHECKING:
    # The GraphQL Money type is not (yet) in gateway.contract; at run time it is taken
    # from the Account interface's ``balance`` field below, so this plugin's fields
    # use the core type and the schema has one Money.
    from gateway.graphql.types import Money
else:

    def _interface_type(field_name: str) -> Any:
        for field in AccountType.__strawberry_definition__.fields:
            if field.name == field_name:
                return getattr(field.type, "of_type", field.type)
        raise LookupError(f"Account has no field {field_name!r}")

    Money = _interface_type("balance")

__all__ = ["QstAccount", "QstAccountInformation", "QstActivityItem"]


def _money(amount: Decimal | None, currency: str) -> Money | None:
    return None if amount is None else Money(amount=amount, currency=currency)


def _connector(info: Info[Any, Any], platform: str) -> QstConnector:
    connector = context_of(info).services.registry.require_any(platform)
    if not isinstance(connector, QstConnector):
        raise CapabilityNotSupported(
            f"the {platform!r} connector is not QST's", details={"platform": platform}
        )
    return connector


@strawberry.type(description="One entry of QST's order activity log.")
class QstActivityItem:
    order_id: strawberry.ID | None = strawberry.field(description="The order's global id.")
    order_number: str
    at: datetime | None
    action: str = strawberry.field(description='"Place", "Cancel", "Replace", "Fill", "Reject"…')
    status: str = strawberry.field(description="QST's order status text at that moment.")
    description: str

    @classmethod
    def from_item(cls, account_id: str, item: wire.ActivityItem) -> QstActivityItem:
        order_id = (
            strawberry.ID(encode_id("Order", wire.PLATFORM, account_id, item.order_number))
            if item.order_number
            else None
        )
        return cls(
            order_id=order_id,
            order_number=item.order_number,
            at=item.at,
            action=item.action,
            status=item.status,
            description=item.description,
        )


@strawberry.type(description="QST's account information, money in the asked currency.")
class QstAccountInformation:
    account_id: strawberry.ID
    name: str
    currency_code: str
    balance: Money | None
    equity: Money | None
    margin: Money | None
    available_funds: Money | None
    open_pnl: Money | None
    realized_pnl: Money | None
    oe_provider: str = strawberry.field(description='The order entry provider ("QOR").')
    is_live_trading: bool

    @classmethod
    def from_info(cls, info: wire.AccountInfo) -> QstAccountInformation:
        currency = info.currency
        return cls(
            account_id=strawberry.ID(encode_id("Account", wire.PLATFORM, info.account_id)),
            name=info.name,
            currency_code=currency,
            balance=_money(info.balance, currency),
            equity=_money(info.equity, currency),
            margin=_money(info.margin, currency),
            available_funds=_money(info.available_funds, currency),
            open_pnl=_money(info.open_pnl, currency),
            realized_pnl=_money(info.realized_pnl, currency),
            oe_provider=info.provider,
            is_live_trading=info.is_live,
        )


async def _activity(root: QstAccount, info: Info[Any, Any]) -> list[QstActivityItem]:
    items = await _connector(info, root.platform).get_activity(root.external_id)
    return [QstActivityItem.from_item(root.external_id, item) for item in items]


async def _account_information(
    root: QstAccount, info: Info[Any, Any], currency_code: str | None = "USD"
) -> QstAccountInformation | None:
    code = (currency_code or "USD").strip().upper()
    if not (code.isalpha() and 3 <= len(code) <= 5):
        raise InvalidInput("currencyCode must be a currency code", field=["currencyCode"])
    result = await _connector(info, root.platform).get_account_information(root.external_id, code)
    return QstAccountInformation.from_info(result)


@strawberry.federation.type(keys=["id"], description="An order-entry account of QST.")
class QstAccount(AccountType):
    activity: list[QstActivityItem] = strawberry.field(
        resolver=_activity,
        description="QST's order activity log of this account (GetActivityItems).",
    )
    account_information: QstAccountInformation | None = strawberry.field(
        resolver=_account_information,
        description="QST's account information (AccountInfo), money in `currencyCode`.",
    )

    @classmethod
    def from_model(cls, m: AccountModel) -> Self:
        return cls(**account_fields(m))
