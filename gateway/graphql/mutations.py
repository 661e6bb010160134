"""Root mutation fields: each takes one ``input`` and returns a payload with typed errors.

Every mutation follows the same path (``perform``): authorise, validate (no
upstream call on bad input), dispatch to the connector that declared the
capability, record links, invalidate the cache, and append an audit entry —
whatever the outcome.  Money and order mutations run under an idempotency key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol, TypeVar

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from gateway import models
from gateway.auth import Role, Viewer
from gateway.config import is_secret_key
from gateway.connectors import (
    Bonus,
    CancelOrdersRequest,
    Capability,
    ClientReports,
    CreatePartnerRequest,
    CreateTraderRequest,
    Credit,
    DeactivateTraderRequest,
    Funding,
    MoneyMovement,
    OpenAccountRequest,
    OrderRouting,
    PartnerDirectory,
    PlaceOrderRequest,
    ProvisioningResult,
    ReactivateTraderRequest,
    ReplaceOrderRequest,
    ReportRequest,
    TaxCalculator,
    TaxRequest,
    TraderProvisioning,
    TradingAccess,
    UpdateAccountRequest,
    UpdatePartnerRequest,
)
from gateway.errors import BrokerGraphError, InvalidInput, PermissionDenied, UpstreamError
from gateway.graphql import access
from gateway.graphql.context import RequestContext, context_of
from gateway.graphql.errors import UserError, to_user_error, user_error_from_dict
from gateway.graphql.ids import decode_id
from gateway.graphql.loaders import cache_key
from gateway.graphql.types import (
    Account,
    AccountStatus,
    BalanceOperation,
    BusinessPartner,
    ClientReport,
    Order,
    OrderSide,
    OrderType,
    PartnerKind,
    ReportFormat,
    TaxCalculation,
    TaxKind,
    TimeInForce,
    Trader,
    account_type,
    check_period,
    load_partner,
)
from gateway.idempotency import check_idempotency_key, run_once
from gateway.serialization import from_jsonable, to_jsonable
from gateway.store import AuditEntry

__all__ = ["CoreMutation"]

P = TypeVar("P", bound="Payload")
MAX_AMOUNT = Decimal("1e12")
MAX_AMOUNT_DECIMALS = 8
STAFF = (Role.MANAGER, Role.ADMIN)


class Payload(Protocol):
    errors: list[UserError]


# --------------------------------------------------------------------------- validation


def check_amount(amount: Decimal, *, signed: bool = False, field: str = "amount") -> Decimal:
    """A positive (or, when ``signed``, non-zero) amount with at most 8 decimals."""
    if amount == 0 or (amount < 0 and not signed):
        raise InvalidInput(
            "amount must be non-zero" if signed else "amount must be greater than zero",
            field=[field],
        )
    if abs(amount) > MAX_AMOUNT:
        raise InvalidInput("amount is too large", field=[field])
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > MAX_AMOUNT_DECIMALS:
        raise InvalidInput(
            f"amount has more than {MAX_AMOUNT_DECIMALS} decimal places", field=[field]
        )
    return amount


def check_text(value: str, field: str, *, max_length: int = 200) -> str:
    stripped = value.strip()
    if not stripped or len(stripped) > max_length:
        raise InvalidInput(f"{field} must be 1-{max_length} characters", field=[field])
    return stripped


def decode_account(global_id: str, field: str = "accountId") -> tuple[str, str]:
    _, (platform, native_id) = _parts(global_id, "Account", 2, field)
    return platform, native_id


def decode_trader(global_id: str, field: str = "traderId") -> tuple[str, str]:
    _, (platform, native_id) = _parts(global_id, "Trader", 2, field)
    return platform, native_id


def _parts(global_id: str, type_name: str, count: int, field: str) -> tuple[str, list[str]]:
    name, parts = decode_id(global_id, type_name, field=field)
    if len(parts) != count:
        raise InvalidInput(f"{field} is not a valid {type_name} id", field=[field])
    return name, parts


def json_object(value: object, field: str) -> dict[str, Any]:
    """A JSON input that must be an object (``null`` means empty)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"{field} must be a JSON object", field=[field])
    return value


def audit_details(value: Any) -> dict[str, Any]:
    """The input as stored in the audit log: secrets removed, Decimals as strings."""
    data = to_jsonable(value) if dataclasses.is_dataclass(value) else {}
    return {
        k: ("***" if is_secret_key(k) else v)
        for k, v in data.items()
        if v is not strawberry.UNSET  # an omitted optional input field
    }


# --------------------------------------------------------------------------- the common path


async def perform(
    info: Info[Any, Any],
    operation: str,
    input_value: Any,
    body: Callable[[RequestContext, Viewer], Awaitable[P]],
    on_error: Callable[[list[UserError]], P],
    *,
    target: str | None = None,
    reference: Callable[[P], str | None] = lambda _: None,
) -> P:
    """Authorise, run ``body``, turn domain errors into typed payload errors, audit."""
    ctx = context_of(info)
    viewer = ctx.require_viewer()
    error_code: str | None = None
    try:
        payload = await body(ctx, viewer)
        outcome = "replayed" if getattr(payload, "replayed", False) else "ok"
        if payload.errors:
            error_code = payload.errors[0].code.value
            outcome = "replayed" if outcome == "replayed" else "error"
    except BrokerGraphError as error:
        payload = on_error([to_user_error(error)])
        outcome, error_code = "error", error.code
    await ctx.services.store.append_audit(
        AuditEntry(
            id=None,
            at=datetime.now(UTC),
            actor=viewer.subject,
            role=viewer.role.value,
            operation=operation,
            target=target,
            outcome=outcome,
            error_code=error_code,
            upstream_ref=reference(payload) if not payload.errors else None,
            idempotency_key=getattr(input_value, "idempotency_key", None),
            details=audit_details(input_value),
        )
    )
    return payload


async def invalidate_account(ctx: RequestContext, platform: str, account_id: str) -> None:
    cache = ctx.services.cache
    await cache.delete(
        cache_key("account", platform, account_id),
        cache_key("positions", platform, account_id),
        cache_key("orders", platform, account_id),
    )


M = TypeVar("M")


async def run_write_once(
    ctx: RequestContext,
    *,
    scope: str,
    key: str,
    operation: str,
    request: Any,
    model: type[M],
    call: Callable[[], Awaitable[M]],
    platform: str,
    account_id: str,
) -> tuple[M | None, list[UserError], bool]:
    """Run an idempotent write: the model (or typed errors) and whether it was a replay.

    ``request`` (a request dataclass) is fingerprinted without its idempotency key, so
    the same key with a different request is refused as IDEMPOTENCY_CONFLICT.
    """

    async def upstream() -> Any:
        return to_jsonable(await call())

    fingerprint = {k: v for k, v in to_jsonable(request).items() if k != "idempotency_key"}
    connector = ctx.services.registry.require_any(platform)
    lease = ctx.services.settings.limits.idempotency_lease_seconds
    result = await run_once(
        ctx.services.store,
        scope=scope,
        key=key,
        operation=operation,
        request=fingerprint,
        call=upstream,
        redrive_after=lease if connector.idempotent_writes else None,
    )
    if not result.replayed:
        await invalidate_account(ctx, platform, account_id)
    if result.error is not None:
        return None, [user_error_from_dict(dict(result.error))], result.replayed
    return from_jsonable(model, result.value), [], result.replayed


async def order_write(
    ctx: RequestContext,
    platform: str,
    account_id: str,
    operation: str,
    request: PlaceOrderRequest | ReplaceOrderRequest,
    call: Callable[[], Awaitable[models.Order]],
) -> OrderPayload:
    """An order write run once under its idempotency key, as an OrderPayload."""
    order, errors, replayed = await run_write_once(
        ctx,
        scope=f"order:{platform}:{account_id}",
        key=request.idempotency_key,
        operation=operation,
        request=request,
        model=models.Order,
        call=call,
        platform=platform,
        account_id=account_id,
    )
    return OrderPayload(
        order=Order.from_model(order) if order else None, replayed=replayed, errors=errors
    )


async def invalidate_trader(ctx: RequestContext, platform: str, trader_id: str) -> None:
    await ctx.services.cache.delete(
        cache_key("trader", platform, trader_id),
        cache_key("trader-accounts", platform, trader_id),
        cache_key("md-subscriptions", platform, trader_id),
    )


async def require_partner_for_staff(ctx: RequestContext, viewer: Viewer, code: str) -> None:
    viewer.require_role(*STAFF)
    await access.require_partner(ctx, code)


# --------------------------------------------------------------------------- payloads


@strawberry.type
class BusinessPartnerPayload:
    business_partner: BusinessPartner | None = None
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
    report: ClientReport | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type(description="One upstream call of a multi-step flow and how it ended.")
class ProvisioningStep:
    name: str
    succeeded: bool
    reference: str | None
    message: str | None


@strawberry.type
class ProvisioningPayload:
    trader: Trader | None = None
    accounts: list[Account] = strawberry.field(default_factory=list)
    steps: list[ProvisioningStep] = strawberry.field(default_factory=list)
    resume_token: str | None = strawberry.field(
        default=None, description="Set when the flow stopped midway: send it back to resume."
    )
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class AccountPayload:
    account: Account | None = None
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


def provisioning_payload(ctx: RequestContext, result: ProvisioningResult) -> ProvisioningPayload:
    errors: list[UserError] = []
    if not result.complete:
        failed = next((s for s in result.steps if not s.succeeded), None)
        where = f"at step {failed.name!r}" if failed else "midway"
        detail = f": {failed.message}" if failed and failed.message else ""
        then = "; send resumeToken to continue" if result.resume_token else ""
        errors.append(
            to_user_error(
                UpstreamError(f"the flow stopped {where}{detail}; what was created is linked{then}")
            )
        )
    return ProvisioningPayload(
        errors=errors,
        trader=Trader.from_model(result.trader) if result.trader else None,
        accounts=[account_type(ctx, a) for a in result.accounts],
        steps=[
            ProvisioningStep(
                name=s.name, succeeded=s.succeeded, reference=s.reference, message=s.message
            )
            for s in result.steps
        ],
        resume_token=result.resume_token,
    )


# --------------------------------------------------------------------------- inputs


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


@strawberry.input
class RequestClientReportInput:
    partner_code: str
    format: ReportFormat  # type: ignore[valid-type]
    period_from: datetime
    period_to: datetime
    platform: str | None = None


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
    is_live: bool = True
    options: JSON | None = strawberry.field(
        default=None, description="Platform-specific options; see the connector's docs."
    )
    resume_token: str | None = None


@strawberry.input
class NewAccountInput:
    currency: str
    group: str | None = None
    leverage: Decimal | None = None
    is_live: bool = True
    options: JSON | None = None


@strawberry.input
class OpenAccountInput:
    trader_id: strawberry.ID
    currency: str
    group: str | None = None
    leverage: Decimal | None = None
    is_live: bool = True
    options: JSON | None = None


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


# --------------------------------------------------------------------------- helpers


def _platform_for(
    ctx: RequestContext, capability: Capability, family: type[Any], platform: str | None
) -> Any:
    return ctx.services.registry.only(capability, family, platform)


def _decode_order(global_id: str) -> tuple[str, str, str]:
    _, (platform, account_id, order_id) = _parts(global_id, "Order", 3, "orderId")
    return platform, account_id, order_id


async def _money(
    info: Info[Any, Any],
    operation: str,
    data: MoneyMovementInput,
    capability: Capability,
    call: Callable[[Any, MoneyMovement], Awaitable[models.BalanceOperation]],
    *,
    signed: bool = False,
) -> MoneyMovementPayload:
    async def body(ctx: RequestContext, viewer: Viewer) -> MoneyMovementPayload:
        viewer.require_role(*STAFF)
        platform, account_id = decode_account(data.account_id)
        amount = check_amount(data.amount, signed=signed)
        key = check_idempotency_key(data.idempotency_key)
        comment = check_text(data.comment, "comment") if data.comment else None
        await access.require_linked_account(ctx, platform, account_id)
        connector = ctx.services.registry.require(platform, capability, _FAMILY[capability])
        movement = MoneyMovement(
            account_id=account_id, amount=amount, idempotency_key=key, comment=comment
        )
        operation_model, errors, replayed = await run_write_once(
            ctx,
            scope=f"money:{platform}:{account_id}",
            key=key,
            operation=operation,
            request=movement,
            model=models.BalanceOperation,
            call=lambda: call(connector, movement),
            platform=platform,
            account_id=account_id,
        )
        return MoneyMovementPayload(
            operation=BalanceOperation.from_model(operation_model) if operation_model else None,
            replayed=replayed,
            errors=errors,
        )

    return await perform(
        info,
        operation,
        data,
        body,
        lambda errors: MoneyMovementPayload(errors=errors),
        target=data.account_id,
        reference=lambda p: p.operation.external_id if p.operation else None,
    )


_FAMILY: dict[Capability, type[Any]] = {
    Capability.FUNDING: Funding,
    Capability.CREDIT: Credit,
    Capability.BONUS: Bonus,
}


async def _orders_payload(orders: Sequence[models.Order]) -> OrdersPayload:
    return OrdersPayload(orders=[Order.from_model(o) for o in orders])


# --------------------------------------------------------------------------- the root type


@strawberry.type
class CoreMutation:
    # ---------------------------------------------------------------- back office

    @strawberry.mutation(description="Create a business partner (and in the back office, if any).")
    async def create_business_partner(
        self, info: Info[Any, Any], input: CreateBusinessPartnerInput
    ) -> BusinessPartnerPayload:
        async def body(ctx: RequestContext, viewer: Viewer) -> BusinessPartnerPayload:
            viewer.require_role(*STAFF)
            code = check_text(input.code, "code", max_length=64)
            name = check_text(input.name, "name")
            broker = None if input.broker is strawberry.UNSET else input.broker
            if viewer.role is Role.MANAGER:
                if broker is None and len(viewer.brokers) == 1:
                    broker = next(iter(viewer.brokers))
                if broker not in viewer.brokers:
                    raise PermissionDenied("managers create partners of their own brokers only")
            registry = ctx.services.registry
            directory_platform: str | None = None
            if input.platform is not None or registry.platforms_with(Capability.PARTNER_DIRECTORY):
                directory: PartnerDirectory = _platform_for(
                    ctx, Capability.PARTNER_DIRECTORY, PartnerDirectory, input.platform
                )
                directory_platform = (
                    input.platform or registry.platforms_with(Capability.PARTNER_DIRECTORY)[0]
                )
                await directory.create_partner(
                    CreatePartnerRequest(
                        code=code,
                        name=name,
                        kind=input.kind,
                        short_name=input.short_name,
                        email=input.email,
                        phone=input.phone,
                        tax_id=input.tax_id,
                        residency=input.residency,
                        is_qualified_investor=input.is_qualified_investor,
                        broker=broker,
                        attributes=json_object(input.attributes, "attributes"),
                        sub_account_code=input.sub_account_code,
                        agreement_number=input.agreement_number,
                    )
                )
            await ctx.services.store.upsert_partner(code, broker=broker, display_name=name)
            if (
                directory_platform
                and input.sub_account_code
                and registry.has(directory_platform, Capability.ACCOUNT_READS)
            ):
                # The back office created the sub-account with the partner: it is an account.
                await ctx.services.store.link(
                    code, directory_platform, "account", input.sub_account_code
                )
            ctx.loaders.forget_partner(code)
            return BusinessPartnerPayload(business_partner=await load_partner(ctx, code))

        return await perform(
            info,
            "createBusinessPartner",
            input,
            body,
            lambda errors: BusinessPartnerPayload(errors=errors),
            target=input.code,
        )

    @strawberry.mutation
    async def update_business_partner(
        self, info: Info[Any, Any], input: UpdateBusinessPartnerInput
    ) -> BusinessPartnerPayload:
        async def body(ctx: RequestContext, viewer: Viewer) -> BusinessPartnerPayload:
            await require_partner_for_staff(ctx, viewer, input.code)
            directory: PartnerDirectory = _platform_for(
                ctx, Capability.PARTNER_DIRECTORY, PartnerDirectory, input.platform
            )
            await directory.update_partner(
                UpdatePartnerRequest(
                    code=input.code,
                    name=input.name,
                    short_name=input.short_name,
                    email=input.email,
                    phone=input.phone,
                    tax_id=input.tax_id,
                    residency=input.residency,
                    is_qualified_investor=input.is_qualified_investor,
                    kyc_passed=input.kyc_passed,
                    attributes=None
                    if input.attributes is None
                    else json_object(input.attributes, "attributes"),
                )
            )
            if input.name:
                record = await access.require_partner(ctx, input.code)
                await ctx.services.store.upsert_partner(
                    input.code, broker=record.broker, display_name=input.name
                )
            ctx.loaders.forget_partner(input.code)
            return BusinessPartnerPayload(business_partner=await load_partner(ctx, input.code))

        return await perform(
            info,
            "updateBusinessPartner",
            input,
            body,
            lambda errors: BusinessPartnerPayload(errors=errors),
            target=input.code,
        )

    @strawberry.mutation
    async def delete_business_partner(
        self, info: Info[Any, Any], input: DeleteBusinessPartnerInput
    ) -> DeleteBusinessPartnerPayload:
        async def body(ctx: RequestContext, viewer: Viewer) -> DeleteBusinessPartnerPayload:
            await require_partner_for_staff(ctx, viewer, input.code)
            registry = ctx.services.registry
            if input.platform is not None or registry.platforms_with(Capability.PARTNER_DIRECTORY):
                directory: PartnerDirectory = _platform_for(
                    ctx, Capability.PARTNER_DIRECTORY, PartnerDirectory, input.platform
                )
                await directory.delete_partner(input.code)
            await ctx.services.store.delete_partner(input.code)
            return DeleteBusinessPartnerPayload(deleted_code=input.code)

        return await perform(
            info,
            "deleteBusinessPartner",
            input,
            body,
            lambda errors: DeleteBusinessPartnerPayload(errors=errors),
            target=input.code,
        )

    @strawberry.mutation(
        description="Upload positions/limits to the trading system: onboarding done."
    )
    async def enable_trading(
        self, info: Info[Any, Any], input: PartnerOnPlatformInput
    ) -> BusinessPartnerPayload:
        async def body(ctx: RequestContext, viewer: Viewer) -> BusinessPartnerPayload:
            await require_partner_for_staff(ctx, viewer, input.partner_code)
            access_: TradingAccess = _platform_for(
                ctx, Capability.TRADING_ACCESS, TradingAccess, input.platform
            )
            await access_.enable_trading(input.partner_code)
            return BusinessPartnerPayload(
                business_partner=await load_partner(ctx, input.partner_code)
            )

        return await perform(
            info,
            "enableTrading",
            input,
            body,
            lambda errors: BusinessPartnerPayload(errors=errors),
            target=input.partner_code,
        )

    @strawberry.mutation
    async def set_trading_leverage(
        self, info: Info[Any, Any], input: SetTradingLeverageInput
    ) -> BusinessPartnerPayload:
        async def body(ctx: RequestContext, viewer: Viewer) -> BusinessPartnerPayload:
            await require_partner_for_staff(ctx, viewer, input.partner_code)
            leverage = check_amount(input.leverage, field="leverage")
            access_: TradingAccess = _platform_for(
                ctx, Capability.TRADING_ACCESS, TradingAccess, input.platform
            )
            await access_.set_trading_leverage(input.partner_code, leverage)
            return BusinessPartnerPayload(
                business_partner=await load_partner(ctx, input.partner_code)
            )

        return await perform(
            info,
            "setTradingLeverage",
            input,
            body,
            lambda errors: BusinessPartnerPayload(errors=errors),
            target=input.partner_code,
        )

    @strawberry.mutation(description="Personal income tax for a withdrawal or a period.")
    async def calculate_tax(self, info: Info[Any, Any], input: CalculateTaxInput) -> TaxPayload:
        async def body(ctx: RequestContext, viewer: Viewer) -> TaxPayload:
            await access.require_partner(ctx, input.partner_code)
            if input.kind is models.TaxKind.WITHDRAWAL:
                if input.amount is None:
                    raise InvalidInput("a withdrawal tax needs an amount", field=["amount"])
                check_amount(input.amount)
            elif input.period_from is None or input.period_to is None:
                raise InvalidInput(
                    "a period tax needs periodFrom and periodTo", field=["periodFrom"]
                )
            else:
                check_period(input.period_from, input.period_to)
            calculator: TaxCalculator = _platform_for(
                ctx, Capability.TAX, TaxCalculator, input.platform
            )
            result = await calculator.calculate_tax(
                TaxRequest(
                    partner_code=input.partner_code,
                    kind=input.kind,
                    amount=input.amount,
                    currency=input.currency,
                    period_from=input.period_from,
                    period_to=input.period_to,
                )
            )
            return TaxPayload(calculation=TaxCalculation.from_model(result))

        return await perform(
            info,
            "calculateTax",
            input,
            body,
            lambda errors: TaxPayload(errors=errors),
            target=input.partner_code,
        )

    @strawberry.mutation
    async def request_client_report(
        self, info: Info[Any, Any], input: RequestClientReportInput
    ) -> ClientReportPayload:
        async def body(ctx: RequestContext, viewer: Viewer) -> ClientReportPayload:
            await access.require_partner(ctx, input.partner_code)
            check_period(input.period_from, input.period_to)
            reports: ClientReports = _platform_for(
                ctx, Capability.CLIENT_REPORTS, ClientReports, input.platform
            )
            report = await reports.request_report(
                ReportRequest(
                    partner_code=input.partner_code,
                    format=input.format,
                    period_from=input.period_from,
                    period_to=input.period_to,
                )
            )
            return ClientReportPayload(report=ClientReport.from_model(report))

        return await perform(
            info,
            "requestClientReport",
            input,
            body,
            lambda errors: ClientReportPayload(errors=errors),
            target=input.partner_code,
            reference=lambda p: p.report.external_id if p.report else None,
        )

    # ---------------------------------------------------------------- provisioning

    @strawberry.mutation(
        description="Create a trader (and its accounts) and link them to a partner."
    )
    async def create_trader(
        self, info: Info[Any, Any], input: CreateTraderInput
    ) -> ProvisioningPayload:
        async def body(ctx: RequestContext, viewer: Viewer) -> ProvisioningPayload:
            await require_partner_for_staff(ctx, viewer, input.partner_code)
            email = check_text(input.email, "email", max_length=254)
            if "@" not in email:
                raise InvalidInput("email is not an address", field=["email"])
            if input.leverage is not None:
                check_amount(input.leverage, field="leverage")
            provisioning = ctx.services.registry.require(
                input.platform, Capability.TRADER_PROVISIONING, TraderProvisioning
            )
            result = await provisioning.create_trader(
                CreateTraderRequest(
                    partner_code=input.partner_code,
                    email=email,
                    name=input.name,
                    password=input.password,
                    group=input.group,
                    currency=input.currency,
                    leverage=input.leverage,
                    is_live=input.is_live,
                    options=json_object(input.options, "options"),
                    resume_token=input.resume_token,
                )
            )
            await _link_result(ctx, input.partner_code, result)
            return provisioning_payload(ctx, result)

        return await perform(
            info,
            "createTrader",
            input,
            body,
            lambda errors: ProvisioningPayload(errors=errors),
            target=input.partner_code,
            reference=lambda p: p.trader.external_id if p.trader else None,
        )

    @strawberry.mutation
    async def open_account(self, info: Info[Any, Any], input: OpenAccountInput) -> AccountPayload:
        async def body(ctx: RequestContext, viewer: Viewer) -> AccountPayload:
            viewer.require_role(*STAFF)
            platform, trader_id = decode_trader(input.trader_id)
            owner = await access.require_trader(ctx, platform, trader_id)
            if input.leverage is not None:
                check_amount(input.leverage, field="leverage")
            provisioning = ctx.services.registry.require(
                platform, Capability.TRADER_PROVISIONING, TraderProvisioning
            )
            account = await provisioning.open_account(
                OpenAccountRequest(
                    trader_id=trader_id,
                    currency=check_text(input.currency, "currency", max_length=12).upper(),
                    group=input.group,
                    leverage=input.leverage,
                    is_live=input.is_live,
                    options=json_object(input.options, "options"),
                )
            )
            if owner is not None:
                await ctx.services.store.link(
                    owner, platform, "account", account.id, trader_id=trader_id
                )
            return AccountPayload(account=account_type(ctx, account))

        return await perform(
            info,
            "openAccount",
            input,
            body,
            lambda errors: AccountPayload(errors=errors),
            target=input.trader_id,
            reference=lambda p: p.account.external_id if p.account else None,
        )

    @strawberry.mutation(description="Change leverage, access rights or group of an account.")
    async def update_account(
        self, info: Info[Any, Any], input: UpdateAccountInput
    ) -> AccountPayload:
        async def body(ctx: RequestContext, viewer: Viewer) -> AccountPayload:
            viewer.require_role(*STAFF)
            platform, account_id = decode_account(input.account_id)
            if input.leverage is None and input.status is None and input.group is None:
                raise InvalidInput("nothing to change", field=["leverage"])
            if input.leverage is not None:
                check_amount(input.leverage, field="leverage")
            await access.require_linked_account(ctx, platform, account_id)
            provisioning = ctx.services.registry.require(
                platform, Capability.TRADER_PROVISIONING, TraderProvisioning
            )
            account = await provisioning.update_account(
                UpdateAccountRequest(
                    account_id=account_id,
                    leverage=input.leverage,
                    status=input.status,
                    group=input.group,
                )
            )
            await invalidate_account(ctx, platform, account_id)
            return AccountPayload(account=account_type(ctx, account))

        return await perform(
            info,
            "updateAccount",
            input,
            body,
            lambda errors: AccountPayload(errors=errors),
            target=input.account_id,
        )

    @strawberry.mutation
    async def deactivate_trader(
        self, info: Info[Any, Any], input: DeactivateTraderInput
    ) -> ProvisioningPayload:
        async def body(ctx: RequestContext, viewer: Viewer) -> ProvisioningPayload:
            viewer.require_role(*STAFF)
            platform, trader_id = decode_trader(input.trader_id)
            await access.require_trader(ctx, platform, trader_id)
            provisioning = ctx.services.registry.require(
                platform, Capability.TRADER_PROVISIONING, TraderProvisioning
            )
            result = await provisioning.deactivate_trader(
                DeactivateTraderRequest(
                    trader_id=trader_id,
                    cancel_market_data_subscriptions=input.cancel_market_data_subscriptions,
                )
            )
            await invalidate_trader(ctx, platform, trader_id)
            for account in result.accounts:
                await invalidate_account(ctx, platform, account.id)
            return provisioning_payload(ctx, result)

        return await perform(
            info,
            "deactivateTrader",
            input,
            body,
            lambda errors: ProvisioningPayload(errors=errors),
            target=input.trader_id,
        )

    @strawberry.mutation
    async def reactivate_trader(
        self, info: Info[Any, Any], input: ReactivateTraderInput
    ) -> ProvisioningPayload:
        async def body(ctx: RequestContext, viewer: Viewer) -> ProvisioningPayload:
            viewer.require_role(*STAFF)
            platform, trader_id = decode_trader(input.trader_id)
            owner = await access.require_trader(ctx, platform, trader_id)
            new = input.new_account
            provisioning = ctx.services.registry.require(
                platform, Capability.TRADER_PROVISIONING, TraderProvisioning
            )
            result = await provisioning.reactivate_trader(
                ReactivateTraderRequest(
                    trader_id=trader_id,
                    new_account=None
                    if new is None
                    else OpenAccountRequest(
                        trader_id=trader_id,
                        currency=check_text(new.currency, "currency", max_length=12).upper(),
                        group=new.group,
                        leverage=new.leverage,
                        is_live=new.is_live,
                        options=json_object(new.options, "options"),
                    ),
                )
            )
            await invalidate_trader(ctx, platform, trader_id)
            if owner is not None:
                await _link_result(ctx, owner, result)
            return provisioning_payload(ctx, result)

        return await perform(
            info,
            "reactivateTrader",
            input,
            body,
            lambda errors: ProvisioningPayload(errors=errors),
            target=input.trader_id,
        )

    # ---------------------------------------------------------------- money

    @strawberry.mutation(description="Credit an account's balance.")
    async def deposit(
        self, info: Info[Any, Any], input: MoneyMovementInput
    ) -> MoneyMovementPayload:
        return await _money(info, "deposit", input, Capability.FUNDING, lambda c, m: c.deposit(m))

    @strawberry.mutation(
        description="Debit an account; succeeds only once the platform confirmed it."
    )
    async def withdraw(
        self, info: Info[Any, Any], input: MoneyMovementInput
    ) -> MoneyMovementPayload:
        return await _money(info, "withdraw", input, Capability.FUNDING, lambda c, m: c.withdraw(m))

    @strawberry.mutation(description="Add (>0) or remove (<0) non-withdrawable credit.")
    async def change_credit(
        self, info: Info[Any, Any], input: MoneyMovementInput
    ) -> MoneyMovementPayload:
        return await _money(
            info,
            "changeCredit",
            input,
            Capability.CREDIT,
            lambda c, m: c.change_credit(m),
            signed=True,
        )

    @strawberry.mutation(description="Add (>0) or remove (<0) bonus.")
    async def change_bonus(
        self, info: Info[Any, Any], input: MoneyMovementInput
    ) -> MoneyMovementPayload:
        return await _money(
            info,
            "changeBonus",
            input,
            Capability.BONUS,
            lambda c, m: c.change_bonus(m),
            signed=True,
        )

    # ---------------------------------------------------------------- orders

    @strawberry.mutation
    async def place_order(self, info: Info[Any, Any], input: PlaceOrderInput) -> OrderPayload:
        async def body(ctx: RequestContext, viewer: Viewer) -> OrderPayload:
            platform, account_id = decode_account(input.account_id)
            symbol = check_text(input.symbol, "symbol", max_length=64)
            quantity = check_amount(input.quantity, field="quantity")
            key = check_idempotency_key(input.idempotency_key)
            needs_price = input.type in (models.OrderType.LIMIT, models.OrderType.STOP_LIMIT)
            needs_stop = input.type in (models.OrderType.STOP, models.OrderType.STOP_LIMIT)
            if needs_price and input.price is None:
                raise InvalidInput("a limit order needs a price", field=["price"])
            if needs_stop and input.stop_price is None:
                raise InvalidInput("a stop order needs a stopPrice", field=["stopPrice"])
            for name, value in (("price", input.price), ("stopPrice", input.stop_price)):
                if value is not None:
                    check_amount(value, field=name)
            if input.time_in_force is models.TimeInForce.GTD and input.expires_at is None:
                raise InvalidInput("a GTD order needs expiresAt", field=["expiresAt"])
            await access.require_linked_account(ctx, platform, account_id)
            router = ctx.services.registry.require(platform, Capability.ORDER_ROUTING, OrderRouting)
            request = PlaceOrderRequest(
                account_id=account_id,
                symbol=symbol,
                side=input.side,
                type=input.type,
                quantity=quantity,
                idempotency_key=key,
                price=input.price,
                stop_price=input.stop_price,
                time_in_force=input.time_in_force,
                expires_at=input.expires_at,
            )

            return await order_write(
                ctx,
                platform,
                account_id,
                "placeOrder",
                request,
                lambda: router.place_order(request),
            )

        return await perform(
            info,
            "placeOrder",
            input,
            body,
            lambda errors: OrderPayload(errors=errors),
            target=input.account_id,
            reference=lambda p: p.order.external_id if p.order else None,
        )

    @strawberry.mutation
    async def cancel_order(self, info: Info[Any, Any], input: CancelOrderInput) -> OrderPayload:
        async def body(ctx: RequestContext, viewer: Viewer) -> OrderPayload:
            platform, account_id, order_id = _decode_order(input.order_id)
            await access.require_linked_account(ctx, platform, account_id)
            router = ctx.services.registry.require(platform, Capability.ORDER_ROUTING, OrderRouting)
            order = await router.cancel_order(account_id, order_id)
            await invalidate_account(ctx, platform, account_id)
            return OrderPayload(order=Order.from_model(order))

        return await perform(
            info,
            "cancelOrder",
            input,
            body,
            lambda errors: OrderPayload(errors=errors),
            target=input.order_id,
        )

    @strawberry.mutation
    async def cancel_orders(self, info: Info[Any, Any], input: CancelOrdersInput) -> OrdersPayload:
        async def body(ctx: RequestContext, viewer: Viewer) -> OrdersPayload:
            platform, account_id = decode_account(input.account_id)
            if not 1 <= len(input.order_ids) <= 100:
                raise InvalidInput("orderIds must hold 1-100 ids", field=["orderIds"])
            order_ids = []
            for global_id in input.order_ids:
                order_platform, order_account, order_id = _decode_order(global_id)
                if (order_platform, order_account) != (platform, account_id):
                    raise InvalidInput("every order must belong to the account", field=["orderIds"])
                order_ids.append(order_id)
            await access.require_linked_account(ctx, platform, account_id)
            router = ctx.services.registry.require(platform, Capability.ORDER_ROUTING, OrderRouting)
            orders = await router.cancel_orders(
                CancelOrdersRequest(account_id=account_id, order_ids=order_ids)
            )
            await invalidate_account(ctx, platform, account_id)
            return await _orders_payload(orders)

        return await perform(
            info,
            "cancelOrders",
            input,
            body,
            lambda errors: OrdersPayload(errors=errors),
            target=input.account_id,
        )

    @strawberry.mutation
    async def cancel_orders_for_contract(
        self, info: Info[Any, Any], input: CancelOrdersForContractInput
    ) -> OrdersPayload:
        async def body(ctx: RequestContext, viewer: Viewer) -> OrdersPayload:
            platform, account_id = decode_account(input.account_id)
            symbol = check_text(input.symbol, "symbol", max_length=64)
            await access.require_linked_account(ctx, platform, account_id)
            router = ctx.services.registry.require(platform, Capability.ORDER_ROUTING, OrderRouting)
            orders = await router.cancel_orders_for_contract(account_id, symbol)
            await invalidate_account(ctx, platform, account_id)
            return await _orders_payload(orders)

        return await perform(
            info,
            "cancelOrdersForContract",
            input,
            body,
            lambda errors: OrdersPayload(errors=errors),
            target=input.account_id,
        )

    @strawberry.mutation
    async def replace_order(self, info: Info[Any, Any], input: ReplaceOrderInput) -> OrderPayload:
        async def body(ctx: RequestContext, viewer: Viewer) -> OrderPayload:
            platform, account_id, order_id = _decode_order(input.order_id)
            key = check_idempotency_key(input.idempotency_key)
            if input.quantity is None and input.price is None and input.stop_price is None:
                raise InvalidInput("nothing to replace", field=["quantity"])
            for name, value in (
                ("quantity", input.quantity),
                ("price", input.price),
                ("stopPrice", input.stop_price),
            ):
                if value is not None:
                    check_amount(value, field=name)
            await access.require_linked_account(ctx, platform, account_id)
            router = ctx.services.registry.require(platform, Capability.ORDER_ROUTING, OrderRouting)
            request = ReplaceOrderRequest(
                account_id=account_id,
                order_id=order_id,
                idempotency_key=key,
                quantity=input.quantity,
                price=input.price,
                stop_price=input.stop_price,
            )

            return await order_write(
                ctx,
                platform,
                account_id,
                "replaceOrder",
                request,
                lambda: router.replace_order(request),
            )

        return await perform(
            info,
            "replaceOrder",
            input,
            body,
            lambda errors: OrderPayload(errors=errors),
            target=input.order_id,
            reference=lambda p: p.order.external_id if p.order else None,
        )

    # ---------------------------------------------------------------- links (admin)

    @strawberry.mutation(description="Admin: record that a trader or account belongs to a partner.")
    async def link_to_partner(self, info: Info[Any, Any], input: LinkToPartnerInput) -> LinkPayload:
        async def body(ctx: RequestContext, viewer: Viewer) -> LinkPayload:
            viewer.require_role(Role.ADMIN)
            await access.require_partner(ctx, input.partner_code)
            kind, platform, native_id = _link_target(input.trader_id, input.account_id)
            await ctx.services.store.link(input.partner_code, platform, kind, native_id)
            return LinkPayload(business_partner=await load_partner(ctx, input.partner_code))

        return await perform(
            info,
            "linkToPartner",
            input,
            body,
            lambda errors: LinkPayload(errors=errors),
            target=input.partner_code,
        )

    @strawberry.mutation(description="Admin: forget that a trader or account belongs to a partner.")
    async def unlink_from_partner(
        self, info: Info[Any, Any], input: UnlinkFromPartnerInput
    ) -> LinkPayload:
        async def body(ctx: RequestContext, viewer: Viewer) -> LinkPayload:
            viewer.require_role(Role.ADMIN)
            kind, platform, native_id = _link_target(input.trader_id, input.account_id)
            await ctx.services.store.unlink(platform, kind, native_id)
            return LinkPayload()

        return await perform(
            info,
            "unlinkFromPartner",
            input,
            body,
            lambda errors: LinkPayload(errors=errors),
            target=input.trader_id or input.account_id,
        )


def _link_target(trader_id: str | None, account_id: str | None) -> tuple[str, str, str]:
    if (trader_id is None) == (account_id is None):
        raise InvalidInput("give exactly one of traderId and accountId", field=["traderId"])
    if trader_id is not None:
        return ("trader", *decode_trader(trader_id))
    assert account_id is not None
    return ("account", *decode_account(account_id))


async def _link_result(ctx: RequestContext, partner_code: str, result: ProvisioningResult) -> None:
    """Record what a flow created, even when it stopped midway, so nothing is orphaned."""
    store = ctx.services.store
    if result.trader is not None:
        await store.link(partner_code, result.trader.platform, "trader", result.trader.id)
    for account in result.accounts:
        await store.link(
            partner_code, account.platform, "account", account.id, trader_id=account.trader_id
        )
