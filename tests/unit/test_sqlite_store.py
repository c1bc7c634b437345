"""Unit tests for sidecar.locks.sqlite.SqliteLockStore on a real SQLite file in tmp_path."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sidecar.errors import LockStoreError
from sidecar.identity import Subject
from sidecar.locks.model import Lock, LockFilter
from sidecar.locks.sqlite import MIGRATIONS, SqliteLockStore
from sidecar.locks.store import open_lock_store

NOW = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
ALICE = Subject("alice", "demo", ("member", "reader"))
BILLING = Subject("billing-svc", "service", ("billing",))
INSTANCE = "7a1f0c1e-9d3b-4c2a-8f5e-0123456789ab"
OTHER = "8f0c1e2d-0000-4000-8000-000000000000"


def make_lock(lock_id: str, scope: str = "instance", target: str = INSTANCE, *, kind: str = "state",
              owner: Subject = ALICE, created: int = 0, expires_in: int | None = None) -> Lock:
    return Lock(
        id=lock_id, kind=kind, scope=scope, target=target, reason=f"reason {lock_id}", owner=owner,
        created_at=NOW + timedelta(seconds=created),
        expires_at=None if expires_in is None else NOW + timedelta(seconds=expires_in),
    )


def url_for(path: Path) -> str:
    return f"sqlite:///{path}"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteLockStore]:
    s = SqliteLockStore(url_for(tmp_path / "locks.db"))
    await s.open()
    yield s
    await s.close()


def ids(locks: list[Lock]) -> list[str]:
    return [lock.id for lock in locks]


async def test_add_get_remove_round_trip(store: SqliteLockStore) -> None:
    lock = replace(make_lock("lk-1", expires_in=60, owner=BILLING, kind="boot"),
                   state="pending", source="suspend-lock", note="suspending")
    await store.add(lock)
    assert await store.get("lk-1") == lock
    assert await store.count() == 1
    assert await store.remove(["lk-1", "lk-absent"]) == 1
    assert await store.get("lk-1") is None
    assert await store.count() == 0


async def test_remove_nothing_and_get_missing(store: SqliteLockStore) -> None:
    assert await store.remove([]) == 0
    assert await store.get("lk-absent") is None


async def test_remove_several_in_one_call(store: SqliteLockStore) -> None:
    for n in range(3):
        await store.add(make_lock(f"lk-{n}"))
    assert await store.remove(["lk-0", "lk-2"]) == 2
    assert ids(await store.find(LockFilter(), NOW)) == ["lk-1"]


async def test_duplicate_id_is_a_lock_store_error(store: SqliteLockStore) -> None:
    await store.add(make_lock("lk-1"))
    with pytest.raises(LockStoreError):
        await store.add(make_lock("lk-1", target=OTHER))
    assert await store.count() == 1


async def test_effective_locks_by_instance_project_and_host(store: SqliteLockStore) -> None:
    await store.add(make_lock("lk-i", created=1))
    await store.add(make_lock("lk-i-other", target=OTHER, created=2))
    await store.add(make_lock("lk-p", scope="project", target="demo", created=3))
    await store.add(make_lock("lk-p-other", scope="project", target="other", created=4))
    await store.add(make_lock("lk-h", scope="host", target="compute1", created=5))
    await store.add(make_lock("lk-t", scope="project", target=INSTANCE, created=6))
    assert ids(await store.effective_locks(INSTANCE, "demo", "compute1", NOW)) == ["lk-i", "lk-p", "lk-h"]
    assert ids(await store.effective_locks(INSTANCE, None, None, NOW)) == ["lk-i"]
    assert ids(await store.effective_locks(None, "demo", None, NOW)) == ["lk-p"]
    assert ids(await store.effective_locks(None, None, "compute1", NOW)) == ["lk-h"]
    assert await store.effective_locks(None, None, None, NOW) == []
    assert await store.effective_locks("", "", "", NOW) == []


@pytest.mark.parametrize(("expires_in", "in_force"), [
    (None, True),
    (1, True),
    (0, False),
    (-1, False),
])
async def test_effective_locks_expire_at_the_boundary(
    store: SqliteLockStore, expires_in: int | None, in_force: bool
) -> None:
    lock = make_lock("lk-1", expires_in=expires_in)
    await store.add(lock)
    found = await store.effective_locks(INSTANCE, None, None, NOW)
    assert (ids(found) == ["lk-1"]) is in_force
    assert lock.in_force(NOW) is in_force


async def test_effective_locks_are_ordered_by_creation(store: SqliteLockStore) -> None:
    await store.add(make_lock("lk-b", created=2))
    await store.add(make_lock("lk-c", created=1))
    await store.add(make_lock("lk-a", created=2))
    assert ids(await store.effective_locks(INSTANCE, None, None, NOW)) == ["lk-c", "lk-a", "lk-b"]


async def test_has_scoped_locks(store: SqliteLockStore) -> None:
    assert not await store.has_scoped_locks(NOW)
    await store.add(make_lock("lk-i"))
    assert not await store.has_scoped_locks(NOW)
    await store.add(make_lock("lk-p", scope="project", target="demo", expires_in=0))
    assert not await store.has_scoped_locks(NOW)
    assert await store.has_scoped_locks(NOW - timedelta(seconds=1))
    await store.add(make_lock("lk-h", scope="host", target="compute1", expires_in=10))
    assert await store.has_scoped_locks(NOW)
    assert not await store.has_scoped_locks(NOW + timedelta(seconds=10))


async def test_instance_locks_returns_own_locks_and_the_scoped_flag(store: SqliteLockStore) -> None:
    assert await store.instance_locks(INSTANCE, NOW) == ([], False)
    await store.add(make_lock("lk-i"))
    await store.add(make_lock("lk-o", target=OTHER))
    await store.add(make_lock("lk-x", expires_in=0))
    locks, scoped = await store.instance_locks(INSTANCE, NOW)
    assert ids(locks) == ["lk-i"] and scoped is False
    await store.add(make_lock("lk-p", scope="project", target="demo"))
    locks, scoped = await store.instance_locks(INSTANCE, NOW)
    assert ids(locks) == ["lk-i"] and scoped is True


@pytest.fixture
async def populated(store: SqliteLockStore) -> SqliteLockStore:
    await store.add(make_lock("lk-1", created=1))
    await store.add(make_lock("lk-2", kind="boot", owner=BILLING, created=2, expires_in=30))
    await store.add(make_lock("lk-3", scope="project", target="demo", kind="delete", created=3, expires_in=0))
    await store.add(make_lock("lk-4", scope="host", target="compute1", owner=BILLING, created=4, expires_in=-5))
    await store.add(make_lock("lk-5", target=OTHER, created=5))
    return store


@pytest.mark.parametrize(("filters", "expected"), [
    (LockFilter(), ["lk-1", "lk-2", "lk-3", "lk-4", "lk-5"]),
    (LockFilter(scope="instance"), ["lk-1", "lk-2", "lk-5"]),
    (LockFilter(scope="project"), ["lk-3"]),
    (LockFilter(target=INSTANCE), ["lk-1", "lk-2"]),
    (LockFilter(scope="instance", target=OTHER), ["lk-5"]),
    (LockFilter(kind="boot"), ["lk-2"]),
    (LockFilter(kind="state"), ["lk-1", "lk-4", "lk-5"]),
    (LockFilter(owner="billing-svc"), ["lk-2", "lk-4"]),
    (LockFilter(owner="nobody"), []),
    (LockFilter(active=True), ["lk-1", "lk-2", "lk-5"]),
    (LockFilter(active=False), ["lk-3", "lk-4"]),
    (LockFilter(owner="billing-svc", active=True), ["lk-2"]),
    (LockFilter(owner="billing-svc", active=False), ["lk-4"]),
    (LockFilter(target=INSTANCE, kind="boot", active=True), ["lk-2"]),
])
async def test_find_filters(populated: SqliteLockStore, filters: LockFilter, expected: list[str]) -> None:
    assert ids(await populated.find(filters, NOW)) == expected


async def test_find_active_moves_with_now(populated: SqliteLockStore) -> None:
    later = NOW + timedelta(seconds=30)
    assert ids(await populated.find(LockFilter(active=True), later)) == ["lk-1", "lk-5"]
    assert ids(await populated.find(LockFilter(active=False), later)) == ["lk-2", "lk-3", "lk-4"]


async def test_set_state(store: SqliteLockStore) -> None:
    await store.add(replace(make_lock("lk-1"), state="pending", source="suspend-lock"))
    await store.set_state("lk-1", "failed", "suspend timed out")
    got = await store.get("lk-1")
    assert got is not None
    assert (got.state, got.note, got.source) == ("failed", "suspend timed out", "suspend-lock")
    await store.set_state("lk-1", "active")
    got = await store.get("lk-1")
    assert got is not None
    assert (got.state, got.note) == ("active", "")


async def test_pending_locks(store: SqliteLockStore) -> None:
    await store.add(make_lock("lk-1"))
    await store.add(replace(make_lock("lk-2", created=2), state="pending"))
    await store.add(replace(make_lock("lk-3", created=1), state="pending"))
    assert ids(await store.pending_locks()) == ["lk-3", "lk-2"]
    await store.set_state("lk-3", "active")
    assert ids(await store.pending_locks()) == ["lk-2"]


def schema_versions(path: Path) -> list[int]:
    conn = sqlite3.connect(path)
    try:
        return [row[0] for row in conn.execute("SELECT version FROM schema_version ORDER BY version")]
    finally:
        conn.close()


async def test_schema_migration_is_idempotent_on_reopen(tmp_path: Path) -> None:
    path = tmp_path / "locks.db"
    first = SqliteLockStore(url_for(path))
    await first.open()
    await first.add(make_lock("lk-1", expires_in=60))
    await first.close()
    assert schema_versions(path) == list(range(1, len(MIGRATIONS) + 1))
    for _ in range(2):
        again = SqliteLockStore(url_for(path))
        await again.open()
        assert await again.get("lk-1") == make_lock("lk-1", expires_in=60)
        assert await again.count() == 1
        await again.close()
    assert schema_versions(path) == list(range(1, len(MIGRATIONS) + 1))


async def test_open_creates_missing_parent_directories(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "locks.db"
    s = SqliteLockStore(url_for(path))
    await s.open()
    await s.add(make_lock("lk-1"))
    await s.close()
    assert path.exists()


async def test_unwritable_path_is_a_lock_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where a directory should be")
    s = SqliteLockStore(url_for(blocker / "locks.db"))
    with pytest.raises(LockStoreError, match="cannot open lock store"):
        await s.open()
    await s.close()


async def test_calls_before_open_are_lock_store_errors(tmp_path: Path) -> None:
    s = SqliteLockStore(url_for(tmp_path / "locks.db"))
    with pytest.raises(LockStoreError, match="not open"):
        await s.count()
    await s.close()


async def test_open_lock_store_picks_sqlite_by_url(tmp_path: Path) -> None:
    s = open_lock_store(url_for(tmp_path / "locks.db"))
    assert isinstance(s, SqliteLockStore)
    await s.open()
    assert await s.count() == 0
    await s.close()
