"""Lock rows and raw access to the lock databases, for the store tests.

``make_lock`` builds a lock relative to ``NOW``; ``Database`` is one store's database
(SQLite file or PostgreSQL database) reached with its own driver, not through the
store, so a test can see or prepare exactly what is on disk.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from sidecar.identity import Subject
from sidecar.locks.model import Lock
from sidecar.vocab import LockKind, LockScope

NOW = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
ALICE = Subject("alice", "demo", ("member", "reader"))
BILLING = Subject("billing-svc", "service", ("billing",))
INSTANCE = "7a1f0c1e-9d3b-4c2a-8f5e-0123456789ab"
OTHER = "8f0c1e2d-0000-4000-8000-000000000000"


def make_lock(lock_id: str, scope: LockScope = "instance", target: str = INSTANCE, *, kind: LockKind = "state",
              owner: Subject = ALICE, created: int = 0, expires_in: int | None = None) -> Lock:
    """A lock ``created`` seconds after NOW, expiring ``expires_in`` seconds after NOW (None: never)."""
    return Lock(
        id=lock_id, kind=kind, scope=scope, target=target, reason=f"reason {lock_id}", owner=owner,
        created_at=NOW + timedelta(seconds=created),
        expires_at=None if expires_in is None else NOW + timedelta(seconds=expires_in),
    )


def ids(locks: Sequence[Lock]) -> list[str]:
    """The ids of ``locks``, in order."""
    return [lock.id for lock in locks]


async def eventually(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Wait until ``predicate()`` holds; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def pg_sql(url: str, query: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Run one statement (or a script, without ``args``) on a PostgreSQL database; its rows."""
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(query.encode(), args or None)
        return cur.fetchall() if cur.description else []


@dataclass(frozen=True)
class Database:
    """A lock store's database, by URL, reached with its own driver (see the module docstring)."""

    url: str

    @property
    def kind(self) -> str:
        return "sqlite" if self.url.startswith("sqlite:///") else "postgresql"

    @property
    def mark(self) -> str:
        """The driver's placeholder."""
        return "?" if self.kind == "sqlite" else "%s"

    def sql(self, query: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement and commit; its rows."""
        if self.kind == "postgresql":
            return pg_sql(self.url, query, args)
        conn = sqlite3.connect(self.url[len("sqlite:///"):])
        try:
            rows = conn.execute(query, args).fetchall()
            conn.commit()
            return rows
        finally:
            conn.close()

    def script(self, text: str) -> None:
        """Run a script of several statements in one transaction."""
        if self.kind == "postgresql":
            pg_sql(self.url, f"BEGIN; {text}; COMMIT;")
            return
        conn = sqlite3.connect(self.url[len("sqlite:///"):])
        try:
            conn.executescript(f"BEGIN; {text}; COMMIT;")
        finally:
            conn.close()

    def schema_versions(self) -> list[int]:
        """The versions recorded in ``schema_version``, in order."""
        return [int(row[0]) for row in self.sql("SELECT version FROM schema_version ORDER BY version")]
