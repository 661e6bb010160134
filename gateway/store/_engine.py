"""The store's database: URL normalisation, and one way to run statements on either backend.

* **SQLite**: one long-lived connection in WAL mode, driven inline on the event loop
  under an asyncio lock.  A statement on a local SQLite file takes microseconds —
  less than one hand-off to a driver thread (what aiosqlite pays per statement) — and
  SQLite has one writer at a time anyway, so a pool and threads bought nothing but
  latency.  A transaction commits before :meth:`Database.begin` returns: what the
  store writes is durable before the caller answers anyone.  Only another *process*
  writing the same file can make a statement wait (the busy timeout), and then the
  loop waits with it.
  In WAL mode the log is copied back into the database file (a checkpoint, with an
  fsync) by a thread of the store's own, every :data:`CHECKPOINT_COMMITS` commits or
  :data:`CHECKPOINT_SECONDS`: left to SQLite, a commit every ~1,000 pages ran it inline,
  holding the event loop 13 to 15 ms (up to 53) on this project's machine: the p99 of
  a placement's two transactions, 0.7 ms without it.
* **PostgreSQL**: asyncpg behind SQLAlchemy's async pool, with no pre-ping (a round
  trip on every checkout); a connection found dead is discarded by the pool, and the
  operation that found it fails like any other database error.

Both hand the store a :class:`StoreConnection` with the same awaitable methods.

The store's hot statements (an idempotency claim and its completion, an audit row, a
flow) are :class:`Prepared`: compiled once per dialect, with SQLAlchemy's own bind and
result processing worked out once.  On SQLite they run on the driver's cursor inside
the same SQLAlchemy transaction (its begin and commit, so a commit still means
durable): SQLAlchemy's per-statement execution cost five times SQLite's own work.
While anything listens to the engine's statement events (tracing's store spans, a
test counting statements), they run through SQLAlchemy, which fires those events.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import orjson
from sqlalchemy import Connection, CursorResult, Engine, create_engine, event, text
from sqlalchemy.engine import URL, Dialect, make_url
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql import Select
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.sql.selectable import ReturnsRows

__all__ = [
    "Database",
    "Prepared",
    "Ran",
    "StoreConnection",
    "normalise_url",
    "open_database",
]

T = TypeVar("T")

logger = logging.getLogger("gateway.store")

#: A checkpoint after this many commits (a keyed placement commits twice, ~12 WAL pages:
#: SQLite's own default, 1,000 pages, is ~80 placements) ...
CHECKPOINT_COMMITS = 100
#: ... or this long after the last one, whichever comes first.
CHECKPOINT_SECONDS = 1.0

# Plain URLs are accepted for convenience; PostgreSQL is always driven by asyncpg.
_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}
# Long enough for another process's write transaction (an admin command) to finish.
_SQLITE_BUSY_SECONDS = 30


def normalise_url(url: str) -> URL:
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend not in _ASYNC_DRIVERS:
        raise ValueError(f"the gateway store supports SQLite and PostgreSQL, not {backend!r}")
    if parsed.drivername == backend:
        parsed = parsed.set(drivername=_ASYNC_DRIVERS[backend])
    return parsed


def _sqlite_file(url: URL) -> Path | None:
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


#: What orjson must leave to the standard library, which keeps refusing what it refused
#: before (dates, dataclasses; str subclasses it writes as their value).
_ORJSON_PASSTHROUGH = (
    orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)


def _json_text(value: Any) -> str:
    """A JSON column's text.  The write path stores three (a claim's recovery, its
    response, the audit row's details): orjson writes each in ~1 µs where ``json.dumps``
    takes ~11.  What orjson refuses (keys that are not strings, integers past 64 bits,
    the passthrough types) goes to ``json.dumps``, which decides as it always did.  A
    float NaN or infinity, which JSON has no word for, is written null (``json.dumps``
    wrote ``NaN``, which PostgreSQL's json type refused)."""
    try:
        return orjson.dumps(value, option=_ORJSON_PASSTHROUGH).decode()
    except TypeError:
        return json.dumps(value)


def _json_value(text: str | bytes) -> Any:
    """A JSON column's value; ``json.loads`` for what orjson refuses to read (``NaN``,
    which ``json.dumps`` wrote into rows before :func:`_json_text`)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


Processor = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class Ran:
    """What a :class:`Prepared` statement did: the rows it returned (processed into
    Python values, as SQLAlchemy would) and the rows it changed."""

    rows: list[tuple[Any, ...]]
    rowcount: int


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    #: Per positional parameter: the caller's parameter name, or None for a constant.
    names: tuple[str | None, ...]
    constants: tuple[Any, ...]
    binds: tuple[Processor | None, ...]
    results: tuple[Processor | None, ...]


class Prepared:
    """A statement of the store's hot path, compiled once per dialect.

    ``names`` are the parameters it is run with (for an INSERT: the columns given);
    every other bound value must be a constant of the statement.  Run it with
    :meth:`StoreConnection.run`.
    """

    __slots__ = ("_compiled", "names", "statement")

    def __init__(self, statement: UpdateBase | Select[Any], names: Sequence[str]) -> None:
        self.statement = statement
        self.names = tuple(names)
        self._compiled: dict[str, _Compiled] = {}

    def compiled(self, dialect: Dialect) -> _Compiled:
        """The statement's SQL for ``dialect`` with SQLAlchemy's own processors."""
        found = self._compiled.get(dialect.name)
        if found is None:
            found = self._compiled[dialect.name] = self._compile(dialect)
        return found

    def _compile(self, dialect: Dialect) -> _Compiled:
        compiled = self.statement.compile(dialect=dialect, column_keys=list(self.names))
        if not isinstance(compiled, SQLCompiler) or compiled.positiontup is None:
            raise TypeError(f"{dialect.name} does not bind parameters by position")
        names: list[str | None] = []
        constants: list[Any] = []
        binds: list[Processor | None] = []
        for position in compiled.positiontup:
            bind = compiled.binds[position]
            given = position if position in self.names else None
            if given is None and bind.required:
                raise ValueError(f"{position!r} is neither a parameter nor a constant")
            names.append(given)
            constants.append(None if given is not None else bind.effective_value)
            binds.append(bind.type.dialect_impl(dialect).bind_processor(dialect))
        columns = self.statement.exported_columns if isinstance(self.statement, ReturnsRows) else ()
        results = tuple(
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
        )
        return _Compiled(compiled.string, tuple(names), tuple(constants), tuple(binds), results)


class StoreConnection(abc.ABC):
    """A connection inside one transaction (or one read) of the store."""

    async def run(self, prepared: Prepared, parameters: Mapping[str, Any]) -> Ran:
        """Run a hot statement (see :class:`Prepared`): its rows and rowcount."""
        result = await self.execute(prepared.statement, parameters)
        rows = [tuple(row) for row in result] if result.returns_rows else []
        return Ran(rows, result.rowcount)

    @abc.abstractmethod
    async def execute(
        self, statement: Executable, parameters: Mapping[str, Any] | None = None
    ) -> CursorResult[Any]:
        """Run ``statement``; a statement built once and given ``parameters`` skips
        SQLAlchemy's per-statement cache-key work (the store's hot statements)."""

    @abc.abstractmethod
    async def scalar(
        self, statement: Executable, parameters: Mapping[str, Any] | None = None
    ) -> Any: ...

    @abc.abstractmethod
    async def run_sync(self, work: Callable[[Connection], T]) -> T: ...


class Database(abc.ABC):
    """Where the store's statements run; see the module docstring."""

    url: URL

    @property
    @abc.abstractmethod
    def sync_engine(self) -> Engine:
        """The engine whose events (``begin``, ``commit``) see every store transaction."""

    @property
    def dialect(self) -> Dialect:
        return self.sync_engine.dialect

    @abc.abstractmethod
    def begin(self) -> contextlib.AbstractAsyncContextManager[StoreConnection]:
        """One transaction: committed when the block exits, rolled back if it raises."""

    @abc.abstractmethod
    def connect(self) -> contextlib.AbstractAsyncContextManager[StoreConnection]:
        """Reads outside any write transaction."""

    @abc.abstractmethod
    async def close(self, grace_seconds: float) -> None:
        """Close, letting a transaction in flight finish within ``grace_seconds``."""

    async def ping(self) -> None:
        """One trivial round trip (``SELECT 1``): raises when the database cannot answer."""
        async with self.connect() as connection:
            await connection.execute(text("SELECT 1"))


class _Inline(StoreConnection):
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    async def run(self, prepared: Prepared, parameters: Mapping[str, Any]) -> Ran:
        connection = self._connection
        if connection._has_events or connection.engine._has_events:
            return await super().run(prepared, parameters)  # the events see the statement
        compiled = prepared.compiled(connection.dialect)
        values = [
            constant if name is None else parameters[name]
            for name, constant in zip(compiled.names, compiled.constants, strict=True)
        ]
        try:
            bound = [
                value if process is None else process(value)
                for value, process in zip(values, compiled.binds, strict=True)
            ]
        except Exception as error:  # a value the column's type refuses, as SQLAlchemy says it
            kind = f"{type(error).__module__}.{type(error).__name__}"
            raise StatementError(f"({kind}) {error}", compiled.sql, values, error) from error
        driver = cast(sqlite3.Connection, connection.connection.driver_connection)
        try:
            cursor = driver.execute(compiled.sql, bound)
            raw_rows = cursor.fetchall() if cursor.description is not None else []
        except sqlite3.Error as error:
            # As SQLAlchemy raises it (IntegrityError when a key is taken, ...).
            raise DBAPIError.instance(
                compiled.sql, bound, error, sqlite3.Error, dialect=connection.dialect
            ) from error
        processors = compiled.results
        rows = [
            tuple(
                value if process is None else process(value)
                for value, process in zip(row, processors, strict=True)
            )
            for row in raw_rows
        ]
        return Ran(rows, cursor.rowcount)

    async def execute(
        self, statement: Executable, parameters: Mapping[str, Any] | None = None
    ) -> CursorResult[Any]:
        return self._connection.execute(statement, parameters)

    async def scalar(
        self, statement: Executable, parameters: Mapping[str, Any] | None = None
    ) -> Any:
        return self._connection.scalar(statement, parameters)

    async def run_sync(self, work: Callable[[Connection], T]) -> T:
        return work(self._connection)


class SqliteDatabase(Database):
    """One SQLite connection, used inline and one transaction at a time."""

    def __init__(self, url: URL) -> None:
        self.url = url
        path = _sqlite_file(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._engine = create_engine(
            url.set(drivername="sqlite+pysqlite"),
            poolclass=StaticPool,
            connect_args={"timeout": _SQLITE_BUSY_SECONDS, "check_same_thread": False},
            json_serializer=_json_text,
            json_deserializer=_json_value,
        )
        wal = path is not None

        @event.listens_for(self._engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            try:
                # SQLite ignores foreign keys unless asked, per connection; PostgreSQL
                # always enforces them, and the store relies on that on both.
                cursor.execute("PRAGMA foreign_keys=ON")
                if wal:
                    # WAL: a commit appends to the log (no rewrite of the database file),
                    # and other processes (admin commands) read while we write.
                    cursor.execute("PRAGMA journal_mode=WAL")
                    cursor.execute("PRAGMA synchronous=NORMAL")
                    cursor.execute("PRAGMA wal_autocheckpoint=0")  # the checkpointer's job
            finally:
                cursor.close()

        self._checkpointer = _Checkpointer(path) if path is not None else None
        self._connection: Connection | None = None
        # Not for parallelism (statements never yield the loop) but for the store's
        # transactions that await something between statements: they must not
        # interleave on the one connection.
        self._lock = asyncio.Lock()

    @property
    def sync_engine(self) -> Engine:
        return self._engine

    def _open(self) -> Connection:
        if self._connection is None:
            self._connection = self._engine.connect()
        return self._connection

    @property
    def checkpoints(self) -> int:
        """Checkpoints the store's thread ran (0 for a database without a WAL)."""
        return self._checkpointer.runs if self._checkpointer is not None else 0

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[StoreConnection]:
        async with self._lock:
            connection = self._open()
            with connection.begin():
                yield _Inline(connection)
        if self._checkpointer is not None:
            self._checkpointer.committed()

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[StoreConnection]:
        async with self._lock:
            connection = self._open()
            try:
                yield _Inline(connection)
            finally:
                # A read auto-begins a transaction: ending it lets the next read see
                # what other processes committed since (WAL keeps a snapshot open).
                connection.rollback()

    async def close(self, grace_seconds: float) -> None:
        # Past the grace, closed under the transaction still running: it fails, uncommitted.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._lock.acquire(), grace_seconds)
        if self._checkpointer is not None:
            await self._checkpointer.close()
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        self._engine.dispose()


class _Checkpointer:
    """Checkpoints of a WAL database, on a thread with a connection of its own.

    PASSIVE: copies what no reader still needs and never waits for, or blocks, the
    store's connection; SQLite releases the GIL meanwhile, so the event loop runs on.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._commits = 0
        self._due = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._connection: sqlite3.Connection | None = None
        self._closing = False
        self.runs = 0

    def committed(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        self._commits += 1
        if self._commits >= CHECKPOINT_COMMITS:
            self._due.set()

    async def _run(self) -> None:
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._due.wait(), CHECKPOINT_SECONDS)
            self._due.clear()
            if self._closing or not self._commits:
                continue
            self._commits = 0
            try:
                await asyncio.to_thread(self._checkpoint)
            except sqlite3.Error as error:  # the next one tries again; the WAL grows meanwhile
                logger.warning("store checkpoint failed: %s", error)
            self.runs += 1

    def _checkpoint(self) -> None:
        if self._connection is None:
            self._connection = sqlite3.connect(
                self._path, timeout=_SQLITE_BUSY_SECONDS, check_same_thread=False
            )
        self._connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    async def close(self) -> None:
        """Stop; a checkpoint running finishes first (a thread cannot be cancelled)."""
        self._closing = True
        self._due.set()
        if self._task is not None:
            await self._task
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class _Pooled(StoreConnection):
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def execute(
        self, statement: Executable, parameters: Mapping[str, Any] | None = None
    ) -> CursorResult[Any]:
        return await self._connection.execute(statement, parameters)

    async def scalar(
        self, statement: Executable, parameters: Mapping[str, Any] | None = None
    ) -> Any:
        return await self._connection.scalar(statement, parameters)

    async def run_sync(self, work: Callable[[Connection], T]) -> T:
        return await self._connection.run_sync(work)


class PostgresDatabase(Database):
    """asyncpg connections from SQLAlchemy's pool, one per transaction."""

    def __init__(self, url: URL, *, pool_size: int, max_overflow: int) -> None:
        self.url = url
        self._engine: AsyncEngine = create_async_engine(
            url,
            pool_size=pool_size,
            max_overflow=max_overflow,
            json_serializer=_json_text,
            json_deserializer=_json_value,
        )

    @property
    def sync_engine(self) -> Engine:
        return self._engine.sync_engine

    @property
    def pool(self) -> Any:
        return self._engine.pool

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[StoreConnection]:
        async with self._engine.begin() as connection:
            yield _Pooled(connection)

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[StoreConnection]:
        async with self._engine.connect() as connection:
            yield _Pooled(connection)

    async def close(self, grace_seconds: float) -> None:
        # dispose() closes only the connections in the pool.  One that an operation
        # still holds would go back to the discarded pool and be closed by the garbage
        # collector at some later moment, unclosed.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_seconds
        while self._engine.pool.checkedout() and loop.time() < deadline:  # type: ignore[attr-defined]  # noqa: ASYNC110 (a count, no event)
            await asyncio.sleep(0.01)
        await self._engine.dispose()


def open_database(url: URL, *, pool_size: int = 5, max_overflow: int = 10) -> Database:
    """The database for ``url``; the pool bounds apply to PostgreSQL (each replica keeps
    ``pool_size`` connections and opens up to ``max_overflow`` more under load)."""
    if url.get_backend_name() == "sqlite":
        return SqliteDatabase(url)
    return PostgresDatabase(url, pool_size=pool_size, max_overflow=max_overflow)
