"""The default bus, for a single gateway process."""

from __future__ import annotations

from typing import Any

from gateway.events._base import EventBus
from gateway.events._subscription import Subscription

__all__ = ["InProcessEventBus"]


class InProcessEventBus(EventBus):
    """Delivers within this process; ``publish`` returns the number of subscribers
    that took the event."""

    async def publish(self, topic: str, event: Any) -> int:
        self._check_open()
        return self._fanout.deliver(topic, event)

    async def close(self) -> None:
        self._closed = True
        for subscription in self._fanout.drain():
            subscription._end()

    async def _attach(self, subscription: Subscription) -> None:
        self._check_open()
        self._fanout.add(subscription)

    async def _detach(self, subscription: Subscription) -> None:
        self._fanout.discard(subscription)
