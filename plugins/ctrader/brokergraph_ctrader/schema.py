"""What the cTrader plugin adds to the schema: ``CTraderAccount`` (implements ``Account``).

Every field of the ``Account`` interface comes from the core (``account_fields``);
this type adds what only cTrader has.  Those fields are read from the trader object
the connector kept in ``Account.raw``; where no payload is at hand (an idempotent
replay rebuilds models without ``raw``) they are null rather than guessed.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, Self

import strawberry
from strawberry.types import Info

from brokergraph_ctrader.connector import CTraderConnector
from brokergraph_ctrader.wire import epoch_ms
from gateway.contract import Account, Capability
from gateway.contract.schema import AccountType, account_fields, context_of, encode_id

__all__ = ["CTraderAccessRights", "CTraderAccount", "CTraderAccountKind", "CTraderCopySubAccount"]


@strawberry.enum(description="cTrader's accessRights of a trading account.")
class CTraderAccessRights(enum.Enum):
    FULL_ACCESS = "FULL_ACCESS"
    CLOSE_ONLY = "CLOSE_ONLY"
    NO_TRADING = "NO_TRADING"
    NO_LOGIN = "NO_LOGIN"


@strawberry.enum(description="cTrader's accountType: position accounting of the account.")
class CTraderAccountKind(enum.Enum):
    HEDGED = "HEDGED"
    NETTED = "NETTED"
    SPREAD_BETTING = "SPREAD_BETTING"


@strawberry.type(description="A cTrader Copy sub-account of an account, with its money.")
class CTraderCopySubAccount:
    account_id: strawberry.ID = strawberry.field(description="Global id of the sub-account.")
    login: str
    currency: str
    balance: Decimal = strawberry.field(description="In currency units.")
    equity: Decimal | None = strawberry.field(description="In currency units.")


def _enum(cls: type[enum.Enum], value: Any) -> Any:
    try:
        return cls(value)
    except ValueError:
        return None


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


@strawberry.federation.type(keys=["id"], description="A cTrader trading account (a 'trader').")
class CTraderAccount(AccountType):
    login: str = strawberry.field(description="The trader login (same as number).")
    money_digits: int | None = strawberry.field(
        description="Decimals of the deposit currency on cTrader (2 for fiat, 8 for BTC); "
        "amounts with more decimals are refused."
    )
    access_rights: CTraderAccessRights | None = strawberry.field(
        description="cTrader's accessRights (status says the same in gateway terms)."
    )
    account_type: CTraderAccountKind | None = strawberry.field(
        description="HEDGED, NETTED or SPREAD_BETTING."
    )
    broker_name: str | None = strawberry.field(description="The White Label (brokerName).")
    swap_free: bool | None = strawberry.field(description="Swap-free (Islamic) account.")
    registered_at: datetime | None = strawberry.field(description="registrationTimestamp.")
    last_connected_at: datetime | None = strawberry.field(
        description="lastConnectionTimestamp, when cTrader reports it."
    )

    @classmethod
    def from_model(cls, m: Account) -> Self:
        raw: Mapping[str, Any] = m.raw or {}
        broker = raw.get("brokerName")
        swap_free = raw.get("swapFree")
        try:
            registered = epoch_ms(raw.get("registrationTimestamp"))
            connected = epoch_ms(raw.get("lastConnectionTimestamp"))
        except Exception:  # a payload we cannot read leaves the extras empty
            registered = connected = None
        return cls(
            **account_fields(m),
            login=m.number,
            money_digits=_int(raw.get("moneyDigits")),
            access_rights=_enum(CTraderAccessRights, raw.get("accessRights")),
            account_type=_enum(CTraderAccountKind, raw.get("accountType")),
            broker_name=broker if isinstance(broker, str) else None,
            swap_free=swap_free if isinstance(swap_free, bool) else None,
            registered_at=registered or m.created_at,
            last_connected_at=connected,
        )

    @strawberry.field(description="cTrader Copy sub-accounts of this account (4.4).")  # type: ignore[untyped-decorator]
    async def copy_sub_accounts(self, info: Info[Any, Any]) -> list[CTraderCopySubAccount] | None:
        # The one road of reads: deduplicated per operation, cached for the connector's
        # ACCOUNT_READS TTL, and guarded (get_copy_sub_accounts is marked ``read``).
        subs = await context_of(info).loaders.read(
            self.platform,
            Capability.ACCOUNT_READS,
            CTraderConnector,
            "ctrader-copy-sub-accounts",
            self.external_id,
            lambda connector: connector.get_copy_sub_accounts(self.external_id),
        )
        return [
            CTraderCopySubAccount(
                account_id=strawberry.ID(encode_id("Account", self.platform, sub.account_id)),
                login=sub.account_id,
                currency=sub.balance.currency,
                balance=sub.balance.amount,
                equity=None if sub.equity is None else sub.equity.amount,
            )
            for sub in subs
        ]
