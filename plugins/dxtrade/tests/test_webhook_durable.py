"""A dxFeed callback is acknowledged only once it is in the event log.

The gateway's log is on a private redis-server of this test, killed while dxFeed
(the sandbox) delivers a callback: the webhook answers 503, records nothing, and the
sandbox's redelivery after the restart is stored once — not answered "duplicate".
"""

from __future__ import annotations

import asyncio
import signal
import socket
from pathlib import Path

import brokergraph_dxtrade.plugin
import pytest
import redis.asyncio as aioredis
from brokergraph_dxtrade.sandbox import DxTradeSandbox
from brokergraph_dxtrade.webhook import topic_for

from gateway.testing import open_test_gateway

WAIT = 20.0

pytestmark = pytest.mark.redis


class PrivateRedis:
    """A redis-server on a free port, AOF fsynced on every write, to kill and restart."""

    def __init__(self, directory: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.url = f"redis://127.0.0.1:{probe.getsockname()[1]}/0"
            self._port = str(probe.getsockname()[1])
        self._directory = str(directory)
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self._process = await asyncio.create_subprocess_exec(
            *("redis-server", "--port", self._port, "--bind", "127.0.0.1", "--save", ""),
            *("--appendonly", "yes", "--appendfsync", "always", "--dir", self._directory),
            stdout=asyncio.subprocess.DEVNULL,
        )
        client = aioredis.Redis.from_url(self.url)
        try:
            async with asyncio.timeout(WAIT):
                while True:
                    try:
                        await client.ping()
                        return
                    except aioredis.ConnectionError:
                        await asyncio.sleep(0.02)
        finally:
            await client.aclose()

    async def kill(self) -> None:
        if self._process is not None and self._process.returncode is None:
            self._process.send_signal(signal.SIGKILL)
            await self._process.wait()


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
