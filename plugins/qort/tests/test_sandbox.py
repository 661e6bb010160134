"""The QORT sandbox over real sockets: zeep (the connector's SOAP client) and raw XML.

One sandbox serves the module; every test starts from ``reset()`` (seeds, no session,
no knobs).  zeep loads the WSDL the sandbox serves, synchronously, so the client is
built in a thread while the event loop keeps serving.
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
import ssl
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Awaitable, Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import pytest
import pytest_asyncio
import zeep
from brokergraph_qort.sandbox import QortSandbox
from brokergraph_qort.sandbox.operations import OPERATIONS
from brokergraph_qort.sandbox.pdf import LINES_PER_PAGE, render_pdf
from brokergraph_qort.sandbox.reports import CSV_COLUMNS
from brokergraph_qort.sandbox.sessions import Sessions
from brokergraph_qort.sandbox.soap import SOAP_ENV, TNS
from zeep.exceptions import Fault
from zeep.transports import AsyncTransport

from gateway.contract.sandbox import DemoLink, sandbox_certificate

GATEWAY = {"Login": "brokergraph", "Password": "qort-pass", "AppName": "brokergraph-gateway"}
BACKOFFICE = {"Login": "backoffice", "Password": "bo-pass", "AppName": "backoffice-tool"}
REPORT_DELAY = 0.3
WAIT_LIMIT = 5.0


# -- fixtures ------------------------------------------------------------------------------


@pytest_asyncio.fixture(scope="module")
async def qort() -> AsyncIterator[QortSandbox]:
    sandbox = QortSandbox(report_delay_seconds=REPORT_DELAY)
    await sandbox.start()
    try:
        yield sandbox
    finally:
        await sandbox.stop()


@pytest.fixture(autouse=True)
def _fresh(qort: QortSandbox) -> Iterator[None]:
    qort.reset()
    yield
    qort.max_body_bytes = 1_000_000


async def _zeep_client(url: str, verify: ssl.SSLContext | bool) -> tuple[Any, Any]:
    sync_http = httpx.Client(verify=verify)
    async_http = httpx.AsyncClient(verify=verify)
    transport = AsyncTransport(client=async_http, wsdl_client=sync_http)  # type: ignore[no-untyped-call]
    client = await asyncio.to_thread(zeep.AsyncClient, f"{url}/qort?wsdl", transport=transport)
    return client, (sync_http, async_http)


@pytest_asyncio.fixture(scope="module")
async def zclient(qort: QortSandbox) -> AsyncIterator[Any]:
    client, (sync_http, async_http) = await _zeep_client(qort.url, qort.client_ssl_context())
    try:
        yield client
    finally:
        await async_http.aclose()
        sync_http.close()


@pytest.fixture
def service(zclient: Any) -> Any:
    return zclient.service


@pytest_asyncio.fixture
async def token(service: Any) -> str:
    session = await service.Login(**GATEWAY)
    return str(session.Token)


async def fault_of(call: Awaitable[Any]) -> tuple[str, str, str]:
    """(faultcode, QortError.Code, QortError.Message) of a call that must fail."""
    with pytest.raises(Fault) as info:
        await call
    detail = info.value.detail
    assert detail is not None
    code = detail.find(f"{{{TNS}}}QortError/{{{TNS}}}Code")
    message = detail.find(f"{{{TNS}}}QortError/{{{TNS}}}Message")
    assert code is not None
    assert message is not None
    return str(info.value.code), str(code.text), str(message.text)


def fields(row: Any) -> dict[str, str]:
    """A zeep Row (or Firm/Subacc…) as a dict."""
    return {f.Name: f.Value or "" for f in row.Field}


def record(et_const: int, **values: str) -> dict[str, Any]:
    return {"ET_Const": et_const, "Field": [{"Name": k, "Value": v} for k, v in values.items()]}


def soap(body: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="utf-8"?>'
        f'<soap:Envelope xmlns:soap="{SOAP_ENV}" xmlns:q="{TNS}"><soap:Body>{body}'
        f"</soap:Body></soap:Envelope>"
    ).encode()


async def post_raw(
    qort: QortSandbox, body: bytes | Any, action: str | None = None, **headers: str
) -> httpx.Response:
    sent = {"Content-Type": "text/xml; charset=utf-8", **headers}
    if action is not None:
        sent["SOAPAction"] = f'"{action}"'
    async with httpx.AsyncClient(timeout=10, verify=qort.client_ssl_context()) as http:
        return await http.post(f"{qort.url}/qort", content=body, headers=sent)


def raw_fault(response: httpx.Response) -> tuple[str, str]:
    root = ET.fromstring(response.content)
    fault = root.find(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault")
    assert fault is not None, response.text
    code = fault.find(f"detail/{{{TNS}}}QortError/{{{TNS}}}Code")
    assert code is not None
    return str(fault.findtext("faultcode")), str(code.text)


# -- WSDL, contract ------------------------------------------------------------------------


async def test_wsdl_is_served_and_names_every_operation(qort: QortSandbox, zclient: Any) -> None:
    async with httpx.AsyncClient(verify=qort.client_ssl_context()) as http:
        for path in ("/qort?wsdl", "/qort/service.wsdl"):
            response = await http.get(qort.url + path)
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/xml")
            assert f'location="{qort.url}/qort"' in response.text
        assert (await http.get(qort.url + "/qort")).status_code == 404
    binding = zclient.service._binding
    assert set(binding._operations) == set(OPERATIONS)
    for name, operation in binding._operations.items():
        assert operation.soapaction == name
        assert operation.input.body.qname.text == f"{{{TNS}}}{name}Request"
        assert operation.output.body.qname.text == f"{{{TNS}}}{name}Response"


def test_contract_settings_and_demo_links(qort: QortSandbox) -> None:
    assert QortSandbox.name == "qort"
    assert qort.connector_settings() == {
        "url": qort.url,
        "login": "brokergraph",
        "password": "qort-pass",
        "app_name": "brokergraph-gateway",
        "ca_file": str(sandbox_certificate().ca_file),
    }
    assert qort.url.startswith("https://127.0.0.1:")
    assert list(qort.demo_links()) == [
        DemoLink("DEMO-001", "account", "DEMO-001-01"),
        DemoLink("DEMO-001", "account", "DEMO-001-02"),
        DemoLink("DEMO-002", "account", "DEMO-002-01"),
        DemoLink("OTHER-001", "account", "OTHER-001-01"),
    ]


# -- sessions ------------------------------------------------------------------------------


async def test_login_gives_a_token_that_ping_keeps_alive(service: Any) -> None:
    session = await service.Login(**GATEWAY)
    assert re.fullmatch(r"[0-9a-f]{32}", session.Token)
    assert session.ExpiresInSeconds == 900
    pong = await service.Ping(Token=session.Token)
    assert pong.Ok is True
    assert pong.ExpiresInSeconds == 900
    assert await service.Logout(Token=session.Token) is True
    assert (await fault_of(service.Ping(Token=session.Token)))[1] == "INVALID_TOKEN"


async def test_wrong_credentials_and_unknown_applications_are_refused(service: Any) -> None:
    assert await fault_of(service.Login(**{**GATEWAY, "Password": "nope"})) == (
        "soap:Client",
        "INVALID_CREDENTIALS",
        "wrong login or password",
    )
    # The back-office login may not connect as the gateway's application, nor may strangers.
    assert (await fault_of(service.Login(**{**BACKOFFICE, "AppName": "brokergraph-gateway"})))[
        1
    ] == "INVALID_CREDENTIALS"
    assert (await fault_of(service.Login(**{**GATEWAY, "AppName": "excel"})))[1] == (
        "APP_NOT_ALLOWED"
    )


async def test_a_second_application_is_busy_until_the_first_logs_out(service: Any) -> None:
    first = (await service.Login(**GATEWAY)).Token
    side, code, message = await fault_of(service.Login(**BACKOFFICE))
    assert (side, code) == ("soap:Server", "BUSY")
    assert "brokergraph-gateway" in message
    # The same application logging in again gets a new token; the old one is dead.
    second = (await service.Login(**GATEWAY)).Token
    assert second != first
    assert (await fault_of(service.Ping(Token=first)))[1] == "INVALID_TOKEN"
    assert (await fault_of(service.Login(**BACKOFFICE)))[1] == "BUSY"
    await service.Logout(Token=second)
    backoffice = (await service.Login(**BACKOFFICE)).Token
    assert (await service.Ping(Token=backoffice)).Ok is True
    assert (await fault_of(service.Login(**GATEWAY)))[1] == "BUSY"


async def test_strict_reading_the_holders_own_login_is_busy_too(
    qort: QortSandbox, service: Any
) -> None:
    qort.sessions.relogin_replaces = False
    first = (await service.Login(**GATEWAY)).Token
    assert (await fault_of(service.Login(**GATEWAY)))[:2] == ("soap:Server", "BUSY")
    assert (await service.Ping(Token=first)).Ok is True  # the holder keeps its session
    await service.Logout(Token=first)
    assert (await service.Login(**GATEWAY)).Token
    qort.reset()
    assert qort.sessions.relogin_replaces is True  # the constructor's value again


async def test_an_expired_token_frees_the_service(qort: QortSandbox, service: Any) -> None:
    first = (await service.Login(**GATEWAY)).Token
    assert (await fault_of(service.Login(**BACKOFFICE)))[1] == "BUSY"
    qort.force_expire_tokens()
    assert (await fault_of(service.ExportRecords(Token=first, Table="Firms")))[1] == (
        "INVALID_TOKEN"
    )
    assert (await service.Login(**BACKOFFICE)).Token


def test_token_lifetime_is_extended_by_ping() -> None:
    now = [0.0]
    sessions = Sessions(10, clock=lambda: now[0])
    token = sessions.login("brokergraph", "qort-pass", "brokergraph-gateway").token
    now[0] = 8.0
    assert sessions.expires_in(sessions.ping(token)) == 10
    now[0] = 17.0
    sessions.check(token)  # would be dead at 10 without the ping
    now[0] = 18.0
    with pytest.raises(Exception, match="INVALID_TOKEN"):
        sessions.check(token)
    assert sessions.login("backoffice", "bo-pass", "backoffice-tool").app_name == (
        "backoffice-tool"
    )


async def test_every_operation_needs_a_live_token(service: Any) -> None:
    calls = [
        service.Logout(Token="x"),
        service.Ping(Token="x"),
        service.ImportRecords(Token="x", Table="Firms", Record=[]),
        service.ExportRecords(Token="x", Table="Firms"),
        service.GetFirmPacket(Token="x", BOCode="DEMO-001"),
        service.UploadQuikLimits(Token="x", BOCode="DEMO-001"),
        service.SetQuikLeverage(Token="x", SubAccCode="DEMO-001-01", Leverage="2"),
        service.CalcPitWithdrawal(
            Token="x", SubAccCode="DEMO-001-01", Currency="RUB", Amount="1", Date=20240101
        ),
        service.CalcPitPeriod(Token="x", DateFrom=20240101, DateTo=20241231),
        service.RequestClientReport(
            Token="x", SubAccCode="DEMO-001-01", DateFrom=20240101, DateTo=20241231, Format="CSV"
        ),
        service.GetClientReport(Token="x", ReportId="RPT-000001"),
    ]
    assert len(calls) == len(OPERATIONS) - 1  # every one but Login
    for call in calls:
        assert (await fault_of(call))[:2] == ("soap:Client", "INVALID_TOKEN")


# -- records -------------------------------------------------------------------------------


async def test_onboarding_gives_a_result_per_record(service: Any, token: str) -> None:
    firms = await service.ImportRecords(
        Token=token,
        Table="Firms",
        Record=[
            record(
                2,
                BOCode="NEW-001",
                FirmShortName="New Client",
                Name="New Client Ltd",
                INN="7701234567",
                IsFirm="y",
                IsResident="y",
                Broker="demo-broker",
            ),
            record(2, BOCode="DEMO-001", FirmShortName="Again", Name="Again"),
        ],
    )
    assert [(r.IsProcessed, r.ErrorLog) for r in firms] == [
        (3, None),
        (4, "duplicate BOCode DEMO-001 in Firms"),
    ]
    assert firms[0].SystemID == 4
    assert firms[1].SystemID is None
    subaccs = await service.ImportRecords(
        Token=token,
        Table="Subaccs",
        Record=[
            record(2, SubAccCode="NEW-001-01", OwnerFirm_BOCode="NOPE-404"),
            record(2, SubAccCode="NEW-001-01", OwnerFirm_BOCode="NEW-001", IsQUIK="y"),
        ],
    )
    assert [(r.IsProcessed, r.ErrorLog) for r in subaccs] == [
        (4, "unknown OwnerFirm_BOCode NOPE-404"),
        (3, None),
    ]
    agreements = await service.ImportRecords(
        Token=token,
        Table="ClientAgrees",
        Record=[
            record(
                2,
                Num="BA-2025/100",
                ClientAgreeTypeShortName="BA",
                OwnerFirm_BOCode="NEW-001",
                SubAccCode="NEW-001-01",
                DateSign="20250301",
            ),
            record(
                2,
                Num="BA-2025/101",
                ClientAgreeTypeShortName="BA",
                OwnerFirm_BOCode="NEW-001",
                SubAccCode="DEMO-001-01",
                DateSign="20250301",
            ),
        ],
    )
    assert [r.IsProcessed for r in agreements] == [3, 4]
    assert agreements[1].ErrorLog == "sub-account DEMO-001-01 belongs to firm DEMO-001, not NEW-001"
    aids = [r.Aid for r in [*firms, *subaccs, *agreements]]
    assert aids == sorted(aids)
    assert len(set(aids)) == len(aids)

    (subacc,) = await service.ExportRecords(
        Token=token, Table="Subaccs", Field=[{"Name": "OwnerFirm_BOCode", "Value": "NEW-001"}]
    )
    got = fields(subacc)
    assert got.pop("SystemID") == "5"
    assert got == {
        "SubAccCode": "NEW-001-01",
        "OwnerFirm_BOCode": "NEW-001",
        "ACSTAT_Const": "5",
        "IsAnalytic": "n",
        "IsQUIK": "y",
        "TradeCode": "NEW-001-01",
        "Currency": "RUB",
        "Leverage": "1",
    }
    (agreement,) = await service.ExportRecords(
        Token=token, Table="ClientAgrees", Field=[{"Name": "OwnerFirm_BOCode", "Value": "NEW-001"}]
    )
    assert fields(agreement)["DateEnd"] == "0"


async def test_records_follow_the_idb_value_rules(service: Any, token: str) -> None:
    base = {"FirmShortName": "X", "Name": "X"}
    cases = {
        "IsResident must be 'y' or 'n'": record(2, BOCode="R-1", IsResident="Y", **base),
        "DateOfBirth 20230229 is not a calendar date": record(
            2, BOCode="R-2", DateOfBirth="20230229", **base
        ),
        "DateOfBirth must be a date as YYYYMMDD": record(
            2, BOCode="R-3", DateOfBirth="1990-01-01", **base
        ),
        "INN must have 10 or 12 digits": record(2, BOCode="R-4", INN="12345", **base),
        "unknown field 'Nickname' in Firms": record(2, BOCode="R-5", Nickname="x", **base),
        "ET_Const must be 2 (insert), 4 (update) or 8 (delete)": record(3, BOCode="R-6", **base),
        "BOCode must be a code": record(2, BOCode="bad code!", **base),
        "Name is required": record(2, BOCode="R-7", FirmShortName="X"),
        "FT_Flags must be an integer": record(2, BOCode="R-8", FT_Flags="one", **base),
        "no Firms record with BOCode NOPE-1": record(4, BOCode="NOPE-1", Phones="1"),
    }
    results = await service.ImportRecords(Token=token, Table="Firms", Record=list(cases.values()))
    for expected, result in zip(cases, results, strict=True):
        assert result.IsProcessed == 4, expected
        assert result.ErrorLog.startswith(expected), (expected, result.ErrorLog)
    agreement = {"ClientAgreeTypeShortName": "BA", "OwnerFirm_BOCode": "DEMO-002"}
    results = await service.ImportRecords(
        Token=token,
        Table="ClientAgrees",
        Record=[
            record(2, Num="A-1", DateSign="20250301", DateEnd="20250201", **agreement),
            record(
                2, Num="A-2", DateSign="20250301", **{**agreement, "ClientAgreeTypeShortName": "XX"}
            ),
            record(2, Num="A-3", DateSign="20250301", DateEnd="20260301", **agreement),
        ],
    )
    assert [r.ErrorLog for r in results] == [
        "DateEnd 20250201 is before DateSign 20250301",
        "ClientAgreeTypeShortName must be one of BA, DA, IIS, not 'XX'",
        None,
    ]
    unknown_table = service.ImportRecords(Token=token, Table="Orders", Record=[])
    assert (await fault_of(unknown_table))[1:] == ("VALIDATION", "unknown table 'Orders'")


async def test_export_filters_by_equality(service: Any, token: str) -> None:
    firms = await service.ExportRecords(Token=token, Table="Firms")
    assert [fields(r)["BOCode"] for r in firms] == ["DEMO-001", "DEMO-002", "OTHER-001"]
    other = await service.ExportRecords(
        Token=token, Table="Firms", Field=[{"Name": "Broker", "Value": "other-broker"}]
    )
    assert [fields(r)["BOCode"] for r in other] == ["OTHER-001"]
    quik_rub = await service.ExportRecords(
        Token=token,
        Table="Subaccs",
        Field=[{"Name": "IsQUIK", "Value": "y"}, {"Name": "Currency", "Value": "RUB"}],
    )
    assert [fields(r)["SubAccCode"] for r in quik_rub] == ["DEMO-001-01", "OTHER-001-01"]
    by_id = await service.ExportRecords(
        Token=token, Table="Subaccs", Field=[{"Name": "SystemID", "Value": "3"}]
    )
    assert [fields(r)["SubAccCode"] for r in by_id] == ["DEMO-002-01"]
    assert (
        await service.ExportRecords(
            Token=token, Table="Firms", Field=[{"Name": "BOCode", "Value": "NOPE"}]
        )
        == []
    )
    bad_field = service.ExportRecords(
        Token=token, Table="Firms", Field=[{"Name": "Color", "Value": "red"}]
    )
    assert (await fault_of(bad_field))[1:] == ("VALIDATION", "unknown field 'Color' in Firms")


async def test_firm_packet_gathers_everything_in_one_call(service: Any, token: str) -> None:
    packet = await service.GetFirmPacket(Token=token, BOCode="DEMO-001")
    firm = fields(packet.Firm)
    assert firm["SystemID"] == "1"
    assert (firm["Name"], firm["IsFirm"], firm["IsResident"], firm["DateOfBirth"]) == (
        "Demo Client One",
        "n",
        "y",
        "19850412",
    )
    assert [fields(r)["SubAccCode"] for r in packet.Subacc] == ["DEMO-001-01", "DEMO-001-02"]
    assert [fields(r)["Currency"] for r in packet.Subacc] == ["RUB", "USD"]
    assert [fields(r)["Num"] for r in packet.ClientAgree] == ["BA-2024/001", "DA-2024/001"]
    assert [fields(r)["BankAccNum"] for r in packet.FirmAccount] == ["40817810000000000001"]
    assert {a.Name: a.Value for a in packet.Attribute} == {
        "Broker": "demo-broker",
        "RiskProfile": "moderate",
        "Citizenship": "RU",
        "InvestmentLimit": "1500000.00",
        "MarginTrading": "n",
    }
    other = await service.GetFirmPacket(Token=token, BOCode="OTHER-001")
    assert other.FirmAccount == []
    assert len(other.Subacc) == 1
    assert (await fault_of(service.GetFirmPacket(Token=token, BOCode="NOPE")))[1] == "NOT_FOUND"


async def test_update_and_delete(service: Any, token: str) -> None:
    (updated, cleared_required) = await service.ImportRecords(
        Token=token,
        Table="Firms",
        Record=[
            record(4, BOCode="DEMO-002", Phones="+74950009999", IsQualified="n", Emails=""),
            record(4, BOCode="DEMO-002", Name=""),
        ],
    )
    assert (updated.IsProcessed, updated.SystemID) == (3, 2)
    assert cleared_required.ErrorLog == "Name is required"
    firm = fields((await service.GetFirmPacket(Token=token, BOCode="DEMO-002")).Firm)
    assert (firm["Phones"], firm["IsQualified"], firm["Name"]) == (
        "+74950009999",
        "n",
        "Demo Client Two",
    )
    assert "Emails" not in firm

    attributes = await service.ImportRecords(
        Token=token,
        Table="FirmAttributes",
        Record=[
            record(2, BOCode="DEMO-002", Name="Segment", Value="retail"),
            record(2, BOCode="DEMO-002", Name="Segment", Value="vip"),
            record(4, BOCode="DEMO-002", Name="RiskProfile", Value="moderate"),
            record(2, BOCode="DEMO-002", Name="Broker", Value="x"),
        ],
    )
    assert [r.IsProcessed for r in attributes] == [3, 4, 3, 4]
    assert attributes[1].ErrorLog == "duplicate BOCode DEMO-002, Name Segment in FirmAttributes"
    packet = await service.GetFirmPacket(Token=token, BOCode="DEMO-002")
    assert {a.Name: a.Value for a in packet.Attribute} == {
        "Broker": "demo-broker",
        "RiskProfile": "moderate",
        "QualifiedSince": "20230615",
        "Segment": "retail",
    }

    # Deleting a firm takes its sub-accounts, agreements, accounts and attributes along.
    (deleted,) = await service.ImportRecords(
        Token=token, Table="Firms", Record=[record(8, BOCode="DEMO-002")]
    )
    assert (deleted.IsProcessed, deleted.SystemID) == (3, 2)
    for table, column in (
        ("Subaccs", "OwnerFirm_BOCode"),
        ("ClientAgrees", "OwnerFirm_BOCode"),
        ("FirmAccounts", "FirmBOCode"),
        ("FirmAttributes", "BOCode"),
    ):
        rows = await service.ExportRecords(
            Token=token, Table=table, Field=[{"Name": column, "Value": "DEMO-002"}]
        )
        assert rows == [], table
    (again,) = await service.ImportRecords(
        Token=token, Table="Firms", Record=[record(8, BOCode="DEMO-002")]
    )
    assert (again.IsProcessed, again.ErrorLog) == (4, "no Firms record with BOCode DEMO-002")
    (subacc_deleted,) = await service.ImportRecords(
        Token=token, Table="Subaccs", Record=[record(8, SubAccCode="DEMO-001-01")]
    )
    assert subacc_deleted.IsProcessed == 3
    left = await service.GetFirmPacket(Token=token, BOCode="DEMO-001")
    assert [fields(r)["Num"] for r in left.ClientAgree] == ["DA-2024/001"]


async def test_reset_restores_the_seed(qort: QortSandbox, service: Any, token: str) -> None:
    await service.ImportRecords(Token=token, Table="Firms", Record=[record(8, BOCode="DEMO-001")])
    qort.reset()
    assert (await fault_of(service.Ping(Token=token)))[1] == "INVALID_TOKEN"
    fresh = (await service.Login(**GATEWAY)).Token
    assert len(await service.ExportRecords(Token=fresh, Table="Firms")) == 3
    assert qort.calls["Login"] == 1


# -- QUIK ----------------------------------------------------------------------------------


async def test_leverage_only_after_an_upload_the_same_day(
    qort: QortSandbox, service: Any, token: str
) -> None:
    qort.today = date(2025, 3, 10)
    side, code, message = await fault_of(
        service.SetQuikLeverage(Token=token, SubAccCode="DEMO-001-01", Leverage="2.5")
    )
    assert (side, code) == ("soap:Client", "LEVERAGE_WITHOUT_UPLOAD")
    assert "20250310" in message
    upload = await service.UploadQuikLimits(Token=token, BOCode="DEMO-001")
    assert upload.Status == "OK"
    assert upload.Text.endswith("DEMO-001-01, DEMO-001-02")
    assert upload.UploadedAt.date() == date(2025, 3, 10)
    assert upload.UploadedAt.utcoffset().total_seconds() == 0
    assert await service.SetQuikLeverage(Token=token, SubAccCode="DEMO-001-01", Leverage="2.5") == (
        "OK"
    )
    packet = await service.GetFirmPacket(Token=token, BOCode="DEMO-001")
    assert [fields(r)["Leverage"] for r in packet.Subacc] == ["2.5", "1"]
    bad = service.SetQuikLeverage(Token=token, SubAccCode="DEMO-001-01", Leverage="0")
    assert (await fault_of(bad))[1] == "VALIDATION"
    missing = service.SetQuikLeverage(Token=token, SubAccCode="NOPE", Leverage="2")
    assert (await fault_of(missing))[1] == "NOT_FOUND"
    # The next day the upload no longer counts.
    qort.today = date(2025, 3, 11)
    later = service.SetQuikLeverage(Token=token, SubAccCode="DEMO-001-01", Leverage="3")
    assert (await fault_of(later))[1] == "LEVERAGE_WITHOUT_UPLOAD"


async def test_upload_needs_an_active_quik_subaccount(service: Any, token: str) -> None:
    refused = await fault_of(service.UploadQuikLimits(Token=token, BOCode="DEMO-002"))
    assert refused[1] == "VALIDATION"
    assert "IsQUIK='y'" in refused[2]
    assert (await fault_of(service.UploadQuikLimits(Token=token, BOCode="NOPE")))[1] == "NOT_FOUND"
    # Onboarding's last step: mark for QUIK (the trade code follows), then upload.
    (marked,) = await service.ImportRecords(
        Token=token, Table="Subaccs", Record=[record(4, SubAccCode="DEMO-002-01", IsQUIK="y")]
    )
    assert marked.IsProcessed == 3
    (subacc,) = await service.ExportRecords(
        Token=token, Table="Subaccs", Field=[{"Name": "SubAccCode", "Value": "DEMO-002-01"}]
    )
    assert fields(subacc)["TradeCode"] == "DEMO-002-01"
    assert (await service.UploadQuikLimits(Token=token, BOCode="DEMO-002")).Status == "OK"
    assert await service.SetQuikLeverage(Token=token, SubAccCode="DEMO-002-01", Leverage="5") == (
        "OK"
    )


# -- PIT -----------------------------------------------------------------------------------


async def test_pit_for_a_withdrawal(service: Any, token: str) -> None:
    def call(amount: str, day: int, subacc: str = "DEMO-001-01", currency: str = "RUB") -> Any:
        return service.CalcPitWithdrawal(
            Token=token, SubAccCode=subacc, Currency=currency, Amount=amount, Date=day
        )

    # DEMO-001's 2024 income to 15 Sep: 6050 - 3950 RUB + 906 USD x 90 = 83640 RUB.
    capped = await call("10000", 20240915)
    assert (capped.TaxBase, capped.TaxAmount, capped.Currency) == (
        Decimal("83640.00"),
        Decimal("3000.00"),  # at most 30% of the amount withdrawn
        "RUB",
    )
    full = await call("1000", 20240915, subacc="DEMO-001-02", currency="USD")
    assert full.TaxAmount == Decimal("10873.00")  # 13% of 83640, whole roubles
    early = await call("10000", 20240301)
    assert (early.TaxBase, early.TaxAmount) == (Decimal("0.00"), Decimal("0.00"))
    assert (await fault_of(call("100", 20240915, subacc="NOPE")))[1] == "NOT_FOUND"
    assert (await fault_of(call("100", 20241301)))[1:] == (
        "VALIDATION",
        "Date 20241301 is not a calendar date",
    )
    assert (await fault_of(call("-5", 20240915)))[1] == "VALIDATION"
    assert (await fault_of(call("5", 20240915, currency="XYZ")))[1] == "VALIDATION"


async def test_pit_for_a_period(service: Any, token: str) -> None:
    one = await service.CalcPitPeriod(
        Token=token, DateFrom=20240101, DateTo=20241231, BOCode="DEMO-001"
    )
    assert (one.TaxBase, one.TaxAmount, one.Currency) == (
        Decimal("83640.00"),
        Decimal("10873.00"),
        "RUB",
    )
    rows = [fields(r) for r in one.Row]
    assert [r["TradeNum"] for r in rows] == ["T-10001", "T-10004", "T-10002"]
    assert (rows[1]["Income"], rows[1]["Rate"], rows[1]["IncomeRUB"]) == (
        "906.00",
        "90.00",
        "81540.00",
    )
    everyone = await service.CalcPitPeriod(Token=token, DateFrom=20240101, DateTo=20241231)
    # 83640 + 71000 + 730 taxed per client: 10873 + 9230 + 95.
    assert (everyone.TaxBase, everyone.TaxAmount) == (Decimal("155370.00"), Decimal("20198.00"))
    assert {fields(r)["OwnerFirm_BOCode"] for r in everyone.Row} == {
        "DEMO-001",
        "DEMO-002",
        "OTHER-001",
    }
    # 2025: +3500 RUB and -149.50 USD (-13455 RUB): a loss is no tax.
    loss = await service.CalcPitPeriod(
        Token=token, DateFrom=20250101, DateTo=20251231, BOCode="DEMO-001"
    )
    assert (loss.TaxBase, loss.TaxAmount, len(loss.Row)) == (Decimal("0.00"), Decimal("0.00"), 2)
    backwards = service.CalcPitPeriod(Token=token, DateFrom=20250101, DateTo=20240101)
    assert (await fault_of(backwards))[1] == "VALIDATION"
    unknown = service.CalcPitPeriod(Token=token, DateFrom=20240101, DateTo=20241231, BOCode="NOPE")
    assert (await fault_of(unknown))[1] == "NOT_FOUND"


# -- client reports ------------------------------------------------------------------------


async def _wait_ready(service: Any, token: str, report_id: str) -> tuple[Any, list[str]]:
    seen: list[str] = []
    deadline = time.monotonic() + WAIT_LIMIT
    while time.monotonic() < deadline:
        report = await service.GetClientReport(Token=token, ReportId=report_id)
        if not seen or seen[-1] != report.Status:
            seen.append(report.Status)
        if report.Status == "READY":
            return report, seen
        assert report.Content is None
        await asyncio.sleep(0.02)
    raise AssertionError(f"report {report_id} not READY within {WAIT_LIMIT}s: {seen}")


async def test_csv_report_is_generated_then_downloadable(service: Any, token: str) -> None:
    requested = await service.RequestClientReport(
        Token=token, SubAccCode="DEMO-001-01", DateFrom=20240101, DateTo=20241231, Format="CSV"
    )
    assert requested.Status == "REQUESTED"
    assert requested.ReportId == "RPT-000001"
    started = time.monotonic()
    report, seen = await _wait_ready(service, token, requested.ReportId)
    assert time.monotonic() - started >= REPORT_DELAY * 0.8
    assert seen[-2:] == ["GENERATING", "READY"]
    assert (report.Format, report.OwnerBOCode, report.ContentType) == (
        "CSV",
        "DEMO-001",
        "text/csv; charset=utf-8",
    )
    table = list(csv.reader(io.StringIO(report.Content.decode())))
    assert tuple(table[0]) == CSV_COLUMNS
    assert [(r[0], r[7], r[8]) for r in table[1:]] == [
        ("T-10001", "6050.00", "RUB"),
        ("T-10002", "-3950.00", "RUB"),
    ]


async def test_pdf_report_is_a_valid_pdf(service: Any, token: str) -> None:
    requested = await service.RequestClientReport(
        Token=token, SubAccCode="DEMO-001-02", DateFrom=20240101, DateTo=20251231, Format="pdf"
    )
    report, _ = await _wait_ready(service, token, requested.ReportId)
    assert report.ContentType == "application/pdf"
    content: bytes = report.Content
    assert content.startswith(b"%PDF-1.4")
    assert content.rstrip().endswith(b"%%EOF")
    _check_pdf_structure(content)
    for text in (b"(Client: DEMO-001 Demo Client One)", b"T-10004", b"T-10005", b"MSFT"):
        assert text in content


async def test_report_requests_are_checked(service: Any, token: str) -> None:
    def ask(subacc: str = "DEMO-001-01", fmt: str = "CSV", start: int = 20240101) -> Any:
        return service.RequestClientReport(
            Token=token, SubAccCode=subacc, DateFrom=start, DateTo=20241231, Format=fmt
        )

    assert (await fault_of(ask(subacc="NOPE")))[1] == "NOT_FOUND"
    assert (await fault_of(ask(fmt="XLSX")))[1] == "VALIDATION"
    assert (await fault_of(ask(start=20250101)))[1] == "VALIDATION"
    missing = service.GetClientReport(Token=token, ReportId="RPT-999999")
    assert (await fault_of(missing))[1] == "NOT_FOUND"


def _check_pdf_structure(content: bytes) -> None:
    """Every xref offset points at its object; stream lengths are exact; one trailer."""
    xref_at = int(re.search(rb"startxref\n(\d+)\n%%EOF", content).group(1))  # type: ignore[union-attr]
    assert content[xref_at:].startswith(b"xref\n0 ")
    count = int(content[xref_at:].split(b"\n")[1].split()[1])
    entries = content[xref_at:].split(b"\n")[3 : 3 + count - 1]
    for number, entry in enumerate(entries, start=1):
        assert len(entry) + 1 == 20  # 20-byte entries with "\n"
        offset = int(entry[:10])
        assert content[offset:].startswith(f"{number} 0 obj\n".encode())
    for match in re.finditer(rb"<< /Length (\d+) >>\nstream\n", content):
        end = match.end() + int(match.group(1))
        assert content[end:].startswith(b"endstream")
    assert content.count(b"trailer") == 1
    assert b"/Root 1 0 R" in content


def test_pdf_writer_pages_and_escapes() -> None:
    lines = [f"line {i} (with parens) and \\ backslash" for i in range(LINES_PER_PAGE + 5)]
    content = render_pdf([*lines, "Cyrillic: Клиент"], title="T (1)")
    _check_pdf_structure(content)
    assert b"/Count 2" in content
    assert b"(line 0 \\(with parens\\) and \\\\ backslash) Tj" in content
    assert b"(Cyrillic: ??????) Tj" in content
    assert render_pdf([], title="empty").count(b"/Type /Page ") == 1


# -- knobs ---------------------------------------------------------------------------------


async def test_fail_next_and_call_counts(qort: QortSandbox, service: Any, token: str) -> None:
    qort.fail_next(2)
    for _ in range(2):
        assert (await fault_of(service.Ping(Token=token)))[:2] == ("soap:Server", "INTERNAL")
    assert (await service.Ping(Token=token)).Ok is True
    assert qort.calls["Ping"] == 1, "fail_next answers before the service: it counts only one"
    assert qort.calls["Login"] == 1


async def test_latency(qort: QortSandbox, service: Any, token: str) -> None:
    qort.latency_seconds = 0.2
    started = time.monotonic()
    await service.Ping(Token=token)
    assert time.monotonic() - started >= 0.2


# -- the wire, raw -------------------------------------------------------------------------


async def test_raw_login_and_fault_shapes(qort: QortSandbox) -> None:
    login = soap(
        "<q:LoginRequest><q:Login>brokergraph</q:Login><q:Password>qort-pass</q:Password>"
        "<q:AppName>brokergraph-gateway</q:AppName></q:LoginRequest>"
    )
    response = await post_raw(qort, login, action="Login")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/xml; charset=utf-8"
    root = ET.fromstring(response.content)
    answer = root.find(f"{{{SOAP_ENV}}}Body/{{{TNS}}}LoginResponse")
    assert answer is not None
    assert [child.tag for child in answer] == [f"{{{TNS}}}Token", f"{{{TNS}}}ExpiresInSeconds"]

    # Without a SOAPAction the body element decides; a wrong token is the caller's fault.
    ping = soap("<q:PingRequest><q:Token>nope</q:Token></q:PingRequest>")
    refused = await post_raw(qort, ping)
    assert refused.status_code == 500
    assert raw_fault(refused) == ("soap:Client", "INVALID_TOKEN")
    assert "soap:Client" in refused.text
    assert "<faultstring>" in refused.text
    # Missing elements and a SOAPAction that disagrees with the body are refused.
    no_token = await post_raw(qort, soap("<q:PingRequest/>"), action="Ping")
    assert raw_fault(no_token) == ("soap:Client", "VALIDATION")
    mismatch = await post_raw(qort, ping, action="Logout")
    assert (mismatch.status_code, raw_fault(mismatch)) == (400, ("soap:Client", "VALIDATION"))
    unknown = await post_raw(qort, soap("<q:DropTablesRequest/>"))
    assert (unknown.status_code, raw_fault(unknown)[1]) == (400, "VALIDATION")
    assert qort.calls == {"Login": 1, "Ping": 2}


async def test_xml_attacks_are_refused(qort: QortSandbox) -> None:
    laughs = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        + "".join(
            f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10 if i > 1 else "&lol;" * 10}">'
            for i in range(1, 10)
        )
        + f']><soap:Envelope xmlns:soap="{SOAP_ENV}" xmlns:q="{TNS}"><soap:Body>'
        "<q:PingRequest><q:Token>&lol9;</q:Token></q:PingRequest></soap:Body></soap:Envelope>"
    ).encode()
    external = (
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        f'<soap:Envelope xmlns:soap="{SOAP_ENV}" xmlns:q="{TNS}"><soap:Body>'
        "<q:PingRequest><q:Token>&xxe;</q:Token></q:PingRequest></soap:Body></soap:Envelope>"
    ).encode()
    harmless_looking = (
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY t "token">]>'
        f'<soap:Envelope xmlns:soap="{SOAP_ENV}" xmlns:q="{TNS}"><soap:Body>'
        "<q:PingRequest><q:Token>&t;</q:Token></q:PingRequest></soap:Body></soap:Envelope>"
    ).encode()
    for attack in (laughs, external, harmless_looking):
        response = await post_raw(qort, attack, action="Ping")
        assert response.status_code == 400
        assert raw_fault(response) == ("soap:Client", "VALIDATION")
        assert "DTDs and entity declarations are not allowed" in response.text
        assert "root:" not in response.text
    malformed = await post_raw(qort, b"<soap:Envelope", action="Ping")
    assert (malformed.status_code, raw_fault(malformed)[1]) == (400, "VALIDATION")
    wrong_type = await post_raw(qort, soap(""), **{"Content-Type": "application/json"})
    assert wrong_type.status_code == 415
    assert not qort.calls


async def test_oversized_bodies_are_refused(qort: QortSandbox) -> None:
    qort.max_body_bytes = 10_000
    padding = "x" * 20_000
    big = soap(f"<q:PingRequest><q:Token>{padding}</q:Token></q:PingRequest>")
    declared = await post_raw(qort, big, action="Ping")
    assert (declared.status_code, raw_fault(declared)) == (413, ("soap:Client", "VALIDATION"))

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
        for start in range(0, len(big), 4096):
            yield big[start : start + 4096]

    streamed = await post_raw(qort, chunks(), action="Ping")
    assert streamed.status_code == 413
    assert not qort.calls


# -- HTTPS ---------------------------------------------------------------------------------


async def test_https_only_for_clients_trusting_the_sandbox_ca(qort: QortSandbox) -> None:
    """QORT's module speaks HTTPS (ARQA); so does the sandbox, with the process's CA."""
    assert qort.url.startswith("https://")
    client, (sync_http, async_http) = await _zeep_client(qort.url, qort.client_ssl_context())
    try:
        session = await client.service.Login(**GATEWAY)
        assert await client.service.Logout(Token=session.Token) is True
    finally:
        await async_http.aclose()
        sync_http.close()
    async with httpx.AsyncClient() as untrusting:  # the system's trust store: no
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await untrusting.get(f"{qort.url}/qort?wsdl")
