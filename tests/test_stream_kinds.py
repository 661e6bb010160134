"""What a client learns about streams before subscribing: ``Account.streams`` follows
what the account's connector declares (a platform without streams: the cTrader
plugin's tests), and a market-data event's ``kind`` is an enum beside the platform's
own ``vendorKind``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from gateway.graphql.types import MarketDataEventKind, market_data_event_kind
from tests.gateway_fixtures import GatewayUnderTest, account_gid, open_gateway, trader_gid
from tests.test_websocket import bearer, connect, receive, subscribe
from tests.toy.sandbox import ToySandbox

STREAMS = "query($id: ID!) { account(id: $id) { streams } }"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def own(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[GatewayUnderTest]:
    """A gateway over its own toy sandbox: deactivating a trader here touches no other test."""
    sandbox = ToySandbox()
    await sandbox.start()
    try:
        async with open_gateway(sandbox, tmp_path_factory.mktemp("stream-kinds")) as running:
            yield running
    finally:
        await sandbox.stop()


async def _streams(gateway: GatewayUnderTest) -> list[str]:
    status, body = await gateway.query(STREAMS, {"id": account_gid("1001")}, token="client")
    assert status == 200 and "errors" not in body, body
    streams: list[str] = body["data"]["account"]["streams"]
    return streams


async def test_an_account_lists_the_streams_its_platform_serves(gateway: GatewayUnderTest) -> None:
    assert await _streams(gateway) == ["ORDER_EVENTS", "ACCOUNT_EVENTS"]


@pytest.mark.parametrize(
    ("vendor", "kind"),
    [
        ("subscription.activated", MarketDataEventKind.ACTIVATED),
        ("subscription.deactivated", MarketDataEventKind.DEACTIVATED),
        ("subscription.added", MarketDataEventKind.ADDED),
        ("subscription.removed", MarketDataEventKind.REMOVED),
        ("CANCELLED", MarketDataEventKind.CANCELLED),
        ("cancelled", MarketDataEventKind.CANCELLED),
        ("credentials.generated", MarketDataEventKind.OTHER),
        ("", MarketDataEventKind.OTHER),
    ],
)
def test_vendor_event_names_map_to_the_enum(vendor: str, kind: MarketDataEventKind) -> None:
    assert market_data_event_kind(vendor) is kind


async def test_a_market_data_event_carries_the_enum_and_the_vendor_kind(
    own: GatewayUnderTest,
) -> None:
    """Over a real socket: deactivateTrader cancels T1's subscriptions; each event says
    CANCELLED in ``kind`` and the toy platform's own name in ``vendorKind``."""
    trader = trader_gid("T1")
    async with connect(own, bearer(own, "admin")) as socket:
        assert (await receive(socket))["type"] == "connection_ack"
        await subscribe(
            socket,
            "subscription($id: ID!) { marketDataSubscriptionEvents(traderId: $id) "
            "{ kind vendorKind subscription { active } } }",
            {"id": trader},
        )
        _, deactivated = await own.query(
            "mutation($t: ID!) { deactivateTrader(input: {traderId: $t, "
            "cancelMarketDataSubscriptions: true}) { errors { code } } }",
            {"t": trader},
        )
        assert deactivated["data"]["deactivateTrader"]["errors"] == [], deactivated
        message = await receive(socket)
    assert message["type"] == "next", message
    assert message["payload"]["data"]["marketDataSubscriptionEvents"] == {
        "kind": "CANCELLED",
        "vendorKind": "CANCELLED",
        "subscription": {"active": False},
    }
