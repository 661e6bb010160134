"""What the QORT plugin adds to the schema: ``QortSubaccount``, its Account type.

A QORT sub-account (``Subaccs``) is the account a client trades through once its
limits are uploaded to QUIK.  Its QORT-only fields come from the Subaccs row the
connector keeps in the model's ``raw``; they read as null if a model ever arrives
without it (the connector declares no cache for ACCOUNT_READS, so none does today).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

import strawberry
from strawberry.types import Info

from brokergraph_qort.connector import QortConnector
from gateway.contract import Account, Capability, InvalidInput
from gateway.contract.schema import (
    STAFF,
    AccountType,
    RequestContext,
    UserError,
    account_fields,
    write,
)
from gateway.graphql import access

__all__ = ["QortMutation", "QortSubaccount"]


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
    await access.require_partner(ctx, input.partner_code)
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
