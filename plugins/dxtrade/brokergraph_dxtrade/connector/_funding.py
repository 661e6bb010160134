"""FUNDING and CREDIT: cash operations keyed by the gateway's idempotency key, and credit
as a read-modify-write of the account's absolute field."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from brokergraph_dxtrade.client import DXWEB, segment
from brokergraph_dxtrade.connector._base import DxTradeBase
from brokergraph_dxtrade.mapping import PLATFORM, iso, parse_time
from gateway.contract import (
    BalanceOperation,
    BalanceOperationKind,
    BrokerGraphError,
    Conflict,
    Credit,
    Funding,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidInput,
    Money,
    MoneyMovement,
    NotFound,
    exact_json_dumps,
    exact_json_loads,
)

__all__ = ["DxTradeFunding"]

CREDIT_FLOW = "dxtrade-credit-change"
CASH_FLOW = "dxtrade-cash"
#: An unknown cash attempt is re-sent (after a read found it absent) only once it is
#: this many client timeouts old.
RESEND_AFTER_TIMEOUTS = 3
#: How far before an attempt its transfer is looked for: DXtrade's clock may differ.
SETTLE_MARGIN = timedelta(minutes=10)


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
        """One cash PUT per key, whatever DXtrade does with a repeated id.

        The gateway's idempotency key is DXtrade's client-generated id, but what DXtrade
        does when an id repeats (the first record again, a 409, or the money moved
        again) is only inferred (B3).  So a repeat is never sent blind: the key's flow
        in the gateway store says what became of the first attempt.  Done: its record
        is answered again.  Refused (nothing moved): it is sent again.  Unknown (the
        answer was lost): DXtrade's transfers are read first (``find_movement``);
        found, that is the answer; provably absent and older than ``resend_after``
        (so not still in flight), it is sent again; absent but younger,
        ``IdempotencyConflict`` (retry later with the same key).
        """
        clearing, code = self._account_parts(movement.account_id)
        if movement.amount <= 0:
            raise InvalidInput("amount must be greater than zero", field=["amount"])
        currency = await self._account_currency(movement.account_id)
        if movement.currency is not None and movement.currency.upper() != currency:
            raise InvalidInput(f"the account's currency is {currency}", field=["currency"])
        key = movement.idempotency_key
        flow_id = f"dxtrade:cash:{movement.account_id}:{key}"
        request = {"kind": kind, "amount": str(movement.amount), "currency": currency}
        lock = self._cash_locks.setdefault(movement.account_id, asyncio.Lock())
        async with lock:
            flow = await self.context.store.get_flow(flow_id)
            if flow is not None:
                same = (flow.get("kind"), flow.get("currency")) == (kind, currency)
                if not same or Decimal(str(flow.get("amount"))) != movement.amount:
                    raise Conflict(
                        "this idempotency key was used for another cash operation on this account",
                        field=["idempotencyKey"],
                    )
                if flow["state"] == "done":
                    record = exact_json_loads(flow["record"])
                    return self._cash_result(kind, movement, currency, record)
                if flow["state"] == "sent":
                    found = await self._settle_cash(movement, flow)
                    if found is not None:
                        record = {**(found.raw or {}), "transactionTime": iso(found.at)}
                        await self._cash_done(flow_id, request, record)
                        return dataclasses.replace(found, comment=movement.comment)
            sent = {**request, "state": "sent", "at": iso(datetime.now(UTC))}
            await self.context.store.save_flow(flow_id, CASH_FLOW, sent)
            path = f"{self._account_path(clearing, code)}/{kind}/{segment(key)}"
            body = {
                "currency": currency,
                "amount": movement.amount,
                "description": movement.comment or f"brokergraph {kind}",
            }
            try:
                response = await self.client.call(DXWEB, "PUT", path, what=kind, body=body)
            except BrokerGraphError as error:
                if not self._may_have_applied(error):
                    await self.context.store.save_flow(
                        flow_id, CASH_FLOW, {**sent, "state": "refused"}
                    )
                raise  # else the flow stays "sent": the outcome is unknown
            record = dict(response.body) if isinstance(response.body, Mapping) else {}
            await self._cash_done(flow_id, request, record)
        return self._cash_result(kind, movement, currency, record)

    async def _cash_done(
        self, flow_id: str, request: Mapping[str, str], record: Mapping[str, Any]
    ) -> None:
        """Keep DXtrade's record of a key's cash operation (amounts exact, as JSON text)."""
        state = {**request, "state": "done", "record": exact_json_dumps(record).decode()}
        await self.context.store.save_flow(flow_id, CASH_FLOW, state)

    async def _settle_cash(
        self, movement: MoneyMovement, flow: Mapping[str, Any]
    ) -> BalanceOperation | None:
        """The key's transfer as DXtrade shows it, or None once its absence is proven."""
        sent_at = parse_time(flow.get("at")) or datetime.now(UTC)
        found = await self._find_cash(
            movement.account_id, movement.idempotency_key, sent_at - SETTLE_MARGIN
        )
        if found is not None:
            return found
        if datetime.now(UTC) - sent_at < self._resend_after:
            raise IdempotencyConflict(
                "an earlier attempt with this idempotency key has an unknown outcome and may "
                "still reach DXtrade; retry later with the SAME key",
                field=["idempotencyKey"],
            )
        return None

    @property
    def _resend_after(self) -> timedelta:
        """How old an unknown attempt must be before its absence is final: a request
        still queued upstream is given a few of the client's timeouts to land."""
        return timedelta(seconds=self.settings.timeout_seconds * RESEND_AFTER_TIMEOUTS)

    @staticmethod
    def _cash_result(
        kind: str, movement: MoneyMovement, currency: str, record: Mapping[str, Any]
    ) -> BalanceOperation:
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
