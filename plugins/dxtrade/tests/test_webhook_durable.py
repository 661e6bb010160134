"""A dxFeed callback is acknowledged only once it is in the event log.

The gateway's log is on a private redis-server of this test, killed while dxFeed
(the sandbox) delivers a callback: the webhook answers 503, records nothing, and the
sandbox's redelivery after the restart is stored once — not answered "duplicate".
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import brokergraph_dxtrade.plugin
import pytest
from brokergraph_dxtrade.sandbox import DxTradeSandbox
from brokergraph_dxtrade.webhook import topic_for

from gateway.testing import open_test_gateway
from tests.private_redis import PrivateRedis

WAIT = 20.0

pytestmark = pytest.mark.redis


async def test_a_callback_the_log_could_not_store_is_redelivered_and_processed_once(
    tmp_path: Path,
) -> None:
    redis_server = PrivateRedis(tmp_path)
    sandbox = DxTradeSandbox()
    await redis_server.start()
    await sandbox.start()
    try:
        async with open_test_gateway(
            brokergraph_dxtrade.plugin, [sandbox], tmp_path, events={"url": redis_server.url}
        ) as gateway:
            log = gateway.services.events
            topic = topic_for("alice@default")
            await redis_server.kill()
            sandbox.callback_retry_delays = (0.2, 0.5, 1.0, 2.0, 4.0)
            delivery = sandbox.send_callback("activated", "alice")
            (sent,) = [d for d in sandbox.callbacks if d.delivery_id == delivery]
            for _ in range(int(WAIT / 0.02)):  # the first attempt, while the log is down
                if sent.attempts:
                    break
                await asyncio.sleep(0.02)
            assert sent.attempts[:1] == [503]
            await redis_server.start()
            await sandbox.wait_callbacks(within=WAIT)
            assert sent.status == "delivered"
            assert sent.attempts[-1] == 202
            assert set(sent.attempts[:-1]) == {503}, sent.attempts

            async with log.follow(topic, after=0) as follower:
                async with asyncio.timeout(WAIT):
                    stored = await anext(follower)
                    assert (stored.sequence, stored.event["deliveryId"]) == (1, delivery)
                    await log.append(topic, "marker")
                    # Nothing between the callback and the marker: stored exactly once.
                    assert (await anext(follower)).event == "marker"
            assert not await gateway.services.store.remember_delivery("dxfeed", delivery)
    finally:
        await sandbox.stop()
        await redis_server.kill()
