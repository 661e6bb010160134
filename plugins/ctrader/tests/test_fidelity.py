"""The README's fidelity table: every vendor rule the sandbox mimics names tests that
exist, and the vendor's verified rules (and the inferred readings the product's safety
must not rest on) keep their rows with their tags."""

from __future__ import annotations

from pathlib import Path

from gateway.testing.fidelity import check_fidelity_table

PLUGIN = Path(__file__).resolve().parent.parent

#: Rules of the vendor notes (part A) by a phrase of their row, and the tag it must keep.
REQUIRED = {
    "token never expires": "verified",
    "allow-listed IPs": "verified",
    "hourly threshold": "verified",
    "threshold's number": "inferred",
    "open positions carry unrealised P&L": "verified",
    "deduplicates a repeated": "inferred",
    "reused `externalId`": "inferred",
    "Reporting API snapshots": "verified",
    "4.3 deal-time filters": "verified",
    "names of the 4.3 filters": "inferred",
    "trader, group and manager attributes": "verified",
    "5.3 moves a trader": "verified",
    "5.3's path": "observed",
    "closedPositions: windows": "verified",
}


def test_fidelity_table() -> None:
    check_fidelity_table(PLUGIN / "README.md", PLUGIN / "tests", required=REQUIRED)
