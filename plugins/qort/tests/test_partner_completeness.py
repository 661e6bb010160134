"""End to end through GraphQL: what a QORT partner's onboarding still lacks can be finished.

DEMO-002's onboarding stopped before its sub-account was marked for QUIK (IsQUIK='n',
TradeCode='BLOCK'), so enableTrading is refused; markQortSubaccountForQuik finishes
the step QORT's onboarding flow has (vendor facts 3.5, step 4), then the upload works.
"""

from __future__ import annotations

from typing import Any

from brokergraph_qort.sandbox import QortSandbox
from brokergraph_qort.sandbox.tables import SUBACCS

from gateway.contract.schema import encode_id
from gateway.testing import TestGateway

ERRORS = "errors { __typename code message field }"
MARK = f"""
mutation($partner: String!, $sub: String!) {{
  markQortSubaccountForQuik(input: {{partnerCode: $partner, subAccountCode: $sub}}) {{
    subAccount {{ externalId isQuik tradeCode ownerPartnerCode }} {ERRORS}
  }}
}}"""
RECORD = """
query($code: String!) {
  qortPartnerRecord(code: $code) {
    code emails phones legalAddress
    kyc {
      checked qualifiedInvestor resident taxResident dateOfBirth
      identityDocument { type number issuedOn expiresOn }
    }
    agreements { number type subAccountCode createdOn signedOn endsOn }
    bankAccounts { name accountNumber bankCode currency comment }
  }
}"""
ENABLE = f"""
mutation($code: String!) {{
  enableTrading(input: {{partnerCode: $code}}) {{ businessPartner {{ code }} {ERRORS} }}
}}"""


def payload(data: dict[str, Any], field: str) -> dict[str, Any]:
    result: dict[str, Any] = data[field]
    return result


async def test_demo_002_is_marked_for_quik_then_enabled(
    qort_gateway: TestGateway, sandbox: QortSandbox
) -> None:
    gw = qort_gateway
    refused = payload(await gw.data(ENABLE, {"code": "DEMO-002"}), "enableTrading")
    assert refused["businessPartner"] is None and refused["errors"]
    assert "DEMO-002-01" not in sandbox.quik.uploaded_on

    marked = payload(
        await gw.data(MARK, {"partner": "DEMO-002", "sub": "DEMO-002-01"}),
        "markQortSubaccountForQuik",
    )
    assert marked["errors"] == []
    assert marked["subAccount"] == {
        "externalId": "DEMO-002-01",
        "isQuik": True,
        "tradeCode": "DEMO-002-01",
        "ownerPartnerCode": "DEMO-002",
    }
    row = sandbox.store.get(SUBACCS, "DEMO-002-01")
    assert row is not None
    assert row.values["IsQUIK"] == "y" and row.values["RPTACTION_Flags"] == "14"

    enabled = payload(await gw.data(ENABLE, {"code": "DEMO-002"}), "enableTrading")
    assert enabled == {"businessPartner": {"code": "DEMO-002"}, "errors": []}
    assert sandbox.quik.uploaded_on["DEMO-002-01"] == sandbox.current_date()


async def test_marking_is_staff_only_and_checks_the_sub_account(
    qort_gateway: TestGateway, sandbox: QortSandbox
) -> None:
    gw = qort_gateway
    as_client = await gw.data(
        MARK, {"partner": "DEMO-002", "sub": "DEMO-002-01"}, token="demo_client"
    )
    denied = payload(as_client, "markQortSubaccountForQuik")
    assert denied["subAccount"] is None
    assert denied["errors"][0]["code"] == "PERMISSION_DENIED"

    # Another partner's sub-account is not found under this partner: nothing is imported.
    imports = sandbox.calls["ImportRecords"]
    other = payload(
        await gw.data(MARK, {"partner": "DEMO-002", "sub": "DEMO-001-01"}),
        "markQortSubaccountForQuik",
    )
    assert other["errors"][0]["code"] == "NOT_FOUND"
    assert other["errors"][0]["field"] == ["subAccountCode"]
    spaced = payload(
        await gw.data(MARK, {"partner": "DEMO-002", "sub": " DEMO-002-01"}),
        "markQortSubaccountForQuik",
    )
    assert spaced["errors"][0]["code"] == "INVALID_INPUT"
    assert sandbox.calls["ImportRecords"] == imports
    row = sandbox.store.get(SUBACCS, "DEMO-001-01")
    assert row is not None and row.values["OwnerFirm_BOCode"] == "DEMO-001"


async def test_the_firm_packet_beyond_business_partner_is_readable(
    qort_gateway: TestGateway, sandbox: QortSandbox
) -> None:
    gw = qort_gateway
    packets = sandbox.calls["GetFirmPacket"]
    record = (await gw.data(RECORD, {"code": "DEMO-002"}))["qortPartnerRecord"]
    assert record == {
        "code": "DEMO-002",
        "emails": ["two@demo.example", "two.backup@demo.example"],
        "phones": ["+74950000002"],
        "legalAddress": "Moscow, Tverskaya 2",
        "kyc": {
            "checked": True,
            "qualifiedInvestor": True,
            "resident": True,
            "taxResident": True,
            "dateOfBirth": "1979-09-23",
            "identityDocument": {
                "type": "Passport RF",
                "number": "4510 123456",
                "issuedOn": "2010-01-01",
                "expiresOn": "2030-01-01",
            },
        },
        "agreements": [
            {
                "number": "BA-2024/002",
                "type": "BA",
                "subAccountCode": "DEMO-002-01",
                "createdOn": "2024-02-15",
                "signedOn": "2024-02-15",
                "endsOn": None,
            }
        ],
        "bankAccounts": [
            {
                "name": "DEMO-002-BANK-RUB",
                "accountNumber": "40817810000000000002",
                "bankCode": None,
                "currency": "RUB",
                "comment": None,
            }
        ],
    }
    assert sandbox.calls["GetFirmPacket"] - packets <= 1  # the one packet read, no per-table calls
    assert sandbox.calls["ExportRecords"] == 0
    first = (await gw.data(RECORD, {"code": "DEMO-001"}))["qortPartnerRecord"]
    assert first["kyc"]["identityDocument"] is None
    assert [a["number"] for a in first["agreements"]] == ["BA-2024/001", "DA-2024/001"]
    # Another partner's client sees nothing, as businessPartner answers.
    hidden = await gw.data(RECORD, {"code": "DEMO-002"}, token="other_client")
    assert hidden["qortPartnerRecord"] is None


ADD_SUBACCOUNT = f"""
mutation($input: AddQortSubaccountInput!) {{
  addQortSubaccount(input: $input) {{
    subAccount {{ externalId currency isQuik tradeCode ownerPartnerCode name }} {ERRORS}
  }}
}}"""
ADD_AGREEMENT = f"""
mutation($input: AddQortAgreementInput!) {{
  addQortAgreement(input: $input) {{
    partnerRecord {{ agreements {{ number type subAccountCode endsOn }} }} {ERRORS}
  }}
}}"""


async def test_a_sub_account_and_agreements_are_added_to_an_existing_partner(
    qort_gateway: TestGateway, sandbox: QortSandbox
) -> None:
    gw = qort_gateway
    added = payload(
        await gw.data(
            ADD_SUBACCOUNT,
            {
                "input": {
                    "partnerCode": "DEMO-002",
                    "subAccountCode": "DEMO-002-02",
                    "currency": "USD",
                    "agreementNumber": "BA-2026/010",
                }
            },
        ),
        "addQortSubaccount",
    )
    assert added == {
        "subAccount": {
            "externalId": "DEMO-002-02",
            "currency": "USD",
            "isQuik": False,
            "tradeCode": "BLOCK",
            "ownerPartnerCode": "DEMO-002",
            "name": "Demo Client Two",
        },
        "errors": [],
    }
    signed = payload(
        await gw.data(
            ADD_AGREEMENT, {"input": {"partnerCode": "DEMO-002", "agreementNumber": "DA-2026/011"}}
        ),
        "addQortAgreement",
    )
    assert signed["errors"] == []
    assert signed["partnerRecord"]["agreements"] == [
        {"number": "BA-2024/002", "type": "BA", "subAccountCode": "DEMO-002-01", "endsOn": None},
        {"number": "BA-2026/010", "type": "BA", "subAccountCode": "DEMO-002-02", "endsOn": None},
        {"number": "DA-2026/011", "type": "BA", "subAccountCode": None, "endsOn": None},
    ]


async def test_a_refused_agreement_takes_its_new_sub_account_back(
    qort_gateway: TestGateway, sandbox: QortSandbox
) -> None:
    gw = qort_gateway
    # BA-2024/003 is OTHER-001's: QORT refuses the duplicate Num, so DEMO-002-03 goes again.
    refused = payload(
        await gw.data(
            ADD_SUBACCOUNT,
            {
                "input": {
                    "partnerCode": "DEMO-002",
                    "subAccountCode": "DEMO-002-03",
                    "agreementNumber": "BA-2024/003",
                }
            },
        ),
        "addQortSubaccount",
    )
    assert refused["subAccount"] is None and refused["errors"][0]["code"] == "CONFLICT"
    assert sandbox.store.get(SUBACCS, "DEMO-002-03") is None
    imports = sandbox.calls["ImportRecords"]
    for bad in ({"subAccountCode": "bad code!"}, {"currency": "usd"}, {"agreementNumber": ""}):
        answer = payload(
            await gw.data(
                ADD_SUBACCOUNT,
                {"input": {"partnerCode": "DEMO-002", "subAccountCode": "DEMO-002-04", **bad}},
            ),
            "addQortSubaccount",
        )
        assert answer["errors"][0]["code"] == "INVALID_INPUT", bad
    denied = payload(
        await gw.data(
            ADD_AGREEMENT,
            {"input": {"partnerCode": "DEMO-002", "agreementNumber": "X-1"}},
            token="demo_client",
        ),
        "addQortAgreement",
    )
    assert denied["errors"][0]["code"] == "PERMISSION_DENIED"
    assert sandbox.calls["ImportRecords"] == imports


ACCESS = """
query($code: String!) {
  businessPartner(code: $code) {
    accounts(platform: "qort") {
      externalId
      ... on QortSubaccount { tradingAccess { markedForQuik limitsUploadedOn leverage } }
    }
  }
}"""
LEVERAGE = f"""
mutation($code: String!, $leverage: Decimal!) {{
  setTradingLeverage(input: {{partnerCode: $code, leverage: $leverage}}) {{
    businessPartner {{ code }} {ERRORS}
  }}
}}"""


async def test_trading_access_shows_the_upload_day_and_the_leverage(
    qort_gateway: TestGateway, sandbox: QortSandbox
) -> None:
    gw = qort_gateway
    link = await gw.data(
        'mutation { linkToPartner(input: {partnerCode: "DEMO-001", accountId: "'
        + encode_id("Account", "qort", "DEMO-001-01")
        + '"}) { errors { code } } }'
    )
    assert link["linkToPartner"]["errors"] in ([], [{"code": "CONFLICT"}])  # linked already

    def access_of(data: dict[str, Any]) -> dict[str, Any]:
        accounts = data["businessPartner"]["accounts"]
        found: dict[str, Any] = next(a for a in accounts if a["externalId"] == "DEMO-001-01")[
            "tradingAccess"
        ]
        return found

    before = access_of(await gw.data(ACCESS, {"code": "DEMO-001"}))
    assert before == {"markedForQuik": True, "limitsUploadedOn": None, "leverage": "1"}
    enabled = payload(await gw.data(ENABLE, {"code": "DEMO-001"}), "enableTrading")
    assert enabled["errors"] == []
    changed = payload(
        await gw.data(LEVERAGE, {"code": "DEMO-001", "leverage": "3"}), "setTradingLeverage"
    )
    assert changed["errors"] == []
    after = access_of(await gw.data(ACCESS, {"code": "DEMO-001"}))
    assert after == {
        "markedForQuik": True,
        "limitsUploadedOn": sandbox.current_date().isoformat(),
        "leverage": "3",
    }
