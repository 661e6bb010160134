"""QORT's partner directory through the gateway's read road: its declared TTL holds.

QORT declares ``Capability.PARTNER_DIRECTORY: 30.0``; a partner's details are one
``GetFirmPacket`` call, and within those 30 seconds a second ``me`` or
``businessPartner`` costs QORT nothing.  A change made through the gateway shows
at once all the same.
"""

from __future__ import annotations

from brokergraph_qort.sandbox import QortSandbox

from gateway.testing import TestGateway

ME = "{ me { code name email } }"
PARTNER = "query($code: String!) { businessPartner(code: $code) { code name email } }"
UPDATE = """
mutation($input: UpdateBusinessPartnerInput!) {
  updateBusinessPartner(input: $input) { businessPartner { name } errors { code } }
}"""
PACKET = "GetFirmPacket"  # one partner's details: QORT's firm aggregate


async def test_a_second_me_within_the_ttl_costs_no_qort_call(
    qort_gateway: TestGateway, sandbox: QortSandbox
) -> None:
    gw = qort_gateway
    await gw.clear_cache()  # earlier tests of the module read partners
    first = await gw.data(ME, token="demo_client")
    assert first["me"]["code"] == "DEMO-001"
    assert sandbox.calls[PACKET] >= 1
    calls = dict(sandbox.calls)

    assert await gw.data(ME, token="demo_client") == first
    staff = await gw.data(PARTNER, {"code": "DEMO-001"}, token="admin")
    assert staff["businessPartner"] == first["me"]
    assert dict(sandbox.calls) == calls, "no QORT call within the TTL"


async def test_an_update_through_the_gateway_shows_at_once(
    qort_gateway: TestGateway, sandbox: QortSandbox
) -> None:
    gw = qort_gateway
    await gw.clear_cache()
    await gw.data(PARTNER, {"code": "DEMO-002"})
    updated = await gw.data(UPDATE, {"input": {"code": "DEMO-002", "name": "Renamed Two"}})
    assert updated["updateBusinessPartner"] == {
        "businessPartner": {"name": "Renamed Two"},
        "errors": [],
    }
    packets = sandbox.calls[PACKET]
    data = await gw.data(PARTNER, {"code": "DEMO-002"})
    assert data["businessPartner"]["name"] == "Renamed Two"
    assert sandbox.calls[PACKET] == packets, "the mutation's own re-read refreshed the cache"
