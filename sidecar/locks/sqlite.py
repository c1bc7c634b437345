"""The lock table in a SQLite file, for a single node.

One connection, used from one worker thread so the event loop never blocks on
disk. WAL journal with ``synchronous=FULL``: a lock is on disk when ``add``
returns. Schema changes are numbered migrations recorded in ``schema_version``.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sidecar.config import sqlite_path
from sidecar.errors import LockStoreError
from sidecar.identity import Subject
from sidecar.locks.model import Lock, LockFilter
from sidecar.locks.store import filter_where

T = TypeVar("T")

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE locks (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        scope TEXT NOT NULL,
        target TEXT NOT NULL,
        reason TEXT NOT NULL,
        owner_user_id TEXT NOT NULL,
        owner_project_id TEXT NOT NULL,
        owner_roles TEXT NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL,
        state TEXT NOT NULL DEFAULT 'active',
        source TEXT NOT NULL DEFAULT 'api',
        note TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX locks_scope_target ON locks (scope, target);
    CREATE INDEX locks_state ON locks (state) WHERE state != 'active';
    CREATE INDEX locks_scoped ON locks (scope) WHERE scope != 'instance';
    """,
)

_COLUMNS = (
    "id, kind, scope, target, reason, owner_user_id, owner_project_id, owner_roles, "
    "created_at, expires_at, state, source, note"
)


def _ts(when: datetime | None) -> float | None:
    return None if when is None else when.timestamp()


def _row_to_lock(row: sqlite3.Row | tuple[Any, ...]) -> Lock:
    return Lock(
        id=row[0],
        kind=row[1],
        scope=row[2],
        target=row[3],
        reason=row[4],
        owner=Subject(row[5], row[6], tuple(json.loads(row[7]))),
        created_at=datetime.fromtimestamp(row[8], UTC),
        expires_at=None if row[9] is None else datetime.fromtimestamp(row[9], UTC),
        state=row[10],
        source=row[11],
        note=row[12],
    )


class SqliteLockStore:
    """A LockStore on one SQLite file (see the module docstring)."""

    def __init__(self, url: str) -> None:
        self._path = sqlite_path(url)
        self._conn: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="statelock-sqlite")

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            if self._conn is None:
                raise LockStoreError("lock store is not open")
            try:
                return fn(self._conn)
            except sqlite3.Error as exc:
                raise LockStoreError(f"lock store failed: {exc}") from exc

        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run a read on the event loop's own connection.

        NOTE: an indexed read of a WAL database takes tens of microseconds, less than
        handing it to a thread; readers never wait for the writer, and each statement
        sees every commit made before it started.
        """
        if self._reader is None:
            raise LockStoreError("lock store is not open")
        try:
            return fn(self._reader)
        except sqlite3.Error as exc:
            raise LockStoreError(f"lock store failed: {exc}") from exc

    async def open(self) -> None:
        def connect() -> None:
            try:
                if self._path != ":memory:":
                    Path(self._path).parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                conn.execute("PRAGMA busy_timeout=5000")
                conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
                row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
                current = row[0] or 0
                for number, script in enumerate(MIGRATIONS[current:], start=current + 1):
                    conn.executescript("BEGIN;" + script +
                                       f"INSERT INTO schema_version VALUES ({number}); COMMIT;")
                self._conn = conn
                reader = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
                reader.execute("PRAGMA busy_timeout=1000")
                reader.execute("PRAGMA query_only=ON")
                self._reader = reader
            except (sqlite3.Error, OSError) as exc:
                raise LockStoreError(f"cannot open lock store {self._path}: {exc}") from exc

        await asyncio.get_running_loop().run_in_executor(self._executor, connect)

    async def close(self) -> None:
        def shut() -> None:
            if self._reader is not None:
                self._reader.close()
                self._reader = None
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await asyncio.get_running_loop().run_in_executor(self._executor, shut)
        self._executor.shutdown(wait=True)

    async def effective_locks(
        self, instance_id: str | None, project_id: str | None, host: str | None, now: datetime
    ) -> list[Lock]:
        pairs = [("instance", instance_id), ("project", project_id), ("host", host)]
        wanted = [(s, t) for s, t in pairs if t]
        if not wanted:
            return []
        where = " OR ".join("(scope = ? AND target = ?)" for _ in wanted)
        args: list[Any] = [v for pair in wanted for v in pair]
        args.append(now.timestamp())
        sql = (f"SELECT {_COLUMNS} FROM locks WHERE ({where}) "
               "AND (expires_at IS NULL OR expires_at > ?) ORDER BY created_at, id")
        return self._read(lambda c: [_row_to_lock(r) for r in c.execute(sql, args)])

    async def instance_locks(self, instance_id: str, now: datetime) -> tuple[list[Lock], bool]:
        ts = now.timestamp()
        sql = (f"SELECT {_COLUMNS} FROM locks WHERE scope = 'instance' AND target = ? "
               "AND (expires_at IS NULL OR expires_at > ?) ORDER BY created_at, id")
        scoped_sql = ("SELECT 1 FROM locks WHERE scope != 'instance' "
                      "AND (expires_at IS NULL OR expires_at > ?) LIMIT 1")

        def both(c: sqlite3.Connection) -> tuple[list[Lock], bool]:
            locks = [_row_to_lock(r) for r in c.execute(sql, (instance_id, ts))]
            return locks, c.execute(scoped_sql, (ts,)).fetchone() is not None

        return self._read(both)

    async def locks_on_instances(self, instance_ids: Sequence[str], now: datetime) -> dict[str, list[Lock]]:
        ids = list(dict.fromkeys(instance_ids))
        out: dict[str, list[Lock]] = {i: [] for i in ids}
        if not ids:
            return out

        def query(c: sqlite3.Connection) -> dict[str, list[Lock]]:
            # NOTE: chunks stay under SQLite's default limit of 999 bound parameters.
            for start in range(0, len(ids), 900):
                chunk = ids[start:start + 900]
                marks = ",".join("?" for _ in chunk)
                sql = (f"SELECT {_COLUMNS} FROM locks WHERE scope = 'instance' AND target IN ({marks}) "
                       "AND (expires_at IS NULL OR expires_at > ?) ORDER BY created_at, id")
                for row in c.execute(sql, [*chunk, now.timestamp()]):
                    lock = _row_to_lock(row)
                    out[lock.target].append(lock)
            return out

        return self._read(query)

    async def has_scoped_locks(self, now: datetime) -> bool:
        sql = ("SELECT 1 FROM locks WHERE scope != 'instance' "
               "AND (expires_at IS NULL OR expires_at > ?) LIMIT 1")
        return self._read(lambda c: c.execute(sql, (now.timestamp(),)).fetchone() is not None)

    async def add(self, lock: Lock) -> None:
        row = (
            lock.id, lock.kind, lock.scope, lock.target, lock.reason, lock.owner.user_id,
            lock.owner.project_id, json.dumps(list(lock.owner.roles)), _ts(lock.created_at),
            _ts(lock.expires_at), lock.state, lock.source, lock.note,
        )
        await self._run(lambda c: c.execute(
            f"INSERT INTO locks ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", row))

    async def remove(self, lock_ids: Sequence[str]) -> int:
        ids = list(lock_ids)
        if not ids:
            return 0

        def delete(c: sqlite3.Connection) -> int:
            marks = ",".join("?" for _ in ids)
            return c.execute(f"DELETE FROM locks WHERE id IN ({marks})", ids).rowcount

        return await self._run(delete)

    async def get(self, lock_id: str) -> Lock | None:
        def one(c: sqlite3.Connection) -> Lock | None:
            row = c.execute(f"SELECT {_COLUMNS} FROM locks WHERE id = ?", (lock_id,)).fetchone()
            return None if row is None else _row_to_lock(row)

        return await self._run(one)

    async def find(self, filters: LockFilter, now: datetime) -> list[Lock]:
        where, args = filter_where(filters, now.timestamp(), "?")
        sql = f"SELECT {_COLUMNS} FROM locks{where} ORDER BY created_at, id"
        return await self._run(lambda c: [_row_to_lock(r) for r in c.execute(sql, args)])

    async def set_state(self, lock_id: str, state: str, note: str = "") -> None:
        await self._run(lambda c: c.execute(
            "UPDATE locks SET state = ?, note = ? WHERE id = ?", (state, note, lock_id)))

    async def pending_locks(self) -> list[Lock]:
        sql = f"SELECT {_COLUMNS} FROM locks WHERE state = 'pending' ORDER BY created_at, id"
        return await self._run(lambda c: [_row_to_lock(r) for r in c.execute(sql)])

    async def count_in_force_by_kind(self, now: datetime) -> dict[str, int]:
        sql = ("SELECT kind, count(*) FROM locks WHERE expires_at IS NULL OR expires_at > ? "
               "GROUP BY kind")
        return await self._run(lambda c: {str(k): int(n) for k, n in c.execute(sql, (now.timestamp(),))})

    async def count(self) -> int:
        return await self._run(lambda c: int(c.execute("SELECT count(*) FROM locks").fetchone()[0]))
