"""The event bus interface and the local fan-out every bus shares."""

from __future__ import annotations

import abc
from typing import Any

from gateway.events._subscription import Subscription

__all__ = ["EventBus", "Fanout"]


class Fanout:
    """The local subscriptions per topic; delivers synchronously, so in order."""

    def __init__(self) -> None:
        # dicts as ordered sets: deterministic delivery order between subscribers.
        self._topics: dict[str, dict[Subscription, None]] = {}

    def add(self, subscription: Subscription) -> bool:
        """Register; True if it is the topic's first local subscription."""
        subscriptions = self._topics.setdefault(subscription.topic, {})
        subscriptions[subscription] = None
        return len(subscriptions) == 1

    def discard(self, subscription: Subscription) -> bool:
        """Unregister; True if that removed the topic's last local subscription."""
        subscriptions = self._topics.get(subscription.topic)
        if subscriptions is None or subscription not in subscriptions:
            return False
        del subscriptions[subscription]
        if subscriptions:
            return False
        del self._topics[subscription.topic]
        return True

    def deliver(self, topic: str, event: Any) -> int:
        """Queue ``event`` for the topic's subscriptions; how many took it."""
        # Cut-off subscriptions stay registered until they exit, so the bus can
        # unsubscribe from the topic when the last of them leaves.
        subscriptions = self._topics.get(topic, {})
        return sum(subscription._deliver(event) for subscription in list(subscriptions))

    def drain(self) -> list[Subscription]:
        """Unregister and return every subscription."""
        everyone = [s for subscriptions in self._topics.values() for s in subscriptions]
        self._topics.clear()
        return everyone


class EventBus(abc.ABC):
    """Publish events to topics; subscribers get them in publish order.

    Events are delivered as-is in process; over Redis they are pickled, so every
    replica gets its own copy.  Either way subscribers must not mutate them.
    """

    def __init__(self) -> None:
        self._fanout = Fanout()
        self._closed = False

    @abc.abstractmethod
    async def publish(self, topic: str, event: Any) -> int:
        """Send ``event`` to the topic's subscribers; the number of receivers if known."""

    def subscribe(self, topic: str, *, max_queue: int = 1000) -> Subscription:
        """A subscription to enter with ``async with``; see :class:`Subscription`."""
        return Subscription(topic, max_queue, attach=self._attach, detach=self._detach)

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop delivering; active subscriptions end after their queued events."""

    @abc.abstractmethod
    async def _attach(self, subscription: Subscription) -> None:
        """Start delivering to ``subscription``; effective when this returns."""

    @abc.abstractmethod
    async def _detach(self, subscription: Subscription) -> None:
        """Stop delivering to ``subscription``; safe to call for one never attached."""

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the event bus is closed")
