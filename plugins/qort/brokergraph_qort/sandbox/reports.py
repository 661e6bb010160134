"""Client reports: requested, generated after a delay, then downloadable as CSV or PDF."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Final

from brokergraph_qort.sandbox.faults import QortFault
from brokergraph_qort.sandbox.pdf import render_pdf
from brokergraph_qort.sandbox.seed import DEALS, Deal
from brokergraph_qort.sandbox.store import Store
from brokergraph_qort.sandbox.tables import FIRMS, SUBACCS
from brokergraph_qort.sandbox.tax import money, yyyymmdd

__all__ = ["CONTENT_TYPES", "CSV_COLUMNS", "Report", "Reports"]

CONTENT_TYPES: Final = {"CSV": "text/csv; charset=utf-8", "PDF": "application/pdf"}
CSV_COLUMNS: Final = (
    "TradeNum",
    "Security_Code",
    "Qty",
    "BuyDate",
    "BuyPrice",
    "SellDate",
    "SellPrice",
    "Income",
    "Currency",
)


@dataclass(frozen=True, slots=True)
class Report:
    report_id: str
    subacc_code: str
    owner: str
    format: str
    requested_at: float
    content: bytes

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.format]


class Reports:
    """Reports by id; the status follows the time since the request (monotonic clock)."""

    def __init__(
        self,
        store: Store,
        delay_seconds: float,
        today: Callable[[], date],
        deals: Sequence[Deal] = DEALS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self.delay_seconds = delay_seconds
        self._today = today
        self._deals = deals
        self._clock = clock
        self._reports: dict[str, Report] = {}

    def request(self, subacc_code: str, start: date, end: date, fmt: str) -> Report:
        record = self._store.get(SUBACCS, subacc_code)
        if record is None:
            raise QortFault("NOT_FOUND", f"no sub-account with SubAccCode {subacc_code!r}")
        if fmt not in CONTENT_TYPES:
            raise QortFault("VALIDATION", f"Format must be CSV or PDF, not {fmt!r}")
        if start > end:
            raise QortFault("VALIDATION", "DateFrom is after DateTo")
        owner = record.values["OwnerFirm_BOCode"]
        deals = [
            d
            for d in self._deals
            if d.subacc == subacc_code and yyyymmdd(start) <= d.sell_date <= yyyymmdd(end)
        ]
        if fmt == "CSV":
            content = _csv(deals)
        else:
            firm = self._store.get(FIRMS, owner)
            name = firm.values.get("Name", owner) if firm else owner
            currency = record.values.get("Currency", "RUB")
            head = [
                "QORT client report (brokergraph sandbox)",
                f"Client: {owner} {name}",
                f"Sub-account: {subacc_code} ({currency})",
                f"Period: {start:%Y-%m-%d} - {end:%Y-%m-%d}",
                f"Report date: {self._today():%Y-%m-%d}",
                "",
            ]
            content = render_pdf(head + _table(deals), title=f"Client report {subacc_code}")
        report_id = f"RPT-{len(self._reports) + 1:06d}"
        report = Report(report_id, subacc_code, owner, fmt, self._clock(), content)
        self._reports[report_id] = report
        return report

    def get(self, report_id: str) -> Report:
        report = self._reports.get(report_id)
        if report is None:
            raise QortFault("NOT_FOUND", f"no report {report_id!r}")
        return report

    def status(self, report: Report) -> str:
        """REQUESTED, then GENERATING, then READY once ``delay_seconds`` have passed."""
        elapsed = self._clock() - report.requested_at
        if elapsed >= self.delay_seconds:
            return "READY"
        return "REQUESTED" if elapsed < self.delay_seconds / 4 else "GENERATING"


def _cells(deal: Deal) -> list[str]:
    return [
        deal.trade_num,
        deal.security,
        str(deal.qty),
        str(deal.buy_date),
        money(deal.buy_price),
        str(deal.sell_date),
        money(deal.sell_price),
        money(deal.income),
        deal.currency,
    ]


def _csv(deals: Sequence[Deal]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(_cells(d) for d in deals)
    return out.getvalue().encode()


def _table(deals: Sequence[Deal]) -> list[str]:
    rows = [list(CSV_COLUMNS), *(_cells(d) for d in deals)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(CSV_COLUMNS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in rows]
    totals: dict[str, list[Deal]] = {}
    for deal in deals:
        totals.setdefault(deal.currency, []).append(deal)
    lines.append("")
    if not deals:
        lines.append("No closed deals in the period.")
    for currency, group in totals.items():
        income = sum((d.income for d in group), Decimal(0))
        lines.append(f"Realised income: {money(income)} {currency} ({len(group)} deals)")
    return lines
