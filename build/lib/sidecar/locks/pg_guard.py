"""The guard across replicas: PostgreSQL advisory locks, shared and exclusive, per instance.

Each key (an instance id, or ``ALL_INSTANCES``) is hashed to a bigint advisory lock
key. A task's guards live on one pooled connection that it holds from the first
guard it enters until it leaves the last (``PgConnections.session``), and the
store reads that task's locks on that same connection, after the lock was granted.

Session-level locks, not transaction-level ones: a lock call must commit its lock
row *inside* the guard (suspend-lock's pending lock must be durable before the
suspend is sent), and the guard is held through the forward, which must not leave
a transaction open on the server for as long as the upstream takes. They are
released explicitly when the block ends. If that can't be confirmed (an error, a
cancellation, a lost connection) the connection is closed instead, which ends the
server session and with it every advisory lock it held. The same holds when the
whole process dies: its sockets close, and the server drops its sessions' locks.

The wait is bounded: ``statelock_guard_lock`` sets ``lock_timeout`` for its own
statement, so a guard that is not free within ``timeout_s`` raises LockStoreError
(503, nothing was done) instead of hanging. PostgreSQL queues a waiting exclusive
request ahead of later shared ones, so a stream of actions cannot starve a lock call.

Limits: session locks need a session of their own, so a pooler in front of
PostgreSQL must be in session mode, not transaction mode. A replica cut off from the
database (not from the upstream) keeps forwarding what it already decided, while the
server ends its session once keep-alives go unanswered (~25 s) and frees its guards.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import psycopg

from sidecar.errors import LockStoreError
from sidecar.locks.pg_session import PgConnections, PgSession

log = logging.getLogger(__name__)

_GRACE_S = 2.0  # NOTE: beyond the server-side lock_timeout, for a server that does not answer at all.


def advisory_key(key: str) -> int:
    """The bigint advisory lock key of a guard key (a collision only serialises more)."""
    digest = hashlib.blake2b(key.encode(), digest_size=8, person=b"statelock-guard").digest()
    return int.from_bytes(digest, "big", signed=True)


class PgAdvisoryGuard:
    """Reader/writer guard keyed by instance id, shared by every replica on one database."""

    def __init__(self, db: PgConnections, timeout_s: float) -> None:
        self._db = db
        self.timeout_s = timeout_s

    def shared(self, key: str) -> AbstractAsyncContextManager[None]:
        """Hold the guard shared (a state change) for the block; LockStoreError if not free in time."""
        return self._hold(key, exclusive=False)

    def exclusive(self, key: str) -> AbstractAsyncContextManager[None]:
        """Hold the guard exclusively (a lock change) for the block; LockStoreError if not free in time."""
        return self._hold(key, exclusive=True)

    @asynccontextmanager
    async def _hold(self, key: str, exclusive: bool) -> AsyncIterator[None]:
        lock_key = advisory_key(key)
        async with self._db.session() as session:
            await self._acquire(session, key, lock_key, exclusive)
            try:
                yield
            finally:
                await self._release(session, key, lock_key, exclusive)

    async def _acquire(self, session: PgSession, key: str, lock_key: int, exclusive: bool) -> None:
        mode = "exclusively" if exclusive else "shared"
        try:
            async with asyncio.timeout(self.timeout_s + _GRACE_S), session.lock:
                cur = await session.conn.execute("SELECT statelock_guard_lock(%s, %s, %s)",
                                                 (lock_key, exclusive, int(self.timeout_s * 1000)))
                row = await cur.fetchone()
        except BaseException as exc:
            # NOTE: the lock may have been granted just before the failure: only closing the
            # connection is sure to release it.
            await session.discard()
            if isinstance(exc, psycopg.Error | TimeoutError | OSError):
                raise LockStoreError(f"the guard of {key} could not be taken {mode}: {exc}") from exc
            raise
        if row is None or row[0] is None:
            raise LockStoreError(f"the guard of {key} was not free within {self.timeout_s:g}s")
        session.held += 1
        session.generation = int(row[0])

    async def _release(self, session: PgSession, key: str, lock_key: int, exclusive: bool) -> None:
        session.generation = None
        if session.tainted:
            return
        unlock = "SELECT pg_advisory_unlock(%s)" if exclusive else "SELECT pg_advisory_unlock_shared(%s)"
        try:
            async with asyncio.timeout(self.timeout_s + _GRACE_S), session.lock:
                cur = await session.conn.execute(unlock, (lock_key,))
                row = await cur.fetchone()
        except BaseException as exc:
            await session.discard()
            if isinstance(exc, psycopg.Error | TimeoutError | OSError):
                # NOTE: never raise here: the request behind the guard already happened.
                log.warning("releasing the guard of %s failed (%s); its connection was closed", key, exc)
                return
            raise
        if row is None or not row[0]:
            log.error("the guard of %s was not held at release; closing its connection", key)
            await session.discard()
            return
        session.held -= 1

