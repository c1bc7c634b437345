"""The lock table in PostgreSQL, shared by several replicas.

Same table and numbered migrations as SQLite (``pg_schema``), on psycopg 3 with its
async pool (``pg_session``). Every call raises LockStoreError when the database
fails, so the request path fails closed.

Replicas and the cache. A trigger bumps ``lock_generation`` in the same
transaction as every change to ``locks`` and announces ``{generation, scope,
target}`` with NOTIFY; each replica LISTENs (``pg_listener``) and drops what it
cached for that target. A decision uses cached rows only under the guard
(``PgAdvisoryGuard``), which reads the generation *after* its advisory lock is
granted, and only when this replica has applied every notification up to that
generation: a decision never uses a lock set older than the guard it holds.
Outside the guard, and whenever the listener lags or is down, reads go to the table.

The guard holds one pooled connection per task from the lock read through the
forward; the store's reads inside the guard run on that connection.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg

from sidecar.errors import LockStoreError
from sidecar.guard import Guard
from sidecar.identity import Subject
from sidecar.locks.model import Lock, LockFilter
from sidecar.locks.pg_cache import LockCache
from sidecar.locks.pg_guard import PgAdvisoryGuard
from sidecar.locks.pg_listener import LockListener
from sidecar.locks.pg_schema import SQL, migrate, schema_version
from sidecar.locks.pg_session import PgConnections
from sidecar.vocab import LockState


def _ordered(locks: Sequence[Lock]) -> list[Lock]:
    return sorted(locks, key=lambda lk: (lk.created_at, lk.id))


class PostgresLockStore:
    """A LockStore on a PostgreSQL database (see the module docstring)."""

    def __init__(self, url: str, *, pool_size: int = 20, timeout_s: float = 5.0) -> None:
        self.db = PgConnections(url, pool_size=pool_size, timeout_s=timeout_s)
        self._cache = LockCache()
        self._listener = LockListener(self.db, self._cache)

    @property
    def timeout_s(self) -> float:
        """The longest wait for a connection, a guard or a query."""
        return self.db.timeout_s

    def guard(self, timeout_s: float) -> Guard:
        """Advisory locks on this database, shared by every replica; waits at most ``timeout_s``."""
        return PgAdvisoryGuard(self.db, timeout_s)

    async def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[Lock]:
        async with self.db.connection() as (conn, _):
            cur = await conn.execute(sql.encode(), args)
            return [SQL.lock(r) for r in await cur.fetchall()]

    async def _changed(self, sql: str, args: Sequence[Any]) -> int:
        """Run a write, returning (scope, target) of each row it touched; forget those targets."""
        async with self.db.connection() as (conn, session):
            if session is not None:
                session.generation = None  # NOTE: our own write: read the table until the guard is left.
            try:
                cur = await conn.execute((sql + " RETURNING scope, target").encode(), args)
                touched = await cur.fetchall()
            except BaseException:
                self._cache.clear()
                raise
        for scope, target in touched:
            self._cache.drop(str(scope), str(target))
        return len(touched)

    async def _fetch(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        async with self.db.connection() as (conn, _):
            cur = await conn.execute(sql.encode(), args)
            return await cur.fetchall()

    # -- open / close ------------------------------------------------------------------------

    async def open(self) -> None:
        try:
            conn = await self.db.connect()
        except (psycopg.Error, OSError) as exc:
            raise LockStoreError(f"cannot open lock store {self.db.shown}: {exc}") from exc
        try:
            async with conn:
                await migrate(conn, self.db.shown)
        except psycopg.Error as exc:
            raise LockStoreError(f"cannot migrate lock store {self.db.shown}: {exc}") from exc
        await self.db.open()
        # NOTE: the cache only works once the listener is in; decisions never wait for it.
        await self._listener.start(self.timeout_s)

    async def close(self) -> None:
        await self._listener.stop()
        await self.db.close()

    # -- reads -----------------------------------------------------------------------------

    async def _snapshot(self, instance_id: str | None, now: datetime) -> tuple[list[Lock], list[Lock]]:
        """(the instance's locks, every project and host lock) in force at ``now``.

        Under a guard, from the cache when it is exact at the guard's generation; else
        one query on the guard's connection (or a pooled one), kept for the next time.
        """
        session = self.db.current()
        generation = session.generation if session is not None else None
        if generation is not None:
            scoped = self._cache.scoped(generation, now)
            own = self._cache.instance(instance_id, generation, now) if instance_id else ()
            if scoped is not None and own is not None:
                return [lk for lk in own if lk.in_force(now)], [lk for lk in scoped if lk.in_force(now)]
        if instance_id:
            rows = await self._rows(SQL.own_and_scoped, (instance_id, SQL.encode_now(now)))
        else:
            rows = await self._rows(SQL.scoped, (SQL.encode_now(now),))
        own_rows = [lk for lk in rows if lk.scope == "instance"]
        scoped_rows = [lk for lk in rows if lk.scope != "instance"]
        if generation is not None:
            self._cache.put_scoped(scoped_rows, generation, now)
            if instance_id:
                self._cache.put_instance(instance_id, own_rows, generation, now)
        return own_rows, scoped_rows

    async def effective_locks(
        self, instance_id: str | None, project_id: str | None, host: str | None, now: datetime
    ) -> list[Lock]:
        if not (instance_id or project_id or host):
            return []
        own, scoped = await self._snapshot(instance_id or None, now)
        wanted = {("project", project_id), ("host", host)}
        return _ordered(own + [lk for lk in scoped if (lk.scope, lk.target) in wanted])

    async def instance_locks(self, instance_id: str, now: datetime) -> tuple[list[Lock], bool]:
        own, scoped = await self._snapshot(instance_id, now)
        return own, bool(scoped)

    async def has_scoped_locks(self, now: datetime) -> bool:
        _, scoped = await self._snapshot(None, now)
        return bool(scoped)

    async def locks_on_instances(self, instance_ids: Sequence[str], now: datetime) -> dict[str, list[Lock]]:
        out: dict[str, list[Lock]] = {i: [] for i in dict.fromkeys(instance_ids)}
        if out:
            for lock in await self._rows(*SQL.on_instances(list(out), now)):
                out[lock.target].append(lock)
        return out

    async def get(self, lock_id: str) -> Lock | None:
        locks = await self._rows(SQL.get, (lock_id,))
        return locks[0] if locks else None

    async def find(self, filters: LockFilter, now: datetime) -> list[Lock]:
        return await self._rows(*SQL.find(filters, now))

    async def pending_locks(self) -> list[Lock]:
        return await self._rows(SQL.pending)

    async def count_in_force_by_kind(self, now: datetime) -> dict[str, int]:
        return {str(k): int(n) for k, n in await self._fetch(SQL.count_by_kind, (SQL.encode_now(now),))}

    async def count(self) -> int:
        return int((await self._fetch(SQL.count))[0][0])

    async def schema_version(self) -> int:
        async with self.db.connection() as (conn, _):
            return await schema_version(conn)

    # -- writes ----------------------------------------------------------------------------

    async def add(self, lock: Lock) -> None:
        await self._changed(SQL.insert, SQL.params(lock))

    async def lift(self, lock_ids: Sequence[str], lifted_by: Subject, decision_id: str, now: datetime) -> int:
        ids = list(lock_ids)
        if not ids:
            return 0
        return await self._changed(*SQL.lift(ids, lifted_by, decision_id, now))

    async def set_state(self, lock_id: str, state: LockState, note: str = "") -> None:
        await self._changed(SQL.set_state, (state, note, lock_id))
