"""The conformance kit against QortConnector and QortSandbox, plus QORT-specific promises."""

from __future__ import annotations

from datetime import UTC, datetime

from brokergraph_qort.connector import QortConnector
from brokergraph_qort.sandbox import QortSandbox

from gateway.contract import Capability, Connector
from gateway.contract.sandbox import Sandbox
from gateway.testing import ConformanceSuite, Sample, requires

QORT_SAMPLE = Sample(
    partner_codes=["DEMO-001", "DEMO-002"],
    account_ids=["DEMO-001-01", "DEMO-001-02", "DEMO-002-01"],
    unknown_id="NO-SUCH-CODE",
    period=(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 7, 1, tzinfo=UTC)),
    currency="RUB",
)


class TestQortConformance(ConformanceSuite):
    connector_class = QortConnector
    sandbox_class = QortSandbox
    sample = QORT_SAMPLE

    @requires(Capability.PARTNER_DIRECTORY)
    async def test_a_partner_is_one_upstream_call(
        self, connector: Connector, sandbox: Sandbox
    ) -> None:
        assert isinstance(connector, QortConnector)
        assert isinstance(sandbox, QortSandbox)
        before = sandbox.calls["GetFirmPacket"]
        await connector.get_partners(["DEMO-001", "DEMO-002", "NO-SUCH-CODE"])
        assert sandbox.calls["GetFirmPacket"] == before + 3
