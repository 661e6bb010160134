"""One mapping of transport failures (httpx, websockets, sockets) to gateway errors.

What matters after a transport failure is whether the request can have reached
the platform.  A refused connection or a pool timeout means it never left; a read
timeout, a reset or a half-received answer means it left and its fate is unknown
— the platform may have applied it (a 5xx or a dropped connection after sending
does not mean it did nothing).  :func:`may_have_arrived` answers that question,
and :func:`transport_error` gives the error class connectors raised until now:
``UpstreamTimeout`` for timeouts, ``UpstreamUnavailable`` for the rest — marked
``details.outcome = "UNKNOWN"`` when the request may have arrived, so the write
path reports a write's lost answer as OUTCOME_UNKNOWN, never "not delivered"
(reads keep their class: the breaker and read retries see them as before).

The libraries are looked up in ``sys.modules`` rather than imported: an error
cannot come from a library nobody loaded, and importing the contract stays cheap.
"""

from __future__ import annotations

import sys
from typing import Any

from gateway.errors import (
    OUTCOME_DETAIL,
    OUTCOME_UNKNOWN_VALUE,
    BrokerGraphError,
    UpstreamTimeout,
    UpstreamUnavailable,
)

__all__ = ["may_have_arrived", "transport_error"]


def _classes(module: str, *names: str) -> tuple[type[BaseException], ...]:
    loaded = sys.modules.get(module)
    if loaded is None:
        return ()
    return tuple(c for c in (getattr(loaded, n, None) for n in names) if isinstance(c, type))


def _never_sent() -> tuple[type[BaseException], ...]:
    """Failures that happen before a single byte of the request is on the wire."""
    return (
        *_classes("httpx", "ConnectError", "ConnectTimeout", "PoolTimeout", "UnsupportedProtocol"),
        *_classes("websockets.exceptions", "InvalidHandshake", "InvalidURI"),
        ConnectionRefusedError,
    )


def may_have_arrived(error: BaseException) -> bool:
    """False only when the failure proves the request never reached the platform."""
    return not isinstance(error, _never_sent())


def _is_timeout(error: BaseException) -> bool:
    timeouts: tuple[type[BaseException], ...] = (
        TimeoutError,
        *_classes("httpx", "TimeoutException"),
    )
    return isinstance(error, timeouts)


def transport_error(
    error: BaseException,
    *,
    platform: str,
    what: str | None = None,
    vendor: str | None = None,
    **details: Any,
) -> BrokerGraphError:
    """The gateway error for a failure to talk to ``platform`` (``what`` names the call).

    ``vendor`` is the name clients read ("cTrader"); ``platform`` the id in details.
    """
    facts = {"platform": platform, **details}
    if may_have_arrived(error):
        facts[OUTCOME_DETAIL] = OUTCOME_UNKNOWN_VALUE
    name = vendor or platform
    who = name if not what else f"{name} ({what})"
    if _is_timeout(error):
        return UpstreamTimeout(f"{who} did not answer in time", details=facts)
    return UpstreamUnavailable(f"{who} cannot be reached ({type(error).__name__})", details=facts)
