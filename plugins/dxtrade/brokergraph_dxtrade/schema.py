"""What the DXtrade plugin adds to the schema: ``DxTradeAccount``, its platform type of
``Account`` (served for every account whose platform is ``dxtrade``).

The DXtrade fields come from the account as DXtrade described it (``raw``) where that is
the only source (cash type, categories, broker), else from the standard model, so they
survive caching; they are ``null`` when an account was rebuilt without its payload.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

import strawberry

from gateway.contract import Account
from gateway.contract.schema import AccountType, account_fields

__all__ = ["DxTradeAccount", "DxTradeCategory"]


@strawberry.type(description="One DXtrade account setting: a category domain and its value.")
class DxTradeCategory:
    category: str
    value: str


def _dxweb(m: Account) -> Mapping[str, Any]:
    raw = m.raw or {}
    account = raw.get("account") if isinstance(raw, Mapping) else None
    return account if isinstance(account, Mapping) else {}


@strawberry.federation.type(keys=["id"], description="An account of DXtrade (DxRegister).")
class DxTradeAccount(AccountType):
    clearing_code: str = strawberry.field(description="DXtrade clearing code (B1).")
    account_code: str = strawberry.field(description="DXtrade account code (B1).")
    account_type: str = strawberry.field(description="LIVE or DEMO.")
    account_cash_type: str | None = strawberry.field(description="MARGIN or CASH.")
    broker_code: str | None = strawberry.field(description="The account's DXtrade broker.")
    categories: list[DxTradeCategory] = strawberry.field(
        description="Per-account settings (Trading, Margining, Commissions, ...)."
    )

    @classmethod
    def from_model(cls, m: Account) -> Self:
        clearing, _, code = m.id.partition(":")
        dxweb = _dxweb(m)
        categories = [
            DxTradeCategory(category=str(c["category"]), value=str(c.get("value")))
            for c in dxweb.get("categories") or []
            if isinstance(c, Mapping) and "category" in c
        ]
        cash_type = dxweb.get("accountCashType")
        broker = dxweb.get("brokerCode")
        return cls(
            **account_fields(m),
            clearing_code=clearing,
            account_code=code or m.number,
            account_type="LIVE" if m.is_live else "DEMO",
            account_cash_type=cash_type if isinstance(cash_type, str) else None,
            broker_code=broker if isinstance(broker, str) else None,
            categories=categories,
        )
