"""The copy behind ``statelock locks migrate``: locks inserted into PostgreSQL in one transaction."""

from __future__ import annotations

from collections.abc import Sequence

from sidecar.locks.model import Lock
from sidecar.locks.pg_schema import SQL
from sidecar.locks.pg_session import PgConnections


async def copy_in(db: PgConnections, locks: Sequence[Lock], guard_key: int) -> int:
    """Insert locks in one transaction, skipping ids already present; returns how many were new.

    Takes the advisory lock ``guard_key`` exclusively for the transaction, so replicas
    serving from this table order their state changes against the copy (the trigger
    announces every row, so their caches drop what changed). LockStoreError on failure.
    """
    async with db.connection() as (conn, _), conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (guard_key,))
        if not locks:
            return 0
        cur = conn.cursor()
        await cur.executemany(SQL.insert + " ON CONFLICT (id) DO NOTHING", [SQL.params(lk) for lk in locks])
        return max(cur.rowcount, 0)
