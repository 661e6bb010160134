"""What QST adds to the schema: ``QstAccount`` (implements ``Account``) with QST's
order activity log and account information, which have no standard field."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Self

import strawberry
from strawberry.types import Info

from brokergraph_qst import wire
from brokergraph_qst.connector import QstConnector
from gateway.contract import Account as AccountModel
from gateway.contract import Capability, InvalidInput
from gateway.contract.schema import AccountType, account_fields, context_of, encode_id
from gateway.contract.schema import MoneyType as Money

__all__ = ["QstAccount", "QstAccountInformation", "QstActivityItem"]


def _money(amount: Decimal | None, currency: str) -> Money | None:
    return None if amount is None else Money(amount=amount, currency=currency)


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
    # The gateway's read road: guarded (breaker, rate limit, retries) and made once
    # per operation.  Not cached: QST declares no TTL, the log grows as orders move.
    account_id = root.external_id
    items = await context_of(info).loaders.read(
        root.platform,
        Capability.ORDER_READS,
        QstConnector,
        "qst-activity",
        account_id,
        lambda qst: qst.get_activity(account_id),
    )
    return [QstActivityItem.from_item(account_id, item) for item in items]


async def _account_information(
    root: QstAccount, info: Info[Any, Any], currency_code: str | None = "USD"
) -> QstAccountInformation | None:
    code = (currency_code or "USD").strip().upper()
    if not (code.isalpha() and 3 <= len(code) <= 5):
        raise InvalidInput("currencyCode must be a currency code", field=["currencyCode"])
    account_id = root.external_id
    result = await context_of(info).loaders.read(
        root.platform,
        Capability.ACCOUNT_READS,
        QstConnector,
        "qst-account-information",
        f"{account_id}:{code}",  # the code is letters only: the key stays unambiguous
        lambda qst: qst.get_account_information(account_id, code),
    )
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
