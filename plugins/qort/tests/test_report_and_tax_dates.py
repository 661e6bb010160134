"""What a client area needs from QORT's reports and tax, through GraphQL over real sockets.

A report says which sub-account it covers (QORT makes one per sub-account, so one
request for a partner with two gives two reports), and a withdrawal's tax can be asked
for a day other than today (QORT's CalcPitWithdrawal takes the day; the gateway always
sent today's).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from brokergraph_qort.sandbox import QortSandbox

from gateway.contract.schema import encode_id
from gateway.testing import TestGateway

ERRORS = "errors { __typename code message field }"
REPORT = f"""
mutation($input: RequestClientReportInput!) {{
  requestClientReport(input: $input) {{
    reports {{ id externalId accountId accountExternalId }} {ERRORS}
  }}
}}"""
REPORTS = """
query($code: String!) {
  businessPartner(code: $code) { reports { id accountId accountExternalId } }
}"""
ACCOUNT = "query($id: ID!) { node(id: $id) { id ... on Account { externalId platform } } }"
TAX = f"""
mutation($input: CalculateTaxInput!) {{
  calculateTax(input: $input) {{
    calculation {{ kind taxBase {{ amount currency }} taxAmount {{ amount currency }} }}
    {ERRORS}
  }}
}}"""


async def test_each_report_says_which_sub_account_it_covers(
    qort_gateway: TestGateway, module_sandbox: QortSandbox
) -> None:
    """One request for DEMO-001 (two sub-accounts) makes two reports: each names its
    sub-account (an Account id its client resolves, and QORT's SubAccCode), in the
    mutation's answer and in the partner's report list; one asked for one sub-account
    names that one."""
    gw = qort_gateway
    period = {"periodFrom": "2024-01-01T00:00:00Z", "periodTo": "2024-07-01T00:00:00Z"}
    asked = {"partnerCode": "DEMO-001", "format": "CSV", **period}
    answer = (await gw.data(REPORT, {"input": asked}, token="demo_client"))["requestClientReport"]
    assert answer["errors"] == []
    made = answer["reports"]
    codes = ["DEMO-001-01", "DEMO-001-02"]
    assert sorted(r["accountExternalId"] for r in made) == codes
    for report in made:
        assert report["accountId"] == encode_id("Account", "qort", report["accountExternalId"])
        node = (await gw.data(ACCOUNT, {"id": report["accountId"]}, token="demo_client"))["node"]
        assert (node["platform"], node["externalId"]) == ("qort", report["accountExternalId"])
    assert len({r["externalId"] for r in made}) == 2

    listed = (await gw.data(REPORTS, {"code": "DEMO-001"}, token="demo_client"))["businessPartner"][
        "reports"
    ]
    by_id = {r["id"]: r for r in listed}
    for report in made:
        assert by_id[report["id"]]["accountExternalId"] == report["accountExternalId"]
        assert by_id[report["id"]]["accountId"] == report["accountId"]

    one = encode_id("Account", "qort", "DEMO-001-02")
    single = (await gw.data(REPORT, {"input": {**asked, "accountId": one}}, token="demo_client"))[
        "requestClientReport"
    ]
    assert single["errors"] == []
    assert [(r["accountId"], r["accountExternalId"]) for r in single["reports"]] == [
        (one, "DEMO-001-02")
    ]


def withdrawal(day: str | None = None, amount: str = "1000000") -> dict[str, Any]:
    asked: dict[str, Any] = {
        "partnerCode": "DEMO-001",
        "kind": "WITHDRAWAL",
        "amount": amount,
        "currency": "RUB",
    }
    return asked if day is None else {**asked, "date": day}


async def tax(gw: TestGateway, asked: dict[str, Any]) -> dict[str, Any]:
    answer: dict[str, Any] = (await gw.data(TAX, {"input": asked}, token="demo_client"))[
        "calculateTax"
    ]
    return answer


async def test_a_withdrawal_tax_for_a_day(
    qort_gateway: TestGateway, module_sandbox: QortSandbox
) -> None:
    """A withdrawal on 30 June 2024 is taxed on 2024's income up to that day — what a
    period from 1 January to 1 July 2024 gives (the seed's SBER deal) — not on this
    year's (nothing sold: 0), which is still what no date means."""
    gw = qort_gateway
    june = await tax(gw, withdrawal("2024-06-30"))
    assert june["errors"] == [], june
    half_year = await tax(
        gw,
        {
            "partnerCode": "DEMO-001",
            "kind": "PERIOD",
            "periodFrom": "2024-01-01T00:00:00Z",
            "periodTo": "2024-07-01T00:00:00Z",
        },
    )
    assert half_year["errors"] == []
    base = june["calculation"]["taxBase"]
    assert base == half_year["calculation"]["taxBase"]
    assert base["currency"] == "RUB" and float(base["amount"]) > 0
    assert june["calculation"]["taxAmount"] == half_year["calculation"]["taxAmount"]

    today = datetime.now(UTC).date().isoformat()
    dated_today, undated = await tax(gw, withdrawal(today)), await tax(gw, withdrawal())
    assert dated_today["errors"] == undated["errors"] == []
    assert dated_today["calculation"] == undated["calculation"]
    assert undated["calculation"]["taxBase"]["amount"] != base["amount"]


async def test_a_bad_withdrawal_date_is_refused_before_any_call(
    qort_gateway: TestGateway, module_sandbox: QortSandbox
) -> None:
    gw = qort_gateway
    await tax(gw, withdrawal())  # QORT's session is open
    before = dict(module_sandbox.calls)
    tomorrow = (datetime.now(UTC).date() + timedelta(days=1)).isoformat()
    for asked in (
        withdrawal(tomorrow),
        withdrawal("1980-01-01"),
        {
            "partnerCode": "DEMO-001",
            "kind": "PERIOD",
            "periodFrom": "2024-01-01T00:00:00Z",
            "periodTo": "2024-07-01T00:00:00Z",
            "date": "2024-06-30",
        },
    ):
        answer = await tax(gw, asked)
        assert answer["calculation"] is None
        ((error,),) = [answer["errors"]]
        assert (error["code"], error["field"]) == ("INVALID_INPUT", ["date"]), asked
    assert dict(module_sandbox.calls) == before
