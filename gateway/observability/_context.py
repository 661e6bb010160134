"""What one HTTP request or WebSocket connection has done so far, for its access line.

The access middleware sets :data:`current` before the app runs; every task the
request starts copies the context, so they all share the one mutable record.
"""

from __future__ import annotations

import contextvars
import time
from dataclasses import dataclass, field

__all__ = ["RequestRecord", "current", "note_upstream_call"]


@dataclass(slots=True)
class RequestRecord:
    request_id: str
    trace_id: str | None = None
    started: float = field(default_factory=time.perf_counter)
    operation: str | None = None
    operation_type: str | None = None
    #: The authenticated viewer's subject (never its credentials).
    viewer: str | None = None
    upstream_calls: int = 0


current: contextvars.ContextVar[RequestRecord | None] = contextvars.ContextVar(
    "brokergraph_request", default=None
)


def note_upstream_call() -> None:
    record = current.get()
    if record is not None:
        record.upstream_calls += 1
