"""The gateway's conformance kit against the DXtrade connector and its sandbox.

Every declared capability runs (TRADER_PROVISIONING, ACCOUNT_READS, ACCOUNT_HISTORY,
FUNDING, CREDIT, MARKET_DATA_ENTITLEMENTS); the rest are skipped as undeclared.  The
kit runs again against sandboxes that answer otherwise wherever the vendor facts only
guess (see ``brokergraph_dxtrade.sandbox.rules``).
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from brokergraph_dxtrade.connector import DxTradeConnector
from brokergraph_dxtrade.sandbox import DxTradeSandbox, Rules
from brokergraph_dxtrade.webhook import parse_callback, topic_for

from gateway.contract import Capability, Connector
from gateway.contract.sandbox import Sandbox
from gateway.testing import (
    ConformanceSuite,
    EventWatcher,
    Sample,
    check_market_data_subscription_event,
    requires,
)

SAMPLE = Sample(
    account_ids=["default:alice-usd", "default:bob-usd", "default:carol-usd"],
    trader_ids=["alice@default", "bob@default", "carol@default"],
    funded_account_id="default:alice-usd",
    amount=Decimal("12.34"),
    history_account_id="default:alice-usd",
    period=(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 4, 1, tzinfo=UTC)),
    order_account_id="default:alice-usd",
    new_trader_partner_code="DEMO-001",
    currency="USD",
)


class TestDxTradeConformance(ConformanceSuite):
    connector_class = DxTradeConnector
    sandbox_class = DxTradeSandbox
    sample = SAMPLE

    # DXtrade-specific: the events the webhook publishes come out of market_data_events.

    @requires(Capability.MARKET_DATA_ENTITLEMENTS)
    async def test_market_data_events_relay_published_callbacks(
        self, connector: Connector, sandbox: Sandbox
    ) -> None:
        assert isinstance(connector, DxTradeConnector)
        payload = parse_callback(
            json.dumps(
                {
                    "deliveryId": "conformance-1",
                    "type": "subscription.deactivated",
                    "occurredAt": "2025-03-14T09:30:00.000Z",
                    "dxFeedAccountId": "6ddbec14-dd36-4358-adbb-80421d044ba3",
                    "login": "alice",
                    "domain": "default",
                    "subscriptions": [
                        {"name": "CME Globex Top of Book", "endDate": "2027-01-31", "active": False}
                    ],
                }
            ).encode(),
            None,
        ).payload()
        stream = connector.market_data_events("alice@default")
        async with EventWatcher(stream, self.wait_seconds) as watcher:
            await asyncio.sleep(0.1)  # let the watcher's task attach the subscription
            await connector.context.events.publish(topic_for("alice@default"), payload)
            event = await watcher.wait_for(lambda e: True, "relayed from the bus")
        check_market_data_subscription_event(event, connector.platform)
        assert event.kind == "subscription.deactivated"
        assert event.trader_id == "alice@default"
        assert event.subscription is not None
        assert not event.subscription.active


class UndedupedSandbox(DxTradeSandbox):
    """A DXtrade host that applies a repeated cash id again, ignores a stale
    ``If-Match`` and has no disable route (it answers 405)."""

    def __init__(self, **options: Any) -> None:
        rules = Rules(cash_id_repeat="apply", etag_checks=False, disable_route=405)
        super().__init__(rules=rules, **options)


class ConflictingSandbox(DxTradeSandbox):
    """A DXtrade host that refuses every repeated cash id (409) and answers 400 to the
    disable route."""

    def __init__(self, **options: Any) -> None:
        super().__init__(rules=Rules(cash_id_repeat="conflict", disable_route=400), **options)


class TestDxTradeConformanceUndeduped(TestDxTradeConformance):
    sandbox_class = UndedupedSandbox


class TestDxTradeConformanceConflicting(TestDxTradeConformance):
    sandbox_class = ConflictingSandbox
