"""Back-office mutations: business partners, trading access, tax and client reports.

Partners live in the gateway's store and, when a back office is installed, in its
partner directory too; ``platform`` names the back office when several are.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

import strawberry
from strawberry.types import Info

from gateway import models
from gateway.auth import Role
from gateway.connectors import (
    AccountReads,
    Capability,
    ClientReports,
    CreatePartnerRequest,
    PartnerDirectory,
    ReportRequest,
    TaxCalculator,
    TaxRequest,
    TradingAccess,
    UpdatePartnerRequest,
)
from gateway.errors import Conflict, InvalidInput, NotFound, PermissionDenied, UpstreamError
from gateway.graphql import access
from gateway.graphql.context import RequestContext, context_of
from gateway.graphql.errors import UserError
from gateway.graphql.loaders import cache_key
from gateway.graphql.mutations._inputs import (
    CalculateTaxInput,
    CreateBusinessPartnerInput,
    DeleteBusinessPartnerInput,
    PartnerOnPlatformInput,
    RequestClientReportInput,
    SetTradingLeverageInput,
    UpdateBusinessPartnerInput,
)
from gateway.graphql.mutations._payloads import (
    BusinessPartnerPayload,
    ClientReportPayload,
    DeleteBusinessPartnerPayload,
    TaxPayload,
)
from gateway.graphql.mutations._validate import (
    check_amount,
    check_text,
    decode_account,
    json_object,
)
from gateway.graphql.mutations._write_path import STAFF, AccountWrite, Once, write
from gateway.graphql.types import (
    BusinessPartner,
    ClientReport,
    TaxCalculation,
    check_period,
    load_partner,
    money_text,
)
from gateway.idempotency import check_idempotency_key
from gateway.store import PartnerRecord

__all__ = ["BackOfficeMutation"]


@strawberry.type
class BackOfficeMutation:
    @strawberry.mutation(description="Create a business partner (and in the back office, if any).")
    async def create_business_partner(
        self, info: Info[Any, Any], input: CreateBusinessPartnerInput
    ) -> BusinessPartnerPayload:
        ctx = context_of(info)
        if input.idempotency_key is not None and _directory_of(ctx, input) is not None:
            return await write(
                info,
                input,
                "createBusinessPartner",
                target=input.code,
                authorise=STAFF,
                validate=_keyed_new_partner,
                once=_partner_once(ctx),
            )
        return await write(
            info,
            input,
            "createBusinessPartner",
            target=input.code,
            authorise=STAFF,
            validate=_new_partner,
            dispatch=_create_partner,
            payload=BusinessPartnerPayload,
        )

    @strawberry.mutation
    async def update_business_partner(
        self, info: Info[Any, Any], input: UpdateBusinessPartnerInput
    ) -> BusinessPartnerPayload:
        return await write(
            info,
            input,
            "updateBusinessPartner",
            target=input.code,
            authorise=STAFF,
            validate=_visible_code,
            dispatch=_update_partner,
            payload=BusinessPartnerPayload,
        )

    @strawberry.mutation
    async def delete_business_partner(
        self, info: Info[Any, Any], input: DeleteBusinessPartnerInput
    ) -> DeleteBusinessPartnerPayload:
        return await write(
            info,
            input,
            "deleteBusinessPartner",
            target=input.code,
            authorise=STAFF,
            validate=_deletable,
            dispatch=_delete_partner,
            payload=DeleteBusinessPartnerPayload,
        )

    @strawberry.mutation(
        description="Upload positions/limits to the trading system: onboarding done."
    )
    async def enable_trading(
        self, info: Info[Any, Any], input: PartnerOnPlatformInput
    ) -> BusinessPartnerPayload:
        return await write(
            info,
            input,
            "enableTrading",
            target=input.partner_code,
            authorise=STAFF,
            validate=_visible_partner,
            dispatch=_enable_trading,
            payload=BusinessPartnerPayload,
        )

    @strawberry.mutation
    async def set_trading_leverage(
        self, info: Info[Any, Any], input: SetTradingLeverageInput
    ) -> BusinessPartnerPayload:
        return await write(
            info,
            input,
            "setTradingLeverage",
            target=input.partner_code,
            authorise=STAFF,
            validate=_leverage,
            dispatch=_set_trading_leverage,
            payload=BusinessPartnerPayload,
        )

    @strawberry.mutation(description="Personal income tax for a withdrawal or a period.")
    async def calculate_tax(self, info: Info[Any, Any], input: CalculateTaxInput) -> TaxPayload:
        return await write(
            info,
            input,
            "calculateTax",
            target=input.partner_code,
            validate=_tax,
            dispatch=_calculate_tax,
            payload=TaxPayload,
        )

    @strawberry.mutation
    async def request_client_report(
        self, info: Info[Any, Any], input: RequestClientReportInput
    ) -> ClientReportPayload:
        return await write(
            info,
            input,
            "requestClientReport",
            target=input.partner_code,
            validate=_report,
            dispatch=_request_report,
            payload=ClientReportPayload,
            reference=lambda p: p.report.external_id if p.report else None,
        )


# --------------------------------------------------------------------------- validate


class _NamesPartner(Protocol):
    partner_code: str


class _NamesCode(Protocol):
    code: str


NP = TypeVar("NP", bound=_NamesPartner)
NC = TypeVar("NC", bound=_NamesCode)


async def _visible_partner(ctx: RequestContext, input: NP) -> NP:
    await access.require_partner(ctx, input.partner_code)
    return input


async def _visible_code(ctx: RequestContext, input: NC) -> NC:
    await access.require_partner(ctx, input.code)
    return input


async def _deletable(
    ctx: RequestContext, input: DeleteBusinessPartnerInput
) -> DeleteBusinessPartnerInput:
    """A partner whose linked accounts hold money or positions is not deleted: without
    its links, nothing could withdraw the money or close the positions any more."""
    await access.require_partner(ctx, input.code)
    links = await ctx.services.store.links_of_partner(input.code, kind="account")
    keys = sorted({(link.platform, link.external_id) for link in links})
    if not keys:
        return input
    # What the platforms hold now, not what a cache remembers of it.
    await ctx.services.cache.delete(
        *(cache_key(kind, p, i) for p, i in keys for kind in ("account", "positions"))
    )
    # A platform that cannot answer refuses the deletion with its error: nothing is known.
    accounts = await ctx.loaders.accounts.load_many(keys)
    positions = await ctx.loaders.positions.load_many(keys)
    held: list[tuple[str, str]] = []
    for (platform, account_id), account, open_positions in zip(
        keys, accounts, positions, strict=True
    ):
        if isinstance(account, BaseException):
            raise account
        if isinstance(open_positions, BaseException):
            raise open_positions
        what: list[str] = []
        if account is not None and account.balance is not None and account.balance.amount:
            what.append(money_text(account.balance.amount, account.balance.currency))
        if open_positions:
            what.append(f"{len(open_positions)} open position(s)")
        if what:
            held.append(
                (
                    f"{platform}:{account_id}",
                    f"{platform} account {account_id} holds {' and '.join(what)}",
                )
            )
    if held:
        raise Conflict(
            f"business partner {input.code!r} is not deleted: {'; '.join(t for _, t in held)}. "
            "Withdraw the money and close the positions first (or unlink the accounts)",
            field=["code"],
            details={"accounts": [key for key, _ in held]},
        )
    return input


@dataclass(frozen=True, slots=True)
class _NewPartner:
    input: CreateBusinessPartnerInput
    code: str
    name: str
    broker: str | None


async def _new_partner(ctx: RequestContext, input: CreateBusinessPartnerInput) -> _NewPartner:
    if input.idempotency_key is not None:
        check_idempotency_key(input.idempotency_key)
    code = check_text(input.code, "code", max_length=64)
    name = check_text(input.name, "name")
    broker = None if input.broker is strawberry.UNSET else input.broker
    viewer = ctx.require_viewer()
    if viewer.role is Role.MANAGER:
        if broker is None and len(viewer.brokers) == 1:
            broker = next(iter(viewer.brokers))
        if broker not in viewer.brokers:
            raise PermissionDenied("managers create partners of their own brokers only")
    return _NewPartner(input, code, name, broker)


async def _leverage(ctx: RequestContext, input: SetTradingLeverageInput) -> SetTradingLeverageInput:
    await access.require_partner(ctx, input.partner_code)
    check_amount(input.leverage, field="leverage")
    return input


async def _tax(ctx: RequestContext, input: CalculateTaxInput) -> CalculateTaxInput:
    await access.require_partner(ctx, input.partner_code)
    if input.kind is models.TaxKind.WITHDRAWAL:
        if input.amount is None:
            raise InvalidInput("a withdrawal tax needs an amount", field=["amount"])
        check_amount(input.amount)
        if input.day is not None and input.day > datetime.now(UTC).date():
            raise InvalidInput("a withdrawal's date is today or earlier", field=["date"])
    elif input.day is not None:
        raise InvalidInput("date is for a WITHDRAWAL; a period has its own", field=["date"])
    elif input.period_from is None or input.period_to is None:
        raise InvalidInput("a period tax needs periodFrom and periodTo", field=["periodFrom"])
    else:
        check_period(input.period_from, input.period_to)
    return input


@dataclass(frozen=True, slots=True)
class _Report:
    input: RequestClientReportInput
    platform: str
    #: The accounts to report on, one report each (None: the connector's choice).
    accounts: list[str | None]


async def _report(ctx: RequestContext, input: RequestClientReportInput) -> _Report:
    await access.require_partner(ctx, input.partner_code)
    check_period(input.period_from, input.period_to)
    registry = ctx.services.registry
    registry.only(Capability.CLIENT_REPORTS, ClientReports, input.platform)
    platform = input.platform or registry.platforms_with(Capability.CLIENT_REPORTS)[0]
    if input.account_id is not None:
        account_platform, account_id = decode_account(input.account_id)
        owners = await ctx.services.store.owners(account_platform, "account", [account_id])
        if account_platform != platform or owners != [input.partner_code]:
            # The same answer for another partner's account as for no account at all.
            raise NotFound(
                f"the partner has no {platform} account with this id", field=["accountId"]
            )
        return _Report(input, platform, [account_id])
    # The platform reports per account: every account of the partner there, not the first.
    links = await ctx.services.store.links_of_partner(
        input.partner_code, platform=platform, kind="account"
    )
    linked: list[str | None] = [*sorted({link.external_id for link in links})]
    return _Report(input, platform, linked or [None])


# --------------------------------------------------------------------------- dispatch


def _directory_of(ctx: RequestContext, input: CreateBusinessPartnerInput) -> str | None:
    """The back office a new partner goes to; None: the gateway's store is the directory."""
    registry = ctx.services.registry
    if input.platform is not None:
        return input.platform
    installed = registry.platforms_with(Capability.PARTNER_DIRECTORY)
    return installed[0] if installed else None


def _partner_request(new: _NewPartner) -> CreatePartnerRequest:
    input = new.input
    return CreatePartnerRequest(
        code=new.code,
        name=new.name,
        kind=input.kind,
        short_name=input.short_name,
        email=input.email,
        phone=input.phone,
        tax_id=input.tax_id,
        residency=input.residency,
        is_qualified_investor=input.is_qualified_investor,
        broker=new.broker,
        attributes=json_object(input.attributes, "attributes"),
        sub_account_code=input.sub_account_code,
        agreement_number=input.agreement_number,
    )


async def _create_partner(ctx: RequestContext, new: _NewPartner) -> BusinessPartnerPayload:
    input, registry = new.input, ctx.services.registry
    directory_platform: str | None = None
    # Without a back office the gateway's store is the partner directory.
    if input.platform is not None or registry.platforms_with(Capability.PARTNER_DIRECTORY):
        directory = registry.only(Capability.PARTNER_DIRECTORY, PartnerDirectory, input.platform)
        directory_platform = (
            input.platform or registry.platforms_with(Capability.PARTNER_DIRECTORY)[0]
        )
        await directory.create_partner(_partner_request(new))
    await _partner_created(ctx, new, directory_platform)
    return BusinessPartnerPayload(business_partner=await load_partner(ctx, new.code))


async def _partner_created(
    ctx: RequestContext, new: _NewPartner, directory_platform: str | None
) -> None:
    """The gateway's records of a partner the directory made (now, or read back)."""
    input, registry = new.input, ctx.services.registry
    await ctx.services.store.upsert_partner(new.code, broker=new.broker, display_name=new.name)
    if (
        directory_platform
        and input.sub_account_code
        and registry.has(directory_platform, Capability.ACCOUNT_READS)
    ):
        # The back office created the sub-account with the partner: it is an account.
        await ctx.services.store.link(
            new.code, directory_platform, "account", input.sub_account_code
        )
    ctx.loaders.forget_partner(new.code)


# --------------------------------------------------------------------------- idempotency
#
# With an idempotencyKey and a back office, createBusinessPartner takes the write path's
# idempotency (scope ``partner:<platform>:partners``: a key names one creation in that
# back office): a retry replays the first answer and sends nothing, one in flight or the
# key with another request is IDEMPOTENCY_CONFLICT, and an attempt whose answer was lost
# (OUTCOME_UNKNOWN) is settled by its retry reading the directory for the code.  Without
# a back office the store's upsert makes a repeat harmless.


@dataclass(frozen=True, slots=True, kw_only=True)
class _KeyedPartner:
    request: CreatePartnerRequest
    idempotency_key: str


@dataclass(frozen=True, slots=True, kw_only=True)
class _PartnerMade:
    """What a keyed creation answered, as its idempotency record keeps it."""

    code: str
    broker: str | None
    display_name: str | None
    details: models.BusinessPartner | None = None


def _partner_once(ctx: RequestContext) -> Once[_PartnerMade, BusinessPartnerPayload]:
    def present(
        made: _PartnerMade | None, errors: list[UserError], replayed: bool
    ) -> BusinessPartnerPayload:
        if made is None:
            return BusinessPartnerPayload(errors=errors, replayed=replayed)
        record = PartnerRecord(made.code, made.broker, made.display_name, datetime.now(UTC))
        partner = BusinessPartner.from_records(record, made.details)
        return BusinessPartnerPayload(business_partner=partner, replayed=replayed)

    return Once(scope="partner", model=_PartnerMade, present=present)


async def _keyed_new_partner(
    ctx: RequestContext, input: CreateBusinessPartnerInput
) -> AccountWrite[_KeyedPartner, _PartnerMade]:
    key = check_idempotency_key(input.idempotency_key or "")
    new = await _new_partner(ctx, input)
    platform = _directory_of(ctx, input)
    assert platform is not None  # the resolver takes this path only with a back office
    directory = ctx.services.registry.only(Capability.PARTNER_DIRECTORY, PartnerDirectory, platform)
    keyed = _KeyedPartner(request=_partner_request(new), idempotency_key=key)

    async def made(details: models.BusinessPartner | None) -> _PartnerMade:
        await _partner_created(ctx, new, platform)
        if details is None:  # the answer the directory gives now, as a first answer shows
            details = (await directory.get_partners([new.code]))[0]
        return _PartnerMade(
            code=new.code, broker=new.broker, display_name=new.name, details=details
        )

    async def create(keyed: _KeyedPartner) -> _PartnerMade:
        await directory.create_partner(keyed.request)
        return await made(None)

    async def read_back(claimed_at: datetime) -> _PartnerMade | None:
        (found,) = await directory.get_partners([new.code])
        if found is None:
            return None
        sub_account = input.sub_account_code
        registry = ctx.services.registry
        if sub_account and registry.has(platform, Capability.ACCOUNT_READS):
            reads = registry.require(platform, Capability.ACCOUNT_READS, AccountReads)
            if (await reads.get_accounts([sub_account]))[0] is None:
                # The firm went in, its sub-account did not: the attempt stopped midway
                # with nothing undone.  Not done, and not to be sent again.
                raise UpstreamError(
                    f"{platform} holds partner {new.code} without its sub-account "
                    f"{sub_account}: the earlier attempt stopped midway; add the "
                    "sub-account, or delete the partner, before retrying",
                    details={"platform": platform, "partnerCode": new.code},
                )
        return await made(found)

    return AccountWrite(platform, "partners", keyed, create, read_back)


async def _update_partner(
    ctx: RequestContext, input: UpdateBusinessPartnerInput
) -> BusinessPartnerPayload:
    registry = ctx.services.registry
    directory = registry.only(Capability.PARTNER_DIRECTORY, PartnerDirectory, input.platform)
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


async def _delete_partner(
    ctx: RequestContext, input: DeleteBusinessPartnerInput
) -> DeleteBusinessPartnerPayload:
    registry = ctx.services.registry
    if input.platform is not None or registry.platforms_with(Capability.PARTNER_DIRECTORY):
        directory = registry.only(Capability.PARTNER_DIRECTORY, PartnerDirectory, input.platform)
        await directory.delete_partner(input.code)
    await ctx.services.store.delete_partner(input.code)
    return DeleteBusinessPartnerPayload(deleted_code=input.code)


async def _enable_trading(
    ctx: RequestContext, input: PartnerOnPlatformInput
) -> BusinessPartnerPayload:
    registry = ctx.services.registry
    trading = registry.only(Capability.TRADING_ACCESS, TradingAccess, input.platform)
    await trading.enable_trading(input.partner_code)
    ctx.loaders.forget_partner(input.partner_code)  # the directory's cached copy is stale now
    return BusinessPartnerPayload(business_partner=await load_partner(ctx, input.partner_code))


async def _set_trading_leverage(
    ctx: RequestContext, input: SetTradingLeverageInput
) -> BusinessPartnerPayload:
    registry = ctx.services.registry
    trading = registry.only(Capability.TRADING_ACCESS, TradingAccess, input.platform)
    await trading.set_trading_leverage(input.partner_code, input.leverage)
    ctx.loaders.forget_partner(input.partner_code)  # the directory's cached copy is stale now
    return BusinessPartnerPayload(business_partner=await load_partner(ctx, input.partner_code))


async def _calculate_tax(ctx: RequestContext, input: CalculateTaxInput) -> TaxPayload:
    calculator = ctx.services.registry.only(Capability.TAX, TaxCalculator, input.platform)
    result = await calculator.calculate_tax(
        TaxRequest(
            partner_code=input.partner_code,
            kind=input.kind,
            amount=input.amount,
            currency=input.currency,
            period_from=input.period_from,
            period_to=input.period_to,
            day=input.day,
        )
    )
    return TaxPayload(calculation=TaxCalculation.from_model(result))


async def _request_report(ctx: RequestContext, asked: _Report) -> ClientReportPayload:
    input = asked.input
    reports = ctx.services.registry.require(
        asked.platform, Capability.CLIENT_REPORTS, ClientReports
    )
    made = [
        ClientReport.from_model(
            await reports.request_report(
                ReportRequest(
                    partner_code=input.partner_code,
                    format=input.format,
                    period_from=input.period_from,
                    period_to=input.period_to,
                    account_id=account_id,
                )
            )
        )
        for account_id in asked.accounts
    ]
    return ClientReportPayload(report=made[0], reports=made)
