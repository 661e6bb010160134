"""The gateway's event bus: in-process by default, Redis pub/sub for several replicas.

Subscribers get a topic's events in publish order.  A subscriber is never skipped
past events silently: one that falls too far behind, or whose Redis connection
drops, is cut off with :class:`SubscriptionLost` (:class:`SlowConsumer` for the
former) and must resubscribe and resynchronise.
"""

from __future__ import annotations

from gateway.events._base import EventBus
from gateway.events._factory import create_event_bus
from gateway.events._memory import InProcessEventBus
from gateway.events._redis import RedisEventBus
from gateway.events._subscription import SlowConsumer, Subscription, SubscriptionLost

__all__ = [
    "EventBus",
    "InProcessEventBus",
    "RedisEventBus",
    "SlowConsumer",
    "Subscription",
    "SubscriptionLost",
    "create_event_bus",
]
