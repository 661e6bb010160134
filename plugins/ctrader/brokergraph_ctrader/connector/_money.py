"""FUNDING, CREDIT and BONUS: changebalance / changebonus, checked first, recorded after."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from brokergraph_ctrader.connector._base import TRADERS, CTraderBase, _login_of, _now
from brokergraph_ctrader.money import check_precision, plain
from brokergraph_ctrader.records import operation_from_record, operation_record
from gateway.contract import (
    BalanceOperation,
    BalanceOperationKind,
    Bonus,
    Credit,
    Funding,
    InvalidInput,
    Money,
    MoneyMovement,
    NotFound,
    ProtocolError,
)


def _money(amount: Decimal, currency: str, digits: int) -> Money:
    return Money(amount.quantize(Decimal(1).scaleb(-digits)), currency)


class MoneyMixin(CTraderBase, Funding, Credit, Bonus):
    async def _money_digits(self, login: str) -> tuple[int, str]:
        known = self._digits.get(login)
        if known is None:
            self._account(await self._trader_json(login))  # NotFound for an unknown login
            known = self._digits[login]
        return known

    async def _change(
        self,
        movement: MoneyMovement,
        *,
        operation: str,
        wire_type: str,
        kind: BalanceOperationKind,
    ) -> BalanceOperation:
        """One changebalance/changebonus call, checked first and recorded after."""
        login = _login_of(movement.account_id)
        if login is None:
            raise NotFound("account not found", field=["accountId"])
        amount = abs(movement.amount)
        if amount == 0:
            raise InvalidInput("amount must be non-zero", field=["amount"])
        digits, currency = await self._money_digits(login)
        if movement.currency is not None and movement.currency.upper() != currency:
            raise InvalidInput(
                f"account {login} holds {currency}, not {movement.currency}", field=["currency"]
            )
        check_precision(amount, digits)
        body: dict[str, Any] = {
            "login": int(login),
            "preciseAmount": plain(amount),
            "type": wire_type,
            # The idempotency key as the broker's reference, for reconciliation.  That
            # cTrader answers a repeated externalId with the first operation is only
            # inferred (../shared/vendors/, [I]): nothing relies on it for safety.
            "externalId": movement.idempotency_key,
            "comment": movement.comment or f"brokergraph {kind.value.lower()}",
            "source": "brokergraph",
        }
        if movement.comment:
            body["externalNote"] = movement.comment
        data = await self.client.post(f"{TRADERS}/{login}/{operation}", body)
        ledger = "bonus" if operation == "changebonus" else "balance"
        id_key = "bonusHistoryId" if ledger == "bonus" else "balanceHistoryId"
        value = data.get(id_key, data.get("balanceHistoryId")) if isinstance(data, dict) else None
        if isinstance(value, bool) or not isinstance(value, int | str) or not str(value):
            raise ProtocolError(f"cTrader's {operation} answer has no {id_key}")
        record_key = f"{self.name}-op:{login}:{ledger}:{value}"
        store = self.context.store
        earlier = await store.get_flow(record_key)
        if earlier is not None:  # the same operation again (a deduplicated externalId)
            return operation_from_record(self.platform, earlier)
        result = BalanceOperation(
            platform=self.platform,
            id=str(value),
            account_id=login,
            kind=kind,
            amount=_money(amount, currency, digits),
            at=_now(),
            comment=movement.comment,
            external_id=movement.idempotency_key,
            raw=data,
        )
        await store.save_flow(record_key, f"{self.name}-op", operation_record(result, ledger))
        return result

    async def deposit(self, movement: MoneyMovement) -> BalanceOperation:
        return await self._change(
            movement,
            operation="changebalance",
            wire_type="DEPOSIT",
            kind=BalanceOperationKind.DEPOSIT,
        )

    async def withdraw(self, movement: MoneyMovement) -> BalanceOperation:
        """Returns only once cTrader answered 200: the debit is done before any payout."""
        return await self._change(
            movement,
            operation="changebalance",
            wire_type="WITHDRAW",
            kind=BalanceOperationKind.WITHDRAWAL,
        )

    async def change_credit(self, movement: MoneyMovement) -> BalanceOperation:
        adding = movement.amount > 0
        return await self._change(
            movement,
            operation="changebalance",
            wire_type="DEPOSIT_NONWITHDRAWABLE_BONUS"
            if adding
            else "WITHDRAW_NONWITHDRAWABLE_BONUS",
            kind=BalanceOperationKind.CREDIT_IN if adding else BalanceOperationKind.CREDIT_OUT,
        )

    async def change_bonus(self, movement: MoneyMovement) -> BalanceOperation:
        adding = movement.amount > 0
        return await self._change(
            movement,
            operation="changebonus",
            wire_type="DEPOSIT" if adding else "WITHDRAW",
            kind=BalanceOperationKind.BONUS_IN if adding else BalanceOperationKind.BONUS_OUT,
        )
