"""End to end through GraphQL: a gateway with the QORT connector, the sandbox behind it.

Onboarding as a back office does it: create the partner with a sub-account and an
agreement, enable trading (upload to QUIK), change the leverage, compute PIT, and let
the client request a report and download it through the gateway.  Then the rules
around it: QORT's per-record errors as typed payload errors, and QORT's one
application at a time.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import httpx
from brokergraph_qort.sandbox import QortSandbox
from brokergraph_qort.sandbox.tables import FIRMS, SUBACCS

from gateway.contract.schema import encode_id
from gateway.testing import TestGateway

PARTNER_FIELDS = "code name email taxId residency broker kind isQualifiedInvestor attributes"
ERRORS = "errors { __typename code message field }"

CREATE = f"""
mutation($input: CreateBusinessPartnerInput!) {{
  createBusinessPartner(input: $input) {{ businessPartner {{ {PARTNER_FIELDS} }} {ERRORS} }}
}}"""
UPDATE = f"""
mutation($input: UpdateBusinessPartnerInput!) {{
  updateBusinessPartner(input: $input) {{ businessPartner {{ {PARTNER_FIELDS} }} {ERRORS} }}
}}"""
DELETE = f"""
mutation($input: DeleteBusinessPartnerInput!) {{
  deleteBusinessPartner(input: $input) {{ deletedCode {ERRORS} }}
}}"""
ENABLE = f"""
mutation($code: String!) {{
  enableTrading(input: {{partnerCode: $code}}) {{ businessPartner {{ code }} {ERRORS} }}
}}"""
LEVERAGE = f"""
mutation($code: String!, $leverage: Decimal!) {{
  setTradingLeverage(input: {{partnerCode: $code, leverage: $leverage}}) {{
    businessPartner {{ code }} {ERRORS}
  }}
}}"""
TAX = f"""
mutation($input: CalculateTaxInput!) {{
  calculateTax(input: $input) {{
    calculation {{
      platform partnerCode kind periodFrom periodTo calculatedAt
      taxBase {{ amount currency }} taxAmount {{ amount currency }}
    }}
    {ERRORS}
  }}
}}"""
REPORT = f"""
mutation($input: RequestClientReportInput!) {{
  requestClientReport(input: $input) {{
    report {{ id externalId partnerCode status format downloadUrl }} {ERRORS}
  }}
}}"""
REPORTS = """
query($code: String!) {
  businessPartner(code: $code) { reports { id externalId status format readyAt downloadUrl } }
}"""
ACCOUNTS = """
query($code: String!) {
  businessPartner(code: $code) {
    accounts(platform: "qort") {
      __typename externalId number currency status leverage
      ... on QortSubaccount { name ownerPartnerCode isQuik tradeCode }
    }
  }
}"""
LINK = f"""
mutation($input: LinkToPartnerInput!) {{
  linkToPartner(input: $input) {{ businessPartner {{ code }} {ERRORS} }}
}}"""

NEW = "ONB-001"  # the "client" token's partner (conftest.NEW_PARTNER)


def payload(data: dict[str, Any], field: str) -> dict[str, Any]:
    result: dict[str, Any] = data[field]
    return result


async def get(gw: TestGateway, path: str, token: str) -> httpx.Response:
    """GET a gateway path (a report download) as the holder of ``token``."""
    headers = {"Authorization": f"Bearer {gw.tokens[token]}"}
    return await gw.http.get(f"{gw.url}{path}", headers=headers)


async def raw_soap(sandbox: QortSandbox, operation: str, body: str) -> httpx.Response:
    """A second application speaking SOAP by hand (not through our client)."""
    envelope = (
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:q="urn:brokergraph:qort:v1"><soap:Body>'
        f"<q:{operation}Request>{body}</q:{operation}Request></soap:Body></soap:Envelope>"
    )
    async with httpx.AsyncClient(verify=sandbox.client_ssl_context()) as http:
        return await http.post(
            f"{sandbox.url}/qort",
            content=envelope.encode(),
            headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": operation},
        )


async def backoffice_login(sandbox: QortSandbox) -> httpx.Response:
    return await raw_soap(
        sandbox,
        "Login",
        "<q:Login>backoffice</q:Login><q:Password>bo-pass</q:Password>"
        "<q:AppName>backoffice-tool</q:AppName>",
    )


# --------------------------------------------------------------------------- onboarding


async def test_onboarding_end_to_end(
    qort_gateway: TestGateway, module_sandbox: QortSandbox
) -> None:
    gw = qort_gateway
    created = payload(
        await gw.data(
            CREATE,
            {
                "input": {
                    "code": NEW,
                    "name": "Onboarded Client",
                    "broker": "demo-broker",
                    "email": "onb@example.com",
                    "taxId": "771122334455",
                    "residency": "RU",
                    "subAccountCode": f"{NEW}-01",
                    "agreementNumber": f"BA-{NEW}",
                    "attributes": {"RiskProfile": "moderate", "Source": "web"},
                }
            },
        ),
        "createBusinessPartner",
    )
    assert created["errors"] == []
    partner = created["businessPartner"]
    assert partner["code"] == NEW
    assert (partner["name"], partner["email"], partner["taxId"]) == (
        "Onboarded Client",
        "onb@example.com",
        "771122334455",
    )
    assert partner["attributes"]["RiskProfile"] == "moderate"
    assert partner["attributes"]["Source"] == "web"
    assert partner["broker"] == "demo-broker"

    # Extension fields change key by key; null removes one.
    updated = payload(
        await gw.data(
            UPDATE,
            {"input": {"code": NEW, "attributes": {"RiskProfile": "aggressive", "Source": None}}},
        ),
        "updateBusinessPartner",
    )
    assert updated["errors"] == []
    attributes = updated["businessPartner"]["attributes"]
    assert attributes["RiskProfile"] == "aggressive"
    assert "Source" not in attributes

    # The sub-account shows as the partner's QORT account once linked.
    account_id = encode_id("Account", "qort", f"{NEW}-01")
    linked = await gw.data(LINK, {"input": {"partnerCode": NEW, "accountId": account_id}})
    assert payload(linked, "linkToPartner")["errors"] == []

    # QORT changes leverage only after today's upload: the rule shows as a typed conflict.
    early = payload(await gw.data(LEVERAGE, {"code": NEW, "leverage": "5"}), "setTradingLeverage")
    assert early["errors"][0]["__typename"] == "ConflictError"
    assert "run enableTrading first" in early["errors"][0]["message"]

    enabled = payload(await gw.data(ENABLE, {"code": NEW}), "enableTrading")
    assert enabled["errors"] == []
    assert module_sandbox.calls["UploadQuikLimits"] >= 1
    leverage = payload(
        await gw.data(LEVERAGE, {"code": NEW, "leverage": "5"}), "setTradingLeverage"
    )
    assert leverage["errors"] == []
    accounts = (await gw.data(ACCOUNTS, {"code": NEW}))["businessPartner"]["accounts"]
    assert accounts == [
        {
            "__typename": "QortSubaccount",
            "externalId": f"{NEW}-01",
            "number": f"{NEW}-01",
            "currency": "RUB",
            "status": "FULL_TRADING",
            "leverage": "5",
            "name": "Onboarded Client",
            "ownerPartnerCode": NEW,
            "isQuik": True,
            "tradeCode": f"{NEW}-01",
        }
    ]

    # PIT for a withdrawal and for a period, as the client asks in the personal account.
    withdrawal = payload(
        await gw.data(
            TAX,
            {
                "input": {
                    "partnerCode": NEW,
                    "kind": "WITHDRAWAL",
                    "amount": "1000",
                    "currency": "RUB",
                }
            },
            token="client",
        ),
        "calculateTax",
    )
    assert withdrawal["errors"] == []
    calculation = withdrawal["calculation"]
    assert (calculation["platform"], calculation["kind"]) == ("qort", "WITHDRAWAL")
    assert calculation["taxAmount"]["currency"] == "RUB"
    period = payload(
        await gw.data(
            TAX,
            {
                "input": {
                    "partnerCode": "DEMO-001",
                    "kind": "PERIOD",
                    "periodFrom": "2024-01-01T00:00:00Z",
                    "periodTo": "2025-01-01T00:00:00Z",
                }
            },
            token="manager",
        ),
        "calculateTax",
    )
    assert period["errors"] == []
    assert period["calculation"]["taxBase"] == {"amount": "83640.00", "currency": "RUB"}
    assert period["calculation"]["taxAmount"] == {"amount": "10873.00", "currency": "RUB"}
    assert period["calculation"]["periodTo"].startswith("2025-01-01T00:00:00")

    # The client requests a report, polls it, and downloads it through the gateway.
    requested = payload(
        await gw.data(
            REPORT,
            {
                "input": {
                    "partnerCode": NEW,
                    "format": "CSV",
                    "periodFrom": "2024-01-01T00:00:00Z",
                    "periodTo": "2024-07-01T00:00:00Z",
                }
            },
            token="client",
        ),
        "requestClientReport",
    )
    assert requested["errors"] == []
    report = requested["report"]
    assert (report["partnerCode"], report["status"], report["downloadUrl"]) == (
        NEW,
        "REQUESTED",
        None,
    )
    url = None
    deadline = time.monotonic() + 20
    while url is None and time.monotonic() < deadline:
        listed = (await gw.data(REPORTS, {"code": NEW}, token="client"))["businessPartner"]
        (current,) = [r for r in listed["reports"] if r["id"] == report["id"]]
        url = current["downloadUrl"] if current["status"] == "READY" else None
        if url is None:
            await asyncio.sleep(0.1)
    assert url == f"/reports/{report['id']}"
    mine = await get(gw, url, token="client")
    assert mine.status_code == 200, mine.text
    assert mine.headers["content-type"].startswith("text/csv")
    assert mine.content.startswith(b"TradeNum,")
    assert mine.headers["cache-control"] == "no-store"
    for stranger in ("other_client", "demo_client"):
        theirs = await get(gw, url, token=stranger)
        assert theirs.status_code == 404, (stranger, theirs.text)
    # A URL forged for another partner's code still meets QORT's OwnerBOCode check.
    forged = encode_id("ClientReport", "qort", "DEMO-001", report["externalId"])
    assert (await get(gw, f"/reports/{forged}", token="demo_client")).status_code == 404


# --------------------------------------------------------------------------- QORT's record errors


async def test_record_errors_are_typed_payload_errors(
    qort_gateway: TestGateway, module_sandbox: QortSandbox
) -> None:
    gw = qort_gateway
    base = {"name": "Someone", "broker": "demo-broker"}

    duplicate = payload(
        await gw.data(CREATE, {"input": {"code": "DEMO-001", **base}}), "createBusinessPartner"
    )
    assert duplicate["businessPartner"] is None
    assert duplicate["errors"] == [
        {
            "__typename": "ConflictError",
            "code": "CONFLICT",
            "message": "QORT refused the record: Firms: duplicate BOCode DEMO-001 in Firms",
            "field": ["code"],
        }
    ]

    (bad_code,) = payload(
        await gw.data(CREATE, {"input": {"code": "bad code!", **base}}), "createBusinessPartner"
    )["errors"]
    assert (bad_code["__typename"], bad_code["field"]) == ("InvalidInputError", ["code"])
    assert "BOCode must be a code of letters, digits" in bad_code["message"]

    (bad_inn,) = payload(
        await gw.data(CREATE, {"input": {"code": "ERR-002", "taxId": "12345", **base}}),
        "createBusinessPartner",
    )["errors"]
    assert (bad_inn["__typename"], bad_inn["field"]) == ("InvalidInputError", ["taxId"])
    assert "INN must have 10 or 12 digits, not 5" in bad_inn["message"]

    # A taken agreement number: the firm and sub-account that went in first are undone.
    (taken,) = payload(
        await gw.data(
            CREATE,
            {
                "input": {
                    "code": "ERR-003",
                    "subAccountCode": "ERR-003-01",
                    "agreementNumber": "BA-2024/001",
                    **base,
                }
            },
        ),
        "createBusinessPartner",
    )["errors"]
    assert taken["__typename"] == "ConflictError"
    assert "duplicate Num BA-2024/001 in ClientAgrees" in taken["message"]
    gone = await gw.data('{ businessPartner(code: "ERR-003") { code } }')
    assert gone["businessPartner"] is None, "the gateway recorded nothing"
    assert await gw.services.store.get_partners(["ERR-003"]) == [None]
    assert module_sandbox.store.get(FIRMS, "ERR-003") is None, "nor is it left in QORT"
    assert module_sandbox.store.get(SUBACCS, "ERR-003-01") is None

    # A partner the gateway knows but QORT does not: QORT's per-record answer, typed.
    await gw.services.store.upsert_partner("GHOST-001", broker="demo-broker")
    (ghost,) = payload(
        await gw.data(DELETE, {"input": {"code": "GHOST-001"}}), "deleteBusinessPartner"
    )["errors"]
    assert ghost["__typename"] == "NotFoundError"
    assert ghost["message"] == (
        "QORT refused the record: Firms: no Firms record with BOCode GHOST-001"
    )

    (too_high,) = payload(
        await gw.data(LEVERAGE, {"code": "DEMO-001", "leverage": "500"}), "setTradingLeverage"
    )["errors"]
    assert (too_high["code"], too_high["field"]) == ("INVALID_INPUT", ["leverage"])
    assert "Leverage must be above 0 and at most 100" in too_high["message"]
    (no_eur,) = payload(
        await gw.data(
            TAX,
            {
                "input": {
                    "partnerCode": "DEMO-001",
                    "kind": "WITHDRAWAL",
                    "amount": "5",
                    "currency": "EUR",
                }
            },
        ),
        "calculateTax",
    )["errors"]
    assert (no_eur["code"], no_eur["field"]) == ("INVALID_INPUT", ["currency"])


# --------------------------------------------------------------------------- one application


async def test_a_second_application_is_locked_out_while_the_gateway_is_connected(
    qort_gateway: TestGateway, module_sandbox: QortSandbox
) -> None:
    gw = qort_gateway
    await gw.data('{ businessPartner(code: "DEMO-001") { code name } }')  # the session is live
    logins = module_sandbox.calls["Login"]
    response = await backoffice_login(module_sandbox)
    assert response.status_code == 500
    assert re.search(rb"<(\w+:)?Code>BUSY</(\w+:)?Code>", response.content), response.text
    assert b"in use by another application (brokergraph-gateway)" in response.content
    await gw.data('{ businessPartner(code: "DEMO-002") { code name } }')
    assert module_sandbox.calls["Login"] == logins + 1, "only the refused second application"


async def test_the_gateway_answers_busy_while_another_application_holds_qort(
    qort_gateway: TestGateway, module_sandbox: QortSandbox, busy_cooldown_seconds: float
) -> None:
    gw = qort_gateway
    # Partner details are cached for QORT's declared TTL: drop them so the read asks QORT.
    await gw.clear_cache()
    module_sandbox.force_expire_tokens()  # the gateway's session ends; the tool gets in first
    response = await backoffice_login(module_sandbox)
    assert response.status_code == 200, response.text
    token = re.search(rb"<(?:\w+:)?Token>([^<]+)<", response.content)
    assert token is not None
    try:
        started = time.monotonic()
        busy = payload(
            await gw.data(ENABLE, {"code": "DEMO-001"}, token="manager"), "enableTrading"
        )
        (error,) = busy["errors"]
        assert (error["__typename"], error["code"]) == ("UpstreamFailureError", "UPSTREAM_BUSY")
        assert "held by another application" in error["message"]
        # The partner still answers from the gateway's store; the directory's fields fail.
        body = (await gw.post('{ businessPartner(code: "DEMO-001") { code email } }')).json()
        assert body["data"]["businessPartner"] == {"code": "DEMO-001", "email": None}
        assert body["errors"][0]["extensions"]["code"] == "UPSTREAM_BUSY"
        assert body["errors"][0]["path"] == ["businessPartner", "email"]
        assert time.monotonic() - started < 5, "busy fails fast"
    finally:
        logout = await raw_soap(
            module_sandbox, "Logout", f"<q:Token>{token.group(1).decode()}</q:Token>"
        )
        assert logout.status_code == 200, logout.text
    await asyncio.sleep(busy_cooldown_seconds + 0.1)
    data = await gw.data('{ businessPartner(code: "DEMO-001") { code name } }')
    assert data["businessPartner"]["name"] == "Demo Client One"
