"""qortPitReport end to end: a gateway with the QORT connector, the sandbox behind it.

The seeded deals (sandbox/seed.py) give DEMO-001 in 2024: T-10001 SBER +6,050 RUB and
T-10002 GAZP -3,950 RUB on DEMO-001-01, T-10004 AAPL +906 USD (x 90 = 81,540 RUB) on
DEMO-001-02; 13% of the base, in whole roubles.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from brokergraph_qort.sandbox import QortSandbox

from gateway.testing import TestGateway

PIT = """
query($code: String!, $date: Date!, $sub: String) {
  qortPitReport(partnerCode: $code, date: $date, subAccountCode: $sub) {
    partnerCode subAccountCode periodFrom periodTo scope currency taxBase taxAmount
    deals {
      tradeNumber subAccountCode instrument quantity buyDate buyPrice buyAmount
      sellDate sellPrice sellAmount currency income rateToTaxCurrency taxBase
    }
  }
}"""


async def pit(
    gw: TestGateway, date: str, sub: str | None = None, token: str = "admin", code: str = "DEMO-001"
) -> dict[str, Any]:
    return await gw.query(PIT, {"code": code, "date": date, "sub": sub}, token=token)


async def test_pit_for_the_partner_to_a_day_with_its_deals(
    qort_gateway: TestGateway, sandbox: QortSandbox
) -> None:
    body = await pit(qort_gateway, "2024-12-31", token="demo_client")
    assert "errors" not in body, body
    report = body["data"]["qortPitReport"]
    assert {k: report[k] for k in ("periodFrom", "periodTo", "scope", "currency")} == {
        "periodFrom": "2024-01-01",
        "periodTo": "2024-12-31",
        "scope": "PARTNER",
        "currency": "RUB",
    }
    assert (Decimal(report["taxBase"]), Decimal(report["taxAmount"])) == (
        Decimal("83640"),
        Decimal("10873"),
    )
    assert isinstance(report["taxBase"], str), "money travels as a string"
    deals = {d["tradeNumber"]: d for d in report["deals"]}
    assert [d["tradeNumber"] for d in report["deals"]] == ["T-10001", "T-10004", "T-10002"]
    aapl = deals["T-10004"]
    assert (aapl["subAccountCode"], aapl["instrument"], aapl["currency"]) == (
        "DEMO-001-02",
        "AAPL",
        "USD",
    )
    assert (aapl["buyDate"], aapl["sellDate"]) == ("2024-04-01", "2024-08-01")
    numbers = ("quantity", "buyPrice", "buyAmount", "sellPrice", "sellAmount", "income")
    assert [Decimal(aapl[k]) for k in numbers] == [
        Decimal(20),
        Decimal("170"),
        Decimal("3400"),
        Decimal("215.30"),
        Decimal("4306"),
        Decimal("906"),
    ]
    assert (Decimal(aapl["rateToTaxCurrency"]), Decimal(aapl["taxBase"])) == (
        Decimal(90),
        Decimal(81540),
    )
    assert Decimal(deals["T-10002"]["taxBase"]) == Decimal(-3950), "a loss lowers the base"
    assert sum(Decimal(d["taxBase"]) for d in report["deals"]) == Decimal(report["taxBase"])

    # The date moves the period's end: GAZP's loss (sold 5 Sep) is not in it yet.
    august = (await pit(qort_gateway, "2024-08-31"))["data"]["qortPitReport"]
    assert [d["tradeNumber"] for d in august["deals"]] == ["T-10001", "T-10004"]
    assert (Decimal(august["taxBase"]), Decimal(august["taxAmount"])) == (
        Decimal(87590),
        Decimal(11387),
    )
    assert sandbox.calls["CalcPitPeriod"] == 2


async def test_pit_for_one_sub_account(qort_gateway: TestGateway, sandbox: QortSandbox) -> None:
    body = await pit(qort_gateway, "2024-12-31", sub="DEMO-001-01")
    report = body["data"]["qortPitReport"]
    assert (report["subAccountCode"], report["scope"]) == ("DEMO-001-01", "SUB_ACCOUNT")
    assert [d["tradeNumber"] for d in report["deals"]] == ["T-10001", "T-10002"]
    assert (Decimal(report["taxBase"]), Decimal(report["taxAmount"])) == (
        Decimal(2100),
        Decimal(273),
    )


async def test_a_qort_that_does_not_narrow_to_a_sub_account_says_so(
    qort_gateway: TestGateway, sandbox: QortSandbox
) -> None:
    """[I] knob: QORT ignores SubAccCode and answers the partner's whole PIT. The report
    lists the sub-account's deals only and says its totals are the partner's."""
    sandbox.pit_by_subaccount = False
    body = await pit(qort_gateway, "2024-12-31", sub="DEMO-001-01")
    report = body["data"]["qortPitReport"]
    assert report["scope"] == "PARTNER"
    assert [d["tradeNumber"] for d in report["deals"]] == ["T-10001", "T-10002"]
    assert Decimal(report["taxAmount"]) == Decimal(10873)


async def test_bad_pit_requests_are_refused_before_any_call(
    qort_gateway: TestGateway, sandbox: QortSandbox
) -> None:
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    future = await pit(qort_gateway, tomorrow)
    assert future["data"]["qortPitReport"] is None
    assert future["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
    assert future["errors"][0]["extensions"]["field"] == ["date"]

    others = await pit(qort_gateway, "2024-12-31", sub="OTHER-001-01")
    assert others["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert others["errors"][0]["extensions"]["field"] == ["subAccountCode"]

    junk = await pit(qort_gateway, "2024-12-31", sub="no spaces please")
    assert junk["errors"][0]["extensions"]["code"] == "INVALID_INPUT"

    not_a_day = await pit(qort_gateway, "2024-02-30")
    assert "errors" in not_a_day and not_a_day.get("data") is None

    assert sandbox.calls["CalcPitPeriod"] == 0, "nothing reached QORT's PIT"

    # Another client's PIT is null, as their partner is.
    hidden = await pit(qort_gateway, "2024-12-31", token="other_client")
    assert hidden == {"data": {"qortPitReport": None}}
    assert sandbox.calls["CalcPitPeriod"] == 0
