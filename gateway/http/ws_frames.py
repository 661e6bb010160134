"""Server WebSocket frames written straight to a connection's transport.

uvicorn's ASGI ``send`` takes one message: per frame it checks the connection's state,
has websockets build the frame and makes one ``send`` system call.  On loopback that
call is most of a fan-out delivery's cost, and a QST round is a burst of several
notifications, so a socket got several calls a burst.  A :class:`FrameWriter` lets the
fan-out build a text frame once and hand a socket everything it is due (a burst's
frames, concatenated) in one ``transport.write``: one system call a socket a burst.

Only where that provably matches what ``send`` would have written: uvicorn's
websockets sans-I/O protocol (the one uvicorn picks with websockets installed), no
extension negotiated (permessage-deflate is off: ``gateway/runner.py``), the
connection open with nothing of the protocol's own waiting to go out, and writing not
paused.  A frame a server sends is unmasked, so its bytes are the same for every
connection; each ``transport.write`` of whole frames lands in the socket's buffer
before or after any other write on the event loop, never inside one.  When a check
fails the writer says so (:attr:`BUSY`: use ``send``; :attr:`GONE`: the socket is
done) and the caller takes the ASGI road, which waits for the socket to drain.

The ASGI middleware holding the server's own ``send`` (the access log's, which also
counts what is delivered) puts a writer in the connection scope's ``extensions`` under
:data:`DIRECT_FRAMES`; without one, everything goes through ``send`` as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

__all__ = [
    "BUFFER_LIMIT",
    "BUSY",
    "DIRECT_FRAMES",
    "GONE",
    "READY",
    "FrameWriter",
    "text_frame_header",
]

#: The key of a connection's :class:`FrameWriter` in its scope's ``extensions``.
DIRECT_FRAMES: Final = "brokergraph.direct_frames"
#: Bytes a transport may hold unsent and still be written to directly; above it the
#: socket is slow and its frames take ``send``, which waits for it to drain.
BUFFER_LIMIT: Final = 64 * 1024

READY: Final = 0
BUSY: Final = 1
GONE: Final = 2

_FIN_TEXT: Final = 0x81

try:  # uvicorn picks this protocol when websockets is installed (it is a dependency)
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
    from websockets.protocol import State

    _OPEN: Any = State.OPEN
except ImportError:  # pragma: no cover - another server: everything takes send
    WebSocketsSansIOProtocol = None  # type: ignore[assignment,misc]
    _OPEN = None


def text_frame_header(length: int) -> bytes:
    """The head of a final, unmasked text frame of ``length`` payload bytes (RFC 6455 5.2)."""
    if length < 126:
        return bytes((_FIN_TEXT, length))
    if length < 1 << 16:
        return bytes((_FIN_TEXT, 126)) + length.to_bytes(2, "big")
    return bytes((_FIN_TEXT, 127)) + length.to_bytes(8, "big")


Counter = Callable[[str, int], None]

#: What :meth:`FrameWriter.write_if_ready` reads of uvicorn's protocol (``transport`` is set when
#: the connection is made, after the ASGI app may have been handed ``send``).
_PROTOCOL_STATE: Final = ("conn", "disconnected", "close_sent", "writable")


class FrameWriter:
    """Whole frames written to one uvicorn WebSocket connection's transport."""

    __slots__ = ("_delivered", "_dropped", "_protocol")

    def __init__(self, protocol: Any, delivered: Counter, dropped: Counter) -> None:
        self._protocol = protocol
        self._delivered = delivered
        self._dropped = dropped

    @classmethod
    def for_server_send(
        cls, send: Callable[..., Any], delivered: Counter, dropped: Counter
    ) -> FrameWriter | None:
        """A writer for the connection whose server ``send`` this is (the ASGI server's
        own, unwrapped), or None when it is not a connection this module can write to.

        ``delivered`` and ``dropped`` are told ``(operation id, frames)`` for each write
        (the metrics and access lines ``send``'s wrapper would have counted)."""
        protocol = getattr(send, "__self__", None)
        if WebSocketsSansIOProtocol is None or not isinstance(protocol, WebSocketsSansIOProtocol):
            return None
        if not all(hasattr(protocol, name) for name in _PROTOCOL_STATE):
            return None  # another uvicorn than the one this was written against
        return cls(protocol, delivered, dropped)

    def write_if_ready(self, data: bytes, operation_id: str, frames: int) -> int:
        """Write ``frames`` whole frames of ``operation_id`` if the socket takes them now.

        Returns :data:`READY` (written), :data:`BUSY` (nothing written: use ``send``) or
        :data:`GONE` (nothing written).  One call, not a look then a write: this runs
        once per subscriber per event burst, beside the ``send`` system call itself."""
        protocol = self._protocol
        connection = protocol.conn
        transport = protocol.transport
        if (
            protocol.disconnected
            or protocol.close_sent
            or transport is None
            or transport.is_closing()
            or connection.state is not _OPEN
        ):
            return GONE
        if (
            connection.extensions  # a negotiated extension (deflate) rewrites frames
            or connection.writes  # the protocol's own bytes go first, through send
            or not protocol.writable.is_set()  # paused: send waits for the drain
            or transport.get_write_buffer_size() > BUFFER_LIMIT
        ):
            return BUSY
        transport.write(data)
        self._delivered(operation_id, frames)
        return READY

    def dropped(self, operation_id: str, frames: int) -> None:
        """Count ``frames`` of ``operation_id`` that the gone socket will never get."""
        self._dropped(operation_id, frames)
