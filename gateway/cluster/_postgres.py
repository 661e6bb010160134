"""Leases as PostgreSQL session-level advisory locks, one dedicated connection each.

Why this engine and this shape (the README's "Running a cluster" says the same):

* PostgreSQL is already the cluster's store, and a hard dependency of every write;
  a lease there adds no new way to fail (a Redis lease would make the shared cache,
  which must fail soft, a single point of failure for QST and QORT).
* A waiting replica blocks in ``pg_advisory_lock``: the server grants the lock the
  instant the holder's session ends, so a graceful hand-over is immediate and a
  ``SIGKILL`` on a live host too (the kernel closes the socket, the backend exits,
  the lock goes with it).  No polling, no TTL to wait out in the common case.
* A holder that stops talking (frozen, partitioned, host gone) is fenced by the
  server: the lock connection runs with ``idle_session_timeout`` = the lease time
  and heartbeats every third of it, so PostgreSQL ends a silent holder's session —
  and releases its lock — one lease time after its last heartbeat.  The holder
  fences itself first: it counts its tenure as valid only until 0.8 lease times
  after its last confirmed heartbeat was *sent*, so it stops serving before the
  server can give the lock to anyone else.  A resumed, paused holder finds its
  session gone at its next heartbeat and closes its connector without a call.
* The lease record (``brokergraph_leases``) says where the holder listens and
  carries a fencing token incremented on every acquisition; a row counts only
  while the backend that wrote it still holds the lock (``pg_locks``), so a dead
  holder's row is never routed to.  A routed call names the token it was sent for;
  a replica whose tenure has another token refuses it (409), and the caller looks
  again.

The lock connection must reach PostgreSQL directly (or through a *session*-pooling
proxy): advisory locks are per session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from gateway.cluster._leases import Holder, Lease, LeaseManager

__all__ = ["PostgresLeases", "asyncpg_dsn", "lease_holders"]

logger = logging.getLogger("gateway.cluster")

#: The holder counts its tenure valid for this share of the lease after a heartbeat.
FENCE = 0.8
#: Heartbeats per lease time.
HEARTBEATS = 3
CONNECT_TIMEOUT = 5.0
#: A fixed advisory key serialising the table's creation by concurrent replicas.
SCHEMA_LOCK = 0x62676C65617365  # "bglease"

CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS brokergraph_leases (
    lock_key bigint PRIMARY KEY,
    name text NOT NULL,
    holder text NOT NULL,
    address text NOT NULL,
    pid integer NOT NULL,
    token bigint NOT NULL,
    acquired_at timestamptz NOT NULL DEFAULT now()
)
"""

CLAIM = """
INSERT INTO brokergraph_leases (lock_key, name, holder, address, pid, token)
VALUES ($1, $2, $3, $4, pg_backend_pid(), 1)
ON CONFLICT (lock_key) DO UPDATE SET
    name = EXCLUDED.name, holder = EXCLUDED.holder, address = EXCLUDED.address,
    pid = EXCLUDED.pid, token = brokergraph_leases.token + 1, acquired_at = now()
RETURNING token
"""

#: The live holder: the row's backend still holds the advisory lock (bigint keys are
#: split into classid/objid with objsubid 1).
LIVE_HOLDERS = """
SELECT l.lock_key, l.name, l.address, l.token, l.holder
FROM brokergraph_leases l
JOIN pg_locks k
  ON k.locktype = 'advisory' AND k.granted AND k.pid = l.pid AND k.objsubid = 1
 AND k.database = (SELECT oid FROM pg_database WHERE datname = current_database())
 AND k.classid::bigint = ((l.lock_key >> 32) & 4294967295)
 AND k.objid::bigint = (l.lock_key & 4294967295)
"""


def asyncpg_dsn(url: str) -> str:
    """The store's SQLAlchemy URL (``postgresql+asyncpg://``) as a libpq DSN."""
    scheme, _, rest = url.partition("://")
    return f"postgresql://{rest}" if scheme.startswith("postgresql") else url


async def lease_holders(dsn: str) -> dict[str, Holder]:
    """Every live lease of the database by connector name (operators, tests)."""
    conn = await asyncpg.connect(asyncpg_dsn(dsn), timeout=CONNECT_TIMEOUT)
    try:
        with contextlib.suppress(asyncpg.UndefinedTableError):
            rows = await conn.fetch(LIVE_HOLDERS)
            return {r["name"]: Holder(r["address"], r["token"]) for r in rows}
        return {}
    finally:
        await conn.close()


@dataclass(eq=False)
class _Campaign:
    lease: Lease
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class PostgresLeases(LeaseManager):
    """One advisory lock per single-session credential, on ``dsn``'s database."""

    distributed = True

    def __init__(self, dsn: str, *, lease_seconds: float) -> None:
        super().__init__()
        self._dsn = asyncpg_dsn(dsn)
        self.lease_seconds = lease_seconds
        self.replica = f"{socket.gethostname()}:{os.getpid()}"
        self._campaigns: dict[str, _Campaign] = {}
        self._advertised = asyncio.Event()
        self._pool: asyncpg.Pool | None = None
        self._known: dict[str, Holder] = {}
        self._closing = False

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Started, not closed, and every campaign alive (a crashed one would never hold)."""
        tasks = [c.task for c in self._campaigns.values()]
        return self._running and all(t is not None and not t.done() for t in tasks)

    def advertise(self, address: str) -> None:
        super().advertise(address)
        self._advertised.set()

    async def start(self) -> None:
        self._pool = await asyncpg.create_pool(
            self._dsn, min_size=0, max_size=2, timeout=CONNECT_TIMEOUT
        )
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK)
            await conn.execute(CREATE_TABLE)
        for name, lease in self.leases.items():
            campaign = _Campaign(lease)
            campaign.task = asyncio.create_task(self._campaign(campaign), name=f"lease-{name}")
            self._campaigns[name] = campaign
        self._running = True

    async def step_down(self, drain_seconds: float) -> None:
        """Let running calls finish (bounded), close the connectors, release the locks."""
        self._closing = True
        for campaign in self._campaigns.values():
            campaign.lease.draining = True
        await asyncio.gather(
            *(c.lease.drained(drain_seconds) for c in self._campaigns.values() if c.lease.held)
        )
        for campaign in self._campaigns.values():
            campaign.stop.set()
        tasks = [c.task for c in self._campaigns.values() if c.task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self) -> None:
        if not self._running:
            return
        await self.step_down(0.0)
        self._running = False
        if self._pool is not None:
            await self._pool.close()

    # -- routing ------------------------------------------------------------------------

    async def holder(self, lease: Lease) -> Holder | None:
        known = self._known.get(lease.name)
        if known is not None:
            return known
        if self._pool is None:
            return None
        try:
            async with self._pool.acquire(timeout=CONNECT_TIMEOUT) as conn:
                row = await conn.fetchrow(LIVE_HOLDERS + " WHERE l.lock_key = $1", lease.key)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as error:
            logger.warning("cannot look up the holder of %s: %r", lease.name, error)
            return None
        if row is None:
            return None
        found = Holder(row["address"], row["token"])
        self._known[lease.name] = found
        return found

    def forget_holder(self, lease: Lease) -> None:
        self._known.pop(lease.name, None)

    # -- one lease ----------------------------------------------------------------------

    async def _campaign(self, campaign: _Campaign) -> None:
        """Wait for the lock, hold it while it lasts, and start over until stopped."""
        await self._advertised.wait()
        backoff = 0.1
        while not campaign.stop.is_set():
            conn: Any = None
            try:
                conn = await self._connect()
                if await self._wait_for_lock(campaign, conn):
                    backoff = 0.1
                    await self._hold(campaign, conn)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as error:
                logger.warning("lease %s: %r", campaign.lease.name, error)
            finally:
                await self._let_go(campaign, conn)
            if not campaign.stop.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(backoff * random.uniform(0.5, 1.0)):  # noqa: S311
                        await campaign.stop.wait()
                backoff = min(backoff * 2, self.lease_seconds)

    async def _connect(self) -> Any:
        millis = str(int(self.lease_seconds * 1000))
        return await asyncpg.connect(
            self._dsn,
            timeout=CONNECT_TIMEOUT,
            server_settings={
                "application_name": "brokergraph-lease",
                # The server ends a holder silent for a lease time: its lock goes too.
                "idle_session_timeout": millis,
                # A waiter wakes every lease time, so a dead connection is noticed.
                "lock_timeout": millis,
                "statement_timeout": "0",
                "idle_in_transaction_session_timeout": "0",
            },
        )

    async def _wait_for_lock(self, campaign: _Campaign, conn: Any) -> bool:
        """Block in ``pg_advisory_lock`` until granted; False when told to stop."""
        key = campaign.lease.key
        while not campaign.stop.is_set():
            waiting = asyncio.ensure_future(conn.execute("SELECT pg_advisory_lock($1)", key))
            stopping = asyncio.ensure_future(campaign.stop.wait())
            try:
                done, _ = await asyncio.wait(
                    {waiting, stopping}, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                stopping.cancel()
            if waiting not in done:
                waiting.cancel()
                with contextlib.suppress(BaseException):
                    await waiting
                return False
            try:
                waiting.result()
            except asyncpg.LockNotAvailableError:
                continue  # lock_timeout: the connection is alive, wait again
            return True
        return False

    async def _hold(self, campaign: _Campaign, conn: Any) -> None:
        lease = campaign.lease
        address = self.address or ""
        sent = time.monotonic()
        token = await conn.fetchval(CLAIM, lease.key, lease.name, self.replica, address)
        lease.granted(int(token), sent + FENCE * self.lease_seconds)
        self._known.pop(lease.name, None)
        logger.info("lease %s acquired (token %s, at %s)", lease.name, token, address)
        heartbeat = asyncio.create_task(self._heartbeat(lease, conn))
        try:
            await lease.hooks.on_acquired()
            lease.ready.set()
            stopping = asyncio.ensure_future(campaign.stop.wait())
            try:
                await asyncio.wait({heartbeat, stopping}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopping.cancel()
        finally:
            heartbeat.cancel()
            with contextlib.suppress(BaseException):
                await heartbeat

    async def _heartbeat(self, lease: Lease, conn: Any) -> None:
        """Renew the tenure every third of the lease; return when the session is gone."""
        period = self.lease_seconds / HEARTBEATS
        while True:
            await asyncio.sleep(period)
            sent = time.monotonic()
            try:
                async with asyncio.timeout(period):
                    await conn.fetchval("SELECT 1")
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as error:
                logger.warning("lease %s lost: %r", lease.name, error)
                return
            lease.valid_until = sent + FENCE * self.lease_seconds

    async def _let_go(self, campaign: _Campaign, conn: Any) -> None:
        """Close the connector first, then the lock connection (which frees the lock)."""
        lease = campaign.lease
        was_held = lease.token is not None
        lease.draining = True
        lease.revoked()
        if was_held:
            try:
                await lease.hooks.on_lost()
            finally:
                logger.info("lease %s released", lease.name)
        lease.draining = False
        if conn is None:
            return
        try:
            await asyncio.wait_for(conn.close(), timeout=1.0)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
            conn.terminate()
