"""The input types of the core mutations, one per mutation (money movements share one)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import strawberry
from strawberry.scalars import JSON

from gateway import models
from gateway.graphql.types import (
    AccountStatus,
    OrderSide,
    OrderType,
    PartnerKind,
    ReportFormat,
    TaxKind,
    TimeInForce,
)

__all__ = [
    "CalculateTaxInput",
    "CancelOrderInput",
    "CancelOrdersForContractInput",
    "CancelOrdersInput",
    "CreateBusinessPartnerInput",
    "CreateTraderInput",
    "DeactivateTraderInput",
    "DeleteBusinessPartnerInput",
    "LinkToPartnerInput",
    "MoneyMovementInput",
    "NewAccountInput",
    "OpenAccountInput",
    "PartnerOnPlatformInput",
    "PlaceOrderInput",
    "ReactivateTraderInput",
    "ReplaceOrderInput",
    "RequestClientReportInput",
    "SetTradingLeverageInput",
    "UnlinkFromPartnerInput",
    "UpdateAccountInput",
    "UpdateBusinessPartnerInput",
]


#: The optional idempotency key of a provisioning or partner creation.
PROVISIONING_KEY = (
    "Recommended: unique per creation (a UUID). A retry with it (a double submit, a lost "
    "answer) returns the first result and creates nothing more; while the first is in "
    "flight it is IDEMPOTENCY_CONFLICT, and so is the key with a different request."
)


@strawberry.input
class CreateBusinessPartnerInput:
    code: str
    name: str
    broker: str | None = strawberry.UNSET
    kind: PartnerKind = models.PartnerKind.INDIVIDUAL  # type: ignore[valid-type]
    short_name: str | None = None
    email: str | None = None
    phone: str | None = None
    tax_id: str | None = None
    residency: str | None = None
    is_qualified_investor: bool = False
    attributes: JSON | None = None
    sub_account_code: str | None = None
    agreement_number: str | None = None
    platform: str | None = strawberry.field(
        default=None, description="Back office to create it in; omitted: the one installed."
    )
    idempotency_key: str | None = strawberry.field(default=None, description=PROVISIONING_KEY)


@strawberry.input
class UpdateBusinessPartnerInput:
    code: str
    name: str | None = None
    short_name: str | None = None
    email: str | None = None
    phone: str | None = None
    tax_id: str | None = None
    residency: str | None = None
    is_qualified_investor: bool | None = None
    kyc_passed: bool | None = None
    attributes: JSON | None = None
    platform: str | None = None


@strawberry.input
class DeleteBusinessPartnerInput:
    code: str
    platform: str | None = None


@strawberry.input
class PartnerOnPlatformInput:
    partner_code: str
    platform: str | None = None


@strawberry.input
class SetTradingLeverageInput:
    partner_code: str
    leverage: Decimal
    platform: str | None = None


@strawberry.input
class CalculateTaxInput:
    partner_code: str
    kind: TaxKind  # type: ignore[valid-type]
    amount: Decimal | None = None
    currency: str | None = None
    period_from: datetime | None = None
    period_to: datetime | None = None
    platform: str | None = None
    day: date | None = strawberry.field(
        default=None,
        name="date",
        description="WITHDRAWAL only: the day of the withdrawal, whose year's income up to"
        " it is taxed; omitted: today (UTC). Not in the future.",
    )


@strawberry.input
class RequestClientReportInput:
    partner_code: str
    format: ReportFormat  # type: ignore[valid-type]
    period_from: datetime
    period_to: datetime
    platform: str | None = None
    account_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="One of the partner's accounts on the reporting platform; "
        "omitted: one report per account of the partner there.",
    )


#: Why ``options`` is deprecated: a typed field per platform replaced it.
OPTIONS_DEPRECATED = (
    "Use the platform's typed field (dxtrade: {...}, ctrader: {...}); options stays for "
    "platforms that have none."
)


@strawberry.input
class CreateTraderInput:
    platform: str
    partner_code: str
    email: str
    name: str | None = None
    password: str | None = None
    group: str | None = None
    currency: str | None = None
    leverage: Decimal | None = None
    is_live: bool | None = strawberry.field(
        default=None,
        description="Live or demo; null: the platform's default (cTrader: the environment "
        "its connector serves). A platform that cannot make what is asked refuses it.",
    )
    options: JSON | None = strawberry.field(
        default=None,
        description="Platform-specific options as JSON; see the connector's docs.",
        deprecation_reason=OPTIONS_DEPRECATED,
    )
    resume_token: str | None = None
    idempotency_key: str | None = strawberry.field(default=None, description=PROVISIONING_KEY)


@strawberry.input
class NewAccountInput:
    currency: str
    group: str | None = None
    leverage: Decimal | None = None
    is_live: bool | None = strawberry.field(
        default=None,
        description="Live or demo; null: the platform's default (cTrader: the environment "
        "its connector serves). A platform that cannot make what is asked refuses it.",
    )
    options: JSON | None = strawberry.field(default=None, deprecation_reason=OPTIONS_DEPRECATED)


@strawberry.input
class OpenAccountInput:
    trader_id: strawberry.ID
    currency: str
    group: str | None = None
    leverage: Decimal | None = None
    is_live: bool | None = strawberry.field(
        default=None,
        description="Live or demo; null: the platform's default (cTrader: the environment "
        "its connector serves). A platform that cannot make what is asked refuses it.",
    )
    options: JSON | None = strawberry.field(default=None, deprecation_reason=OPTIONS_DEPRECATED)
    idempotency_key: str | None = strawberry.field(default=None, description=PROVISIONING_KEY)


@strawberry.input
class UpdateAccountInput:
    account_id: strawberry.ID
    leverage: Decimal | None = None
    status: AccountStatus | None = None  # type: ignore[valid-type]
    group: str | None = None


@strawberry.input
class DeactivateTraderInput:
    trader_id: strawberry.ID
    cancel_market_data_subscriptions: bool = False


@strawberry.input
class ReactivateTraderInput:
    trader_id: strawberry.ID
    new_account: NewAccountInput | None = None


@strawberry.input
class MoneyMovementInput:
    account_id: strawberry.ID
    amount: Decimal = strawberry.field(
        description="In currency units; deposit/withdraw > 0, credit/bonus changes signed."
    )
    idempotency_key: str = strawberry.field(
        description="Unique per account (a UUID); a retry with it returns the first result."
    )
    comment: str | None = None


@strawberry.input
class PlaceOrderInput:
    account_id: strawberry.ID
    symbol: str
    side: OrderSide  # type: ignore[valid-type]
    type: OrderType  # type: ignore[valid-type]
    quantity: Decimal
    idempotency_key: str
    price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: TimeInForce = models.TimeInForce.DAY  # type: ignore[valid-type]
    expires_at: datetime | None = None
    client_order_id: str | None = strawberry.field(
        default=None,
        description="The client's own id for the order, shown as Order.clientOrderId"
        " (kept by the gateway where the platform has no field for it).",
    )


@strawberry.input
class CancelOrderInput:
    order_id: strawberry.ID


@strawberry.input
class CancelOrdersInput:
    account_id: strawberry.ID
    order_ids: list[strawberry.ID]


@strawberry.input
class CancelOrdersForContractInput:
    account_id: strawberry.ID
    symbol: str


@strawberry.input
class ReplaceOrderInput:
    order_id: strawberry.ID
    idempotency_key: str
    quantity: Decimal | None = None
    price: Decimal | None = None
    stop_price: Decimal | None = None


@strawberry.input
class LinkToPartnerInput:
    partner_code: str
    trader_id: strawberry.ID | None = None
    account_id: strawberry.ID | None = None


@strawberry.input
class UnlinkFromPartnerInput:
    trader_id: strawberry.ID | None = None
    account_id: strawberry.ID | None = None
