"""The README's fidelity table stays true: every test it names exists, and every QORT
rule of the vendor facts the sandbox mimics (verified on ARQA's pages, observed in QORT
users' SQL) or the connector depends on (inferred: our design) keeps its row and its tag.
The checker is the kit's (``gateway.testing.fidelity``)."""

from __future__ import annotations

from pathlib import Path

from gateway.testing.fidelity import check_fidelity_table

README = Path(__file__).resolve().parents[1] / "README.md"
TESTS = Path(__file__).resolve().parent

#: QORT's rules by a phrase of their README row, with the tag the vendor facts give them.
RULES = {
    # [V]: ARQA's pages on the web-services module
    "over HTTPS": "verified",
    "login and password": "verified",
    "allowed to connect": "verified",
    "one external application at a time": "verified",
    "request ID (token)": "verified",
    "a result for each call": "verified",
    "add, edit, delete records": "verified",
    "limits) to QUIK": "verified",
    "only the leverage": "verified",
    "PIT for a cash withdrawal": "verified",
    "client reports": "verified",
    # [V-3P]: QORT users' public SQL against the IDB
    "IsProcessed 3": "observed",
    "ET_Const 2": "observed",
    "business codes": "observed",
    "YYYYMMDD": "observed",
    "ACSTAT_Const": "observed",
    "marks a sub-account for QUIK": "observed",
    # [I]/[D]: our design where ARQA publishes nothing; the connector depends on it
    "SOAP 1.1": "inferred",
    "fault codes": "inferred",
    "own second login": "inferred",
    "tokens expire": "inferred",
    "Logout frees": "inferred",
    "in the background": "inferred",
    "client certificate": "inferred",
    "declared with a type": "inferred",
    "narrowed to one sub-account": "inferred",
    "QORT throttles": "inferred",
}


def test_the_readme_fidelity_table_is_true() -> None:
    check_fidelity_table(README, TESTS, required=RULES)
