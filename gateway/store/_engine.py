"""The store's database: URL normalisation, and one way to run statements on either backend.

* **SQLite**: one long-lived connection in WAL mode, driven inline on the event loop
  under an asyncio lock.  A statement on a local SQLite file takes microseconds —
  less than one hand-off to a driver thread (what aiosqlite pays per statement) — and
  SQLite has one writer at a time anyway, so a pool and threads bought nothing but
  latency.  A transaction commits before :meth:`Database.begin` returns: what the
  store writes is durable before the caller answers anyone.  Only another *process*
  writing the same file can make a statement wait (the busy timeout), and then the
  loop waits with it.
* **PostgreSQL**: asyncpg behind SQLAlchemy's async pool, with no pre-ping (a round
  trip on every checkout); a connection found dead is discarded by the pool, and the
  operation that found it fails like any other database error.

Both hand the store a :class:`StoreConnection` with the same awaitable methods.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, CursorResult, Engine, create_engine, event, text
from sqlalchemy.engine import URL, Dialect, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql.base import Executable

__all__ = ["Database", "StoreConnection", "normalise_url", "open_database"]

T = TypeVar("T")

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


class StoreConnection(abc.ABC):
    """A connection inside one transaction (or one read) of the store."""

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
            finally:
                cursor.close()

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

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[StoreConnection]:
        async with self._lock:
            connection = self._open()
            with connection.begin():
                yield _Inline(connection)

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
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        self._engine.dispose()


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
            url, pool_size=pool_size, max_overflow=max_overflow
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
