"""The gateway's conformance kit against the cTrader connector and its sandbox.

Every case of the kit runs; the only skips are capabilities the connector does not
declare (orders, streams, back office).  The kit runs twice: against the sandbox as
it is, and without its inferred ``externalId`` dedupe (``dedupe_external_ids=False``).
One fixture differs from the kit's, for a
reason the kit cannot know about: WebServices has no "read user" and no
balance-history call, so the connector answers those from the gateway store.  The
fixture writes into its store what a running gateway holds there — the demo's links
(as ``brokergraph demo`` writes them) and one deposit made through the connector —
exactly as in production, where the store is the gateway's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import ClassVar

import pytest
import pytest_asyncio
from brokergraph_ctrader.connector import CTraderConnector
from brokergraph_ctrader.sandbox import CTraderSandbox

from gateway.contract import Connector, MoneyMovement
from gateway.contract.sandbox import Sandbox
from gateway.testing import ConformanceSuite, Sample, new_key, open_connector

from .conftest import seed_links

HISTORY_ACCOUNT = "9000001"
#: Seeded deals run to 2026-11-15; balance operations are made "now", so the period
#: reaches a day past today.
PERIOD = (datetime(2026, 11, 1, tzinfo=UTC), datetime.now(UTC) + timedelta(days=1))

CTRADER_SAMPLE = Sample(
    account_ids=["9000001", "9000002", "9000003", "9000004", "9000005"],
    trader_ids=["1001", "1002", "1003"],
    unknown_id="999999999",
    funded_account_id="9000003",
    amount=Decimal("12.34"),
    history_account_id=HISTORY_ACCOUNT,
    period=PERIOD,
    new_trader_partner_code="DEMO-001",
    currency="USD",
    leverage=Decimal(50),
)


class TestCTraderConformance(ConformanceSuite):
    connector_class = CTraderConnector
    sandbox_class: ClassVar[type[Sandbox]] = CTraderSandbox
    sample = CTRADER_SAMPLE

    @pytest_asyncio.fixture(scope="class", loop_scope="session")
    @classmethod
    async def connector(
        cls, sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory
    ) -> AsyncIterator[Connector]:
        assert isinstance(sandbox, CTraderSandbox)
        directory = tmp_path_factory.mktemp("conformance-ctrader")
        async with open_connector(
            CTraderConnector, sandbox.connector_settings(), directory
        ) as connector:
            await seed_links(connector.context.store, sandbox)
            await connector.deposit(
                MoneyMovement(
                    account_id=HISTORY_ACCOUNT, amount=Decimal("1.00"), idempotency_key=new_key()
                )
            )
            yield connector

    # cTrader-specific promises beyond the standard cases.

    async def test_fifty_accounts_cost_one_list_call(
        self, connector: Connector, sandbox: Sandbox
    ) -> None:
        assert isinstance(connector, CTraderConnector)
        assert isinstance(sandbox, CTraderSandbox)
        before = sandbox.calls["GET /v2/webserv/traders/"]
        ids = [str(9000001 + i) for i in range(50)]
        found = await connector.get_accounts(ids)
        assert len(found) == 50
        assert sandbox.calls["GET /v2/webserv/traders/"] == before + 1


class _WithoutExternalIdDedupe(CTraderSandbox):
    """cTrader as the vendor may be: a repeated ``externalId`` moves money again."""

    def __init__(self) -> None:
        super().__init__(dedupe_external_ids=False)


class TestCTraderConformanceWithoutExternalIdDedupe(TestCTraderConformance):
    """Every case again without the inferred dedupe: the money cases (a repeated key
    moves money once among them) must not rest on it."""

    sandbox_class = _WithoutExternalIdDedupe
