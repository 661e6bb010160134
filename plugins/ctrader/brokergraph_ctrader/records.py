"""What the connector keeps in the gateway store (``save_flow``/``get_flow``/``list_flows``).

WebServices cannot answer three questions the gateway asks, so the connector
records the answers itself when it acts:

* **users** (``{name}:user:{userId}``, kind ``{name}-user``): email, name, status and
  the logins linked to the user — cTrader has no "read user" nor "logins of a user"
  call.  Users and accounts linked to partners by the gateway (demo links,
  ``linkToPartner``) are found through the gateway's links as well.
* **create-trader flows** (``{name}-ct-{uuid}``, kind ``{name}-create-trader``): the
  state of one createTrader run, so a retry with ``resumeToken`` continues where it
  stopped.  The trader password's MD5 is kept only while the flow is unfinished (the
  link step needs it) and dropped once the trader is linked; the password never is.
* **users by e-mail** (``{name}:ctid-email:{email}``, kind ``{name}-ctid-email``): the
  cTID create-user answered for an e-mail (lower case), so the next createTrader for it
  is checked against the user's partner before anything is sent — WebServices cannot
  find a user by e-mail, and create-user answers an existing one.
* **balance operations** (``{name}-op:{login}:{ledger}:{id}``, kind ``{name}-op``):
  every deposit/withdrawal/credit/bonus change made through the gateway — WebServices
  has no balance-history read.  Operations made elsewhere (cBroker, another CRM) are
  not seen; the Reporting API would be the source for those.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from gateway.contract import BalanceOperation, BalanceOperationKind, Money, Trader, TraderStatus

__all__ = [
    "operation_from_record",
    "operation_record",
    "trader_from_record",
]


def operation_record(operation: BalanceOperation, ledger: str) -> dict[str, Any]:
    return {
        "id": operation.id,
        "login": operation.account_id,
        "ledger": ledger,
        "kind": operation.kind.value,
        "amount": format(operation.amount.amount, "f"),
        "currency": operation.amount.currency,
        "at": operation.at.isoformat(),
        "externalId": operation.external_id,
        "comment": operation.comment,
    }


def operation_from_record(platform: str, record: Mapping[str, Any]) -> BalanceOperation:
    return BalanceOperation(
        platform=platform,
        id=str(record["id"]),
        account_id=str(record["login"]),
        kind=BalanceOperationKind(record["kind"]),
        amount=Money(Decimal(record["amount"]), str(record["currency"])),
        at=datetime.fromisoformat(record["at"]),
        external_id=record.get("externalId"),
        comment=record.get("comment"),
        raw=dict(record),
    )


def trader_from_record(platform: str, user_id: str, record: Mapping[str, Any] | None) -> Trader:
    if record is None:
        return Trader(platform=platform, id=user_id)
    created = record.get("createdAt")
    return Trader(
        platform=platform,
        id=user_id,
        email=record.get("email"),
        name=record.get("name"),
        status=TraderStatus(record.get("status", TraderStatus.ACTIVE.value)),
        created_at=datetime.fromisoformat(created) if created else None,
        raw={k: v for k, v in record.items() if k != "savedRights"},
    )
