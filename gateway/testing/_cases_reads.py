"""Cases: the class itself, health, and the read families (accounts, history,
analytics, market-data entitlements)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

import pytest

from gateway import models
from gateway.connectors import (
    AccountAnalyticsReads,
    AccountHistory,
    AccountReads,
    Capability,
    Connector,
    InstrumentReads,
    MarketDataEntitlements,
)
from gateway.errors import NotFound
from gateway.plugins import validate_connector_class
from gateway.sandboxes import Sandbox
from gateway.testing._base import SuiteBase
from gateway.testing._checks import (
    check_account,
    check_analytics,
    check_balance_operation,
    check_deal,
    check_instrument,
    check_market_data_subscription,
    check_position,
    check_trader,
)
from gateway.testing._gate import requires
from gateway.testing._sample import need

__all__ = ["ReadCases"]


def _check_batch_shape(asked: Sequence[str], got: Sequence[object], what: str) -> None:
    assert len(got) == len(asked), (
        f"{what} must return one entry per id, in order: asked {len(asked)}, got {len(got)}"
    )


def _in_period(value: datetime, start: datetime, end: datetime, what: str) -> None:
    assert start <= value < end, f"{what} {value.isoformat()} is outside [{start}, {end})"


class ReadCases(SuiteBase):
    async def test_connector_class_is_valid(self) -> None:
        cls = self.connector_class
        validate_connector_class(cls)
        for capability, ttl in cls.cache_ttl_seconds.items():
            assert capability in cls.capabilities, (
                f"cache_ttl_seconds names {capability.value}, which is not declared"
            )
            valid = isinstance(ttl, int | float) and math.isfinite(ttl) and ttl > 0
            assert valid, f"cache_ttl_seconds[{capability.value}] must be > 0, got {ttl!r}"
        assert issubclass(self.sandbox_class, Sandbox), "sandbox_class must subclass Sandbox"

    async def test_health_is_up(self, connector: Connector) -> None:
        health = await connector.health()
        assert isinstance(health, models.ConnectorHealth), f"health() returned {health!r}"
        assert health.status is models.HealthStatus.UP, (
            f"health() against a running sandbox must be UP, got {health.status} ({health.detail})"
        )

    # -- ACCOUNT_READS ------------------------------------------------------------------

    def _batch(self) -> list[str]:
        """Known ids with an unknown one second and the first repeated at the end."""
        known = list(need(self.sample.account_ids, "account_ids"))
        return [known[0], self.sample.unknown_id, *known[1:], known[0]]

    @requires(Capability.ACCOUNT_READS)
    async def test_get_accounts_batched(self, connector: Connector) -> None:
        assert isinstance(connector, AccountReads)
        asked = self._batch()
        found = await connector.get_accounts(asked)
        _check_batch_shape(asked, found, "get_accounts")
        for wanted, account in zip(asked, found, strict=True):
            if wanted == self.sample.unknown_id:
                assert account is None, "an unknown id must read as None in a batch, not raise"
                continue
            assert account is not None, f"get_accounts found no account {wanted!r}"
            check_account(account, connector.platform)
            assert account.id == wanted, (
                f"asked for {wanted!r} at this position, got {account.id!r}"
            )

    @requires(Capability.ACCOUNT_READS)
    async def test_get_traders_batched(self, connector: Connector) -> None:
        assert isinstance(connector, AccountReads)
        known = list(need(self.sample.trader_ids, "trader_ids"))
        asked = [known[0], self.sample.unknown_id, *known[1:]]
        found = await connector.get_traders(asked)
        _check_batch_shape(asked, found, "get_traders")
        for wanted, trader in zip(asked, found, strict=True):
            if wanted == self.sample.unknown_id:
                assert trader is None, "an unknown id must read as None in a batch, not raise"
                continue
            assert trader is not None, f"get_traders found no trader {wanted!r}"
            check_trader(trader, connector.platform)
            assert trader.id == wanted, f"asked for {wanted!r} at this position, got {trader.id!r}"

    @requires(Capability.ACCOUNT_READS)
    async def test_get_trader_accounts(self, connector: Connector) -> None:
        assert isinstance(connector, AccountReads)
        asked = [*need(self.sample.trader_ids, "trader_ids"), self.sample.unknown_id]
        lists = await connector.get_trader_accounts(asked)
        _check_batch_shape(asked, lists, "get_trader_accounts")
        assert list(lists[-1]) == [], "an unknown trader must have no accounts, not raise"
        for trader_id, accounts in zip(asked, lists, strict=True):
            for account in accounts:
                check_account(account, connector.platform)
                assert account.trader_id in (None, trader_id), (
                    f"account {account.id} listed for trader {trader_id} names {account.trader_id}"
                )
        assert any(lists), "sample.trader_ids should own at least one account"

    @requires(Capability.ACCOUNT_READS)
    async def test_get_positions(self, connector: Connector) -> None:
        assert isinstance(connector, AccountReads)
        asked = [*need(self.sample.account_ids, "account_ids"), self.sample.unknown_id]
        lists = await connector.get_positions(asked)
        _check_batch_shape(asked, lists, "get_positions")
        assert list(lists[-1]) == [], "an unknown account must have no positions, not raise"
        for account_id, positions in zip(asked, lists, strict=True):
            for position in positions:
                check_position(position, connector.platform)
                assert position.account_id == account_id, (
                    f"position {position.id} listed for {account_id} names {position.account_id}"
                )

    # -- ACCOUNT_HISTORY ----------------------------------------------------------------

    def _history(self) -> tuple[str, datetime, datetime]:
        account_id = need(self.sample.history_account_id, "history_account_id")
        start, end = need(self.sample.period, "period")
        return account_id, start, end

    @requires(Capability.ACCOUNT_HISTORY)
    async def test_deals_in_period(self, connector: Connector) -> None:
        assert isinstance(connector, AccountHistory)
        account_id, start, end = self._history()
        deals = await connector.get_deals(account_id, start, end)
        assert deals, "sample.period should hold at least one deal of sample.history_account_id"
        for deal in deals:
            check_deal(deal, connector.platform)
            assert deal.account_id == account_id, f"deal {deal.id} is of {deal.account_id}"
            _in_period(deal.executed_at, start, end, f"deal {deal.id} executed_at")

    @requires(Capability.ACCOUNT_HISTORY)
    async def test_balance_operations_in_period(self, connector: Connector) -> None:
        assert isinstance(connector, AccountHistory)
        account_id, start, end = self._history()
        operations = await connector.get_balance_operations(account_id, start, end)
        assert operations, "sample.period should hold a balance operation of the history account"
        for operation in operations:
            check_balance_operation(operation, connector.platform)
            assert operation.account_id == account_id, (
                f"{operation.id} is of {operation.account_id}"
            )
            _in_period(operation.at, start, end, f"operation {operation.id} at")

    @requires(Capability.ACCOUNT_HISTORY)
    async def test_history_of_unknown_account_is_not_found(self, connector: Connector) -> None:
        assert isinstance(connector, AccountHistory)
        _, start, end = self._history()
        with pytest.raises(NotFound):
            await connector.get_deals(self.sample.unknown_id, start, end)

    # -- ACCOUNT_ANALYTICS --------------------------------------------------------------

    @requires(Capability.ACCOUNT_ANALYTICS)
    async def test_analytics(self, connector: Connector) -> None:
        assert isinstance(connector, AccountAnalyticsReads)
        account_id, start, end = self._history()
        analytics = await connector.get_analytics(account_id, start, end)
        check_analytics(analytics)
        assert analytics.account_id == account_id, f"analytics are of {analytics.account_id}"
        assert (analytics.period_from, analytics.period_to) == (start, end), (
            "analytics must report the period asked for"
        )
        if isinstance(connector, AccountHistory):
            deals = await connector.get_deals(account_id, start, end)
            assert analytics.wins + analytics.losses <= len(deals), (
                f"{analytics.wins} wins + {analytics.losses} losses exceed {len(deals)} deals"
            )

    @requires(Capability.ACCOUNT_ANALYTICS)
    async def test_analytics_of_unknown_account_is_not_found(self, connector: Connector) -> None:
        assert isinstance(connector, AccountAnalyticsReads)
        _, start, end = self._history()
        with pytest.raises(NotFound):
            await connector.get_analytics(self.sample.unknown_id, start, end)

    # -- MARKET_DATA_ENTITLEMENTS -------------------------------------------------------

    @requires(Capability.MARKET_DATA_ENTITLEMENTS)
    async def test_market_data_subscriptions(self, connector: Connector) -> None:
        assert isinstance(connector, MarketDataEntitlements)
        asked = [*need(self.sample.trader_ids, "trader_ids"), self.sample.unknown_id]
        lists = await connector.get_market_data_subscriptions(asked)
        _check_batch_shape(asked, lists, "get_market_data_subscriptions")
        assert list(lists[-1]) == [], "an unknown trader must have no subscriptions, not raise"
        for trader_id, subscriptions in zip(asked, lists, strict=True):
            for subscription in subscriptions:
                check_market_data_subscription(subscription, connector.platform)
                assert subscription.trader_id == trader_id, (
                    f"subscription {subscription.id} listed for {trader_id} names "
                    f"{subscription.trader_id}"
                )
        assert any(lists), "sample.trader_ids should hold at least one market-data subscription"

    # -- INSTRUMENTS ----------------------------------------------------------------------

    @requires(Capability.INSTRUMENTS)
    async def test_instruments_of_an_account(self, connector: Connector) -> None:
        assert isinstance(connector, InstrumentReads)
        account_id = need(self.sample.account_ids, "account_ids")[0]
        every = await connector.get_instruments(account_id, None)
        assert every, f"sample.account_ids[0] ({account_id}) should be able to trade something"
        for instrument in every:
            check_instrument(instrument, connector.platform)
        symbols = [i.symbol for i in every]
        assert len(symbols) == len(set(symbols)), f"a symbol is listed twice: {symbols}"
        # Named: those, and an unknown symbol left out (never an error).
        wanted = symbols[0]
        named = await connector.get_instruments(account_id, [wanted, "NO-SUCH-SYMBOL-0"])
        assert [i.symbol for i in named] == [wanted], (
            f"asked for {wanted!r} and an unknown symbol, got {[i.symbol for i in named]}"
        )
        assert named[0] == every[0], "a named instrument reads as in the full list"
        assert list(await connector.get_instruments(account_id, ["NO-SUCH-SYMBOL-0"])) == []

    @requires(Capability.INSTRUMENTS)
    async def test_instruments_of_unknown_account_is_not_found(self, connector: Connector) -> None:
        assert isinstance(connector, InstrumentReads)
        with pytest.raises(NotFound):
            await connector.get_instruments(self.sample.unknown_id, None)
