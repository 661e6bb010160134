"""Subscription fan-out: one execution per event for every subscriber of the same stream.

Strawberry runs each subscription on its own: per subscriber and per event, the
connector's stream is read, the selection executed, the result encoded as JSON and
sent.  With a thousand subscribers to one account that is a thousand executions of
the same document on the same data per event.  Here subscribers whose results cannot
differ share one *group*: the group follows the stream once, executes each event
once, encodes it once, and writes the frame to every member's socket with the
member's operation id spliced in.

A subscriber starts on its own stream, exactly as before: the access check, the
snapshot (or the resume after ``afterSequence``), RESUME_POINT_EXPIRED and every
other error are its own.  Once it is live — its last result carried a sequence, had
no error, and no further event was ready at once (so a snapshot is never cut) — it
joins the group of its key at that sequence and its own stream is closed.  A group
starts its stream after the sequence of the member that created it; it keeps its
last :data:`RING` frames, so a member joining a group that got ahead is sent what it
lacks from them (or, when the ring does not reach back that far, resumes its own
stream and tries again later): never a gap, never a duplicate.

The key is the schema, the document, the operation name, the variables and — unless
every field the document selects below the root is a plain attribute (no resolver,
no permission class, no field extension), which cannot read the viewer — the
viewer's identity and scope.  A stream whose connector cannot resume, or whose events
carry no sequence, is never shared.

Sends do not wait.  A group's sender passes over its members and gives each, in one
write, every frame it is due: a burst of events (a QST round is several notifications)
costs a socket one ``send`` system call, not one per event, and the frames are built
once per operation id (see :mod:`gateway.http.ws_frames`, which writes them past ASGI
``send`` when the connection allows).  A socket that cannot take them at once (its
buffer is past :data:`~gateway.http.ws_frames.BUFFER_LIMIT`, or there is no direct
writer) gets them through ASGI ``send``, one by one: a task finishes the send that
waits and the frames queued behind it.  A member more than :data:`MAX_BACKLOG` frames
behind leaves its group and resumes on its own stream after the last frame queued for
it (the event log then holds what it lacks), so one slow client neither stalls the
others nor grows memory without bound.

Every subscription here (own or shared) runs with :class:`LeakFreeExecutionContext`:
graphql-core 3.3 makes each event's executor a shallow copy of the subscription's, so
the memo of collected sub-fields, keyed by the identity of per-event field lists, is
shared and keeps every event's lists alive until the subscriber leaves (see
``docs/graphql-core-subscription-leak.md``).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import operator
import weakref
from collections import OrderedDict, deque
from collections.abc import Generator, Hashable
from typing import Any, Final

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLAbstractType,
    GraphQLError,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    get_named_type,
    is_abstract_type,
    parse,
)
from graphql.execution import Executor
from strawberry.schema import BaseSchema
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
    _OperationStreamClosed,
)
from strawberry.types.execution import ExecutionResult, PreExecutionError
from strawberry.utils.aio import aclosing

from gateway.graphql import RequestContext
from gateway.graphql._fanout import StreamTap, install_tap
from gateway.http.ws_frames import DIRECT_FRAMES, GONE, READY, FrameWriter, text_frame_header

__all__ = ["MAX_BACKLOG", "RING", "FanoutHub", "LeakFreeExecutionContext", "fanout_handler_class"]

#: Frames a group keeps for members joining it late.
RING: Final = 256
#: Frames a member may have waiting for its socket before it leaves its group.
MAX_BACKLOG: Final = 1000
#: Members sent a frame between two turns of the event loop.
SLICE: Final = 200
#: Documents whose viewer-independence is remembered.
_ANALYSED_DOCUMENTS: Final = 512

logger = logging.getLogger(__name__)


class LeakFreeExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's executor, each subscription event with its own sub-field memo.

    graphql-core shares ``_relevant_sub_fields`` between the subscription's executor
    and every per-event copy, and keys it by the identity of lists each event makes
    anew: it never hits across events and grows by every event until unsubscribe.
    """

    def build_per_event_executor(self, payload: Any) -> Executor[Any]:
        executor = super().build_per_event_executor(payload)
        executor._relevant_sub_fields = {}
        return executor


_LEAK_FREE: weakref.WeakKeyDictionary[BaseSchema, BaseSchema] = weakref.WeakKeyDictionary()


def leak_free(schema: BaseSchema) -> BaseSchema:
    """``schema`` executing subscriptions with :class:`LeakFreeExecutionContext`.

    A shallow copy with that one attribute changed (strawberry reads it per operation),
    made once per schema, so a hot-swapped schema gets its own.
    """
    fixed = _LEAK_FREE.get(schema)
    if fixed is None:
        fixed = copy.copy(schema)
        fixed.execution_context_class = LeakFreeExecutionContext  # type: ignore[attr-defined]
        _LEAK_FREE[schema] = fixed
    return fixed


# -- which documents may be shared between viewers ------------------------------------


_independence: OrderedDict[tuple[GraphQLSchema, str, str | None], bool] = OrderedDict()


def viewer_independent(schema: GraphQLSchema, query: str, operation_name: str | None) -> bool:
    """Whether no field the subscription selects below its root field can read the viewer.

    Plain attribute fields cannot; a field with a resolver, a permission class or a
    field extension might (``Account.trader`` checks the viewer's access, for one).
    Abstract types count every possible type's field of that name.
    """
    key = (schema, query, operation_name)
    known = _independence.get(key)
    if known is None:
        known = _analyse(schema, query, operation_name)
        _independence[key] = known
        if len(_independence) > _ANALYSED_DOCUMENTS:
            _independence.popitem(last=False)
    else:
        _independence.move_to_end(key)
    return known


def _analyse(schema: GraphQLSchema, query: str, operation_name: str | None) -> bool:
    try:
        document = parse(query)
    except GraphQLError:
        return False
    operation = _operation(document, operation_name)
    root = schema.subscription_type
    if operation is None or operation.operation is not OperationType.SUBSCRIPTION or root is None:
        return False
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    walk = _Walk(schema, fragments)
    # The root field is the resolver the access check lives in: it runs per subscriber.
    return walk.selection_set(root, operation.selection_set, below_root=False)


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is None:
        return operations[0] if len(operations) == 1 else None
    return next((o for o in operations if o.name and o.name.value == name), None)


class _Walk:
    def __init__(self, schema: GraphQLSchema, fragments: dict[str, FragmentDefinitionNode]):
        self.schema = schema
        self.fragments = fragments
        self.entered: set[str] = set()

    def selection_set(
        self, parent: GraphQLNamedType, selections: SelectionSetNode, *, below_root: bool = True
    ) -> bool:
        for selection in selections.selections:
            if isinstance(selection, FieldNode):
                if not self.field(parent, selection, below_root):
                    return False
            elif isinstance(selection, InlineFragmentNode):
                condition = (
                    self.schema.get_type(selection.type_condition.name.value)
                    if selection.type_condition
                    else parent
                )
                if condition is None or not self.selection_set(
                    condition, selection.selection_set, below_root=below_root
                ):
                    return False
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if fragment is None:
                    return False
                if name in self.entered:
                    continue
                self.entered.add(name)
                condition = self.schema.get_type(fragment.type_condition.name.value)
                if condition is None or not self.selection_set(
                    condition, fragment.selection_set, below_root=below_root
                ):
                    return False
        return True

    def field(self, parent: GraphQLNamedType, node: FieldNode, below_root: bool) -> bool:
        name = node.name.value
        if name.startswith("__"):
            return name == "__typename"
        owners: list[GraphQLObjectType]
        if is_abstract_type(parent):
            assert isinstance(parent, GraphQLAbstractType)
            owners = list(self.schema.get_possible_types(parent))
        elif isinstance(parent, GraphQLObjectType):
            owners = [parent]
        else:
            return False
        for owner in owners:
            definition = owner.fields.get(name)
            if definition is None:
                continue
            if below_root and not _plain(definition.extensions):
                return False
            if node.selection_set is not None and not self.selection_set(
                get_named_type(definition.type), node.selection_set
            ):
                return False
        return True


def _plain(extensions: dict[str, Any]) -> bool:
    field = extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
    return (
        field is not None
        and getattr(field, "base_resolver", None) is None
        and not getattr(field, "permission_classes", None)
        and not getattr(field, "extensions", None)
    )


# -- sending without waiting ----------------------------------------------------------


class _Resume:
    """Await the rest of a coroutine that was started by hand and suspended."""

    def __init__(self, coroutine: Any, suspended_on: Any) -> None:
        self._coroutine = coroutine
        self._suspended_on = suspended_on

    def __await__(self) -> Generator[Any, Any, None]:
        waiting = self._suspended_on
        while True:
            try:
                sent = yield waiting
            except BaseException as error:  # cancellation included: hand it on
                try:
                    waiting = self._coroutine.throw(error)
                except StopIteration:
                    return
            else:
                try:
                    waiting = self._coroutine.send(sent)
                except StopIteration:
                    return


_ENDED: Final = "ended"
_GONE: Final = "gone"


class _Frame:
    """One event's result, encoded once: its text and the same as UTF-8 bytes."""

    __slots__ = ("data", "number", "sequence", "text")

    def __init__(self, number: int, sequence: int | None, text: str) -> None:
        #: Its place among the group's frames (0, 1, ...).
        self.number = number
        self.sequence = sequence
        self.text = text
        self.data = text.encode()


#: A pass's frames already built for one socket: (operation head, first, last frame
#: number) -> (the whole frames, the last sequence among them).
_Built = dict[tuple[bytes, int, int], tuple[bytes, int | None]]


class Member:
    """One subscriber (operation) in a group: its id, its socket, what it was sent."""

    def __init__(self, operation: Operation[Any, Any], socket: Any, last: int) -> None:
        self.operation = operation
        self.socket = socket
        #: The sequence of the last frame sent or queued to this member.
        self.last = last
        #: The number of the next group frame this member is due.
        self.cursor = 0
        self._head = '{"id":' + json.dumps(operation.id) + ',"type":"next","payload":'
        self._head_bytes = self._head.encode()
        scope = getattr(socket, "scope", None)
        extensions = scope.get("extensions") if isinstance(scope, dict) else None
        writer = extensions.get(DIRECT_FRAMES) if isinstance(extensions, dict) else None
        #: Writes whole frames past ASGI send, when the socket allows (see ws_frames).
        self.writer = writer if isinstance(writer, FrameWriter) else None
        self._flushing: asyncio.Task[None] | None = None
        self._backlog: deque[str] = deque()
        self.group: Group | None = None
        self._ended = False
        #: Resolves when the member stops getting frames from its group: ``_ENDED`` (the
        #: stream ended: complete), ``_GONE`` (the socket failed), or the sequence to
        #: resume its own stream after (it fell behind).
        self.outcome: asyncio.Future[str | int] = asyncio.get_running_loop().create_future()

    def deliver(self, frames: list[_Frame], built: _Built | None) -> None:
        """Send ``frames`` (in order, newer than any sent before): in one write when the
        socket takes it at once, else one ``send`` each (queued behind a slow socket)."""
        if self.outcome.done() or self.operation.completed:
            return
        first = frames[0].sequence
        if first is not None and first <= self.last:  # not in a pass: from the ring
            frames = [f for f in frames if f.sequence is None or f.sequence > self.last]
            built = None
            if not frames:
                return
        writer = self.writer
        if writer is not None and self._flushing is None:
            # Built before the writer looks at the socket: a pass's members mostly share
            # it (``built``), and a busy or gone socket is the exception.
            key = (self._head_bytes, frames[0].number, frames[-1].number)
            whole = built.get(key) if built is not None else None
            if whole is None:
                whole = self._frames(frames)
                if built is not None:
                    built[key] = whole
            data, last = whole
            state = writer.write_if_ready(data, self.operation.id, len(frames))
            if state == READY:
                if last is not None:
                    self.last = last
                return
            if state == GONE:
                writer.dropped(self.operation.id, len(frames))
                self._finish(_GONE)
                return
        for frame in frames:
            self.push(frame.sequence, frame.text)

    def _frames(self, frames: list[_Frame]) -> tuple[bytes, int | None]:
        head = self._head_bytes
        parts: list[bytes] = []
        last: int | None = None
        for frame in frames:
            parts += (text_frame_header(len(head) + len(frame.data) + 1), head, frame.data, b"}")
            if frame.sequence is not None:
                last = frame.sequence
        return b"".join(parts), last

    def push(self, sequence: int | None, payload: str) -> None:
        """Send one frame through ASGI send, or queue it behind the one being sent."""
        if self.outcome.done() or self.operation.completed:
            return
        if sequence is not None:
            self.last = sequence
        frame = self._head + payload + "}"
        if self._flushing is not None:
            self._backlog.append(frame)
            if len(self._backlog) > MAX_BACKLOG:
                self._leave_group()  # the backlog is still flushed, then it resumes
            return
        coroutine = self.socket.send_text(frame)
        try:
            suspended_on = coroutine.send(None)
        except StopIteration:
            return
        except Exception:
            self._finish(_GONE)
            return
        self._flushing = asyncio.ensure_future(self._flush(_Resume(coroutine, suspended_on)))

    async def _flush(self, first: _Resume) -> None:
        try:
            await first
            while self._backlog:
                await self.socket.send_text(self._backlog.popleft())
        except Exception:
            self._finish(_GONE)
            return
        finally:
            self._flushing = None
        if self._ended:
            self._finish(_ENDED)
        elif self.group is None:
            self._finish(self.last)  # it left while behind: now it resumes

    def end(self) -> None:
        """The group's stream ended: complete once what is queued is sent."""
        self.group = None
        self._ended = True
        if self._flushing is None:
            self._finish(_ENDED)

    def lost(self) -> None:
        """Stop sending, as when the socket failed."""
        self._finish(_GONE)

    def _leave_group(self) -> None:
        if self.group is not None:
            self.group.leave(self)

    def _finish(self, outcome: str | int) -> None:
        self._leave_group()
        if not self.outcome.done():
            self.outcome.set_result(outcome)

    def cancel(self) -> None:
        """The operation is over (complete, socket closed): stop sending."""
        self._leave_group()
        if self._flushing is not None:
            self._flushing.cancel()
        self._backlog.clear()
        if not self.outcome.done():
            self.outcome.cancel()


_cursor: Final = operator.attrgetter("cursor")


class Group:
    """One execution of a subscription, its frames written to every member.

    The stream's task makes the frames; a sender task passes over the members, giving
    each every frame it is due in one write.  Frames made while a pass runs reach the
    members it has not yet visited in the same write, the others in the next pass, so
    a burst of events costs a socket one write, not one per event.
    """

    def __init__(
        self,
        hub: FanoutHub,
        key: Hashable,
        handler: FanoutTransportWSHandler,
        operation: Operation[Any, Any],
        after: int,
    ) -> None:
        self.hub = hub
        self.key = key
        self.members: dict[Member, None] = {}
        #: Frames with a sequence, newest last; ``floor``: every frame after it is here.
        self.ring: deque[_Frame] = deque(maxlen=RING)
        self.floor = after
        self.executions = 0
        #: Frames made so far; ``_frames`` holds those from number ``_base`` on (the
        #: ones some member is still due).
        self.produced = 0
        self._frames: list[_Frame] = []
        self._base = 0
        self._more = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._after = after
        self._schema = handler.fan_schema
        self._encode = handler.view.encode_json
        self._context = handler.context
        self._root_value = handler.root_value
        self._query = operation.query
        self._variables = operation.variables
        self._operation_name = operation.operation_name
        self._task: asyncio.Task[None] | None = None
        self._sender: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    def join(self, member: Member, after: int) -> bool:
        """Add ``member``, which has every frame up to ``after``; False if this group
        can no longer give it all it lacks."""
        if after < self.floor or self._task is None or self._task.done():
            return False
        member.group = self
        member.last = after
        member.cursor = self.produced
        self.members[member] = None
        lacking = [f for f in self.ring if f.sequence is not None and f.sequence > after]
        if lacking:
            member.deliver(lacking, None)
        return True

    def leave(self, member: Member) -> None:
        member.group = None
        if member not in self.members:
            return
        del self.members[member]
        if not self.members:  # nobody left to send to: stop following the stream
            self.hub.forget(self)
            if self._task is not None:
                self._task.cancel()

    async def _run(self) -> None:
        tap = StreamTap(resume_after=self._after)
        install_tap(tap)
        self._sender = asyncio.ensure_future(self._send())
        try:
            source = await self._schema.stream(
                self._query,
                variable_values=self._variables,
                context_value=self._context,
                root_value=self._root_value,
                operation_name=self._operation_name,
            )
            async with aclosing(source):
                async for result in source:
                    sequence, tap.sequence = tap.sequence, None
                    if not isinstance(result, ExecutionResult):
                        break  # incremental delivery: the members' own runs refused it
                    self.executions += 1
                    self.hub.executions += 1
                    self._produce(sequence, self._payload(result))
                    while len(self._frames) >= MAX_BACKLOG:  # the sender is far behind
                        self._room.clear()
                        await self._room.wait()
        finally:
            self.hub.forget(self)
            self._sender.cancel()
            for member in list(self.members):
                if member.group is self:
                    self._catch_up(member, None)  # what it is due, before its complete
                member.end()
            self.members.clear()

    def _payload(self, result: ExecutionResult) -> str:
        payload: dict[str, Any] = {"data": result.data}
        if result.errors:
            payload["errors"] = [error.formatted for error in result.errors]
        if result.extensions:
            payload["extensions"] = result.extensions
        encoded = self._encode(payload)
        return encoded.decode() if isinstance(encoded, bytes) else encoded

    def _produce(self, sequence: int | None, payload: str) -> None:
        frame = _Frame(self.produced, sequence, payload)
        self.produced += 1
        self._frames.append(frame)
        if sequence is not None:
            if len(self.ring) == RING:
                self.floor = self.ring[0].sequence  # type: ignore[assignment]
            self.ring.append(frame)
        self._more.set()

    def _catch_up(self, member: Member, built: _Built | None) -> None:
        start, end = member.cursor, self.produced
        if start >= end:
            return
        member.cursor = end
        try:
            member.deliver(self._frames[start - self._base : end - self._base], built)
        except Exception:  # a bug: this member is lost, the others go on
            logger.exception("could not send subscription frames")
            member.lost()

    async def _send(self) -> None:
        while True:
            await self._more.wait()
            self._more.clear()
            built: _Built = {}
            members = list(self.members)
            for start in range(0, len(members), SLICE):
                if start:
                    # Thousands of writes take a while: let the loop serve everything
                    # else (upstream answers, pings, the next events of this stream).
                    # A member joining meanwhile starts at the newest frame (older ones
                    # from the ring); one leaving is skipped.
                    await asyncio.sleep(0)
                produced = self.produced
                for member in members[start : start + SLICE]:
                    if member.group is self and member.cursor < produced:
                        self._catch_up(member, built)
            low = min(map(_cursor, self.members), default=self.produced)
            if low > self._base:
                del self._frames[: low - self._base]
                self._base = low
            self._room.set()


class FanoutHub:
    """The groups of one WebSocket view, by key."""

    def __init__(self) -> None:
        self._groups: dict[Hashable, Group] = {}
        #: Results executed by groups, over their lifetime (call counts for tests).
        self.executions = 0

    @property
    def groups(self) -> list[Group]:
        return list(self._groups.values())

    def join(
        self,
        key: Hashable,
        member: Member,
        after: int,
        handler: FanoutTransportWSHandler,
        operation: Operation[Any, Any],
    ) -> bool:
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = Group(self, key, handler, operation, after)
            group.start()
        return group.join(member, after)

    def forget(self, group: Group) -> None:
        if self._groups.get(group.key) is group:
            del self._groups[group.key]


# -- the handler ------------------------------------------------------------------------


_END: Final = object()


class FanoutTransportWSHandler(BaseGraphQLTransportWSHandler[RequestContext, None]):
    """The graphql-transport-ws handler, its subscriptions run through the hub."""

    #: Set on the subclass a view makes (see :func:`fanout_handler_class`).
    hub: FanoutHub

    @property
    def fan_schema(self) -> BaseSchema:
        return leak_free(self.schema)

    async def run_operation(self, operation: Operation[RequestContext, None]) -> None:
        # Strawberry's run_operation, its stream possibly handed over to a group.
        member: Member | None = None
        try:
            resume_after: int | None = None
            while True:
                joined = await self._run_own(operation, resume_after)
                if joined is None:
                    break
                if isinstance(joined, int):  # the group was too far ahead
                    resume_after = joined
                    continue
                member = joined
                outcome = await member.outcome
                if outcome == _GONE:
                    return  # the socket failed: the read loop ends and cleans up
                if outcome == _ENDED:
                    break
                assert isinstance(outcome, int)
                resume_after, member = outcome, None
            await operation.send_operation_message({"id": operation.id, "type": "complete"})
        except _OperationStreamClosed:
            return
        except Exception as error:
            await self.handle_task_exception(error)
            with contextlib.suppress(Exception):
                await operation.send_operation_message({"id": operation.id, "type": "complete"})
            self.operations.pop(operation.id, None)
            raise
        finally:
            if member is not None:
                member.cancel()

    async def _run_own(
        self, operation: Operation[RequestContext, None], resume_after: int | None
    ) -> Member | int | None:
        """Run ``operation`` on its own stream until it joins a group (the member), the
        stream ends (None), or it must resume alone after a sequence (that sequence)."""
        tap = StreamTap(resume_after)
        install_tap(tap)
        source = await self.fan_schema.stream(
            operation.query,
            variable_values=operation.variables,
            context_value=self.context,
            root_value=self.root_value,
            operation_name=operation.operation_name,
        )
        first = True
        ready: asyncio.Future[Any] | None = None
        async with aclosing(source):
            try:
                while True:
                    result = await (ready if ready is not None else anext(source, _END))
                    ready = None
                    if result is _END:
                        return None
                    if first and isinstance(result, PreExecutionError):
                        await self._handle_pre_execution_error(operation, result)
                        return None
                    if not isinstance(result, ExecutionResult):
                        await self._reject_incremental_delivery(operation)
                        return None
                    first = False
                    await operation.send_next(result)
                    sequence, tap.sequence = tap.sequence, None
                    key = self._share_key(operation, tap, sequence, result)
                    if key is None or sequence is None:
                        continue
                    # Join only between bursts: a snapshot replays its events at once.
                    ready = asyncio.ensure_future(anext(source, _END))
                    await asyncio.sleep(0)
                    if ready.done():
                        continue
                    ready.cancel()
                    await asyncio.wait([ready])
                    if not ready.cancelled():
                        continue  # it finished before the cancellation took: handle it
                    ready = None
                    member = Member(operation, self._socket(), sequence)
                    if self.hub.join(key, member, sequence, self, operation):
                        return member
                    return sequence  # the group is too far ahead: resume alone
            finally:
                if ready is not None and not ready.done():
                    # Cancelled while looking ahead: end that before the stream closes.
                    ready.cancel()
                    await asyncio.wait([ready])

    def _socket(self) -> Any:
        return self.websocket.ws  # type: ignore[attr-defined]

    def _share_key(
        self,
        operation: Operation[RequestContext, None],
        tap: StreamTap,
        sequence: int | None,
        result: ExecutionResult,
    ) -> Hashable | None:
        if (
            not tap.resumable
            or sequence is None
            or result.errors
            or operation.completed
            or not hasattr(self.websocket, "ws")
        ):
            return None
        viewer = self.context.viewer
        if viewer is None:
            return None
        graphql_schema: GraphQLSchema = self.schema._schema  # type: ignore[attr-defined]
        scope: Hashable = None
        if not viewer_independent(graphql_schema, operation.query, operation.operation_name):
            scope = (viewer.subject, viewer.role, viewer.partner_code, viewer.brokers)
        try:
            variables = json.dumps(operation.variables, sort_keys=True, separators=(",", ":"))
        except (TypeError, ValueError):
            return None
        return (self.fan_schema, operation.query, operation.operation_name, variables, scope)


def fanout_handler_class(
    base: type[BaseGraphQLTransportWSHandler[RequestContext, None]], hub: FanoutHub
) -> type[FanoutTransportWSHandler]:
    """``base`` (the guarded handler a view uses) with its subscriptions fanned out."""
    return type("FanoutTransportWSHandler", (FanoutTransportWSHandler, base), {"hub": hub})
