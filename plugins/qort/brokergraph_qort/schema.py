"""What the QORT plugin adds to the schema: ``QortSubaccount``, its Account type.

A QORT sub-account (``Subaccs``) is the account a client trades through once its
limits are uploaded to QUIK.  Its QORT-only fields come from the Subaccs row the
connector keeps in the model's ``raw``; they read as null if a model ever arrives
without it (the connector declares no cache for ACCOUNT_READS, so none does today).
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Self

import strawberry
from strawberry.types import Info

from brokergraph_qort.connector import (
    ATTRIBUTE_NAME,
    EARLIEST_TAX_DAY,
    AttributeDefinition,
    AttributeType,
    PitReport,
    QortConnector,
    attribute_from_qort,
    attribute_to_qort,
    from_qort_date,
)
from gateway.contract import (
    Account,
    Capability,
    InvalidInput,
    NotFound,
    UpdatePartnerRequest,
)
from gateway.contract.schema import (
    STAFF,
    AccountType,
    RequestContext,
    UserError,
    account_fields,
    context_of,
    require_partner,
    visible_partner,
    write,
)

__all__ = ["QortMutation", "QortQuery", "QortSubaccount"]


@strawberry.type(description="A sub-account's trading access in QUIK.")
class QortTradingAccess:
    marked_for_quik: bool = strawberry.field(description="IsQUIK='y' (TradeCode not BLOCK).")
    limits_uploaded_on: date | None = strawberry.field(
        description="The day enableTrading last uploaded its limits to QUIK (null: never); "
        "setTradingLeverage works only on that day. Read from the row's QuikUploadDate, a "
        "field whose name is our inference."
    )
    leverage: Decimal | None = strawberry.field(description="Leverage set in QUIK.")


@strawberry.federation.type(
    keys=["id"],
    description="A QORT sub-account (Subaccs): the client's account in the back office.",
)
class QortSubaccount(AccountType):
    name: str | None = strawberry.field(description="SubaccName.")
    owner_partner_code: str | None = strawberry.field(
        description="OwnerFirm_BOCode: the business partner that owns the sub-account."
    )
    is_quik: bool | None = strawberry.field(
        description="IsQUIK: traded through QUIK (limits are uploaded by enableTrading)."
    )
    trade_code: str | None = strawberry.field(description="TradeCode: the QUIK client code.")
    trading_access: QortTradingAccess | None = strawberry.field(
        description="QUIK state: marked, limits uploaded on, leverage."
    )

    @classmethod
    def from_model(cls, m: Account) -> Self:
        row: Mapping[str, Any] = m.raw or {}
        is_quik = row.get("IsQUIK")
        return cls(
            **account_fields(m),
            name=row.get("SubaccName") or None,
            owner_partner_code=row.get("OwnerFirm_BOCode") or None,
            is_quik=None if is_quik is None else is_quik == "y",
            trade_code=row.get("TradeCode") or None,
            trading_access=None
            if not row
            else QortTradingAccess(
                marked_for_quik=is_quik == "y" and row.get("TradeCode") != "BLOCK",
                limits_uploaded_on=_day(row.get("QuikUploadDate")),
                leverage=m.leverage,
            ),
        )


# --------------------------------------------------------------------------- mutations


@strawberry.input(description="A partner's QORT sub-account to mark for QUIK.")
class MarkQortSubaccountForQuikInput:
    partner_code: str = strawberry.field(description="OwnerFirm_BOCode of the sub-account.")
    sub_account_code: str = strawberry.field(description="SubAccCode to mark.")


@strawberry.type(description="The QORT sub-account a QORT-only mutation changed.")
class QortSubaccountPayload:
    sub_account: QortSubaccount | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


async def _markable(
    ctx: RequestContext, input: MarkQortSubaccountForQuikInput
) -> MarkQortSubaccountForQuikInput:
    code = input.sub_account_code
    if not code.strip() or code != code.strip():
        raise InvalidInput(
            "subAccountCode must be a SubAccCode, without surrounding spaces",
            field=["subAccountCode"],
        )
    await require_partner(ctx, input.partner_code)
    return input


async def _mark(
    ctx: RequestContext, input: MarkQortSubaccountForQuikInput
) -> QortSubaccountPayload:
    connector = ctx.services.registry.require(
        QortConnector.platform, Capability.TRADING_ACCESS, QortConnector
    )
    account = await connector.mark_subaccount_for_quik(input.partner_code, input.sub_account_code)
    ctx.loaders.forget_partner(input.partner_code)  # its cached packet still says IsQUIK='n'
    return QortSubaccountPayload(sub_account=QortSubaccount.from_model(account))


@strawberry.input(description="One more sub-account for an existing QORT partner.")
class AddQortSubaccountInput:
    partner_code: str = strawberry.field(description="BOCode of the owning firm.")
    sub_account_code: str = strawberry.field(description="SubAccCode of the new sub-account.")
    name: str | None = strawberry.field(
        default=None, description="SubaccName; the firm's short name when omitted."
    )
    currency: str | None = strawberry.field(
        default=None, description="ISO code; the connector's default_currency when omitted."
    )
    mark_for_quik: bool = strawberry.field(
        default=False,
        description="Mark it for QUIK at once (IsQUIK='y'); else TradeCode='BLOCK' until "
        "markQortSubaccountForQuik.",
    )
    agreement_number: str | None = strawberry.field(
        default=None, description="Num of a client agreement to sign for the sub-account."
    )


@strawberry.input(description="One more client agreement (ClientAgrees) for a QORT partner.")
class AddQortAgreementInput:
    partner_code: str = strawberry.field(description="BOCode of the firm.")
    agreement_number: str = strawberry.field(description="Num of the agreement.")
    sub_account_code: str | None = strawberry.field(
        default=None, description="SubAccCode of the partner's sub-account it covers, if any."
    )


@strawberry.type(description="The partner's QORT record after a QORT-only mutation.")
class QortPartnerRecordPayload:
    partner_record: QortPartnerRecord | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_./-]{0,49}")


def _code(value: str | None, field: str) -> None:
    """QORT's business codes: refused here, before any call, when QORT would refuse them."""
    if value is not None and not _CODE.fullmatch(value):
        raise InvalidInput(
            f"{field} must be 1-50 letters, digits or _ . / - (a QORT code)", field=[field]
        )


async def _new_subaccount(
    ctx: RequestContext, input: AddQortSubaccountInput
) -> AddQortSubaccountInput:
    _code(input.sub_account_code, "subAccountCode")
    _code(input.agreement_number, "agreementNumber")
    if input.currency is not None and not re.fullmatch(r"[A-Z]{3}", input.currency):
        raise InvalidInput("currency must be an ISO 4217 code such as RUB", field=["currency"])
    if input.name is not None and (not input.name.strip() or len(input.name) > 200):
        raise InvalidInput("name must be 1-200 characters", field=["name"])
    await require_partner(ctx, input.partner_code)
    return input


async def _new_agreement(
    ctx: RequestContext, input: AddQortAgreementInput
) -> AddQortAgreementInput:
    _code(input.agreement_number, "agreementNumber")
    _code(input.sub_account_code, "subAccountCode")
    await require_partner(ctx, input.partner_code)
    return input


def _qort(ctx: RequestContext) -> QortConnector:
    return ctx.services.registry.require(
        QortConnector.platform, Capability.PARTNER_DIRECTORY, QortConnector
    )


async def _add_subaccount(
    ctx: RequestContext, input: AddQortSubaccountInput
) -> QortSubaccountPayload:
    account = await _qort(ctx).add_subaccount(
        input.partner_code,
        input.sub_account_code,
        name=input.name,
        currency=input.currency,
        quik=input.mark_for_quik,
        agreement_number=input.agreement_number,
    )
    ctx.loaders.forget_partner(input.partner_code)  # its cached packet lacks the sub-account
    return QortSubaccountPayload(sub_account=QortSubaccount.from_model(account))


async def _add_agreement(
    ctx: RequestContext, input: AddQortAgreementInput
) -> QortPartnerRecordPayload:
    await _qort(ctx).add_agreement(
        input.partner_code, input.agreement_number, input.sub_account_code
    )
    ctx.loaders.forget_partner(input.partner_code)  # its cached packet lacks the agreement
    partner = await ctx.loaders.partner_details.load(input.partner_code)
    record = (
        None if partner is None or not partner.raw else QortPartnerRecord.from_packet(partner.raw)
    )
    return QortPartnerRecordPayload(partner_record=record)


@strawberry.input(description="One extension field to set (value) or remove (value null).")
class QortAttributeInput:
    key: str = strawberry.field(description="A field QORT declares (qortAttributeDefinitions).")
    value: str | None = strawberry.field(
        default=None,
        description='The value as text of the field\'s type: DECIMAL "1500000.50", DATE '
        '"2024-05-31", BOOLEAN "true"/"false", STRING any text up to 255 '
        "characters; null removes the field.",
    )


@strawberry.input(description="Typed extension fields to set on a QORT partner.")
class SetQortPartnerAttributesInput:
    partner_code: str = strawberry.field(description="BOCode of the firm.")
    attributes: list[QortAttributeInput] = strawberry.field(description="1 to 100 fields.")


MAX_ATTRIBUTES_PER_WRITE = 100


@dataclasses.dataclass(frozen=True, slots=True)
class _AttributeWrite:
    partner_code: str
    texts: dict[str, str | None]


async def _settable(ctx: RequestContext, input: SetQortPartnerAttributesInput) -> _AttributeWrite:
    """Every key declared, every value of its type, the partner visible: before any write."""
    if not 1 <= len(input.attributes) <= MAX_ATTRIBUTES_PER_WRITE:
        raise InvalidInput(f"give 1 to {MAX_ATTRIBUTES_PER_WRITE} attributes", field=["attributes"])
    keys = [a.key for a in input.attributes]
    for key in keys:
        if not ATTRIBUTE_NAME.fullmatch(key):
            raise InvalidInput(
                "an attribute key is an identifier (letters, digits, _; at most 64)",
                field=["attributes", key],
            )
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise InvalidInput(
            f"each key at most once: {', '.join(repeated)}", field=["attributes", repeated[0]]
        )
    await require_partner(ctx, input.partner_code)
    definitions = await _definitions(ctx)
    texts: dict[str, str | None] = {}
    for item in input.attributes:
        definition = definitions.get(item.key)
        if definition is None:
            raise InvalidInput(
                f"QORT's data model declares no field {item.key!r} "
                "(qortAttributeDefinitions lists those it does)",
                field=["attributes", item.key],
            )
        texts[item.key] = (
            None if item.value is None else attribute_to_qort(item.key, definition.type, item.value)
        )
    return _AttributeWrite(input.partner_code, texts)


async def _set_attributes(
    ctx: RequestContext, checked: _AttributeWrite
) -> QortPartnerRecordPayload:
    await _qort(ctx).update_partner(
        UpdatePartnerRequest(code=checked.partner_code, attributes=checked.texts)
    )
    ctx.loaders.forget_partner(checked.partner_code)  # its cached packet has the old values
    partner = await ctx.loaders.partner_details.load(checked.partner_code)
    record = (
        None if partner is None or not partner.raw else QortPartnerRecord.from_packet(partner.raw)
    )
    return QortPartnerRecordPayload(partner_record=record)


@strawberry.type
class QortMutation:
    """QORT-only mutations, merged into ``Mutation`` by the plugin's hook."""

    @strawberry.mutation(  # type: ignore[untyped-decorator]
        name="markQortSubaccountForQuik",
        description="Finish a partner's QORT onboarding: mark an active sub-account for QUIK "
        "(IsQUIK='y', TradeCode = SubAccCode), so that enableTrading can upload its limits. "
        "Staff only; audited.",
    )
    async def mark_qort_subaccount_for_quik(
        self, info: Info[Any, Any], input: MarkQortSubaccountForQuikInput
    ) -> QortSubaccountPayload:
        return await write(
            info,
            input,
            "markQortSubaccountForQuik",
            target=input.partner_code,
            authorise=STAFF,
            validate=_markable,
            dispatch=_mark,
            payload=QortSubaccountPayload,
            reference=lambda p: p.sub_account.external_id if p.sub_account else None,
        )

    @strawberry.mutation(  # type: ignore[untyped-decorator]
        name="addQortSubaccount",
        description="Open one more sub-account for an existing QORT partner, with a client "
        "agreement if agreementNumber is given (if QORT refuses the agreement the sub-account "
        "is deleted again). Staff only; audited.",
    )
    async def add_qort_subaccount(
        self, info: Info[Any, Any], input: AddQortSubaccountInput
    ) -> QortSubaccountPayload:
        return await write(
            info,
            input,
            "addQortSubaccount",
            target=input.partner_code,
            authorise=STAFF,
            validate=_new_subaccount,
            dispatch=_add_subaccount,
            payload=QortSubaccountPayload,
            reference=lambda p: p.sub_account.external_id if p.sub_account else None,
        )

    @strawberry.mutation(  # type: ignore[untyped-decorator]
        name="setQortPartnerAttributes",
        description="Set or remove a QORT partner's Data model extension fields, each checked "
        "against its declared type before anything is written (INVALID_INPUT naming the "
        "field otherwise). Staff only; audited.",
    )
    async def set_qort_partner_attributes(
        self, info: Info[Any, Any], input: SetQortPartnerAttributesInput
    ) -> QortPartnerRecordPayload:
        return await write(
            info,
            input,
            "setQortPartnerAttributes",
            target=input.partner_code,
            authorise=STAFF,
            validate=_settable,
            dispatch=_set_attributes,
            payload=QortPartnerRecordPayload,
        )

    @strawberry.mutation(  # type: ignore[untyped-decorator]
        name="addQortAgreement",
        description="Sign one more client agreement for an existing QORT partner (type: the "
        "connector's agreement_type; signed today). Staff only; audited.",
    )
    async def add_qort_agreement(
        self, info: Info[Any, Any], input: AddQortAgreementInput
    ) -> QortPartnerRecordPayload:
        return await write(
            info,
            input,
            "addQortAgreement",
            target=input.partner_code,
            authorise=STAFF,
            validate=_new_agreement,
            dispatch=_add_agreement,
            payload=QortPartnerRecordPayload,
        )


# --------------------------------------------------------------------------- the firm packet


def _day(value: str | None) -> date | None:
    """A QORT day (YYYYMMDD; 0 or empty: none)."""
    when = from_qort_date(value)
    return None if when is None else when.date()


def _list(value: str | None) -> list[str]:
    """QORT's list fields (Emails, Phones) are ';' or ',' separated."""
    return [part.strip() for part in re.split(r"[;,]", value or "") if part.strip()]


@strawberry.type(description="A client agreement (ClientAgrees).")
class QortAgreement:
    number: str = strawberry.field(description="Num.")
    type: str | None = strawberry.field(description="ClientAgreeTypeShortName (e.g. BA, DA).")
    sub_account_code: str | None = strawberry.field(description="SubAccCode, if bound to one.")
    created_on: date | None = strawberry.field(description="DateCreate.")
    signed_on: date | None = strawberry.field(description="DateSign.")
    ends_on: date | None = strawberry.field(description="DateEnd; null when open-ended (0).")


@strawberry.type(description="A bank account / settlement instruction (FirmAccounts).")
class QortBankAccount:
    name: str = strawberry.field(description="AccName.")
    account_number: str | None = strawberry.field(description="BankAccNum.")
    bank_code: str | None = strawberry.field(description="BankAccBank_BOCode: the bank's firm.")
    currency: str | None = strawberry.field(description="SettlementAsset_ShortName.")
    comment: str | None = strawberry.field(description="Comment.")


@strawberry.type(description="The identity document QORT keeps for the firm (IDoc*).")
class QortIdentityDocument:
    type: str | None = strawberry.field(description="IDocType_Name.")
    number: str | None = strawberry.field(description="IDocNum.")
    issued_on: date | None = strawberry.field(description="IDocDate.")
    expires_on: date | None = strawberry.field(description="IDocDateEnd.")


@strawberry.type(description="KYC fields of the Firms row.")
class QortKyc:
    checked: bool = strawberry.field(description="IsCheckedKYC.")
    qualified_investor: bool = strawberry.field(description="IsQualified.")
    resident: bool = strawberry.field(description="IsResident.")
    tax_resident: bool = strawberry.field(description="IsTaxResident.")
    date_of_birth: date | None = strawberry.field(description="DateOfBirth.")
    identity_document: QortIdentityDocument | None = strawberry.field(
        description="Null when QORT has no IDoc fields for the firm."
    )


QortAttributeType = strawberry.enum(
    AttributeType,
    name="QortAttributeType",
    description="The type a Data model extension field is declared with in QORT.",
)


@strawberry.type(description="A Data model extension field QORT declares (FirmAttributeDefs).")
class QortAttributeDefinition:
    key: str = strawberry.field(description="The field's name.")
    type: QortAttributeType = strawberry.field(description="Its declared type.")  # type: ignore[valid-type]
    description: str | None = strawberry.field(description="QORT's description, if any.")


@strawberry.type(
    description="One extension field of a firm with its value, typed: the typed field of its "
    "type is set, the others null."
)
class QortAttribute:
    key: str = strawberry.field(description="The field's name.")
    type: QortAttributeType = strawberry.field(  # type: ignore[valid-type]
        description="The declared type; STRING for a field QORT declares no type for."
    )
    declared: bool = strawberry.field(
        description="Whether QORT's data model declares the field (else it is free text)."
    )
    value: str | None = strawberry.field(
        description="The value as text: a DECIMAL as a plain number, a DATE as YYYY-MM-DD, a "
        "BOOLEAN as true/false; QORT's own text when it does not fit the type."
    )
    string_value: str | None = strawberry.field(description="Set for STRING.")
    decimal_value: Decimal | None = strawberry.field(description="Set for DECIMAL.")
    date_value: date | None = strawberry.field(description="Set for DATE.")
    boolean_value: bool | None = strawberry.field(description="Set for BOOLEAN.")

    @classmethod
    def of(cls, key: str, text: str, definition: AttributeDefinition | None) -> Self:
        type_ = definition.type if definition else AttributeType.STRING
        typed = attribute_from_qort(type_, text)
        shown: str | None = text
        if isinstance(typed, bool):
            shown = "true" if typed else "false"
        elif isinstance(typed, Decimal):
            shown = format(typed, "f")
        elif isinstance(typed, date):
            shown = typed.isoformat()
        return cls(
            key=key,
            type=type_,
            declared=definition is not None,
            value=shown,
            string_value=typed if isinstance(typed, str) else None,
            decimal_value=typed if isinstance(typed, Decimal) else None,
            date_value=typed if isinstance(typed, date) else None,
            boolean_value=typed if isinstance(typed, bool) else None,
        )


async def _definitions(ctx: RequestContext) -> Mapping[str, AttributeDefinition]:
    """QORT's declared extension fields, once per operation on the read road."""
    return await ctx.loaders.read(
        QortConnector.platform,
        Capability.PARTNER_DIRECTORY,
        QortConnector,
        "qort-field-definitions",
        "all",
        lambda connector: connector.attribute_definitions(),
    )


@strawberry.type(
    description="What QORT's one firm-packet read holds for a partner beyond BusinessPartner: "
    "agreements, bank accounts, contacts, address and KYC."
)
class QortPartnerRecord:
    code: str = strawberry.field(description="BOCode.")
    emails: list[str] = strawberry.field(description="Emails, each of the list.")
    phones: list[str] = strawberry.field(description="Phones, each of the list.")
    legal_address: str | None = strawberry.field(description="LatAddrJu.")
    kyc: QortKyc
    agreements: list[QortAgreement]
    bank_accounts: list[QortBankAccount]
    attribute_texts: strawberry.Private[Mapping[str, str]]

    @strawberry.field(  # type: ignore[untyped-decorator]
        description="The firm's Data model extension fields, typed by their QORT "
        "definitions (qortAttributeDefinitions), by key. BusinessPartner.attributes keeps "
        "the same fields as QORT's text."
    )
    async def extension_attributes(self, info: Info[Any, Any]) -> list[QortAttribute]:
        definitions = await _definitions(context_of(info))
        return [
            QortAttribute.of(key, text, definitions.get(key))
            for key, text in sorted(self.attribute_texts.items())
        ]

    @classmethod
    def from_packet(cls, raw: Mapping[str, Any]) -> Self:
        firm: Mapping[str, str] = raw.get("Firm") or {}
        agrees: Sequence[Mapping[str, str]] = raw.get("ClientAgree") or []
        accounts: Sequence[Mapping[str, str]] = raw.get("FirmAccount") or []
        document = None
        if any(firm.get(k) for k in ("IDocType_Name", "IDocNum", "IDocDate", "IDocDateEnd")):
            document = QortIdentityDocument(
                type=firm.get("IDocType_Name") or None,
                number=firm.get("IDocNum") or None,
                issued_on=_day(firm.get("IDocDate")),
                expires_on=_day(firm.get("IDocDateEnd")),
            )
        texts: Mapping[str, str] = raw.get("Attribute") or {}
        return cls(
            attribute_texts=dict(texts),
            code=firm["BOCode"],
            emails=_list(firm.get("Emails")),
            phones=_list(firm.get("Phones")),
            legal_address=firm.get("LatAddrJu") or None,
            kyc=QortKyc(
                checked=firm.get("IsCheckedKYC") == "y",
                qualified_investor=firm.get("IsQualified") == "y",
                resident=firm.get("IsResident") == "y",
                tax_resident=firm.get("IsTaxResident") == "y",
                date_of_birth=_day(firm.get("DateOfBirth")),
                identity_document=document,
            ),
            agreements=[
                QortAgreement(
                    number=a["Num"],
                    type=a.get("ClientAgreeTypeShortName") or None,
                    sub_account_code=a.get("SubAccCode") or None,
                    created_on=_day(a.get("DateCreate")),
                    signed_on=_day(a.get("DateSign")),
                    ends_on=_day(a.get("DateEnd")),
                )
                for a in sorted(agrees, key=lambda a: a["Num"])
            ],
            bank_accounts=[
                QortBankAccount(
                    name=b["AccName"],
                    account_number=b.get("BankAccNum") or None,
                    bank_code=b.get("BankAccBank_BOCode") or None,
                    currency=b.get("SettlementAsset_ShortName") or None,
                    comment=b.get("Comment") or None,
                )
                for b in sorted(accounts, key=lambda b: b["AccName"])
            ],
        )


# --------------------------------------------------------------------------- PIT


@strawberry.enum(description="Whose deals a PIT report's totals (taxBase, taxAmount) cover.")
class QortPitScope(enum.Enum):
    PARTNER = "PARTNER"
    SUB_ACCOUNT = "SUB_ACCOUNT"


@strawberry.type(description="One deal of a PIT report: a CalcPitPeriod row, as QORT gives it.")
class QortPitDeal:
    trade_number: str = strawberry.field(description="TradeNum.")
    sub_account_code: str = strawberry.field(description="SubAccCode.")
    instrument: str = strawberry.field(description="Security_Code.")
    quantity: Decimal = strawberry.field(description="Qty.")
    buy_date: date | None = strawberry.field(description="BuyDate: the opening (buy) day.")
    buy_price: Decimal | None = strawberry.field(description="BuyPrice, in currency.")
    buy_amount: Decimal | None = strawberry.field(description="BuyVolume = Qty x BuyPrice.")
    sell_date: date | None = strawberry.field(description="SellDate: the closing day.")
    sell_price: Decimal | None = strawberry.field(description="SellPrice, in currency.")
    sell_amount: Decimal | None = strawberry.field(description="SellVolume = Qty x SellPrice.")
    currency: str = strawberry.field(description="Currency of the prices and the income.")
    income: Decimal = strawberry.field(description="Income: realised result, in currency.")
    rate_to_tax_currency: Decimal | None = strawberry.field(
        description="Rate: the conversion QORT applied to the tax currency."
    )
    tax_base: Decimal = strawberry.field(
        description="IncomeRUB: what the deal adds to the tax base (negative: a loss)."
    )


@strawberry.type(
    description="Personal income tax (PIT) QORT calculates as the broker's tax agent, from "
    "1 January to a day, with the deals it is calculated on."
)
class QortPitReport:
    partner_code: str = strawberry.field(description="BOCode.")
    sub_account_code: str | None = strawberry.field(
        description="The sub-account asked for (null: every sub-account of the partner)."
    )
    period_from: date = strawberry.field(description="1 January of the day's year.")
    period_to: date = strawberry.field(description="The day asked for (inclusive).")
    scope: QortPitScope = strawberry.field(
        description="SUB_ACCOUNT when the totals are the sub-account's; PARTNER when no "
        "sub-account was asked for, or QORT answered the partner's whole PIT (deals then "
        "still lists the sub-account's only)."
    )
    currency: str = strawberry.field(description="The tax currency (RUB).")
    tax_base: Decimal = strawberry.field(description="TaxBase.")
    tax_amount: Decimal = strawberry.field(description="TaxAmount.")
    deals: list[QortPitDeal] = strawberry.field(description="The rows, in QORT's order.")

    @classmethod
    def from_report(cls, r: PitReport) -> Self:
        narrow = r.sub_account_code is not None and r.narrowed
        return cls(
            partner_code=r.partner_code,
            sub_account_code=r.sub_account_code,
            period_from=r.period_from,
            period_to=r.period_to,
            scope=QortPitScope.SUB_ACCOUNT if narrow else QortPitScope.PARTNER,
            currency=r.currency,
            tax_base=r.tax_base,
            tax_amount=r.tax_amount,
            deals=[
                QortPitDeal(
                    trade_number=d.trade_number,
                    sub_account_code=d.sub_account_code,
                    instrument=d.instrument,
                    quantity=d.quantity,
                    buy_date=d.buy_date,
                    buy_price=d.buy_price,
                    buy_amount=d.buy_amount,
                    sell_date=d.sell_date,
                    sell_price=d.sell_price,
                    sell_amount=d.sell_amount,
                    currency=d.currency,
                    income=d.income,
                    rate_to_tax_currency=d.rate,
                    tax_base=d.tax_base,
                )
                for d in r.deals
            ],
        )


#: QORT keeps no deals before this; a PIT day earlier is a typo.
EARLIEST_PIT_DAY = EARLIEST_TAX_DAY


async def _pit_report(
    ctx: RequestContext, code: str, day: date, sub_account_code: str | None
) -> QortPitReport | None:
    if day < EARLIEST_PIT_DAY or day > datetime.now(UTC).date():
        raise InvalidInput(
            f"date must be a day from {EARLIEST_PIT_DAY.isoformat()} to today", field=["date"]
        )
    _code(sub_account_code, "subAccountCode")
    if await visible_partner(ctx, code) is None:  # as businessPartner: null
        return None
    partner = await ctx.loaders.partner_details.load(code)
    if partner is None or partner.platform != QortConnector.platform or not partner.raw:
        return None
    if sub_account_code is not None and not any(
        row.get("SubAccCode") == sub_account_code for row in partner.raw.get("Subacc") or []
    ):
        raise NotFound("the partner has no such sub-account", field=["subAccountCode"])
    report = await ctx.loaders.read(
        QortConnector.platform,
        Capability.TAX,
        QortConnector,
        "qort-pit",
        f"{code}\x1f{day.isoformat()}\x1f{sub_account_code or ''}",
        lambda connector: connector.pit_report(code, day, sub_account_code),
    )
    return QortPitReport.from_report(report)


@strawberry.type
class QortQuery:
    """QORT-only queries, merged into ``Query`` by the plugin's hook."""

    @strawberry.field(  # type: ignore[untyped-decorator]
        name="qortPartnerRecord",
        description="The partner's QORT firm packet beyond BusinessPartner (agreements, bank "
        "accounts, contacts, address, KYC and document expiry): the same one GetFirmPacket "
        "read businessPartner makes. Null when QORT has no such firm; the partner's own "
        "client or staff only.",
    )
    async def qort_partner_record(
        self, info: Info[Any, Any], code: str
    ) -> QortPartnerRecord | None:
        ctx = context_of(info)
        if await visible_partner(ctx, code) is None:  # as businessPartner: null
            return None
        partner = await ctx.loaders.partner_details.load(code)
        if partner is None or partner.platform != QortConnector.platform or not partner.raw:
            return None
        return QortPartnerRecord.from_packet(partner.raw)

    @strawberry.field(  # type: ignore[untyped-decorator]
        name="qortAttributeDefinitions",
        description="The Data model extension fields QORT declares, with their types, by key "
        "(any signed-in viewer: they describe the data model, not a partner).",
    )
    async def qort_attribute_definitions(
        self, info: Info[Any, Any]
    ) -> list[QortAttributeDefinition]:
        ctx = context_of(info)
        ctx.require_viewer()
        definitions = await _definitions(ctx)
        return [
            QortAttributeDefinition(key=d.name, type=d.type, description=d.description)
            for d in sorted(definitions.values(), key=lambda d: d.name)
        ]

    @strawberry.field(  # type: ignore[untyped-decorator]
        name="qortPitReport",
        description="The partner's PIT from 1 January to `date` as QORT calculates it "
        "(CalcPitPeriod), with each deal it is calculated on; for one sub-account when "
        "subAccountCode is given.  Null when QORT has no such firm; the partner's own client "
        "or staff only.",
    )
    async def qort_pit_report(
        self,
        info: Info[Any, Any],
        partner_code: str,
        date: date,
        sub_account_code: str | None = None,
    ) -> QortPitReport | None:
        return await _pit_report(context_of(info), partner_code, date, sub_account_code)
