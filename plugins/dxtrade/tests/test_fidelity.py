"""The README's fidelity table: well formed, every named test defined, and none of the
rules the vendor facts state (or only infer) quietly dropped."""

from __future__ import annotations

from pathlib import Path

from gateway.testing.fidelity import check_fidelity_table

PLUGIN = Path(__file__).resolve().parent.parent

#: Rules of the vendor facts (B2-B8) the sandbox must keep a row for, with their tag.
REQUIRED = {
    "LOGIN_ON_BEHALF": "verified",
    "Session token": "verified",
    "HTTP Basic": "verified",
    "createClient": "verified",
    "no active subscription": "verified",
    "repeated cash": "inferred",
    "stale one is refused with 412": "inferred",
    "Disable user and terminate accounts": "inferred",
    "transfers read": "inferred",
    "30005": "observed",
    "Order placement": "observed",
    "Order history": "observed",
    "dxFeed callback": "inferred",
}


def test_the_fidelity_table_names_real_tests() -> None:
    check_fidelity_table(PLUGIN / "README.md", PLUGIN / "tests", required=REQUIRED)
