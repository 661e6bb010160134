"""Authenticating routed calls between replicas: HMAC-SHA256 of a cluster secret.

The header is ``t=<unix seconds>,v1=<hex HMAC of "<t>." + body>``.  A receiver
accepts a signature at most :data:`WINDOW_SECONDS` away from its own clock and each
call id once (:class:`SeenCalls`), so a captured call cannot be replayed — a write
is never applied twice, by an attacker or by a confused sender.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import OrderedDict

__all__ = ["SIGNATURE_HEADER", "WINDOW_SECONDS", "SeenCalls", "sign", "verify"]

SIGNATURE_HEADER = "X-Brokergraph-Cluster-Signature"
WINDOW_SECONDS = 30
#: Call ids remembered at most (a replica routes far fewer in a window).
MAX_SEEN = 100_000


def _mac(secret: bytes, timestamp: int, body: bytes) -> str:
    return hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: bytes, body: bytes, now: float | None = None) -> str:
    timestamp = int(time.time() if now is None else now)
    return f"t={timestamp},v1={_mac(secret, timestamp, body)}"


def verify(secret: bytes, header: str | None, body: bytes, now: float | None = None) -> bool:
    """True when ``header`` signs ``body`` with ``secret`` within the time window."""
    if not header:
        return False
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
        signature = parts["v1"]
    except (KeyError, ValueError):
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > WINDOW_SECONDS:
        return False
    return hmac.compare_digest(signature, _mac(secret, timestamp, body))


class SeenCalls:
    """Call ids accepted within the last two windows; a second arrival is refused."""

    def __init__(self) -> None:
        self._seen: OrderedDict[str, float] = OrderedDict()

    def first_time(self, call_id: str, now: float | None = None) -> bool:
        current = time.monotonic() if now is None else now
        horizon = current - 2 * WINDOW_SECONDS
        while self._seen and (
            next(iter(self._seen.values())) < horizon or len(self._seen) >= MAX_SEEN
        ):
            self._seen.popitem(last=False)
        if call_id in self._seen:
            return False
        self._seen[call_id] = current
        return True
