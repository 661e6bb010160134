"""Readiness: can this replica serve?  Its own dependencies only, never a vendor.

A replica is ready when its store answers a trivial query and its plugins are
loaded; a vendor being down is an upstream-health matter (``/upstreamz``), not a
reason to take the replica out of the load balancer — every replica would be
taken out together.  Other parts of the gateway add their own checks with
:meth:`Readiness.add` (the session lease manager adds "lease": running).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

__all__ = ["CHECK_TIMEOUT_SECONDS", "Readiness", "ReadinessReport"]

#: A dependency that takes longer than this to answer a trivial question is not ready.
CHECK_TIMEOUT_SECONDS = 2.0

#: A check raises (or returns False) when its dependency cannot serve.
Check = Callable[[], Awaitable[bool | None]]


@dataclass(frozen=True, slots=True)
class ReadinessReport:
    ready: bool
    #: Check name → "ok" or why not (an error's type, never its message: it may carry a URL).
    checks: dict[str, str]


class Readiness:
    """The named checks ``/readyz`` runs, concurrently, each with a timeout."""

    def __init__(self) -> None:
        self._checks: dict[str, Check] = {}

    def add(self, name: str, check: Check) -> None:
        if name in self._checks:
            raise ValueError(f"readiness check {name!r} is already registered")
        self._checks[name] = check

    async def run(self) -> ReadinessReport:
        names = sorted(self._checks)
        results = await asyncio.gather(*(self._one(self._checks[name]) for name in names))
        checks = dict(zip(names, results, strict=True))
        return ReadinessReport(all(r == "ok" for r in checks.values()), checks)

    @staticmethod
    async def _one(check: Check) -> str:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
                passed = await check()
        except TimeoutError:
            return "timed out"
        except Exception as error:  # whatever fails, the answer is "not ready", not a 500
            return f"failed ({type(error).__name__})"
        return "ok" if passed is not False else "not ready"
