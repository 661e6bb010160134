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

from gateway.contract import Account
from gateway.contract.schema import AccountType, account_fields

__all__ = ["QortSubaccount"]


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
