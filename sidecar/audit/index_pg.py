"""The decision index in the lock store's PostgreSQL: every replica's rows in one table.

Each replica writes the rows of its own chain (``replica``, ``chain``), and reads
everyone's: whichever replica serves the console or ``GET /statelock/v1/decisions``
shows the decisions of all, each marked with its replica and chain. A small psycopg
async pool of its own (autocommit; each ``add`` is one transaction). Every call raises
``IndexUnavailable`` when the database fails or does not answer within ``timeout_s``;
the message never holds the URL (it may carry a password).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg_pool import AsyncConnectionPool

from sidecar.audit import index_sql as q
from sidecar.audit.index import ChainHead, CompletionRow, Cursor, Indexed, IndexRow, IndexUnavailable, from_us
from sidecar.audit.query import FoundDecision, QueryFilters

_T = TypeVar("_T")
_Conn = psycopg.AsyncConnection[Any]
_IN_CHUNK = 500


def _q(sql: str) -> str:
    return q.for_dialect(sql, "postgresql")


class PostgresIndex:
    """A DecisionIndex in a PostgreSQL database (see the module docstring)."""

    dialect = "postgresql"

    def __init__(self, url: str, *, timeout_s: float = 5.0, pool_size: int = 3) -> None:
        self._url = url
        self._timeout = timeout_s
        self._size = pool_size
        self._pool: AsyncConnectionPool[_Conn] | None = None

    def child_spec(self) -> tuple[list[str], bytes]:
        """How the indexer process opens this index: its arguments, and the URL for its standard input
        (never on a command line, where ``ps`` shows it: it may hold a password)."""
        return ["--index-url-on-stdin", "--timeout-s", str(self._timeout)], self._url.encode() + b"\n"

    async def open(self) -> None:
        pool: AsyncConnectionPool[_Conn] = AsyncConnectionPool(
            self._url, min_size=1, max_size=self._size, kwargs={"autocommit": True}, open=False,
            timeout=self._timeout, name="statelock-decision-index")
        try:
            await pool.open(wait=True, timeout=max(self._timeout, 5.0))
        except Exception as exc:
            await pool.close()
            raise IndexUnavailable(f"the decision index database can't be reached: {type(exc).__name__}") from exc
        self._pool = pool
        try:
            await self._with(self._create)
        except BaseException:
            await self.close()
            raise

    async def _create(self, conn: _Conn) -> None:
        async with conn.transaction():
            # NOTE: replicas starting together would race on CREATE TABLE IF NOT EXISTS; the lock orders them.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('statelock-decision-index'))")
            for stmt in q.schema(self.dialect):
                await conn.execute(stmt)

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def _with(self, fn: Callable[[_Conn], Awaitable[_T]]) -> _T:
        if self._pool is None:
            raise IndexUnavailable("the decision index is not open")
        try:
            async with self._pool.connection(timeout=self._timeout) as conn:
                return await fn(conn)
        except (psycopg.Error, OSError) as exc:
            raise IndexUnavailable(f"the decision index database failed: {type(exc).__name__}: "
                                   f"{str(exc).splitlines()[0] if str(exc) else ''}") from exc
        except TimeoutError as exc:
            raise IndexUnavailable(f"the decision index database did not answer within {self._timeout:g} s") \
                from exc

    async def add(self, rows: Sequence[IndexRow | CompletionRow]) -> None:
        if not rows:
            return

        async def write(conn: _Conn) -> None:
            async with conn.transaction():
                for row in rows:
                    if isinstance(row, CompletionRow):
                        await conn.execute(_q(q.INSERT_COMPLETION), (row.decision_id, row.replica, row.chain, row.seq,
                                                                   row.hash, row.body))
                        continue
                    cur = await conn.execute(_q(q.INSERT_ROW), (
                        row.decision_id, row.ts_us, row.outcome, row.action, row.instance, row.project,
                        row.subject, row.revision, row.reason, row.replica, row.chain, row.seq, row.hash,
                        row.body))
                    got = await cur.fetchone()
                    if got is not None and row.lock_ids:
                        async with conn.cursor() as lock_cur:
                            await lock_cur.executemany(_q(q.INSERT_LOCK), [(lid, got[0]) for lid in row.lock_ids])
                last = rows[-1]
                await conn.execute(_q(q.UPSERT_HEAD), (last.replica, last.chain, last.seq, last.hash,
                                                     int(time.time() * 1e6)))

        await self._with(write)

    async def head(self, replica: str, chain: str) -> ChainHead | None:
        async def read(conn: _Conn) -> ChainHead | None:
            row = await (await conn.execute(_q(q.HEAD), (replica, chain))).fetchone()
            return None if row is None else ChainHead(row[0], row[1], int(row[2]), row[3], from_us(int(row[4])))

        return await self._with(read)

    async def drop_chain(self, replica: str, chain: str) -> int:
        async def drop(conn: _Conn) -> int:
            counts = []
            async with conn.transaction():
                for stmt in q.DROP_CHAIN:
                    counts.append((await conn.execute(_q(stmt), (replica, chain))).rowcount)
            return counts[1] + counts[2]

        return await self._with(drop)

    async def _completions(self, conn: _Conn, ids: Sequence[str]) -> list[Any]:
        out: list[Any] = []
        for start in range(0, len(ids), _IN_CHUNK):
            chunk = list(ids[start:start + _IN_CHUNK])
            out += await (await conn.execute(_q(q.completions_sql(len(chunk))), chunk)).fetchall()
        return out

    async def page(self, filters: QueryFilters, before: Cursor | None, limit: int | None) -> list[Indexed]:
        sql, params = q.page_sql(filters, before, limit)

        async def read(conn: _Conn) -> list[Indexed]:
            rows = await (await conn.execute(_q(sql), params)).fetchall()
            return q.indexed(rows, await self._completions(conn, [r[1] for r in rows]))

        return await self._with(read)

    async def find(self, wanted: str) -> FoundDecision | None:
        sql, params = q.find_sql(wanted)

        async def read(conn: _Conn) -> FoundDecision | None:
            rows = await (await conn.execute(_q(sql), params)).fetchall()
            return q.found(wanted, rows, await self._completions(conn, sorted({r[1] for r in rows})))

        return await self._with(read)

    async def chains(self) -> list[ChainHead]:
        async def read(conn: _Conn) -> list[ChainHead]:
            rows = await (await conn.execute(_q(q.ALL_HEADS))).fetchall()
            return [ChainHead(r[0], r[1], int(r[2]), r[3], from_us(int(r[4]))) for r in rows]

        return await self._with(read)
