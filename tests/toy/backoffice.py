"""A back-office connector for the toy platform, held in memory.

It declares exactly the four capabilities the toy connector leaves out (partner
directory, tax, client reports, trading access), so the conformance kit's cases
for them run somewhere in this repository.  Its health asks the toy sandbox.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import ClassVar

import httpx

from gateway import models
from gateway.config import Secret
from gateway.connectors import (
    Capability,
    ClientReports,
    Connector,
    CreatePartnerRequest,
    PartnerDirectory,
    ReportRequest,
    TaxCalculator,
    TaxRequest,
    TradingAccess,
    UpdatePartnerRequest,
)
from gateway.errors import Conflict, InvalidInput, NotFound

TAX_RATE = Decimal("0.13")
TAX_BASE = Decimal("1000.00")


class ToyBackOfficeConnector(
    Connector, PartnerDirectory, TaxCalculator, ClientReports, TradingAccess
):
    name: ClassVar[str] = "toy_backoffice"
    platform: ClassVar[str] = "toy_backoffice"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.PARTNER_DIRECTORY,
            Capability.TAX,
            Capability.CLIENT_REPORTS,
            Capability.TRADING_ACCESS,
        }
    )

    async def start(self) -> None:
        self._partners = {
            code: models.BusinessPartner(code=code, name=f"Partner {code}", platform=self.platform)
            for code in ("DEMO-001", "DEMO-002", "OTHER-001")
        }
        self._reports: dict[str, list[models.ClientReport]] = {}
        self._leverage: dict[str, Decimal] = {}
        self._ids = itertools.count(1)

    async def health(self) -> models.ConnectorHealth:
        key = self.context.settings["api_key"]
        headers = {"X-Api-Key": key.reveal() if isinstance(key, Secret) else key}
        async with httpx.AsyncClient(base_url=self.context.settings["url"]) as client:
            response = await client.get("/health", headers=headers)
        up = response.status_code == 200
        status = models.HealthStatus.UP if up else models.HealthStatus.DOWN
        return models.ConnectorHealth(status=status)

    def _partner(self, code: str) -> models.BusinessPartner:
        if code not in self._partners:
            raise NotFound("partner not found")
        return self._partners[code]

    async def get_partners(self, codes: Sequence[str]) -> Sequence[models.BusinessPartner | None]:
        return [self._partners.get(code) for code in codes]

    async def create_partner(self, request: CreatePartnerRequest) -> models.BusinessPartner:
        if request.code in self._partners:
            raise Conflict("partner exists")
        partner = models.BusinessPartner(
            code=request.code, name=request.name, platform=self.platform
        )
        self._partners[request.code] = partner
        return partner

    async def update_partner(self, request: UpdatePartnerRequest) -> models.BusinessPartner:
        partner = self._partner(request.code)
        if request.name is not None:
            partner = dataclasses.replace(partner, name=request.name)
        self._partners[request.code] = partner
        return partner

    async def delete_partner(self, code: str) -> None:
        self._partner(code)
        del self._partners[code]

    async def calculate_tax(self, request: TaxRequest) -> models.TaxCalculation:
        self._partner(request.partner_code)
        base = request.amount if request.amount is not None else TAX_BASE
        return models.TaxCalculation(
            platform=self.platform,
            partner_code=request.partner_code,
            kind=request.kind,
            tax_base=models.Money(base, request.currency or "USD"),
            tax_amount=models.Money((base * TAX_RATE).quantize(Decimal("0.01")), "USD"),
            period_from=request.period_from,
            period_to=request.period_to,
            calculated_at=datetime.now(UTC),
        )

    async def request_report(self, request: ReportRequest) -> models.ClientReport:
        self._partner(request.partner_code)
        now = datetime.now(UTC)
        report = models.ClientReport(
            platform=self.platform,
            id=f"R{next(self._ids)}",
            partner_code=request.partner_code,
            status=models.ReportStatus.READY,
            format=request.format,
            requested_at=now,
            period_from=request.period_from,
            period_to=request.period_to,
            ready_at=now,
        )
        self._reports.setdefault(request.partner_code, []).append(report)
        return report

    async def get_reports(self, partner_code: str) -> Sequence[models.ClientReport]:
        return list(self._reports.get(partner_code, []))

    async def download_report(self, partner_code: str, report_id: str) -> tuple[str, bytes]:
        for report in self._reports.get(partner_code, []):
            if report.id == report_id:
                return "text/csv", f"report,{report_id}\n".encode()
        raise NotFound("report not found")

    async def enable_trading(self, partner_code: str) -> None:
        self._partner(partner_code)

    async def set_trading_leverage(self, partner_code: str, leverage: Decimal) -> None:
        self._partner(partner_code)
        if leverage <= 0:
            raise InvalidInput("leverage must be positive", field=["leverage"])
        self._leverage[partner_code] = leverage
