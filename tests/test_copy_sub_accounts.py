"""A client resolves its Copy sub-accounts, over real sockets against the cTrader sandbox.

cTrader account 9000001 of DEMO-001 has two Copy sub-accounts in the seed: accounts of
the platform linked to no partner.  Their ids in ``AccountAnalytics.copySubAccounts``
answered null from ``node`` (not the partner's); now the partner's client resolves them
(reads only), another client still does not, and ``CopySubAccount.account`` gives the
sub-account in place.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import brokergraph_ctrader.plugin
import pytest
import pytest_asyncio
from brokergraph_ctrader.sandbox import CTraderSandbox

from gateway.graphql.ids import encode_id
from gateway.testing import TestGateway, open_test_gateway


@dataclass(frozen=True)
class World:
    gw: TestGateway
    ctrader: CTraderSandbox


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async with (
        CTraderSandbox() as ctrader,
        open_test_gateway(
            [brokergraph_ctrader.plugin], [ctrader], tmp_path_factory.mktemp("copy-subs")
        ) as gw,
    ):
        yield World(gw, ctrader)


PARENT = encode_id("Account", "ctrader", "9000001")
ANALYTICS = """query($id: ID!) { account(id: $id) {
  analytics(from: "2026-08-01T00:00:00Z", to: "2026-11-15T00:00:00Z") {
    copySubAccounts { accountId externalId balance { amount currency }
      account { id externalId balance { amount currency } } } } } }"""
NODE = """query($id: ID!) { node(id: $id) {
  id ... on Account { externalId platform balance { amount currency } } } }"""


def sub_account_reads(sandbox: CTraderSandbox) -> int:
    return sum(n for key, n in sandbox.calls.items() if "subaccounts" in key)


async def test_a_client_resolves_its_copy_sub_accounts(world: World) -> None:
    gw = world.gw
    body = await gw.query(ANALYTICS, {"id": PARENT}, token="client")
    assert "errors" not in body, body
    subs = body["data"]["account"]["analytics"]["copySubAccounts"]
    assert len(subs) == 2  # the seed's two
    links = await gw.services.store.links_of_partner("DEMO-001", kind="account")
    linked = {(link.platform, link.external_id) for link in links}
    for sub in subs:
        assert sub["accountId"] == encode_id("Account", "ctrader", sub["externalId"])
        assert ("ctrader", sub["externalId"]) not in linked  # linked to no partner
        # In place: the sub-account itself, its balance the analytics' one.
        assert sub["account"]["id"] == sub["accountId"]
        assert sub["account"]["balance"] == sub["balance"]

        node = await gw.query(NODE, {"id": sub["accountId"]}, token="client")
        assert "errors" not in node, node
        found = node["data"]["node"]
        assert (found["id"], found["platform"]) == (sub["accountId"], "ctrader")
        assert found["balance"] == sub["balance"]

        # Another partner's client: as unknown as before.
        theirs = await gw.query(NODE, {"id": sub["accountId"]}, token="other_client")
        assert theirs["data"]["node"] is None
        assert theirs["errors"][0]["extensions"]["code"] == "NOT_FOUND"


async def test_an_unlinked_account_stays_unknown_and_sub_account_reads_are_cached(
    world: World,
) -> None:
    """An account that is nobody's sub-account is NOT_FOUND for the client; the parents'
    sub-account lists are read once and then answered from the cache."""
    gw = world.gw
    await gw.clear_cache()
    stranger = encode_id("Account", "ctrader", "9999999")
    before = sub_account_reads(world.ctrader)
    first = await gw.query(NODE, {"id": stranger}, token="client")
    assert first["data"]["node"] is None
    assert first["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    read = sub_account_reads(world.ctrader) - before
    links = await gw.services.store.links_of_partner("DEMO-001", kind="account")
    assert read == sum(link.platform == "ctrader" for link in links)  # one per parent
    again = await gw.query(NODE, {"id": stranger}, token="client")
    assert again["data"]["node"] is None
    assert sub_account_reads(world.ctrader) - before == read  # cached: no new read


async def test_staff_and_writes_are_unchanged(world: World) -> None:
    """Admins saw unlinked accounts already; a write on a sub-account still needs a link."""
    gw = world.gw
    body = await gw.query(ANALYTICS, {"id": PARENT}, token="client")
    sub_id: Any = body["data"]["account"]["analytics"]["copySubAccounts"][0]["accountId"]
    admin = await gw.query(NODE, {"id": sub_id})
    assert admin["data"]["node"]["id"] == sub_id
    deposit = await gw.query(
        """mutation($id: ID!) { deposit(input: {accountId: $id, amount: "1",
          idempotencyKey: "4b7e0c52-9f1a-4d8e-b0a6-1c2d3e4f5a6b"}) { errors { code } } }""",
        {"id": sub_id},
        token="manager",
    )
    assert deposit["data"]["deposit"]["errors"] == [{"code": "NOT_FOUND"}], deposit
