"""Creating the async engine: URL normalisation and SQLite connection set-up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

# Plain URLs are accepted for convenience; the store only ever runs async drivers.
_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}


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


def create_engine(url: URL, *, pool_size: int = 5, max_overflow: int = 10) -> AsyncEngine:
    """The engine for ``url``; the pool bounds apply to PostgreSQL (each replica keeps
    ``pool_size`` connections and opens up to ``max_overflow`` more under load)."""
    if url.get_backend_name() != "sqlite":
        return create_async_engine(
            url, pool_pre_ping=True, pool_size=pool_size, max_overflow=max_overflow
        )
    path = _sqlite_file(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    # A generous busy timeout makes concurrent writers queue instead of failing
    # with "database is locked".
    engine = create_async_engine(url, connect_args={"timeout": 30})
    wal = path is not None

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            # SQLite ignores foreign keys unless asked, per connection; PostgreSQL
            # always enforces them, and the store relies on that on both.
            cursor.execute("PRAGMA foreign_keys=ON")
            if wal:
                # WAL lets readers proceed while one writer commits.
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    return engine


async def ping(engine: AsyncEngine) -> None:
    """One trivial round trip (``SELECT 1``): raises when the database cannot answer."""
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
