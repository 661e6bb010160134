"""Typed Data model extension fields end to end: a gateway with the QORT connector, the
sandbox behind it.

The sandbox declares (FirmAttributeDefs, inferred) RiskProfile and Citizenship STRING,
InvestmentLimit DECIMAL, QualifiedSince DATE and MarginTrading BOOLEAN; DEMO-001 holds
RiskProfile "moderate", Citizenship "RU", InvestmentLimit "1500000.00", MarginTrading "n".
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from brokergraph_qort.sandbox import QortSandbox
from brokergraph_qort.sandbox.store import ERROR
from brokergraph_qort.sandbox.tables import FIRM_ATTRIBUTES

from gateway.testing import TestGateway

ATTRIBUTE = "key type declared value stringValue decimalValue dateValue booleanValue"
RECORD = f"""
query($code: String!) {{
  qortPartnerRecord(code: $code) {{ extensionAttributes {{ {ATTRIBUTE} }} }}
  businessPartner(code: $code) {{ attributes }}
}}"""
DEFINITIONS = "{ qortAttributeDefinitions { key type description } }"
SET = f"""
mutation($input: SetQortPartnerAttributesInput!) {{
  setQortPartnerAttributes(input: $input) {{
    partnerRecord {{ extensionAttributes {{ {ATTRIBUTE} }} }}
    errors {{ __typename code message field }}
  }}
}}"""


async def fresh(gw: TestGateway, sandbox: QortSandbox) -> None:
    """Nothing cached, QORT's session open again (the reset ended it), calls from zero."""
    await gw.clear_cache()
    assert "errors" not in await gw.query('{ qortPartnerRecord(code: "DEMO-002") { code } }')
    await gw.clear_cache()
    sandbox.calls.clear()


def by_key(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a["key"]: a for a in record["extensionAttributes"]}


async def set_attributes(
    gw: TestGateway, values: dict[str, str | None], token: str = "admin"
) -> dict[str, Any]:
    attributes = [{"key": k, "value": v} for k, v in values.items()]
    variables = {"input": {"partnerCode": "DEMO-001", "attributes": attributes}}
    body = await gw.query(SET, variables, token=token)
    assert "errors" not in body, body
    payload: dict[str, Any] = body["data"]["setQortPartnerAttributes"]
    return payload


async def test_definitions_and_typed_values_read_from_qort(
    qort_gateway: TestGateway, sandbox: QortSandbox
) -> None:
    await fresh(qort_gateway, sandbox)
    definitions = (await qort_gateway.data(DEFINITIONS, token="demo_client"))[
        "qortAttributeDefinitions"
    ]
    assert {d["key"]: d["type"] for d in definitions} == {
        "Citizenship": "STRING",
        "InvestmentLimit": "DECIMAL",
        "MarginTrading": "BOOLEAN",
        "QualifiedSince": "DATE",
        "RiskProfile": "STRING",
    }
    data = await qort_gateway.data(RECORD, {"code": "DEMO-001"}, token="demo_client")
    attributes = by_key(data["qortPartnerRecord"])
    assert attributes["InvestmentLimit"] == {
        "key": "InvestmentLimit",
        "type": "DECIMAL",
        "declared": True,
        "value": "1500000.00",
        "stringValue": None,
        "decimalValue": "1500000.00",
        "dateValue": None,
        "booleanValue": None,
    }
    assert (attributes["MarginTrading"]["booleanValue"], attributes["MarginTrading"]["value"]) == (
        False,
        "false",
    )
    assert attributes["RiskProfile"]["stringValue"] == "moderate"
    # Broker is a Firms column QORT mirrors among the fields; no definition types it.
    assert (attributes["Broker"]["type"], attributes["Broker"]["declared"]) == ("STRING", False)
    # The untyped JSON map is unchanged: QORT's text.
    assert data["businessPartner"]["attributes"]["MarginTrading"] == "n"
    assert sandbox.calls["ExportRecords"] == 1, (sandbox.calls, "the definitions: one read")


async def test_typed_values_are_written_in_qorts_text(
    qort_gateway: TestGateway, sandbox: QortSandbox
) -> None:
    await fresh(qort_gateway, sandbox)
    payload = await set_attributes(
        qort_gateway,
        {
            "InvestmentLimit": "2500000.5",
            "QualifiedSince": "2024-05-31",
            "MarginTrading": "true",
            "Citizenship": None,
        },
    )
    assert payload["errors"] == []
    attributes = by_key(payload["partnerRecord"])
    assert attributes["InvestmentLimit"]["decimalValue"] == "2500000.5"
    assert attributes["QualifiedSince"]["dateValue"] == "2024-05-31"
    assert attributes["MarginTrading"]["booleanValue"] is True
    assert "Citizenship" not in attributes
    stored = {
        row.values["Name"]: row.values.get("Value")
        for row in sandbox.store.owned(FIRM_ATTRIBUTES, "DEMO-001")
    }
    assert (stored["QualifiedSince"], stored["MarginTrading"], stored["InvestmentLimit"]) == (
        "20240531",
        "y",
        "2500000.5",
    )
    assert sandbox.calls["ImportRecords"] == 1, "one FirmAttributes import"


async def test_a_value_not_of_its_declared_type_never_reaches_qort(
    qort_gateway: TestGateway, sandbox: QortSandbox
) -> None:
    # QORT itself would store anything now: only the gateway's check stands between.
    sandbox.check_attribute_types = False
    await fresh(qort_gateway, sandbox)
    await qort_gateway.data(RECORD, {"code": "DEMO-001"})  # definitions and packet read
    before = Counter(sandbox.calls)
    cases: list[tuple[dict[str, str | None], str]] = [
        ({"InvestmentLimit": "lots"}, "InvestmentLimit"),
        ({"InvestmentLimit": "NaN"}, "InvestmentLimit"),
        ({"QualifiedSince": "31.05.2024"}, "QualifiedSince"),
        ({"QualifiedSince": "2024-02-30"}, "QualifiedSince"),
        ({"MarginTrading": "maybe"}, "MarginTrading"),
        ({"RiskProfile": "x" * 256}, "RiskProfile"),
        ({"RiskProfile": "ok", "Undeclared": "x"}, "Undeclared"),
        ({"bad key": "x"}, "bad key"),
    ]
    for values, field in cases:
        payload = await set_attributes(qort_gateway, values)
        (error,) = payload["errors"]
        assert (error["__typename"], error["code"]) == ("InvalidInputError", "INVALID_INPUT")
        assert error["field"] == ["attributes", field], (values, error)
        assert payload["partnerRecord"] is None
    # The same checks on the untyped path (updateBusinessPartner's JSON attributes).
    update = """mutation($input: UpdateBusinessPartnerInput!) {
      updateBusinessPartner(input: $input) { errors { code field } } }"""
    bad = {"input": {"code": "DEMO-001", "attributes": {"InvestmentLimit": "lots"}}}
    errors = (await qort_gateway.data(update, bad))["updateBusinessPartner"]["errors"]
    assert errors == [{"code": "INVALID_INPUT", "field": ["attributes", "InvestmentLimit"]}]
    assert Counter(sandbox.calls) == before, "no call at all"

    # A client may read its fields but not write them.
    refused = await set_attributes(qort_gateway, {"RiskProfile": "bold"}, token="demo_client")
    assert refused["errors"][0]["code"] == "PERMISSION_DENIED"
    assert sandbox.calls["ImportRecords"] == 0


async def test_qort_refuses_a_value_of_the_wrong_type_too(
    qort_gateway: TestGateway, sandbox: QortSandbox
) -> None:
    """The sandbox's own check (on by default) behind the gateway's: a record written
    around the gateway is refused with QORT's ErrorLog."""
    result = sandbox.store.apply(
        FIRM_ATTRIBUTES,
        "4",
        [("BOCode", "DEMO-001"), ("Name", "InvestmentLimit"), ("Value", "lots")],
    )
    assert (result.is_processed, result.error_log) == (
        ERROR,
        "Value of InvestmentLimit must be a DECIMAL, not 'lots'",
    )
