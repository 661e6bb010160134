"""What one read costs the platform, declared by the connector that makes it.

A read of a period may fan out: cTrader's ``closedPositions`` answers at most two
days, so a year of deals is some 180 calls, plus the look-back the connector adds.
The gateway cannot see that from the GraphQL document, so the connector says it
(:meth:`Connector.upstream_costs`), and the cost model charges a field what the
connector declares for the period its ``from``/``to`` name — before anything runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

__all__ = ["UpstreamCost"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class UpstreamCost:
    """Upstream calls of one read: ``calls`` always, plus ``per_window`` per ``window``.

    Windows are counted over ``[start - lookback, end)``, aligned on whole multiples
    of ``window`` since the Unix epoch (as cTrader's connector splits them, so that
    periods share windows).  Aligned windows are never fewer than any other split of
    the same span into windows that long, so the count is safe for any splitting.
    ``window=None``: the read costs ``calls`` whatever its period.
    """

    calls: int = 1
    window: timedelta | None = None
    per_window: int = 1
    lookback: timedelta = timedelta(0)

    def __post_init__(self) -> None:
        if self.calls < 0 or self.per_window < 0:
            raise ValueError("an upstream cost counts calls: never negative")
        if self.window is not None and self.window <= timedelta(0):
            raise ValueError("an upstream cost's window must be longer than zero")
        if self.lookback < timedelta(0):
            raise ValueError("an upstream cost's look-back cannot be negative")

    def of_period(self, start: datetime, end: datetime) -> int:
        """Calls a read of ``[start, end)`` makes (aware datetimes; none when empty)."""
        if self.window is None:
            return self.calls
        first = start - self.lookback
        if end <= first:
            return self.calls
        low = (first - _EPOCH) // self.window
        high = -((_EPOCH - end) // self.window)  # ceiling division
        return self.calls + self.per_window * (high - low)

    def of_span(self, span: timedelta) -> int:
        """Calls a read of any period ``span`` long may make (the worst alignment)."""
        if self.window is None:
            return self.calls
        total = span + self.lookback
        if total <= timedelta(0):
            return self.calls
        return self.calls + self.per_window * (-(-total // self.window) + 1)
