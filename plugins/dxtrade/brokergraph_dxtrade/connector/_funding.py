"""FUNDING and CREDIT: cash operations keyed by the gateway's idempotency key, and credit
as a read-modify-write of the account's absolute field."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal

from brokergraph_dxtrade.client import DXWEB, segment
from brokergraph_dxtrade.connector._base import DxTradeBase
from brokergraph_dxtrade.mapping import (
    PLATFORM,
    parse_time,
)
from gateway.contract import (
    BalanceOperation,
    BalanceOperationKind,
    Conflict,
    Credit,
    Funding,
    InsufficientFunds,
    InvalidInput,
    Money,
    MoneyMovement,
    NotFound,
)

__all__ = ["DxTradeFunding"]

CREDIT_FLOW = "dxtrade-credit-change"


class DxTradeFunding(DxTradeBase, Funding, Credit):
    """Deposits, withdrawals and credit changes (see the README's "Credit race")."""

    async def _account_currency(self, value: str) -> str:
        currency = self._currencies.get(value)
        if currency is None:
            account = await self._account_or_none(value)
            if account is None:
                raise NotFound(f"no DXtrade account {value!r}", field=["accountId"])
            currency = str(account.get("currency"))
        return currency

    async def _cash(self, kind: str, movement: MoneyMovement) -> BalanceOperation:
        clearing, code = self._account_parts(movement.account_id)
        if movement.amount <= 0:
            raise InvalidInput("amount must be greater than zero", field=["amount"])
        currency = await self._account_currency(movement.account_id)
        if movement.currency is not None and movement.currency.upper() != currency:
            raise InvalidInput(f"the account's currency is {currency}", field=["currency"])
        # The gateway's idempotency key IS DXtrade's client-generated id: a retry of the
        # same request returns DXtrade's first record and moves nothing (B3).
        path = f"{self._account_path(clearing, code)}/{kind}/{segment(movement.idempotency_key)}"
        body = {
            "currency": currency,
            "amount": movement.amount,
            "description": movement.comment or f"brokergraph {kind}",
        }
        response = await self.client.call(DXWEB, "PUT", path, what=kind, body=body)
        record = response.body if isinstance(response.body, Mapping) else {}
        return BalanceOperation(
            platform=PLATFORM,
            id=movement.idempotency_key,
            account_id=movement.account_id,
            kind=BalanceOperationKind.DEPOSIT
            if kind == "deposit"
            else BalanceOperationKind.WITHDRAWAL,
            amount=Money(movement.amount, currency),
            at=parse_time(record.get("transactionTime")) or datetime.now(UTC),
            comment=movement.comment,
            external_id=movement.idempotency_key,
            raw=dict(record),
        )

    async def deposit(self, movement: MoneyMovement) -> BalanceOperation:
        return await self._cash("deposit", movement)

    async def withdraw(self, movement: MoneyMovement) -> BalanceOperation:
        """Returns only once DXtrade has debited: its PUT answers after the debit (B3)."""
        return await self._cash("withdrawal", movement)

    async def change_credit(self, movement: MoneyMovement) -> BalanceOperation:
        """Credit is an absolute account field (B3), so this reads, adds and writes.

        Two changes of one account racing across replicas could lose one (DXtrade
        offers no ETag on accounts): changes are serialised per account in this
        process, and each key's before/after is kept in the gateway store so a retry
        of a change that reached DXtrade is recognised instead of applied twice.
        """
        clearing, code = self._account_parts(movement.account_id)
        if movement.amount == 0:
            raise InvalidInput("amount must be non-zero", field=["amount"])
        flow_id = f"dxtrade:credit:{movement.account_id}:{movement.idempotency_key}"
        lock = self._credit_locks.setdefault(movement.account_id, asyncio.Lock())
        async with lock:
            account = await self._account_or_none(movement.account_id)
            if account is None:
                raise NotFound(f"no DXtrade account {movement.account_id!r}", field=["accountId"])
            currency = str(account.get("currency"))
            current = Decimal(str(account.get("credit") or 0))
            flow = await self.context.store.get_flow(flow_id)
            if flow is not None:
                if Decimal(flow["amount"]) != movement.amount:
                    raise Conflict(
                        "this idempotency key was used for another credit change",
                        field=["idempotencyKey"],
                    )
                target = Decimal(flow["target"])
                if not flow.get("done"):
                    if current == target:  # it reached DXtrade before we could note it
                        await self.context.store.save_flow(
                            flow_id, CREDIT_FLOW, {**flow, "done": True}
                        )
                    elif current == Decimal(flow["before"]):
                        flow = None  # it never reached DXtrade: apply it now
                    else:
                        raise Conflict(
                            "the account's credit changed since this key's first attempt, "
                            "whose outcome is unknown; read the account before retrying"
                        )
            if flow is None:
                target = current + movement.amount
                if target < 0:
                    raise InsufficientFunds(
                        f"the account has {current} {currency} of credit; cannot remove "
                        f"{-movement.amount}",
                        field=["amount"],
                    )
                state = {
                    "amount": str(movement.amount),
                    "before": str(current),
                    "target": str(target),
                    "done": False,
                }
                await self.context.store.save_flow(flow_id, CREDIT_FLOW, state)
                await self.client.call(
                    DXWEB,
                    "PUT",
                    self._account_path(clearing, code),
                    what="credit change",
                    body={"credit": target},
                )
                await self.context.store.save_flow(flow_id, CREDIT_FLOW, {**state, "done": True})
        return BalanceOperation(
            platform=PLATFORM,
            id=movement.idempotency_key,
            account_id=movement.account_id,
            kind=BalanceOperationKind.CREDIT_IN
            if movement.amount > 0
            else BalanceOperationKind.CREDIT_OUT,
            amount=Money(movement.amount, currency),
            at=datetime.now(UTC),
            balance_after=None,
            comment=movement.comment,
            external_id=movement.idempotency_key,
        )
