"""Input QORT's SOAP envelope cannot carry is the caller's error, refused before any call."""

from __future__ import annotations

import pytest
from brokergraph_qort.client import refuse_unencodable
from brokergraph_qort.sandbox import QortSandbox

from gateway.contract import CreatePartnerRequest, InvalidInput
from gateway.testing import TestGateway

CREATE = """
mutation($input: CreateBusinessPartnerInput!) {
  createBusinessPartner(input: $input) { businessPartner { code } errors { code field } }
}"""


@pytest.mark.parametrize("text", ["Bad\x07Name", "Nul\x00", "\ud800", "x\ufffe"])
def test_characters_xml_cannot_carry_are_refused_by_field(text: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        refuse_unencodable(CreatePartnerRequest(code="C-1", name=text, short_name="ok"))
    assert refused.value.field == ("name",)
    with pytest.raises(InvalidInput) as refused:
        refuse_unencodable(CreatePartnerRequest(code="C-1", name="ok", attributes={"Src": text}))
    assert refused.value.field == ("attributes", "Src")
    with pytest.raises(InvalidInput):
        refuse_unencodable({"Rows": [{"Field": "Name", "Value": text}]})


def test_tabs_newlines_and_ordinary_text_pass() -> None:
    refuse_unencodable(
        CreatePartnerRequest(code="C-1", name="Ünïcode\tname\r\n", attributes={"a": ["b"]})
    )


async def test_a_control_character_is_invalid_input_and_never_opens_the_breaker(
    qort_gateway: TestGateway, module_sandbox: QortSandbox
) -> None:
    calls = sum(module_sandbox.calls.values())
    for attempt in range(8):  # more than breaker_failures (5)
        data = await qort_gateway.data(
            CREATE, {"input": {"code": f"CTRL-{attempt}", "name": "Bell\x07Corp"}}
        )
        errors = data["createBusinessPartner"]["errors"]
        assert errors == [{"code": "INVALID_INPUT", "field": ["name"]}], errors
    assert sum(module_sandbox.calls.values()) == calls  # nothing reached QORT
    breaker = qort_gateway.services.registry.upstreams["qort"].breaker
    assert breaker.state.value == "CLOSED"
