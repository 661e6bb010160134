"""The web-service operations: read a request element, act, build the response element."""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Final

from brokergraph_qort.sandbox.faults import QortFault
from brokergraph_qort.sandbox.quik import Quik
from brokergraph_qort.sandbox.reports import Reports
from brokergraph_qort.sandbox.sessions import Sessions
from brokergraph_qort.sandbox.soap import (
    child_text,
    children,
    field_pairs,
    leaf,
    node,
    optional_text,
    row,
)
from brokergraph_qort.sandbox.store import Store
from brokergraph_qort.sandbox.tables import TABLES, RecordError, parse_date
from brokergraph_qort.sandbox.tax import Pit, money

__all__ = ["MAX_RECORDS", "OPERATIONS", "Operations"]

#: Records one ImportRecords call may carry.
MAX_RECORDS: Final = 1000

Handler = Callable[["Operations", ET.Element], list[ET.Element]]


def _date(element: ET.Element, name: str) -> date:
    try:
        return parse_date(child_text(element, name), name)
    except RecordError as error:
        raise QortFault("VALIDATION", str(error)) from None


def _decimal(element: ET.Element, name: str) -> Decimal:
    raw = child_text(element, name)
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise QortFault("VALIDATION", f"{name} must be a decimal number, not {raw!r}") from None
    if not value.is_finite():
        raise QortFault("VALIDATION", f"{name} must be a finite number")
    return value


class Operations:
    """One instance per sandbox state; ``today`` is the sandbox clock's date."""

    def __init__(
        self,
        *,
        sessions: Sessions,
        store: Store,
        quik: Quik,
        pit: Pit,
        reports: Reports,
    ) -> None:
        self.sessions = sessions
        self.store = store
        self.quik = quik
        self.pit = pit
        self.reports = reports

    def call(self, operation: str, request: ET.Element) -> ET.Element:
        """The ``<operation>Response`` element (a :class:`QortFault` on refusal)."""
        handler = OPERATIONS.get(operation)
        if handler is None:
            raise QortFault("VALIDATION", f"unknown operation {operation!r}")
        return node(f"{operation}Response", handler(self, request))

    def _authorized(self, request: ET.Element) -> None:
        self.sessions.check(child_text(request, "Token"))

    # -- sessions --------------------------------------------------------------------

    def login(self, request: ET.Element) -> list[ET.Element]:
        login, password = child_text(request, "Login"), child_text(request, "Password")
        session = self.sessions.login(login, password, child_text(request, "AppName"))
        return [
            leaf("Token", session.token),
            leaf("ExpiresInSeconds", str(self.sessions.expires_in(session))),
        ]

    def logout(self, request: ET.Element) -> list[ET.Element]:
        self.sessions.logout(child_text(request, "Token"))
        return [leaf("Ok", "true")]

    def ping(self, request: ET.Element) -> list[ET.Element]:
        session = self.sessions.ping(child_text(request, "Token"))
        expires_in = self.sessions.expires_in(session)
        return [leaf("Ok", "true"), leaf("ExpiresInSeconds", str(expires_in))]

    # -- records ---------------------------------------------------------------------

    def import_records(self, request: ET.Element) -> list[ET.Element]:
        self._authorized(request)
        table_name = child_text(request, "Table")
        table = TABLES.get(table_name)
        if table is None:
            raise QortFault("VALIDATION", f"unknown table {table_name!r}")
        records = children(request, "Record")
        if len(records) > MAX_RECORDS:
            raise QortFault("VALIDATION", f"at most {MAX_RECORDS} records per call")
        results = []
        for record in records:
            et_const = optional_text(record, "ET_Const") or ""
            result = self.store.apply(table, et_const, field_pairs(record))
            items = [leaf("Aid", str(result.aid)), leaf("IsProcessed", str(result.is_processed))]
            if result.error_log is not None:
                items.append(leaf("ErrorLog", result.error_log))
            if result.system_id is not None:
                items.append(leaf("SystemID", str(result.system_id)))
            results.append(node("RecordResult", items))
        return results

    def export_records(self, request: ET.Element) -> list[ET.Element]:
        self._authorized(request)
        rows = self.store.export(child_text(request, "Table"), field_pairs(request))
        return [row("Row", pairs) for pairs in rows]

    def get_firm_packet(self, request: ET.Element) -> list[ET.Element]:
        self._authorized(request)
        packet = self.store.firm_packet(child_text(request, "BOCode"))
        return [
            row("Firm", packet.firm),
            *(row("Subacc", r) for r in packet.subaccs),
            *(row("ClientAgree", r) for r in packet.agreements),
            *(row("FirmAccount", r) for r in packet.accounts),
            *(node("Attribute", [leaf("Name", n), leaf("Value", v)]) for n, v in packet.attributes),
        ]

    # -- QUIK ------------------------------------------------------------------------

    def upload_quik_limits(self, request: ET.Element) -> list[ET.Element]:
        self._authorized(request)
        codes, at = self.quik.upload(child_text(request, "BOCode"))
        text = f"limits of {len(codes)} sub-account(s) uploaded to QUIK: {', '.join(codes)}"
        return [
            leaf("Status", "OK"),
            leaf("Text", text),
            leaf("UploadedAt", at.strftime("%Y-%m-%dT%H:%M:%SZ")),
        ]

    def set_quik_leverage(self, request: ET.Element) -> list[ET.Element]:
        self._authorized(request)
        self.quik.set_leverage(child_text(request, "SubAccCode"), _decimal(request, "Leverage"))
        return [leaf("Status", "OK")]

    # -- PIT -------------------------------------------------------------------------

    def calc_pit_withdrawal(self, request: ET.Element) -> list[ET.Element]:
        self._authorized(request)
        result = self.pit.withdrawal(
            child_text(request, "SubAccCode"),
            child_text(request, "Currency"),
            _decimal(request, "Amount"),
            _date(request, "Date"),
        )
        return [
            leaf("TaxBase", money(result.tax_base)),
            leaf("TaxAmount", money(result.tax_amount)),
            leaf("Currency", result.currency),
        ]

    def calc_pit_period(self, request: ET.Element) -> list[ET.Element]:
        self._authorized(request)
        bocode = optional_text(request, "BOCode") or None
        subacc = optional_text(request, "SubAccCode") or None
        result = self.pit.period(
            _date(request, "DateFrom"), _date(request, "DateTo"), bocode, subacc
        )
        return [
            leaf("TaxBase", money(result.tax_base)),
            leaf("TaxAmount", money(result.tax_amount)),
            leaf("Currency", result.currency),
            *(row("Row", pairs) for pairs in result.rows),
        ]

    # -- client reports --------------------------------------------------------------

    def request_client_report(self, request: ET.Element) -> list[ET.Element]:
        self._authorized(request)
        report = self.reports.request(
            child_text(request, "SubAccCode"),
            _date(request, "DateFrom"),
            _date(request, "DateTo"),
            child_text(request, "Format").upper(),
        )
        return [leaf("ReportId", report.report_id), leaf("Status", "REQUESTED")]

    def get_client_report(self, request: ET.Element) -> list[ET.Element]:
        self._authorized(request)
        report = self.reports.get(child_text(request, "ReportId"))
        status = self.reports.status(report)
        items = [
            leaf("ReportId", report.report_id),
            leaf("Status", status),
            leaf("Format", report.format),
            leaf("OwnerBOCode", report.owner),
            leaf("ContentType", report.content_type),
        ]
        if status == "READY":
            items.append(leaf("Content", base64.b64encode(report.content).decode("ascii")))
        return items


#: Operation name (the SOAPAction and the body element less "Request") -> handler.
OPERATIONS: Final[Mapping[str, Handler]] = {
    "Login": Operations.login,
    "Logout": Operations.logout,
    "Ping": Operations.ping,
    "ImportRecords": Operations.import_records,
    "ExportRecords": Operations.export_records,
    "GetFirmPacket": Operations.get_firm_packet,
    "UploadQuikLimits": Operations.upload_quik_limits,
    "SetQuikLeverage": Operations.set_quik_leverage,
    "CalcPitWithdrawal": Operations.calc_pit_withdrawal,
    "CalcPitPeriod": Operations.calc_pit_period,
    "RequestClientReport": Operations.request_client_report,
    "GetClientReport": Operations.get_client_report,
}
