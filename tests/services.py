"""Fixtures for the external services the clustered mode uses: PostgreSQL and Redis."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest
import redis.asyncio as aioredis

POSTGRES_ADMIN_DSN = os.environ.get(
    "BROKERGRAPH_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("BROKERGRAPH_TEST_REDIS", "redis://127.0.0.1:6379/15")


def _unavailable(service: str, error: BaseException) -> None:
    message = f"{service} is not reachable ({error!r})"
    if os.environ.get("BROKERGRAPH_SKIP_SERVICES") == "1" and not os.environ.get("CI"):
        pytest.skip(message + "; skipped because BROKERGRAPH_SKIP_SERVICES=1")
    pytest.fail(message + "; start it or set BROKERGRAPH_SKIP_SERVICES=1 locally", pytrace=False)


@contextlib.asynccontextmanager
async def fresh_database(prefix: str = "brokergraph_test") -> AsyncIterator[str]:
    """A new, empty PostgreSQL database (its SQLAlchemy URL), dropped afterwards."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=5)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    try:
        yield f"{base}/{name}"
    finally:
        admin = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=5)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    async with contextlib.AsyncExitStack() as stack:
        try:
            url = await stack.enter_async_context(fresh_database())
        except (OSError, asyncpg.PostgresError) as error:
            _unavailable("PostgreSQL", error)
            raise
        yield url


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    """The test Redis database, flushed before and after the test."""
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        await client.flushdb()
    except (OSError, aioredis.ConnectionError) as error:
        await client.aclose()
        _unavailable("Redis", error)
        raise
    yield REDIS_URL
    try:
        await client.flushdb()
    finally:
        await client.aclose()  # also when the flush fails: no socket left for the GC
