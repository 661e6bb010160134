"""Cases: money (funding with idempotency keys, credit, bonus) and the account stream.

Balances are read before and compared after, so the cases hold on a sandbox that
other cases (or earlier runs) already moved money on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal

import pytest

from gateway import models
from gateway.connectors import (
    AccountReads,
    AccountStream,
    Bonus,
    Capability,
    Connector,
    Credit,
    Funding,
    MoneyMovement,
)
from gateway.errors import InsufficientFunds, NotFound
from gateway.testing._base import SuiteBase, new_key
from gateway.testing._checks import check_account_event, check_balance_operation
from gateway.testing._gate import requires
from gateway.testing._harness import EventWatcher, assert_increasing
from gateway.testing._sample import need

__all__ = ["MoneyCases"]

Kind = models.BalanceOperationKind
Change = Callable[[MoneyMovement], Awaitable[models.BalanceOperation]]


class MoneyCases(SuiteBase):
    def _movement(self, amount: Decimal | None = None, key: str | None = None) -> MoneyMovement:
        return MoneyMovement(
            account_id=need(self.sample.funded_account_id, "funded_account_id"),
            amount=self.sample.amount if amount is None else amount,
            idempotency_key=key or new_key(),
        )

    async def _account(self, connector: Connector) -> models.Account:
        assert isinstance(connector, AccountReads)
        account_id = need(self.sample.funded_account_id, "funded_account_id")
        (account,) = await connector.get_accounts([account_id])
        assert account is not None, f"sample.funded_account_id {account_id!r} was not found"
        assert account.balance is not None, f"account {account_id} reports no balance"
        return account

    async def _balance(self, connector: Connector) -> Decimal:
        balance = (await self._account(connector)).balance
        assert balance is not None
        return balance.amount

    def _check_operation(
        self, operation: models.BalanceOperation, connector: Connector, kinds: set[Kind]
    ) -> None:
        check_balance_operation(operation, connector.platform)
        assert operation.account_id == self.sample.funded_account_id, (
            f"operation {operation.id} is of {operation.account_id}"
        )
        assert operation.kind in kinds, (
            f"expected a {sorted(k.value for k in kinds)}, got {operation.kind}"
        )
        # The kind carries the direction, so only the size is compared.
        assert abs(operation.amount.amount) == self.sample.amount, (
            f"operation {operation.id} moved {operation.amount.amount}, asked {self.sample.amount}"
        )

    # -- FUNDING ------------------------------------------------------------------------

    @requires(Capability.FUNDING, Capability.ACCOUNT_READS)
    async def test_deposit_then_withdraw(self, connector: Connector) -> None:
        assert isinstance(connector, Funding)
        amount, before = self.sample.amount, await self._balance(connector)
        deposit = await connector.deposit(self._movement())
        self._check_operation(deposit, connector, {Kind.DEPOSIT})
        assert await self._balance(connector) == before + amount, (
            "a deposit adds exactly its amount"
        )
        withdrawal = await connector.withdraw(self._movement())
        self._check_operation(withdrawal, connector, {Kind.WITHDRAWAL})
        assert await self._balance(connector) == before, "a withdrawal takes exactly its amount"

    @requires(Capability.FUNDING, Capability.ACCOUNT_READS)
    async def test_same_idempotency_key_moves_money_once(self, connector: Connector) -> None:
        assert isinstance(connector, Funding)
        key, before = new_key(), await self._balance(connector)
        first = await connector.deposit(self._movement(key=key))
        second = await connector.deposit(self._movement(key=key))
        assert second.id == first.id, "a repeated key must answer the first operation"
        after = await self._balance(connector)
        assert after == before + self.sample.amount, "a repeated key must not move money again"

    @requires(Capability.FUNDING, Capability.ACCOUNT_READS)
    async def test_withdrawal_over_free_funds_is_refused(self, connector: Connector) -> None:
        assert isinstance(connector, Funding)
        before = await self._balance(connector)
        too_much = abs(before) * 10 + Decimal(1_000_000)
        with pytest.raises(InsufficientFunds):
            await connector.withdraw(self._movement(amount=too_much))
        assert await self._balance(connector) == before, "a refused withdrawal moves nothing"

    @requires(Capability.FUNDING)
    async def test_deposit_to_unknown_account_is_not_found(self, connector: Connector) -> None:
        assert isinstance(connector, Funding)
        movement = MoneyMovement(
            account_id=self.sample.unknown_id, amount=self.sample.amount, idempotency_key=new_key()
        )
        with pytest.raises(NotFound):
            await connector.deposit(movement)

    # -- CREDIT and BONUS ---------------------------------------------------------------

    async def _add_and_remove(
        self, connector: Connector, change: Change, field: str, kinds: tuple[Kind, Kind]
    ) -> None:
        """Add the sample amount, then remove it; the account's ``field`` follows exactly."""

        async def current() -> Decimal | None:
            if not self.declares(Capability.ACCOUNT_READS):
                return None
            money: models.Money | None = getattr(await self._account(connector), field)
            return None if money is None else money.amount

        before = await current()
        added = await change(self._movement())
        self._check_operation(added, connector, {kinds[0]})
        if before is not None:
            assert await current() == before + self.sample.amount, f"{field} must grow exactly"
        removed = await change(self._movement(amount=-self.sample.amount))
        self._check_operation(removed, connector, {kinds[1]})
        if before is not None:
            assert await current() == before, f"{field} must shrink back exactly"

    @requires(Capability.CREDIT)
    async def test_credit_in_and_out(self, connector: Connector) -> None:
        assert isinstance(connector, Credit)
        kinds = (Kind.CREDIT_IN, Kind.CREDIT_OUT)
        await self._add_and_remove(connector, connector.change_credit, "credit", kinds)

    @requires(Capability.BONUS)
    async def test_bonus_in_and_out(self, connector: Connector) -> None:
        assert isinstance(connector, Bonus)
        kinds = (Kind.BONUS_IN, Kind.BONUS_OUT)
        await self._add_and_remove(connector, connector.change_bonus, "bonus", kinds)

    # -- ACCOUNT_STREAM -----------------------------------------------------------------

    @requires(Capability.ACCOUNT_STREAM, Capability.FUNDING)
    async def test_account_stream_reports_a_deposit(self, connector: Connector) -> None:
        assert isinstance(connector, AccountStream)
        assert isinstance(connector, Funding)
        account_id = need(self.sample.funded_account_id, "funded_account_id")
        stream = connector.account_events(account_id)
        async with EventWatcher(stream, self.wait_seconds) as watcher:
            operation = await connector.deposit(self._movement())

            def reports(event: models.AccountEvent) -> bool:
                op = event.balance_operation
                balance_after = operation.balance_after
                account = event.account
                return (op is not None and op.id == operation.id) or (
                    balance_after is not None
                    and account is not None
                    and account.balance == balance_after
                )

            await watcher.wait_for(reports, f"reporting deposit {operation.id}")
        for event in watcher.events:
            check_account_event(event, connector.platform, account_id)
        assert_increasing([e.sequence for e in watcher.events], "account event")
