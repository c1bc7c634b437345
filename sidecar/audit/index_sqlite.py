"""The decision index in a SQLite file beside the log (one node).

Two connections. Reads (the console's pages, lookups) run on one, from worker
threads one call at a time (a lock orders them). Writes (each batch the feed
hands over, a chain dropped) run on the other, in the event loop of the process
that feeds the index (``sidecar.audit.indexer``: not the server's), in
transactions of up to ``_WRITE_CHUNK`` (512) rows with the loop let go between
them (each COMMIT writes the WAL: 16-row transactions, as long as these writes ran
in the server's own loop, spent a fifth of the indexer's CPU committing). A write
that finds the file locked by another process (a worker's indexer) waits in a
thread, so the loop never sleeps in SQLite's busy handler. The
writer does not checkpoint the WAL itself (that fsyncs); a worker thread does,
every ``_CHECKPOINT_ROWS`` (256) rows (one statement, the GIL let go throughout), a
RESTART checkpoint so that the WAL starts over (its file cut back to 32 MiB)
however steady the writes.
WAL mode, so a reader never waits for the writer. ``synchronous=NORMAL``: the
index is a copy of the chain and is caught up from it at start-up, so a write
lost in a power cut costs nothing but the catch-up. Every call raises
``IndexUnavailable`` when SQLite fails.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from sidecar.audit import index_sql as q
from sidecar.audit.files import FILE_MODE
from sidecar.audit.index import ChainHead, CompletionRow, Cursor, Indexed, IndexRow, IndexUnavailable, from_us
from sidecar.audit.query import FoundDecision, QueryFilters

_T = TypeVar("_T")
log = logging.getLogger(__name__)
_IN_CHUNK = 500
_WRITE_CHUNK = 512
_CHECKPOINT_ROWS = 256
"""Rows between WAL checkpoints: small ones, since each one's fsync shares the disk with the decision log's
(measured at c1: p99 +2.6-3.7 ms every 256 rows, +7.4-9.9 ms every 4,096)."""
_WAL_LIMIT_BYTES = 32 << 20
"""After a checkpoint restarts the WAL, its file is cut back to this size."""


def _transaction(db: sqlite3.Connection, begin: str | None, fn: Callable[..., _T], *args: Any) -> _T:
    """``fn(db, *args)`` then COMMIT (ROLLBACK if it raises); ``begin``: the BEGIN to run first, if any."""
    if begin is not None:
        db.execute(begin)
    try:
        out = fn(db, *args)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return out


class SqliteIndex:
    """A DecisionIndex in the SQLite file at ``path`` (see the module docstring)."""

    dialect = "sqlite"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None
        self._writer: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._unchecked = 0
        self._checkpointing: asyncio.Task[None] | None = None
        self.wal_checkpoints = 0

    def child_spec(self) -> tuple[list[str], bytes]:
        """How the indexer process opens this index: its arguments, and nothing for its standard input."""
        return ["--index", str(self.path)], b""

    async def open(self) -> None:
        await self._run(self._open_sync, opening=True)

    def _open_sync(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            self.path.touch(mode=FILE_MODE)
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute(f"PRAGMA journal_size_limit={_WAL_LIMIT_BYTES}")
        for stmt in q.schema(self.dialect):
            conn.execute(stmt)
        writer = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        writer.execute("PRAGMA synchronous=NORMAL")
        writer.execute("PRAGMA busy_timeout=0")
        writer.execute("PRAGMA wal_autocheckpoint=0")
        writer.execute(f"PRAGMA journal_size_limit={_WAL_LIMIT_BYTES}")
        self._conn, self._writer = conn, writer

    async def close(self) -> None:
        if self._checkpointing is not None:
            await asyncio.gather(self._checkpointing, return_exceptions=True)
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
        conn, self._conn = self._conn, None
        if conn is not None:
            with self._lock:
                conn.close()

    async def _run(self, fn: Callable[..., _T], *args: Any, opening: bool = False) -> _T:
        def call() -> _T:
            with self._lock:
                if self._conn is None and not opening:
                    raise IndexUnavailable(f"the decision index {self.path} is not open")
                return fn(*args)

        try:
            return await asyncio.to_thread(call)
        except sqlite3.Error as exc:
            raise IndexUnavailable(f"the decision index {self.path} failed: {exc}") from exc
        except OSError as exc:
            raise IndexUnavailable(f"the decision index {self.path} can't be opened: {exc}") from exc

    @property
    def _db(self) -> sqlite3.Connection:
        assert self._conn is not None
        return self._conn

    async def add(self, rows: Sequence[IndexRow | CompletionRow]) -> None:
        for start in range(0, len(rows), _WRITE_CHUNK):
            if start:
                await asyncio.sleep(0)
            await self._write(self._add_sync, rows[start:start + _WRITE_CHUNK])
        self._unchecked += len(rows)
        if self._unchecked >= _CHECKPOINT_ROWS and self._checkpointing is None:
            self._unchecked = 0
            self._checkpointing = asyncio.create_task(self._checkpoint())

    async def _write(self, fn: Callable[..., _T], *args: Any) -> _T:
        """``fn(connection, *args)`` in one transaction: in the event loop, or in a worker thread when
        another process (a worker) holds the write lock, so that the loop never sleeps in SQLite's
        busy handler. IndexUnavailable when SQLite fails."""
        db = self._writer
        if db is None:
            raise IndexUnavailable(f"the decision index {self.path} is not open")
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY:
                raise IndexUnavailable(f"the decision index {self.path} failed: {exc}") from exc
            return await self._run(lambda: _transaction(self._db, "BEGIN IMMEDIATE", fn, *args))
        try:
            return _transaction(db, None, fn, *args)
        except sqlite3.Error as exc:
            raise IndexUnavailable(f"the decision index {self.path} failed: {exc}") from exc

    async def _checkpoint(self) -> None:
        # NOTE: RESTART, not PASSIVE: under steady writes a passive checkpoint never catches the last
        # frame, the WAL never starts over and grows without bound (measured: 77 MB per 4,200 rows).
        # RESTART holds the write lock while it copies; the loop's writer then gets SQLITE_BUSY and
        # waits in a thread (``_write``), so the loop itself never waits.
        try:
            busy, _, _ = await self._run(lambda: self._db.execute("PRAGMA wal_checkpoint(RESTART)").fetchone())
            if busy:
                log.warning("decision index: WAL checkpoint could not restart the log (a reader held it)")
            self.wal_checkpoints += 1
        except IndexUnavailable as exc:  # NOTE: the WAL only grows until the next try.
            log.warning("decision index: WAL checkpoint failed: %s", exc)
        finally:
            self._checkpointing = None

    @staticmethod
    def _add_sync(db: sqlite3.Connection, rows: Sequence[IndexRow | CompletionRow]) -> None:
        for row in rows:
            if isinstance(row, CompletionRow):
                db.execute(q.INSERT_COMPLETION, (row.decision_id, row.replica, row.chain, row.seq, row.hash,
                                               row.body))
                continue
            got = db.execute(q.INSERT_ROW, (row.decision_id, row.ts_us, row.outcome, row.action, row.instance,
                                          row.project, row.subject, row.revision, row.reason, row.replica,
                                          row.chain, row.seq, row.hash, row.body)).fetchone()
            if got is not None and row.lock_ids:
                db.executemany(q.INSERT_LOCK, [(lock_id, got[0]) for lock_id in row.lock_ids])
        last = rows[-1]
        db.execute(q.UPSERT_HEAD, (last.replica, last.chain, last.seq, last.hash, int(time.time() * 1e6)))

    async def head(self, replica: str, chain: str) -> ChainHead | None:
        row = await self._run(lambda: self._db.execute(q.HEAD, (replica, chain)).fetchone())
        return None if row is None else ChainHead(row[0], row[1], int(row[2]), row[3], from_us(int(row[4])))

    async def drop_chain(self, replica: str, chain: str) -> int:
        def drop(db: sqlite3.Connection) -> int:
            counts = [db.execute(stmt, (replica, chain)).rowcount for stmt in q.DROP_CHAIN]
            return counts[1] + counts[2]

        return await self._write(drop)

    async def page(self, filters: QueryFilters, before: Cursor | None, limit: int | None) -> list[Indexed]:
        sql, params = q.page_sql(filters, before, limit)

        def read() -> list[Indexed]:
            rows = self._db.execute(sql, params).fetchall()
            return q.indexed(rows, self._completions([r[1] for r in rows]))

        return await self._run(read)

    def _completions(self, ids: Sequence[str]) -> list[Any]:
        out: list[Any] = []
        for start in range(0, len(ids), _IN_CHUNK):
            chunk = list(ids[start:start + _IN_CHUNK])
            out += self._db.execute(q.completions_sql(len(chunk)), chunk).fetchall()
        return out

    async def find(self, wanted: str) -> FoundDecision | None:
        sql, params = q.find_sql(wanted)

        def read() -> FoundDecision | None:
            rows = self._db.execute(sql, params).fetchall()
            return q.found(wanted, rows, self._completions(sorted({r[1] for r in rows})))

        return await self._run(read)

    async def chains(self) -> list[ChainHead]:
        rows = await self._run(lambda: self._db.execute(q.ALL_HEADS).fetchall())
        return [ChainHead(r[0], r[1], int(r[2]), r[3], from_us(int(r[4]))) for r in rows]
