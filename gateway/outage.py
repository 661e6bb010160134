"""Following a shared service's outages as the calls made to it see them.

The cache and the shared rate limit treat Redis as an optimisation: when it is
unreachable they carry on without it.  :class:`Outage` keeps that quiet and cheap —
one warning when an outage starts and one info line when it ends, however many calls
fail in between, and a short back-off during which calls skip the service instead
of each waiting for a connection to fail.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

__all__ = ["Outage"]


class Outage:
    """The reachability of one shared service (``service`` names it in the log)."""

    def __init__(
        self,
        service: str,
        logger: logging.Logger,
        *,
        retry_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._service = service
        self._logger = logger
        self._retry_seconds = retry_seconds
        self._clock = clock
        self._since: float | None = None
        self._retry_at = 0.0
        #: Outages seen since start (each logged once), for tests and metrics.
        self.count = 0

    @property
    def down(self) -> bool:
        return self._since is not None

    def skip(self) -> bool:
        """Whether a call should skip the service now (down, and not yet time to retry)."""
        return self._since is not None and self._clock() < self._retry_at

    def failed(self, error: BaseException) -> None:
        """A call failed to reach the service: the outage starts or goes on."""
        now = self._clock()
        self._retry_at = now + self._retry_seconds
        if self._since is None:
            self._since = now
            self.count += 1
            # The error's type only: its message may carry the URL (and a password).
            self._logger.warning(
                "%s unreachable (%s); carrying on without it until it answers again",
                self._service,
                type(error).__name__,
            )

    def reached(self) -> None:
        """A call reached the service: an outage, if any, is over."""
        if self._since is not None:
            self._logger.info(
                "%s reachable again after %.1f s", self._service, self._clock() - self._since
            )
            self._since = None
