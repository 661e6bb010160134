"""What a subscription resolver tells the WebSocket fan-out about its stream.

The fan-out (:mod:`gateway.http._fanout`) runs a subscription once per distinct
document, variables and data scope, and sends the encoded result to every subscriber
of it.  To join a subscriber to a shared execution without a gap or a duplicate it
must know, per event, the event's ``sequence`` in its topic, and it must be able to
start a stream *after* a sequence whatever the document asked for.  The resolver
learns both through the :class:`StreamTap` of the operation iterating it (a context
variable, so resolvers keep their GraphQL signature): it honours ``resume_after``,
says whether its stream can resume at all, and stamps each event's sequence before
yielding it.
"""

from __future__ import annotations

from contextvars import ContextVar

__all__ = ["StreamTap", "current_tap", "install_tap"]


class StreamTap:
    """One operation's view of its root subscription stream."""

    __slots__ = ("resumable", "resume_after", "sequence")

    def __init__(self, resume_after: int | None = None) -> None:
        #: Set by the fan-out: the resolver starts after this sequence instead of what
        #: the document's ``afterSequence`` says.
        self.resume_after = resume_after
        #: Set by the resolver: its stream can start after a sequence (and its events
        #: carry their topic's sequence), so subscribers can move between executions.
        self.resumable = False
        #: Set by the resolver: the sequence of the event it is yielding.
        self.sequence: int | None = None

    def after(self, requested: int | None) -> int | None:
        """Where the stream starts: the fan-out's resume point, else the document's."""
        return requested if self.resume_after is None else self.resume_after


_TAP: ContextVar[StreamTap | None] = ContextVar("brokergraph_stream_tap", default=None)


def current_tap() -> StreamTap | None:
    """The tap of the operation running this resolver (None outside the fan-out)."""
    return _TAP.get()


def install_tap(tap: StreamTap) -> None:
    """Make ``tap`` the current task's (call from the operation's own task)."""
    _TAP.set(tap)
