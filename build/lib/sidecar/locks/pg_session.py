"""Connections to the PostgreSQL lock store: the pool, each task's guard session, bounded use.

``PgConnections`` owns a psycopg async pool of autocommit connections, each set up
with bounded lock and statement timeouts and TCP keep-alives. A task that enters a
guard holds one pooled connection for as long as it holds any guard (``session``);
every store call that task makes meanwhile runs on that connection (``connection``),
so it reads after its advisory lock was granted. Other calls borrow a pooled
connection. Every psycopg failure and every wait past its bound becomes
LockStoreError, so the request path fails closed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from sidecar.errors import LockStoreError
from sidecar.locks.model import redact_url

log = logging.getLogger(__name__)

Connection = psycopg.AsyncConnection[Any]


@dataclass(eq=False)
class PgSession:
    """One pooled connection held by one task while it holds a guard.

    ``held`` counts advisory locks taken and not yet released; ``generation`` is the
    lock generation read when the last one was granted (None: don't use the cache);
    a ``tainted`` session is closed instead of returned to the pool, which ends the
    server session and so releases every advisory lock it might still hold.
    """

    conn: Connection
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    held: int = 0
    generation: int | None = None
    active: bool = True
    tainted: bool = False

    async def discard(self) -> None:
        """Mark tainted and close the connection now (the server drops its advisory locks)."""
        self.tainted = True
        self.generation = None
        try:
            await self.conn.close()
        except Exception:  # NOTE: closing is the last resort; nothing more to try.
            log.exception("closing a lock store connection failed")


class PgConnections:
    """The pool and the per-task sessions of one PostgreSQL lock store (see the module docstring)."""

    def __init__(self, url: str, *, pool_size: int, timeout_s: float) -> None:
        self._url = url
        self.shown = redact_url(url)
        self._pool_size = pool_size
        self.timeout_s = timeout_s
        self._pool: AsyncConnectionPool[Connection] | None = None
        self._current: ContextVar[PgSession | None] = ContextVar("statelock_pg_session", default=None)
        self._checking: asyncio.Task[None] | None = None

    async def _configure(self, conn: Connection) -> None:
        ms = int(self.timeout_s * 1000)
        # NOTE: longer than lock_timeout, so a guard that waits too long fails as "not free".
        settings = {"statement_timeout": str(2 * ms + 1000), "lock_timeout": str(ms), "TimeZone": "UTC",
                    "application_name": "statelock"}
        # NOTE: the server ends the session of a replica that vanished (host down, network cut)
        # after ~25 s without an answer to keep-alives, so its advisory locks don't outlive it.
        settings.update(tcp_keepalives_idle="10", tcp_keepalives_interval="5", tcp_keepalives_count="3")
        if conn.info.server_version >= 140000:
            # NOTE: a connection may hold a guard while idle (the forward is under way): no idle
            # timeout may end it, and a dead client is noticed even while its query waits.
            settings.update(idle_session_timeout="0", client_connection_check_interval="1000")
        calls = ", ".join("set_config(%s, %s, false)" for _ in settings)
        await conn.execute(f"SELECT {calls}", [v for pair in settings.items() for v in pair])

    async def connect(self) -> Connection:
        """A connection of its own, set up like the pooled ones; psycopg.Error or OSError on failure."""
        conn = await psycopg.AsyncConnection.connect(
            self._url, autocommit=True, connect_timeout=max(1, round(self.timeout_s)))
        await self._configure(conn)
        return conn

    async def open(self) -> None:
        """Open the pool; LockStoreError when its first connection can't be made in time."""
        pool: AsyncConnectionPool[Connection] = AsyncConnectionPool(
            self._url, min_size=1, max_size=self._pool_size, kwargs={"autocommit": True},
            configure=self._configure, open=False, timeout=self.timeout_s, name="statelock-locks")
        try:
            await pool.open(wait=True, timeout=max(self.timeout_s, 5.0))
        except psycopg.Error as exc:
            await pool.close()
            raise LockStoreError(f"cannot open lock store {self.shown}: {exc}") from exc
        self._pool = pool

    async def close(self) -> None:
        """Close the pool (and wait for a background pool check)."""
        if self._checking is not None:
            await asyncio.gather(self._checking, return_exceptions=True)
            self._checking = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    def _require_pool(self) -> AsyncConnectionPool[Connection]:
        if self._pool is None:
            raise LockStoreError("lock store is not open")
        return self._pool

    def current(self) -> PgSession | None:
        """The session this task holds for its guards, or None."""
        session = self._current.get()
        return session if session is not None and session.active else None

    @asynccontextmanager
    async def session(self) -> AsyncIterator[PgSession]:
        """The connection this task holds for its guard; nested calls share it.

        Raises LockStoreError when no connection is free within the timeout.
        """
        current = self.current()
        if current is not None:
            yield current
            return
        pool = self._require_pool()
        try:
            conn = await pool.getconn(timeout=self.timeout_s)
        except psycopg.Error as exc:
            raise LockStoreError(f"no lock store connection within {self.timeout_s:g}s: {exc}") from exc
        session = PgSession(conn)
        token = self._current.set(session)
        try:
            yield session
        finally:
            self._current.reset(token)
            session.active = False
            if session.held and not session.tainted:
                log.error("a guard connection still holds %d advisory locks: closing it", session.held)
                await session.discard()
            elif session.tainted and not conn.closed:
                await session.discard()
            await pool.putconn(conn)
            if session.tainted:
                self._check_pool()

    def _check_pool(self) -> None:
        """After a failed connection, test the idle ones in the background (a restarted server)."""
        if self._pool is not None and (self._checking is None or self._checking.done()):
            self._checking = asyncio.create_task(self._pool.check(), name="statelock-lock-pool-check")

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[tuple[Connection, PgSession | None]]:
        """The task's guard connection if it holds one, else a pooled one; errors -> LockStoreError."""
        try:
            async with asyncio.timeout(3 * self.timeout_s + 2):
                session = self.current()
                if session is not None:
                    async with session.lock:
                        yield session.conn, session
                    return
                async with self._require_pool().connection(timeout=self.timeout_s) as conn:
                    yield conn, None
        except psycopg.Error as exc:
            if isinstance(exc, psycopg.OperationalError):
                self._check_pool()
            raise LockStoreError(f"lock store failed: {exc}") from exc
        except TimeoutError as exc:
            raise LockStoreError(f"lock store did not answer within {3 * self.timeout_s + 2:g}s") from exc
