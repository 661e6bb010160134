"""Cases: trader provisioning and the back-office families (partner directory, tax,
client reports, trading access)."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest

from gateway import models
from gateway.connectors import (
    Capability,
    ClientReports,
    Connector,
    CreateTraderRequest,
    DeactivateTraderRequest,
    OpenAccountRequest,
    PartnerDirectory,
    ProvisioningResult,
    ProvisioningStep,
    ReactivateTraderRequest,
    ReportRequest,
    TaxCalculator,
    TaxRequest,
    TraderProvisioning,
    TradingAccess,
    UpdateAccountRequest,
)
from gateway.errors import NotFound
from gateway.testing._base import SuiteBase
from gateway.testing._checks import (
    check_account,
    check_business_partner,
    check_client_report,
    check_tax_calculation,
    check_trader,
)
from gateway.testing._gate import requires
from gateway.testing._sample import need

__all__ = ["BackOfficeCases"]


def _check_steps(result: ProvisioningResult, flow: str) -> None:
    assert isinstance(result, ProvisioningResult), f"{flow} returned {result!r}"
    assert result.steps, f"{flow} must report the upstream steps it took"
    for step in result.steps:
        assert isinstance(step, ProvisioningStep), f"{flow} step {step!r} is not a ProvisioningStep"
        assert isinstance(step.name, str), f"{flow} step names must be strings: {step!r}"
        assert step.name, f"{flow} step names must not be empty: {step!r}"
    assert result.complete, f"{flow} against the sandbox must complete: {list(result.steps)}"


class BackOfficeCases(SuiteBase):
    # -- TRADER_PROVISIONING ------------------------------------------------------------

    async def _new_trader(self, connector: TraderProvisioning, platform: str) -> models.Trader:
        request = CreateTraderRequest(
            partner_code=need(self.sample.new_trader_partner_code, "new_trader_partner_code"),
            email=f"conformance-{uuid.uuid4().hex[:12]}@example.com",
            name="Conformance Test",
            currency=self.sample.currency,
        )
        result = await connector.create_trader(request)
        _check_steps(result, "create_trader")
        assert result.trader is not None, "create_trader must return the trader it created"
        check_trader(result.trader, platform)
        for account in result.accounts:
            check_account(account, platform)
            assert account.trader_id in (None, result.trader.id), (
                f"account {account.id} of the new trader names {account.trader_id}"
            )
        return result.trader

    @requires(Capability.TRADER_PROVISIONING)
    async def test_create_trader(self, connector: Connector) -> None:
        assert isinstance(connector, TraderProvisioning)
        await self._new_trader(connector, connector.platform)

    @requires(Capability.TRADER_PROVISIONING)
    async def test_open_and_update_account(self, connector: Connector) -> None:
        assert isinstance(connector, TraderProvisioning)
        trader = await self._new_trader(connector, connector.platform)
        opening = OpenAccountRequest(trader_id=trader.id, currency=self.sample.currency)
        account = await connector.open_account(opening)
        check_account(account, connector.platform)
        assert account.trader_id in (None, trader.id), f"new account names {account.trader_id}"
        assert account.currency == self.sample.currency, f"opened in {account.currency}"
        update = UpdateAccountRequest(account_id=account.id, leverage=self.sample.leverage)
        updated = await connector.update_account(update)
        check_account(updated, connector.platform)
        assert updated.id == account.id, f"updating {account.id} answered {updated.id}"
        if updated.leverage is not None:
            assert updated.leverage == self.sample.leverage, f"leverage is {updated.leverage}"

    @requires(Capability.TRADER_PROVISIONING)
    async def test_deactivate_and_reactivate_trader(self, connector: Connector) -> None:
        assert isinstance(connector, TraderProvisioning)
        trader = await self._new_trader(connector, connector.platform)
        off = await connector.deactivate_trader(DeactivateTraderRequest(trader_id=trader.id))
        _check_steps(off, "deactivate_trader")
        if off.trader is not None:
            check_trader(off.trader, connector.platform)
            assert off.trader.status is not models.TraderStatus.ACTIVE, "still ACTIVE"
        on = await connector.reactivate_trader(ReactivateTraderRequest(trader_id=trader.id))
        _check_steps(on, "reactivate_trader")
        if on.trader is not None:
            check_trader(on.trader, connector.platform)
            assert on.trader.status is models.TraderStatus.ACTIVE, f"{on.trader.status}"

    @requires(Capability.TRADER_PROVISIONING)
    async def test_open_account_for_unknown_trader_is_not_found(self, connector: Connector) -> None:
        assert isinstance(connector, TraderProvisioning)
        opening = OpenAccountRequest(
            trader_id=self.sample.unknown_id, currency=self.sample.currency
        )
        with pytest.raises(NotFound):
            await connector.open_account(opening)

    # -- PARTNER_DIRECTORY, TAX, CLIENT_REPORTS, TRADING_ACCESS -------------------------

    def _partner(self) -> str:
        return need(self.sample.partner_codes, "partner_codes")[0]

    def _period(self) -> tuple[datetime, datetime]:
        return need(self.sample.period, "period")

    @requires(Capability.PARTNER_DIRECTORY)
    async def test_get_partners_batched(self, connector: Connector) -> None:
        assert isinstance(connector, PartnerDirectory)
        known = list(need(self.sample.partner_codes, "partner_codes"))
        asked = [known[0], self.sample.unknown_id, *known[1:]]
        found = await connector.get_partners(asked)
        assert len(found) == len(asked), f"get_partners must return {len(asked)} entries in order"
        for code, partner in zip(asked, found, strict=True):
            if code == self.sample.unknown_id:
                assert partner is None, "an unknown code must read as None in a batch, not raise"
                continue
            assert partner is not None, f"get_partners found no partner {code!r}"
            check_business_partner(partner, connector.platform)
            assert partner.code == code, f"asked {code!r} at this position, got {partner.code!r}"

    @requires(Capability.TAX)
    async def test_calculate_tax(self, connector: Connector) -> None:
        assert isinstance(connector, TaxCalculator)
        start, end = self._period()
        request = TaxRequest(
            partner_code=self._partner(),
            kind=models.TaxKind.PERIOD,
            period_from=start,
            period_to=end,
        )
        tax = await connector.calculate_tax(request)
        check_tax_calculation(tax, connector.platform)
        assert tax.partner_code == request.partner_code, f"tax is of {tax.partner_code}"
        assert tax.kind is models.TaxKind.PERIOD, f"asked a PERIOD tax, got {tax.kind}"

    @requires(Capability.CLIENT_REPORTS)
    async def test_request_and_list_reports(self, connector: Connector) -> None:
        assert isinstance(connector, ClientReports)
        start, end = self._period()
        partner = self._partner()
        report = await connector.request_report(
            ReportRequest(
                partner_code=partner,
                format=models.ReportFormat.CSV,
                period_from=start,
                period_to=end,
            )
        )
        check_client_report(report, connector.platform)
        assert report.partner_code == partner, f"report is of {report.partner_code}"
        assert report.format is models.ReportFormat.CSV, f"asked CSV, got {report.format}"
        listed = await connector.get_reports(partner)
        for item in listed:
            check_client_report(item, connector.platform)
        assert report.id in {r.id for r in listed}, "get_reports must list a requested report"

    @requires(Capability.TRADING_ACCESS)
    async def test_enable_trading_and_set_leverage(self, connector: Connector) -> None:
        assert isinstance(connector, TradingAccess)
        partner = self._partner()
        # Both are writes without a result: the contract is that they do not raise.
        await connector.enable_trading(partner)
        await connector.set_trading_leverage(partner, self.sample.leverage)
