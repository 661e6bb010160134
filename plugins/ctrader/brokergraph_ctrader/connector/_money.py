"""FUNDING, CREDIT and BONUS: changebalance / changebonus, checked first, recorded after;
and ``find_movement``, the read that settles a money write whose answer was lost.

Nothing here relies on cTrader deduplicating a repeated ``externalId`` (only inferred):

* a key this connector already completed is answered from its own record, with no
  second call (``{name}-key:{login}:{key}``);
* a key whose answer was lost is settled by the gateway through ``find_movement``,
  which reads the Reporting API's balance- and bonus-history snapshots for the entry
  carrying the key as ``externalId`` — found, the write happened; absent (a read that
  succeeded), it did not.  WebServices itself has no balance-history read.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from brokergraph_ctrader.connector._base import EPOCH, TRADERS, CTraderBase, _login_of, _now
from brokergraph_ctrader.money import check_precision, plain
from brokergraph_ctrader.records import operation_from_record, operation_record
from brokergraph_ctrader.reporting import BALANCE_PATH, BONUS_PATH, HistoryEntry
from gateway.contract import (
    BalanceOperation,
    BalanceOperationKind,
    Bonus,
    Credit,
    Funding,
    IdempotencyConflict,
    InvalidInput,
    Money,
    MoneyMovement,
    NotFound,
    ProtocolError,
    read,
)

#: (ledger, the 4.7 / 4.10 type) -> the operation's kind.
KINDS = {
    ("balance", "DEPOSIT"): BalanceOperationKind.DEPOSIT,
    ("balance", "WITHDRAW"): BalanceOperationKind.WITHDRAWAL,
    ("balance", "DEPOSIT_NONWITHDRAWABLE_BONUS"): BalanceOperationKind.CREDIT_IN,
    ("balance", "WITHDRAW_NONWITHDRAWABLE_BONUS"): BalanceOperationKind.CREDIT_OUT,
    ("bonus", "DEPOSIT"): BalanceOperationKind.BONUS_IN,
    ("bonus", "WITHDRAW"): BalanceOperationKind.BONUS_OUT,
}
#: How far past now a settling read looks: cTrader's clock may run ahead of ours.
CLOCK_SLACK = timedelta(minutes=1)


def _epoch_ms(moment: datetime) -> str:
    return str((moment - EPOCH) // timedelta(milliseconds=1))


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
        key_record = self._key("key", login, movement.idempotency_key)
        done = await self.context.store.get_flow(key_record)
        if done is not None:  # this key completed here already: never a second call
            earlier_op = operation_from_record(self.platform, done)
            if (earlier_op.kind, earlier_op.amount.amount) != (
                kind,
                _money(amount, currency, digits).amount,
            ):
                raise IdempotencyConflict(
                    "this idempotencyKey was used for another operation", field=["idempotencyKey"]
                )
            return earlier_op
        body: dict[str, Any] = {
            "login": int(login),
            "preciseAmount": plain(amount),
            "type": wire_type,
            # The idempotency key as the broker's reference: find_movement finds the
            # operation by it.  That cTrader answers a repeated externalId with the
            # first operation is only inferred ([I]): nothing relies on it for safety.
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
        earlier = await self.context.store.get_flow(self._op_key(login, ledger, str(value)))
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
        await self._save_operation(result, ledger)
        return result

    def _op_key(self, login: str, ledger: str, history_id: str) -> str:
        return f"{self.name}-op:{login}:{ledger}:{history_id}"

    async def _save_operation(self, operation: BalanceOperation, ledger: str) -> None:
        """The operation's records: by history id (balanceOperations lists these) and,
        when it carries a key, by key (a repeated key is answered from it)."""
        record = operation_record(operation, ledger)
        store, login = self.context.store, operation.account_id
        await store.save_flow(self._op_key(login, ledger, operation.id), f"{self.name}-op", record)
        if operation.external_id:
            key_record = self._key("key", login, operation.external_id)
            await store.save_flow(key_record, f"{self.name}-key", record)

    @read
    async def find_movement(
        self, account_id: str, idempotency_key: str, since: datetime
    ) -> BalanceOperation | None:
        """The money operation cTrader holds under ``idempotency_key`` since ``since``, or
        None when the Reporting API's snapshots (balance, then bonus) show none.

        Any failed read raises: only a read that succeeded may say "absent", since
        the gateway re-sends a write found absent.
        """
        login = _login_of(account_id)
        if login is None:
            raise NotFound("account not found", field=["accountId"])
        _, currency = await self._money_digits(login)
        params = {
            "login": login,
            "fromTimestamp": _epoch_ms(since),
            "toTimestamp": _epoch_ms(_now() + CLOCK_SLACK),
        }
        base = self.settings.reporting_url or self.settings.url
        for ledger, path in (("balance", BALANCE_PATH), ("bonus", BONUS_PATH)):
            entries = await self.client.snapshot(base, path, params)
            found = [e for e in entries if e.external_id == idempotency_key]
            if found:
                operation = self._from_entry(
                    min(found, key=lambda e: e.history_id), ledger, currency
                )
                await self._save_operation(operation, ledger)
                return operation
        return None

    def _from_entry(self, entry: HistoryEntry, ledger: str, currency: str) -> BalanceOperation:
        kind = KINDS.get((ledger, entry.operation_type))
        if kind is None or entry.delta < 0 or not 0 <= entry.money_digits <= 18:
            raise ProtocolError(f"cTrader's {ledger} history holds an entry it cannot read")
        amount = Decimal(entry.delta).scaleb(-entry.money_digits)
        return BalanceOperation(
            platform=self.platform,
            id=str(entry.history_id),
            account_id=str(entry.login),
            kind=kind,
            amount=_money(amount, currency, entry.money_digits),
            at=EPOCH + timedelta(milliseconds=entry.change_timestamp_ms),
            # The comment the client gave travels as externalNote (see _change).
            comment=entry.external_note,
            external_id=entry.external_id,
            raw={"ledger": ledger, "source": entry.source, "comment": entry.comment},
        )

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
