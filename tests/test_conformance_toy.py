"""The conformance kit against the toy connector and sandbox, and proof it can fail.

Every case of the kit runs here; the only skips are capabilities the toy does not
declare (PARTNER_DIRECTORY, TAX, CLIENT_REPORTS, TRADING_ACCESS), and those run
against the in-memory back-office connector instead; INSTRUMENTS (which the toy leaves
out to be the platform that answers CAPABILITY_NOT_SUPPORTED) runs against DXtrade's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from gateway import models
from gateway.connectors import Connector
from gateway.errors import UpstreamRejected, UpstreamTimeout, UpstreamUnavailable
from gateway.sandboxes import Sandbox
from gateway.testing import ConformanceSuite, Sample, open_connector
from tests.toy.backoffice import ToyBackOfficeConnector
from tests.toy.connector import ToyConnector
from tests.toy.sandbox import ToySandbox

PERIOD = (datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 4, 1, tzinfo=UTC))

TOY_SAMPLE = Sample(
    account_ids=["1001", "1002", "2001", "3001"],
    trader_ids=["T1", "T2", "T3"],
    funded_account_id="1001",
    history_account_id="1001",
    period=PERIOD,
    order_account_id="1001",
    order_symbol="EURUSD",
    order_quantity=Decimal(1000),
    far_limit_price=Decimal("0.5000"),
    new_trader_partner_code="DEMO-001",
)


class TestToyConformance(ConformanceSuite):
    connector_class = ToyConnector
    sandbox_class = ToySandbox
    sample = TOY_SAMPLE

    # Toy-specific promises the core's tests rely on, beyond the standard cases.

    async def test_a_batch_is_one_upstream_call(
        self, connector: Connector, sandbox: Sandbox
    ) -> None:
        assert isinstance(connector, ToyConnector)
        assert isinstance(sandbox, ToySandbox)
        before = sandbox.calls["GET /accounts"]
        await connector.get_accounts(["1001", "1002", "2001", "nope"])
        assert sandbox.calls["GET /accounts"] == before + 1

    async def test_upstream_failures_map_to_gateway_errors(
        self, connector: Connector, sandbox: Sandbox, tmp_path: Path
    ) -> None:
        assert isinstance(connector, ToyConnector)
        assert isinstance(sandbox, ToySandbox)
        sandbox.fail_next_n = 1
        with pytest.raises(UpstreamUnavailable):
            await connector.get_accounts(["1001"])
        settings = {**sandbox.connector_settings(), "timeout_seconds": 0.05}
        async with open_connector(ToyConnector, settings, tmp_path) as impatient:
            sandbox.latency_seconds = 0.5
            try:
                with pytest.raises(UpstreamTimeout):
                    await impatient.get_accounts(["1001"])
            finally:
                sandbox.latency_seconds = 0.0
        settings = {**sandbox.connector_settings(), "api_key": "wrong-key"}
        async with open_connector(ToyConnector, settings, tmp_path) as stranger:
            with pytest.raises(UpstreamRejected):
                await stranger.get_accounts(["1001"])


class TestToyBackOfficeConformance(ConformanceSuite):
    connector_class = ToyBackOfficeConnector
    sandbox_class = ToySandbox
    sample = Sample(partner_codes=["DEMO-001", "DEMO-002"], period=PERIOD)
    # Its partners live in memory: the sandbox's fault knobs cannot reach them.
    reads_reach_the_sandbox = False


class BrokenToyConnector(ToyConnector):
    """Breaks the contract where the models do not look: a naive time, float money."""

    async def get_accounts(self, account_ids: Sequence[str]) -> Sequence[models.Account | None]:
        accounts = await super().get_accounts(account_ids)
        for account in accounts:
            if account is not None:  # frozen dataclasses still yield to object.__setattr__
                object.__setattr__(account, "created_at", datetime(2024, 1, 1))
        return accounts

    async def get_analytics(
        self, account_id: str, start: datetime, end: datetime
    ) -> models.AccountAnalytics:
        analytics = await super().get_analytics(account_id, start, end)
        return dataclasses.replace(analytics, open_volume=float(analytics.open_volume))  # type: ignore[arg-type]


async def test_the_kit_fails_a_broken_connector(tmp_path: Path) -> None:
    async with ToySandbox() as sandbox:
        settings = sandbox.connector_settings()
        async with open_connector(BrokenToyConnector, settings, tmp_path) as broken:
            suite = TestToyConformance()
            with pytest.raises(AssertionError, match=r"Account\.created_at must be timezone-aware"):
                await suite.test_get_accounts_batched(broken)
            with pytest.raises(
                AssertionError, match=r"open_volume must be a Decimal, never a float"
            ):
                await suite.test_analytics(broken)
