"""A partner whose platforms partly fail, end to end over real sockets.

One gateway with QORT (the partner directory and two sub-accounts of DEMO-001) and
cTrader (two more accounts of DEMO-001), each against its sandbox.  Faults come from
the QORT sandbox's knobs: ``fail_next`` (QORT failing) and ``throttle_next`` (QORT
answering TOO_MANY_REQUESTS, which the gateway reports as RATE_LIMITED).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import brokergraph_ctrader.plugin
import brokergraph_qort.plugin
import pytest
import pytest_asyncio
from brokergraph_ctrader.sandbox import CTraderSandbox
from brokergraph_qort.sandbox import QortSandbox

from gateway.graphql.ids import encode_id
from gateway.testing import TestGateway, open_test_gateway


@dataclass(frozen=True)
class World:
    gw: TestGateway
    qort: QortSandbox
    ctrader: CTraderSandbox


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async with (
        QortSandbox() as qort,
        CTraderSandbox() as ctrader,
        open_test_gateway(
            [brokergraph_qort.plugin, brokergraph_ctrader.plugin],
            [qort, ctrader],
            tmp_path_factory.mktemp("partner-errors"),
            # One failed SOAP call fails a read: no retry hides the knob's fault.
            resilience={"qort": {"read_retries": 0}},
        ) as gw,
    ):
        yield World(gw, qort, ctrader)


def errors_at(body: dict[str, Any]) -> dict[tuple[str | int, ...], dict[str, Any]]:
    """The body's errors by path."""
    return {tuple(e["path"]): e for e in body.get("errors", [])}


# --------------------------------------------------------------------------- per-account errors

ACCOUNTS = """{ businessPartner(code: "DEMO-001") {
  code accounts { id platform externalId }
} }"""


async def test_each_failed_account_names_its_account_in_its_error(world: World) -> None:
    """QORT fails its accounts read: both QORT sub-accounts are null, each with an error
    that says which account it is (they failed in one batch, sharing one upstream error),
    and the cTrader accounts still answer."""
    store = world.gw.services.store
    links = await store.links_of_partner("DEMO-001", kind="account")
    expected = [encode_id("Account", link.platform, link.external_id) for link in links]
    assert sum(link.platform == "qort" for link in links) == 2

    await world.gw.clear_cache()
    warm = await world.gw.query(ACCOUNTS)  # the directory's read is cached from here on
    assert "errors" not in warm, warm
    assert [a["id"] for a in warm["data"]["businessPartner"]["accounts"]] == expected

    await world.gw.services.cache.delete_prefix("account")  # accounts are read again
    world.qort.fail_next(1)  # one of QORT's two sub-account reads fails: the batch fails
    body = await world.gw.query(ACCOUNTS)
    accounts = body["data"]["businessPartner"]["accounts"]
    errors = errors_at(body)
    for index, link in enumerate(links):
        path = ("businessPartner", "accounts", index)
        if link.platform != "qort":
            assert accounts[index]["id"] == expected[index]
            assert path not in errors
            continue
        assert accounts[index] is None
        extensions = errors[path]["extensions"]
        assert extensions["code"] == "UPSTREAM_UNAVAILABLE"
        assert extensions["details"]["accountId"] == expected[index]
        assert extensions["details"]["externalId"] == link.external_id
        assert extensions["details"]["platform"] == "qort"
    assert len(errors) == 2


# --------------------------------------------------------------------------- directory throttled

PARTNER = """{ businessPartner(code: "DEMO-001") {
  code name broker email kind attributes
  accounts { platform externalId }
} }"""


async def test_a_throttled_directory_answers_the_partner_from_the_store(world: World) -> None:
    """QORT answering TOO_MANY_REQUESTS to the partner read no longer nulls the partner:
    as when QORT is down, the store's partner and links answer and the directory's
    fields are null, each with RATE_LIMITED (and QORT's retryAfter) at its path."""
    await world.gw.clear_cache()
    assert "errors" not in await world.gw.query("{ viewer { role } }")
    warm = await world.gw.query(PARTNER)  # QORT's session is open before the throttle
    assert "errors" not in warm, warm
    await world.gw.clear_cache()

    world.qort.throttle_next(1, retry_after_seconds=2)
    reads_before = world.qort.calls["GetFirmPacket"]
    body = await world.gw.query(PARTNER)
    partner = body["data"]["businessPartner"]
    assert partner is not None, body
    assert (partner["code"], partner["broker"]) == ("DEMO-001", "demo-broker")
    assert partner["name"], "the store's display name stands in"
    for field in ("email", "kind", "attributes"):
        assert partner[field] is None
        error = errors_at(body)[("businessPartner", field)]
        assert error["extensions"]["code"] == "RATE_LIMITED"
        assert error["extensions"]["details"]["retryAfter"] == 2
    platforms = sorted(a["platform"] for a in partner["accounts"] if a)
    assert platforms == ["ctrader", "ctrader", "qort", "qort"], body
    assert world.qort.calls["GetFirmPacket"] == reads_before, "the throttled call applied nothing"

    again = await world.gw.query(PARTNER)  # the throttle is over: the directory answers
    assert "errors" not in again, again
    assert again["data"]["businessPartner"]["email"] == "one@demo.example"


LIST = "{ businessPartners(first: 10) { edges { node { code email } } } }"


async def test_a_throttled_directory_in_a_list_reports_its_error(world: World) -> None:
    """businessPartners: a throttled directory read left the directory fields null with
    no error at all (as if QORT had no email); now each carries RATE_LIMITED."""
    await world.gw.clear_cache()
    warm = await world.gw.query(LIST, token="manager")
    assert "errors" not in warm, warm
    count = len(warm["data"]["businessPartners"]["edges"])
    await world.gw.clear_cache()
    world.qort.throttle_next(count)  # one GetFirmPacket per partner of the page
    body = await world.gw.query(LIST, token="manager")
    nodes = [edge["node"] for edge in body["data"]["businessPartners"]["edges"]]
    assert nodes and all(node["email"] is None for node in nodes), body
    codes = {e["extensions"]["code"] for e in body["errors"]}
    assert codes == {"RATE_LIMITED"}
    assert len(body["errors"]) == len(nodes)


# --------------------------------------------------------------------------- the paged list

PAGE = """query($after: String) { accounts(partnerCode: "DEMO-001", first: 3, after: $after) {
  totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id platform externalId } }
} }"""


async def test_the_paged_accounts_list_keeps_a_failed_account_with_its_error(
    world: World,
) -> None:
    """Query.accounts dropped an account whose platform failed (a page of 3 answered 1
    or 2 edges with no error); now every account of the page has its edge, a failed one
    with a null node and its own error at its path naming it, as BusinessPartner.accounts
    does, and the next page starts after it."""
    links = await world.gw.services.store.links_of_partner("DEMO-001", kind="account")
    keys = sorted((link.platform, link.external_id) for link in links)
    expected = [encode_id("Account", p, i) for p, i in keys]
    assert [p for p, _ in keys] == ["ctrader", "ctrader", "qort", "qort"]

    await world.gw.clear_cache()
    warm = await world.gw.query(PAGE)
    assert "errors" not in warm, warm
    await world.gw.services.cache.delete_prefix("account")  # accounts are read again
    world.qort.fail_next(1)  # the QORT batch of this page (one sub-account) fails
    body = await world.gw.query(PAGE)
    page = body["data"]["accounts"]
    assert page["totalCount"] == 4
    edges = page["edges"]
    assert len(edges) == 3, body
    assert [e["node"]["id"] for e in edges[:2]] == expected[:2]
    assert edges[2]["node"] is None
    errors = errors_at(body)
    assert list(errors) == [("accounts", "edges", 2, "node")], body
    extensions = errors[("accounts", "edges", 2, "node")]["extensions"]
    assert extensions["code"] == "UPSTREAM_UNAVAILABLE"
    assert extensions["details"]["accountId"] == expected[2]
    assert extensions["details"]["externalId"] == keys[2][1]
    assert extensions["details"]["platform"] == "qort"
    assert page["pageInfo"]["hasNextPage"] is True

    rest = await world.gw.query(PAGE, {"after": page["pageInfo"]["endCursor"]})
    assert "errors" not in rest, rest
    assert [e["node"]["id"] for e in rest["data"]["accounts"]["edges"]] == expected[3:]
