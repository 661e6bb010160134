"""Subscriptions over Apollo's multipart HTTP protocol (``multipart/mixed;subscriptionSpec=1.0``).

Each result is a part ``{"payload": {data, errors}}``; an empty part ``{}`` is the
heartbeat (at once, then every five seconds, as Apollo's router sends them); a
transport-level error is ``{"payload": null, "errors": [...]}`` followed by the closing
boundary.  The stream itself is run by :class:`gateway.http._sse.HTTPSubscriptions`;
Strawberry's encoder writes the parts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from strawberry.http.streaming import MultipartSubscriptionTransport

from gateway.http._sse import Framing, encode_json

__all__ = ["MultipartFraming"]


class MultipartFraming(Framing):
    _parts: ClassVar[MultipartSubscriptionTransport] = MultipartSubscriptionTransport()
    headers: ClassVar[Mapping[str, str]] = _parts.headers
    heartbeat_seconds: ClassVar[float] = 5.0
    initial_heartbeat: ClassVar[bool] = True

    @classmethod
    def accepting(cls, accept: str | None) -> MultipartFraming | None:
        """This framing when one of the Accept header's media types asks for it."""
        if not accept:
            return None
        wanted = any(cls._parts.accepts(part) for part in _media_types(accept))
        return cls() if wanted else None

    def opening(self) -> str:
        return f"--{self._parts.separator}"  # each part then ends with the next delimiter

    def next(self, result: dict[str, Any]) -> str:
        return self._parts.encode_next(result, encode_json)  # type: ignore[arg-type]

    def fatal(self, errors: list[dict[str, Any]]) -> str:
        return (
            self._parts.encode_multipart_data({"payload": None, "errors": errors}, encode_json)
            + "--\r\n"
        )

    def complete(self) -> str:
        return "--\r\n"  # the last part ended with the delimiter: make it the closing one

    def heartbeat(self) -> str:
        return self._parts.heartbeat_message(encode_json)


def _media_types(accept: str) -> list[str]:
    """The Accept header's entries; a quoted parameter may hold a comma."""
    entries: list[str] = []
    current: list[str] = []
    quoted = False
    for char in accept:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            entries.append("".join(current))
            current = []
        else:
            current.append(char)
    entries.append("".join(current))
    return [entry.strip() for entry in entries if entry.strip()]
