"""Cases: the connector under the sandbox's standard knobs (fail, drop, latency).

Every built-in sandbox has the knobs of ``gateway.contract.sandbox.Misbehaving``;
these cases drive them without knowing the vendor.  A failed or lost answer to a
read must surface as an ``UpstreamError`` (never a crash, never a wrong value),
and the connector must serve the next read once the platform behaves again.
They run last in a suite: ``reset()`` re-seeds the sandbox.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import ClassVar

import pytest

from gateway.connectors import AccountReads, Capability, Connector, PartnerDirectory
from gateway.contract._asgi_sandbox import Misbehaving
from gateway.errors import UpstreamError
from gateway.sandboxes import Sandbox
from gateway.testing._base import SuiteBase
from gateway.testing._sample import need

__all__ = ["FaultCases"]

Probe = Callable[[], Awaitable[object]]


class FaultCases(SuiteBase):
    #: False for a connector whose reads never reach its sandbox (an in-memory fake).
    reads_reach_the_sandbox: ClassVar[bool] = True

    def _knobs(self, sandbox: Sandbox) -> Misbehaving:
        if not type(self).reads_reach_the_sandbox:
            pytest.skip("the connector's reads do not reach its sandbox")
        if not isinstance(sandbox, Misbehaving):
            pytest.skip("the sandbox has no standard knobs (gateway.contract.sandbox.Misbehaving)")
        return sandbox

    def _probe(self, connector: Connector) -> Probe:
        """One cheap read of a seeded object, whichever read family the connector has."""
        sample = type(self).sample
        if isinstance(connector, AccountReads) and self.declares(Capability.ACCOUNT_READS):
            account = need(sample.account_ids[:1], "account_ids")[0]
            reads: AccountReads = connector

            async def accounts() -> object:
                (found,) = await reads.get_accounts([account])
                assert found is not None, f"seeded account {account} not found"
                return found

            return accounts
        if isinstance(connector, PartnerDirectory) and self.declares(Capability.PARTNER_DIRECTORY):
            code = need(sample.partner_codes[:1], "partner_codes")[0]
            directory: PartnerDirectory = connector

            async def partners() -> object:
                (found,) = await directory.get_partners([code])
                assert found is not None, f"seeded partner {code} not found"
                return found

            return partners
        pytest.skip("connector declares neither ACCOUNT_READS nor PARTNER_DIRECTORY to probe")

    async def _recovers(self, probe: Probe) -> None:
        """The probe succeeds again within the suite's wait bound (a session may reconnect)."""
        deadline = time.monotonic() + type(self).wait_seconds
        while True:
            try:
                await probe()
                return
            except UpstreamError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)

    async def test_a_failed_answer_to_a_read_is_an_upstream_error(
        self, sandbox: Sandbox, connector: Connector
    ) -> None:
        knobs, probe = self._knobs(sandbox), self._probe(connector)
        await self._recovers(probe)
        knobs.fail_next(1, status=503)
        with pytest.raises(UpstreamError):
            await probe()
        await self._recovers(probe)

    async def test_a_lost_answer_to_a_read_is_an_upstream_error(
        self, sandbox: Sandbox, connector: Connector
    ) -> None:
        knobs, probe = self._knobs(sandbox), self._probe(connector)
        await self._recovers(probe)
        knobs.drop_next(1)
        with pytest.raises(UpstreamError):
            await probe()
        await self._recovers(probe)

    async def test_latency_is_waited_out_and_reset_restores_the_knobs(
        self, sandbox: Sandbox, connector: Connector
    ) -> None:
        knobs, probe = self._knobs(sandbox), self._probe(connector)
        knobs.latency_seconds = 0.2
        await probe()
        knobs.fail_next(3)
        knobs.reset()  # clears the pending failures and the latency; re-seeds
        assert knobs.latency_seconds < 0.2
        await self._recovers(probe)
        await probe()
