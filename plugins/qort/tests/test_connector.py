"""QortConnector against the sandbox: each family, the upstream calls it makes, its errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import pytest_asyncio
from brokergraph_qort.client import QortClient
from brokergraph_qort.connector import QortConnector, qort_date, qort_last_day
from brokergraph_qort.sandbox import QortSandbox
from brokergraph_qort.settings import QortSettings

from gateway.contract import (
    AccountStatus,
    Conflict,
    CreatePartnerRequest,
    HealthStatus,
    InvalidInput,
    Money,
    NotFound,
    PartnerKind,
    ReportFormat,
    ReportRequest,
    ReportStatus,
    TaxKind,
    TaxRequest,
    UpdatePartnerRequest,
)
from gateway.testing import check_business_partner, open_connector

H1_2024 = (datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 7, 1, tzinfo=UTC))


@pytest_asyncio.fixture(loop_scope="session")
async def connector(sandbox: QortSandbox, tmp_path: Path) -> AsyncIterator[QortConnector]:
    settings = {**sandbox.connector_settings(), "keepalive": False}
    async with open_connector(QortConnector, settings, tmp_path) as opened:
        yield opened


def new_partner(code: str = "NEW-100", **extra: object) -> CreatePartnerRequest:
    values: dict[str, object] = {
        "code": code,
        "name": "New Client Hundred",
        "email": "new100@example.com",
        "phone": "+74951234567",
        "tax_id": "771234567890",
        "residency": "RU",
        "broker": "demo-broker",
        "attributes": {"RiskProfile": "aggressive", "Score": 7, "Marketing": False},
        "sub_account_code": f"{code}-01",
        "agreement_number": f"BA-{code}",
        **extra,
    }
    return CreatePartnerRequest(**values)  # type: ignore[arg-type]


def test_dates_are_inclusive_qort_days() -> None:
    assert qort_date(datetime(2024, 3, 5, 23, 59, tzinfo=UTC)) == 20240305
    assert qort_last_day(datetime(2024, 7, 1, tzinfo=UTC)) == 20240630
    assert qort_last_day(datetime(2024, 7, 1, 12, tzinfo=UTC)) == 20240701


async def test_health_and_the_session_taken_at_start(
    connector: QortConnector, sandbox: QortSandbox
) -> None:
    assert sandbox.calls["Login"] == 1, "start() takes QORT's one session"
    health = await connector.health()
    assert health.status is HealthStatus.UP
    assert sandbox.calls["Login"] == 1


# --------------------------------------------------------------------------- partners


async def test_a_batch_reads_one_packet_per_partner(
    connector: QortConnector, sandbox: QortSandbox
) -> None:
    found = await connector.get_partners(["DEMO-001", "NOPE", "DEMO-002", "DEMO-001"])
    assert [p.code if p else None for p in found] == ["DEMO-001", None, "DEMO-002", "DEMO-001"]
    assert sandbox.calls["GetFirmPacket"] == 3, "one call per distinct partner, none per table"
    assert sandbox.calls["ExportRecords"] == 0
    demo = found[0]
    assert demo is not None
    check_business_partner(demo, "qort")
    assert demo.name == "Demo Client One"
    assert demo.kind is PartnerKind.INDIVIDUAL
    assert demo.email == "one@demo.example"
    assert demo.tax_id == "770112345678"
    assert demo.residency == "RU"
    assert demo.kyc_passed is True
    assert demo.broker == "demo-broker"
    assert demo.attributes["RiskProfile"] == "moderate"
    assert demo.raw is not None
    assert [s["SubAccCode"] for s in demo.raw["Subacc"]] == ["DEMO-001-01", "DEMO-001-02"]


async def test_create_with_sub_account_agreement_and_attributes(
    connector: QortConnector, sandbox: QortSandbox
) -> None:
    created = await connector.create_partner(new_partner())
    assert created.code == "NEW-100"
    assert sandbox.calls["ImportRecords"] == 4, "Firms, Subaccs, ClientAgrees, FirmAttributes"
    (read,) = await connector.get_partners(["NEW-100"])
    assert read is not None
    assert (read.name, read.email, read.phone, read.tax_id) == (
        "New Client Hundred",
        "new100@example.com",
        "+74951234567",
        "771234567890",
    )
    assert read.broker == "demo-broker"
    assert read.attributes["RiskProfile"] == "aggressive"
    assert read.attributes["Score"] == "7"  # QORT extension fields are text
    assert read.attributes["Marketing"] == "n"
    assert read.raw is not None
    (subacc,) = read.raw["Subacc"]
    assert subacc["SubAccCode"] == "NEW-100-01"
    assert (subacc["IsQUIK"], subacc["ACSTAT_Const"], subacc["TradeCode"]) == (
        "y",
        "5",
        "NEW-100-01",
    )
    (agreement,) = read.raw["ClientAgree"]
    assert (agreement["Num"], agreement["SubAccCode"]) == ("BA-NEW-100", "NEW-100-01")


async def test_a_duplicate_code_is_a_conflict_with_qorts_text(connector: QortConnector) -> None:
    with pytest.raises(Conflict, match="duplicate BOCode DEMO-001 in Firms") as raised:
        await connector.create_partner(new_partner("DEMO-001"))
    assert raised.value.field == ("code",)


async def test_a_failed_create_leaves_nothing_behind(
    connector: QortConnector, sandbox: QortSandbox
) -> None:
    # The agreement number is taken: the firm and sub-account already went in, and go out.
    with pytest.raises(Conflict, match="duplicate Num BA-2024/001") as raised:
        await connector.create_partner(new_partner("NEW-200", agreement_number="BA-2024/001"))
    assert raised.value.details["rolledBack"] is True
    assert await connector.get_partners(["NEW-200"]) == [None]
    assert await connector.get_accounts(["NEW-200-01"]) == [None]
    await connector.create_partner(new_partner("NEW-200"))  # a retry meets no leftovers


async def test_invalid_values_are_invalid_input_naming_the_field(
    connector: QortConnector, sandbox: QortSandbox
) -> None:
    with pytest.raises(InvalidInput, match="BOCode must be a code") as bad_code:
        await connector.create_partner(new_partner("bad code!", sub_account_code=None))
    assert bad_code.value.field == ("code",)
    with pytest.raises(InvalidInput, match="INN must have 10 or 12 digits") as bad_inn:
        await connector.create_partner(new_partner("NEW-300", tax_id="12345"))
    assert bad_inn.value.field == ("taxId",)
    calls = sandbox.calls["ImportRecords"]
    with pytest.raises(InvalidInput, match="must be a string, number or boolean"):
        await connector.create_partner(new_partner("NEW-301", attributes={"Nested": {"a": 1}}))
    with pytest.raises(InvalidInput, match="must be an identifier"):
        await connector.create_partner(new_partner("NEW-302", attributes={"bad name": "x"}))
    assert sandbox.calls["ImportRecords"] == calls, "bad attributes never reach QORT"


async def test_update_sends_only_changes_and_merges_attributes(
    connector: QortConnector, sandbox: QortSandbox
) -> None:
    unchanged = await connector.update_partner(
        UpdatePartnerRequest(code="DEMO-001", name="Demo Client One", attributes={})
    )
    assert unchanged.name == "Demo Client One"
    assert sandbox.calls["ImportRecords"] == 0, "nothing changed, nothing sent"
    updated = await connector.update_partner(
        UpdatePartnerRequest(
            code="DEMO-001",
            email="new@demo.example",
            is_qualified_investor=True,
            attributes={"RiskProfile": "conservative", "Citizenship": None, "Segment": "VIP"},
        )
    )
    assert sandbox.calls["ImportRecords"] == 2, "one Firms update, one FirmAttributes import"
    assert updated.email == "new@demo.example"
    assert updated.is_qualified_investor is True
    (read,) = await connector.get_partners(["DEMO-001"])
    assert read is not None
    assert read.email == "new@demo.example"
    assert read.name == "Demo Client One"
    assert read.attributes["RiskProfile"] == "conservative"
    assert read.attributes["Segment"] == "VIP"
    assert "Citizenship" not in read.attributes
    assert dict(read.attributes) == dict(updated.attributes)


async def test_update_and_delete_of_unknown_partners_are_not_found(
    connector: QortConnector,
) -> None:
    with pytest.raises(NotFound):
        await connector.update_partner(UpdatePartnerRequest(code="NOPE", name="x"))
    with pytest.raises(NotFound, match="no Firms record with BOCode NOPE"):
        await connector.delete_partner("NOPE")


async def test_delete(connector: QortConnector) -> None:
    await connector.create_partner(new_partner("NEW-400"))
    await connector.delete_partner("NEW-400")
    assert await connector.get_partners(["NEW-400"]) == [None]


# --------------------------------------------------------------------------- sub-accounts


async def test_sub_accounts_read_as_accounts(connector: QortConnector) -> None:
    rub, usd, unknown = await connector.get_accounts(["DEMO-001-01", "DEMO-001-02", "NOPE"])
    assert rub is not None
    assert usd is not None
    assert unknown is None
    assert (rub.id, rub.number, rub.currency, rub.leverage) == (
        "DEMO-001-01",
        "DEMO-001-01",
        "RUB",
        Decimal(1),
    )
    assert rub.status is AccountStatus.FULL_TRADING
    assert usd.currency == "USD"
    assert await connector.get_traders(["X"]) == [None]
    assert await connector.get_positions(["DEMO-001-01"]) == [[]]


# --------------------------------------------------------------------------- trading access


async def test_enable_trading_then_change_leverage(
    connector: QortConnector, sandbox: QortSandbox
) -> None:
    await connector.create_partner(new_partner("NEW-500"))
    with pytest.raises(Conflict, match="run enableTrading first"):
        await connector.set_trading_leverage("NEW-500", Decimal(5))
    await connector.enable_trading("NEW-500")
    await connector.set_trading_leverage("NEW-500", Decimal(5))
    (account,) = await connector.get_accounts(["NEW-500-01"])
    assert account is not None
    assert account.leverage == Decimal(5)
    assert sandbox.calls["UploadQuikLimits"] == 1


async def test_trading_access_errors(connector: QortConnector) -> None:
    with pytest.raises(NotFound):
        await connector.enable_trading("NOPE")
    with pytest.raises(InvalidInput, match="no active QUIK sub-account"):
        await connector.enable_trading("DEMO-002")  # onboarding not finished: IsQUIK='n'
    with pytest.raises(Conflict, match="no active QUIK sub-account"):
        await connector.set_trading_leverage("DEMO-002", Decimal(2))
    await connector.enable_trading("DEMO-001")
    with pytest.raises(InvalidInput, match="Leverage must be above 0 and at most 100"):
        await connector.set_trading_leverage("DEMO-001", Decimal(500))


# --------------------------------------------------------------------------- tax


async def test_withdrawal_tax_uses_the_sub_account_in_that_currency(
    connector: QortConnector,
) -> None:
    usd = await connector.calculate_tax(
        TaxRequest(
            partner_code="DEMO-001", kind=TaxKind.WITHDRAWAL, amount=Decimal(1000), currency="usd"
        )
    )
    assert usd.raw is not None
    assert usd.raw["SubAccCode"] == "DEMO-001-02"
    assert usd.kind is TaxKind.WITHDRAWAL
    assert isinstance(usd.tax_amount, Money)
    assert isinstance(usd.tax_amount.amount, Decimal)
    default = await connector.calculate_tax(
        TaxRequest(partner_code="DEMO-001", kind=TaxKind.WITHDRAWAL, amount=Decimal(1000))
    )
    assert default.raw is not None
    assert default.raw["SubAccCode"] == "DEMO-001-01", "no currency: the first active sub-account"
    with pytest.raises(InvalidInput, match="no active sub-account in EUR") as raised:
        await connector.calculate_tax(
            TaxRequest(
                partner_code="DEMO-001",
                kind=TaxKind.WITHDRAWAL,
                amount=Decimal(10),
                currency="EUR",
            )
        )
    assert raised.value.field == ("currency",)
    with pytest.raises(NotFound):
        await connector.calculate_tax(
            TaxRequest(partner_code="NOPE", kind=TaxKind.WITHDRAWAL, amount=Decimal(10))
        )


async def test_period_tax(connector: QortConnector) -> None:
    start, end = datetime(2024, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC)
    tax = await connector.calculate_tax(
        TaxRequest(partner_code="DEMO-001", kind=TaxKind.PERIOD, period_from=start, period_to=end)
    )
    assert tax.tax_base == Money(Decimal("83640.00"), "RUB")
    assert tax.tax_amount == Money(Decimal("10873.00"), "RUB")
    assert (tax.period_from, tax.period_to) == (start, end)
    assert tax.raw is not None
    assert {r["TradeNum"] for r in tax.raw["Row"]} == {"T-10001", "T-10002", "T-10004"}


# --------------------------------------------------------------------------- reports


async def ready(connector: QortConnector, partner: str, report_id: str) -> None:
    for _ in range(100):
        listed = {r.id: r for r in await connector.get_reports(partner)}
        if listed[report_id].status is ReportStatus.READY:
            assert listed[report_id].ready_at is not None
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"report {report_id} never became READY")


async def test_request_poll_and_download_a_report(
    connector: QortConnector, sandbox: QortSandbox
) -> None:
    report = await connector.request_report(
        ReportRequest(
            partner_code="DEMO-001",
            format=ReportFormat.CSV,
            period_from=H1_2024[0],
            period_to=H1_2024[1],
        )
    )
    assert report.status is ReportStatus.REQUESTED
    assert report.partner_code == "DEMO-001"
    with pytest.raises(Conflict, match="not READY yet"):
        await connector.download_report("DEMO-001", report.id)
    await ready(connector, "DEMO-001", report.id)
    calls = sandbox.calls["GetClientReport"]
    await connector.get_reports("DEMO-001")
    assert sandbox.calls["GetClientReport"] == calls, "a READY report is not asked again"
    media_type, content = await connector.download_report("DEMO-001", report.id)
    assert media_type.startswith("text/csv")
    assert content.startswith(b"TradeNum,")
    with pytest.raises(NotFound, match="report not found"):
        await connector.download_report("OTHER-001", report.id)  # QORT's OwnerBOCode differs
    with pytest.raises(NotFound, match="report not found"):
        await connector.download_report("DEMO-001", "RPT-999999")
    assert await connector.get_reports("OTHER-001") == []


async def test_a_report_needs_an_active_sub_account(connector: QortConnector) -> None:
    await connector.create_partner(new_partner("NEW-600", sub_account_code=None))
    with pytest.raises(Conflict, match="no active sub-account"):
        await connector.request_report(
            ReportRequest(
                partner_code="NEW-600",
                format=ReportFormat.PDF,
                period_from=H1_2024[0],
                period_to=H1_2024[1],
            )
        )


async def test_health_is_down_while_another_application_holds_qort(
    sandbox: QortSandbox, tmp_path: Path
) -> None:
    holder = QortClient(
        QortSettings.from_section(
            "qort",
            {
                **sandbox.connector_settings(),
                "app_name": "backoffice-tool",
                "login": "backoffice",
                "password": "bo-pass",
                "keepalive": False,
            },
        )
    )
    await holder.connect()
    try:
        settings = {**sandbox.connector_settings(), "keepalive": False}
        async with open_connector(QortConnector, settings, tmp_path) as locked_out:
            health = await locked_out.health()
            assert health.status is HealthStatus.DOWN
            assert health.detail is not None
            assert "held by another application" in health.detail
    finally:
        await holder.close()
