"""The gateway's events: the event log every source appends to, and the bus under it.

:class:`EventLog` is the one road: appending numbers an event per topic, once, and
followers (any replica) get what they missed after a resume point, then live events,
with no gap and no duplicate — in process by default (:class:`InProcessEventLog`,
bounded), on Redis Streams for several replicas (:class:`RedisEventLog`).

:class:`EventBus` is the transient layer under it (in-process, or Redis pub/sub): its
subscribers get a topic's events in publish order and are never skipped past events
silently — one that falls too far behind, or whose Redis connection drops, is cut off
with :class:`SubscriptionLost` (:class:`SlowConsumer` for the former).
"""

from __future__ import annotations

from gateway.events._base import EventBus
from gateway.events._factory import create_event_bus, create_event_log
from gateway.events._log import EventLog, LogEntry, LogFollower, LogPage, Retention
from gateway.events._memory import InProcessEventBus
from gateway.events._memory_log import InProcessEventLog
from gateway.events._redis import RedisEventBus
from gateway.events._redis_log import RedisEventLog
from gateway.events._subscription import SlowConsumer, Subscription, SubscriptionLost

__all__ = [
    "EventBus",
    "EventLog",
    "InProcessEventBus",
    "InProcessEventLog",
    "LogEntry",
    "LogFollower",
    "LogPage",
    "RedisEventBus",
    "RedisEventLog",
    "Retention",
    "SlowConsumer",
    "Subscription",
    "SubscriptionLost",
    "create_event_bus",
    "create_event_log",
]
