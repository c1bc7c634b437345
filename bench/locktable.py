"""Bench instances and lock tables of a given size, written straight into the sidecar's schema.

The schema is created by opening the store once through ``SqliteLockStore`` (so it is
exactly the sidecar's, migrations included); the rows then go in with one
``executemany`` in one transaction, which writes a million rows in seconds.

Every table holds the two locks of the bench's locked instances (so the preflight can
check that a lock is enforced), one project lock and one host lock on other targets
(so, as in a real cloud, ``has_scoped_locks`` is true and the target's project and host
are resolved and cached), and instance locks on other instances: about 10 % already
expired, 10 % with a future expiry, the rest without one.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sidecar.locks.sqlite import SqliteLockStore

_NS = uuid.UUID("5f6a0c1e-2d3b-4c5d-8e7f-9a0b1c2d3e4f")
PROJECT = "demo"
HOST = "cmp-1"


def instance_ids(n: int, tag: str = "vm") -> list[str]:
    """Deterministic instance UUIDs (the same in every run)."""
    return [str(uuid.uuid5(_NS, f"{tag}-{i}")) for i in range(n)]


UNLOCKED = instance_ids(64, "unlocked")
STATE_LOCKED, BOOT_LOCKED = instance_ids(2, "locked")

_COLUMNS = ("id, kind, scope, target, reason, owner_user_id, owner_project_id, owner_roles, "
            "created_at, expires_at, state, source, note")
_KINDS = ("state", "boot", "delete")


def _rows(n: int, now: float) -> Iterator[tuple[Any, ...]]:
    owner_billing = ("billing-svc", "service", json.dumps(["billing"]))
    owner_user = ("alice", PROJECT, json.dumps(["member"]))
    yield ("lk-bench-state", "state", "instance", STATE_LOCKED, "bench: state lock", *owner_user,
           now - 3600, None, "active", "nova", "")
    yield ("lk-bench-boot", "boot", "instance", BOOT_LOCKED, "billing: invoice 881 overdue",
           *owner_billing, now - 3600, None, "active", "suspend-lock", "")
    yield ("lk-bench-project", "boot", "project", "other-project", "billing: project overdue",
           *owner_billing, now - 7200, None, "active", "api", "")
    yield ("lk-bench-host", "state", "host", "cmp-99", "maintenance: cmp-99",
           "ops", "admin", json.dumps(["admin"]), now - 7200, None, "active", "api", "")
    for i in range(max(0, n - 4)):
        target = f"{i:08x}-0000-4000-8000-{i:012x}"  # in index order: a fast bulk load
        expires = None
        if i % 10 == 3:
            expires = now - 60.0  # expired
        elif i % 10 == 7:
            expires = now + 86400.0
        owner = owner_billing if i % 3 else owner_user
        yield (f"lk-{i:032x}", _KINDS[i % 3], "instance", target, "bench filler", *owner,
               now - 86400 + i % 86400, expires, "active", "api", "")


def build_lock_table(path: Path, n: int) -> dict[str, Any]:
    """Create ``path`` with the sidecar's schema and ``n`` lock rows; timings and size."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    t0 = time.perf_counter()

    async def create_schema() -> None:
        store = SqliteLockStore(f"sqlite:///{path}")
        await store.open()
        await store.close()

    asyncio.run(create_schema())
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        # NOTE: a bulk load only: no journal, a big page cache; the sidecar reopens it in WAL mode.
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA cache_size=-400000")
        conn.execute("BEGIN")
        conn.executemany(f"INSERT INTO locks ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                         _rows(n, time.time()))
        conn.execute("COMMIT")
        conn.execute("PRAGMA journal_mode=WAL")
        rows = conn.execute("SELECT count(*) FROM locks").fetchone()[0]
    finally:
        conn.close()
    return {"rows": int(rows), "build_s": round(time.perf_counter() - t0, 2),
            "file_bytes": path.stat().st_size}
