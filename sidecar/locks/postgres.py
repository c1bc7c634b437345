"""The lock table in PostgreSQL, shared by several replicas.

Same table and numbered migrations (``schema_version``) as SQLite, on psycopg 3
with its async pool. Every call raises LockStoreError when the database fails,
so the request path fails closed.

Replicas and the cache. A trigger bumps ``lock_generation`` in the same
transaction as every change to ``locks`` and announces ``{generation, scope,
target}`` with NOTIFY; each replica LISTENs and drops what it cached for that
target. A decision uses cached rows only under the guard (``PgAdvisoryGuard``),
which reads the generation *after* its advisory lock is granted, and only when
this replica has applied every notification up to that generation: a decision
never uses a lock set older than the guard it holds. Outside the guard, and
whenever the listener lags or is down, reads go to the table.

The guard holds one pooled connection per task (``session``) from the lock read
through the forward; the store's reads inside the guard run on that connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, LiteralString

import psycopg
from psycopg_pool import AsyncConnectionPool

from sidecar.errors import LockStoreError
from sidecar.identity import Subject
from sidecar.locks.model import Lock, LockFilter, redact_url
from sidecar.locks.pg_cache import LockCache
from sidecar.locks.store import filter_where

log = logging.getLogger(__name__)

CHANNEL = "statelock_locks"
_MIGRATION_LOCK = 0x5354_4C4B_4D49_4752  # NOTE: any fixed bigint; serialises replicas migrating at once.

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE locks (
        id text PRIMARY KEY,
        kind text NOT NULL,
        scope text NOT NULL,
        target text NOT NULL,
        reason text NOT NULL,
        owner_user_id text NOT NULL,
        owner_project_id text NOT NULL,
        owner_roles text[] NOT NULL,
        created_at timestamptz NOT NULL,
        expires_at timestamptz,
        state text NOT NULL DEFAULT 'active',
        source text NOT NULL DEFAULT 'api',
        note text NOT NULL DEFAULT ''
    );
    CREATE INDEX locks_scope_target ON locks (scope, target);
    CREATE INDEX locks_state ON locks (state) WHERE state <> 'active';
    CREATE INDEX locks_scoped ON locks (scope) WHERE scope <> 'instance';

    CREATE TABLE lock_generation (
        singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
        value bigint NOT NULL
    );
    INSERT INTO lock_generation (value) VALUES (0);

    CREATE FUNCTION statelock_locks_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        gen bigint;
        s text := '*';
        t text := '';
    BEGIN
        UPDATE lock_generation SET value = value + 1 RETURNING value INTO gen;
        IF TG_OP = 'DELETE' THEN
            s := OLD.scope; t := OLD.target;
        ELSIF TG_OP = 'INSERT' THEN
            s := NEW.scope; t := NEW.target;
        ELSIF TG_OP = 'UPDATE' AND OLD.scope = NEW.scope AND OLD.target = NEW.target THEN
            s := NEW.scope; t := NEW.target;
        END IF;
        PERFORM pg_notify('statelock_locks',
                          json_build_object('generation', gen, 'scope', s, 'target', t)::text);
        RETURN NULL;
    END $$;
    CREATE TRIGGER locks_changed AFTER INSERT OR UPDATE OR DELETE ON locks
        FOR EACH ROW EXECUTE FUNCTION statelock_locks_changed();
    CREATE TRIGGER locks_truncated AFTER TRUNCATE ON locks
        FOR EACH STATEMENT EXECUTE FUNCTION statelock_locks_changed();

    -- The guard: take a session advisory lock within timeout_ms (NULL when it was not
    -- free in time), then read the generation. A VOLATILE function takes a new snapshot
    -- for each query, so the read sees every change committed before the lock was granted.
    CREATE FUNCTION statelock_guard_lock(key bigint, exclusive boolean, timeout_ms integer)
    RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
    DECLARE
        gen bigint;
    BEGIN
        PERFORM set_config('lock_timeout', timeout_ms::text, true);
        BEGIN
            IF exclusive THEN
                PERFORM pg_advisory_lock(key);
            ELSE
                PERFORM pg_advisory_lock_shared(key);
            END IF;
        EXCEPTION WHEN lock_not_available THEN
            RETURN NULL;
        END;
        SELECT value INTO gen FROM lock_generation;
        RETURN gen;
    END $$;
    """,
)

_COLUMNS = ("id, kind, scope, target, reason, owner_user_id, owner_project_id, owner_roles, "
            "created_at, expires_at, state, source, note")
_IN_FORCE = "(expires_at IS NULL OR expires_at > %s)"
_INSERT: LiteralString = (f"INSERT INTO locks ({_COLUMNS}) "
                          "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)")


def _row_to_lock(row: Sequence[Any]) -> Lock:
    return Lock(
        id=row[0], kind=row[1], scope=row[2], target=row[3], reason=row[4],
        owner=Subject(row[5], row[6], tuple(row[7])),
        created_at=row[8].astimezone(UTC),
        expires_at=None if row[9] is None else row[9].astimezone(UTC),
        state=row[10], source=row[11], note=row[12],
    )


def lock_row(lock: Lock) -> tuple[Any, ...]:
    """The INSERT parameters of a lock."""
    return (lock.id, lock.kind, lock.scope, lock.target, lock.reason, lock.owner.user_id,
            lock.owner.project_id, list(lock.owner.roles), lock.created_at, lock.expires_at,
            lock.state, lock.source, lock.note)


def _ordered(locks: Sequence[Lock]) -> list[Lock]:
    return sorted(locks, key=lambda lk: (lk.created_at, lk.id))


@dataclass(eq=False)
class PgSession:
    """One pooled connection held by one task while it holds a guard.

    ``held`` counts advisory locks taken and not yet released; ``generation`` is the
    lock generation read when the last one was granted (None: don't use the cache);
    a ``tainted`` session is closed instead of returned to the pool, which ends the
    server session and so releases every advisory lock it might still hold.
    """

    conn: psycopg.AsyncConnection[Any]
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


class PostgresLockStore:
    """A LockStore on a PostgreSQL database (see the module docstring)."""

    def __init__(self, url: str, *, pool_size: int = 20, timeout_s: float = 5.0) -> None:
        self._url = url
        self._shown = redact_url(url)
        self._pool_size = pool_size
        self.timeout_s = timeout_s
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] | None = None
        self._current: ContextVar[PgSession | None] = ContextVar("statelock_pg_session", default=None)
        self._cache = LockCache()
        self._listener: asyncio.Task[None] | None = None
        self._checking: asyncio.Task[None] | None = None

    # -- connections -----------------------------------------------------------------------

    async def _configure(self, conn: psycopg.AsyncConnection[Any]) -> None:
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

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        conn = await psycopg.AsyncConnection.connect(
            self._url, autocommit=True, connect_timeout=max(1, round(self.timeout_s)))
        await self._configure(conn)
        return conn

    def _require_pool(self) -> AsyncConnectionPool[psycopg.AsyncConnection[Any]]:
        if self._pool is None:
            raise LockStoreError("lock store is not open")
        return self._pool

    @asynccontextmanager
    async def session(self) -> AsyncIterator[PgSession]:
        """The connection this task holds for its guard; nested calls share it.

        Raises LockStoreError when no connection is free within the timeout.
        """
        current = self._current.get()
        if current is not None and current.active:
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
    async def _connection(self) -> AsyncIterator[tuple[psycopg.AsyncConnection[Any], PgSession | None]]:
        """The task's guard connection if it holds one, else a pooled one; errors -> LockStoreError."""
        try:
            async with asyncio.timeout(3 * self.timeout_s + 2):
                session = self._current.get()
                if session is not None and session.active:
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

    async def _rows(self, sql: LiteralString, args: Sequence[Any] = ()) -> list[Lock]:
        async with self._connection() as (conn, _):
            cur = await conn.execute(sql, args)
            return [_row_to_lock(r) for r in await cur.fetchall()]

    async def _changed(self, sql: LiteralString, args: Sequence[Any]) -> int:
        """Run a write that returns (scope, target) of each row it touched; forget those targets."""
        async with self._connection() as (conn, session):
            if session is not None:
                session.generation = None  # NOTE: our own write: read the table until the guard is left.
            try:
                cur = await conn.execute(sql, args)
                touched = await cur.fetchall()
            except BaseException:
                self._cache.clear()
                raise
        for scope, target in touched:
            self._cache.drop(str(scope), str(target))
        return len(touched)

    # -- open / close ------------------------------------------------------------------------

    async def open(self) -> None:
        try:
            conn = await self._connect()
        except (psycopg.Error, OSError) as exc:
            raise LockStoreError(f"cannot open lock store {self._shown}: {exc}") from exc
        try:
            async with conn:
                await self._migrate(conn)
        except psycopg.Error as exc:
            raise LockStoreError(f"cannot migrate lock store {self._shown}: {exc}") from exc
        pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] = AsyncConnectionPool(
            self._url, min_size=1, max_size=self._pool_size, kwargs={"autocommit": True},
            configure=self._configure, open=False, timeout=self.timeout_s, name="statelock-locks")
        try:
            await pool.open(wait=True, timeout=max(self.timeout_s, 5.0))
        except psycopg.Error as exc:
            await pool.close()
            raise LockStoreError(f"cannot open lock store {self._shown}: {exc}") from exc
        self._pool = pool
        ready = asyncio.Event()
        self._listener = asyncio.create_task(self._listen(ready), name="statelock-lock-listener")
        # NOTE: the cache only works once the listener is in; decisions never wait for it.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.timeout_s):
                await ready.wait()

    async def _migrate(self, conn: psycopg.AsyncConnection[Any]) -> None:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)")
            cur = await conn.execute("SELECT coalesce(max(version), 0) FROM schema_version")
            row = await cur.fetchone()
            current = int(row[0]) if row else 0
            for number, script in enumerate(MIGRATIONS[current:], start=current + 1):
                await conn.execute(script.encode())
                await conn.execute("INSERT INTO schema_version VALUES (%s)", (number,))
                log.info("lock store %s migrated to schema version %d", self._shown, number)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
            self._listener = None
        if self._checking is not None:
            await asyncio.gather(self._checking, return_exceptions=True)
            self._checking = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        self._cache.forget()

    async def _listen(self, ready: asyncio.Event) -> None:
        """Apply NOTIFYs to the cache for as long as the store is open; reconnect on failure."""
        delay = 0.2
        while True:
            try:
                async with await self._connect() as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    cur = await conn.execute("SELECT value FROM lock_generation")
                    row = await cur.fetchone()
                    self._cache.reset(int(row[0]) if row else -1)
                    ready.set()
                    delay = 0.2
                    async for note in conn.notifies():
                        self._cache.apply(note.payload)
            except Exception as exc:  # NOTE: whatever stops it, the listener must come back.
                log.warning("lock change listener lost (%s); retrying in %.1fs", exc, delay)
            self._cache.forget()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    # -- reads -----------------------------------------------------------------------------

    async def _snapshot(self, instance_id: str | None, now: datetime) -> tuple[list[Lock], list[Lock]]:
        """(the instance's locks, every project and host lock) in force at ``now``.

        Under a guard, from the cache when it is exact at the guard's generation; else
        one query on the guard's connection (or a pooled one), kept for the next time.
        """
        session = self._current.get()
        generation = session.generation if session is not None and session.active else None
        if generation is not None:
            scoped = self._cache.scoped(generation, now)
            own = self._cache.instance(instance_id, generation, now) if instance_id else ()
            if scoped is not None and own is not None:
                return [lk for lk in own if lk.in_force(now)], [lk for lk in scoped if lk.in_force(now)]
        if instance_id:
            rows = await self._rows(
                f"SELECT {_COLUMNS} FROM locks WHERE ((scope = 'instance' AND target = %s) "
                f"OR scope <> 'instance') AND {_IN_FORCE} ORDER BY created_at, id", (instance_id, now))
        else:
            rows = await self._rows(
                f"SELECT {_COLUMNS} FROM locks WHERE scope <> 'instance' AND {_IN_FORCE} "
                "ORDER BY created_at, id", (now,))
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
            rows = await self._rows(
                f"SELECT {_COLUMNS} FROM locks WHERE scope = 'instance' AND target = ANY(%s) "
                f"AND {_IN_FORCE} ORDER BY created_at, id", (list(out), now))
            for lock in rows:
                out[lock.target].append(lock)
        return out

    async def get(self, lock_id: str) -> Lock | None:
        locks = await self._rows(f"SELECT {_COLUMNS} FROM locks WHERE id = %s", (lock_id,))
        return locks[0] if locks else None

    async def find(self, filters: LockFilter, now: datetime) -> list[Lock]:
        where, args = filter_where(filters, now, "%s")
        sql = f"SELECT {_COLUMNS} FROM locks{where} ORDER BY created_at, id"
        return await self._rows(sql, args)

    async def pending_locks(self) -> list[Lock]:
        locks = await self._rows(
            f"SELECT {_COLUMNS} FROM locks WHERE state = 'pending' ORDER BY created_at, id")
        return locks

    async def count_in_force_by_kind(self, now: datetime) -> dict[str, int]:
        async with self._connection() as (conn, _):
            cur = await conn.execute(f"SELECT kind, count(*) FROM locks WHERE {_IN_FORCE} GROUP BY kind",
                                     (now,))
            return {str(k): int(n) for k, n in await cur.fetchall()}

    async def count(self) -> int:
        async with self._connection() as (conn, _):
            cur = await conn.execute("SELECT count(*) FROM locks")
            row = await cur.fetchone()
            return int(row[0]) if row else 0

    async def schema_version(self) -> int:
        """The schema version the database is at."""
        async with self._connection() as (conn, _):
            cur = await conn.execute("SELECT coalesce(max(version), 0) FROM schema_version")
            row = await cur.fetchone()
            return int(row[0]) if row else 0

    # -- writes ----------------------------------------------------------------------------

    async def add(self, lock: Lock) -> None:
        await self._changed(_INSERT + " RETURNING scope, target", lock_row(lock))

    async def remove(self, lock_ids: Sequence[str]) -> int:
        ids = list(lock_ids)
        if not ids:
            return 0
        return await self._changed("DELETE FROM locks WHERE id = ANY(%s) RETURNING scope, target", (ids,))

    async def set_state(self, lock_id: str, state: str, note: str = "") -> None:
        await self._changed("UPDATE locks SET state = %s, note = %s WHERE id = %s RETURNING scope, target",
                            (state, note, lock_id))

    async def copy_in(self, locks: Sequence[Lock], guard_key: int) -> int:
        """Insert locks in one transaction, skipping ids already present; returns how many were new.

        Takes the advisory lock ``guard_key`` exclusively for the transaction, so replicas
        serving from this table order their state changes against the copy.
        """
        async with self._connection() as (conn, _), conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (guard_key,))
            if not locks:
                return 0
            cur = conn.cursor()
            await cur.executemany(_INSERT + " ON CONFLICT (id) DO NOTHING", [lock_row(lk) for lk in locks])
            return max(cur.rowcount, 0)
