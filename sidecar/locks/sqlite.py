"""The lock table in a SQLite file, for a single node.

One connection for writes, used from one worker thread so the event loop never
blocks on disk; reads run on a second, read-only connection on the event loop.
The reads that decide are answered from memory (``sidecar.locks.memory``) while
the table has not changed: each checks ``PRAGMA data_version`` on the reader (it
moves on every commit of the writer connection and of any other connection or
process on the file) and the store's own count of writes, and reads SQL again
only after a change.
WAL journal with ``synchronous=FULL``: a lock is on disk when ``add`` returns.
Schema changes are the numbered migrations of ``sidecar.locks.sql``, recorded in
``schema_version``. The file is created 0640 whatever the umask (SQLite gives its
``-wal`` and ``-shm`` files the database's mode). The guard is in-process
(``InstanceGuard``): one SQLite file serves one process.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sidecar.errors import LockStoreError
from sidecar.guard import Guard, InstanceGuard
from sidecar.identity import Subject
from sidecar.locks.memory import LockMemory, ScopedSummary, in_force, oldest_first
from sidecar.locks.model import Lock, LockFilter
from sidecar.locks.sql import SCHEMA_VERSION_TABLE, Dialect, LockSql, table_migrations, to_run
from sidecar.vocab import LockState

T = TypeVar("T")

FILE_MODE = 0o640

SQLITE = Dialect(
    mark="?", time_type="real", roles_type="text",
    encode_time=lambda when: when.timestamp(),
    decode_time=lambda value: datetime.fromtimestamp(value, UTC),
    encode_roles=lambda roles: json.dumps(list(roles)),
    decode_roles=lambda value: tuple(json.loads(value)),
    expand_lists=True,
)
MIGRATIONS: tuple[str, ...] = table_migrations(SQLITE)
_SQL = LockSql(SQLITE)
_CHUNK = 900  # NOTE: stays under SQLite's historical default limit of 999 bound parameters.
_ROWS_ON = f"{_SQL.select} WHERE scope = ? AND target = ? AND state <> 'lifted' ORDER BY created_at, id"
_SCOPED_SUMMARY = ("SELECT max(expires_at IS NULL), max(expires_at) FROM locks "
                   "WHERE scope <> 'instance' AND state <> 'lifted'")


def sqlite_path(url: str) -> str:
    """Return the file path in a ``sqlite:///`` URL (four slashes: absolute)."""
    path = url[len("sqlite:///") :]
    return path or ":memory:"


def _create_file(path: str) -> None:
    """Create an empty database file with ``FILE_MODE`` unless it exists (the umask can't widen it)."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)


def _call(conn: sqlite3.Connection | None, fn: Callable[[sqlite3.Connection], T]) -> T:
    """``fn(conn)``; LockStoreError when the store is not open or SQLite fails."""
    if conn is None:
        raise LockStoreError("lock store is not open")
    try:
        return fn(conn)
    except sqlite3.Error as exc:
        raise LockStoreError(f"lock store failed: {exc}") from exc


class SqliteLockStore:
    """A LockStore on one SQLite file (see the module docstring)."""

    def __init__(self, url: str) -> None:
        self._path = sqlite_path(url)
        self._conn: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="statelock-sqlite")
        self._guard = InstanceGuard()
        self._memory = LockMemory()
        self._writes = 0

    def guard(self, timeout_s: float) -> Guard:
        """The store's one in-process guard (the same one on every call; it does not time out)."""
        return self._guard

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` on the writer connection, in the store's one worker thread."""
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, lambda: _call(self._conn, fn))

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``_run`` for a statement that changes the table: what memory holds is dropped once it did."""
        try:
            return await self._run(fn)
        finally:
            self._writes += 1

    def _memo(self) -> LockMemory:
        """The lock memory at the table's version now (one ``PRAGMA data_version``)."""
        version = self._read(lambda c: c.execute("PRAGMA data_version").fetchone()[0])
        return self._memory.at((self._writes, version))

    def _rows_on(self, memo: LockMemory, scope: str, target: str) -> tuple[Lock, ...]:
        """The rows not lifted on one target, from memory or read into it."""
        rows = memo.rows((scope, target))
        if rows is None:
            rows = memo.put((scope, target), self._read(
                lambda c: [_SQL.lock(r) for r in c.execute(_ROWS_ON, (scope, target))]))
        return rows

    def _scoped(self, memo: LockMemory, now: datetime) -> bool:
        summary = memo.scoped
        if summary is None:
            forever, latest = self._read(lambda c: c.execute(_SCOPED_SUMMARY).fetchone())
            summary = memo.scoped = ScopedSummary(bool(forever), None if latest is None
                                                  else SQLITE.decode_time(latest))
        return summary.any_in_force(now)

    def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run a read on the event loop's own connection.

        NOTE: an indexed read of a WAL database takes tens of microseconds, less than
        handing it to a thread; readers never wait for the writer, and each statement
        sees every commit made before it started.
        """
        return _call(self._reader, fn)

    def _locks(self, sql: str, args: Sequence[Any] = ()) -> list[Lock]:
        return self._read(lambda c: [_SQL.lock(r) for r in c.execute(sql, args)])

    async def open(self) -> None:
        def connect() -> None:
            try:
                if self._path != ":memory:":
                    Path(self._path).parent.mkdir(parents=True, exist_ok=True)
                    _create_file(self._path)
                conn = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                conn.execute("PRAGMA busy_timeout=5000")
                conn.execute(SCHEMA_VERSION_TABLE)
                current = int(conn.execute(_SQL.version).fetchone()[0])
                for number, script in to_run(MIGRATIONS, current):
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
        pairs = [(s, t) for s, t in (("instance", instance_id), ("project", project_id), ("host", host)) if t]
        if not pairs:
            return []
        memo = self._memo()
        return oldest_first([self._rows_on(memo, s, t) for s, t in pairs], now)

    async def instance_locks(self, instance_id: str, now: datetime) -> tuple[list[Lock], bool]:
        memo = self._memo()
        return in_force(self._rows_on(memo, "instance", instance_id), now), self._scoped(memo, now)

    async def locks_on_instances(self, instance_ids: Sequence[str], now: datetime) -> dict[str, list[Lock]]:
        ids = list(dict.fromkeys(instance_ids))
        memo = self._memo()
        known = {i: memo.rows(("instance", i)) for i in ids}
        missing = [i for i, rows in known.items() if rows is None]
        for start in range(0, len(missing), _CHUNK):
            chunk = missing[start:start + _CHUNK]
            read: dict[str, list[Lock]] = {i: [] for i in chunk}
            clause, args = _SQL.member("target", chunk)
            for lock in self._locks(f"{_SQL.select} WHERE scope = 'instance' AND {clause} AND state <> 'lifted' "
                                    "ORDER BY created_at, id", args):
                read[lock.target].append(lock)
            for i, rows in read.items():
                known[i] = memo.put(("instance", i), rows)
        return {i: in_force(rows or (), now) for i, rows in known.items()}

    async def has_scoped_locks(self, now: datetime) -> bool:
        return self._scoped(self._memo(), now)

    async def add(self, lock: Lock) -> None:
        await self._write(lambda c: c.execute(_SQL.insert, _SQL.params(lock)))

    async def lift(self, lock_ids: Sequence[str], lifted_by: Subject, decision_id: str, now: datetime) -> int:
        ids = list(lock_ids)
        if not ids:
            return 0
        return await self._write(lambda c: c.execute(*_SQL.lift(ids, lifted_by, decision_id, now)).rowcount)

    async def get(self, lock_id: str) -> Lock | None:
        def one(c: sqlite3.Connection) -> Lock | None:
            row = c.execute(_SQL.get, (lock_id,)).fetchone()
            return None if row is None else _SQL.lock(row)

        return await self._run(one)

    async def find(self, filters: LockFilter, now: datetime) -> list[Lock]:
        sql, args = _SQL.find(filters, now)
        return await self._run(lambda c: [_SQL.lock(r) for r in c.execute(sql, args)])

    async def set_state(self, lock_id: str, state: LockState, note: str = "") -> None:
        await self._write(lambda c: c.execute(_SQL.set_state, (state, note, lock_id)))

    async def pending_locks(self) -> list[Lock]:
        return await self._run(lambda c: [_SQL.lock(r) for r in c.execute(_SQL.pending)])

    async def count_in_force_by_kind(self, now: datetime) -> dict[str, int]:
        return await self._run(lambda c: {str(k): int(n) for k, n in
                                          c.execute(_SQL.count_by_kind, (_SQL.encode_now(now),))})

    async def count(self) -> int:
        return await self._run(lambda c: int(c.execute(_SQL.count).fetchone()[0]))

    async def schema_version(self) -> int:
        return await self._run(lambda c: int(c.execute(_SQL.version).fetchone()[0]))
