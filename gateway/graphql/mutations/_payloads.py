"""The payload types of the core mutations: the result, or typed ``errors``, never both."""

from __future__ import annotations

import strawberry

from gateway.graphql.errors import ErrorCode, UserError
from gateway.graphql.types import (
    Account,
    BalanceOperation,
    BusinessPartner,
    ClientReport,
    Order,
    TaxCalculation,
    Trader,
)

__all__ = [
    "AccountPayload",
    "BusinessPartnerPayload",
    "ClientReportPayload",
    "DeleteBusinessPartnerPayload",
    "LinkPayload",
    "MoneyMovementPayload",
    "OrderPayload",
    "OrdersPayload",
    "ProvisioningPayload",
    "ProvisioningStep",
    "TaxPayload",
]


@strawberry.type
class BusinessPartnerPayload:
    business_partner: BusinessPartner | None = None
    replayed: bool = strawberry.field(
        default=False,
        description="True when its idempotencyKey ran before: the first result, nothing sent.",
    )
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class DeleteBusinessPartnerPayload:
    deleted_code: str | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class TaxPayload:
    calculation: TaxCalculation | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class ClientReportPayload:
    report: ClientReport | None = strawberry.field(
        default=None, description="The first of `reports`."
    )
    reports: list[ClientReport] = strawberry.field(
        default_factory=list,
        description="One report per account reported on (the platform reports per account).",
    )
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type(description="One upstream call of a multi-step flow and how it ended.")
class ProvisioningStep:
    name: str
    succeeded: bool
    reference: str | None
    message: str | None
    code: ErrorCode | None = strawberry.field(
        default=None, description="The error code that stopped a failed step, when known."
    )


@strawberry.type
class ProvisioningPayload:
    trader: Trader | None = None
    accounts: list[Account] = strawberry.field(default_factory=list)
    steps: list[ProvisioningStep] = strawberry.field(default_factory=list)
    resume_token: str | None = strawberry.field(
        default=None, description="Set when the flow stopped midway: send it back to resume."
    )
    replayed: bool = strawberry.field(
        default=False,
        description="True when its idempotencyKey ran before: the first result, nothing sent.",
    )
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class AccountPayload:
    account: Account | None = None
    replayed: bool = strawberry.field(
        default=False,
        description="True when its idempotencyKey ran before: the first result, nothing sent.",
    )
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class MoneyMovementPayload:
    operation: BalanceOperation | None = None
    replayed: bool = strawberry.field(
        default=False, description="True when this key ran before: the first result, nothing moved."
    )
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class OrderPayload:
    order: Order | None = None
    replayed: bool = False
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class OrdersPayload:
    orders: list[Order] = strawberry.field(default_factory=list)
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class LinkPayload:
    business_partner: BusinessPartner | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)
