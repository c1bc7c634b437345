"""What only the SQLite store does, on a real SQLite file in tmp_path.

Everything both stores do is in tests/integration/test_lock_store_contract.py.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from sidecar.errors import LockStoreError
from sidecar.guard import InstanceGuard
from sidecar.locks.sqlite import FILE_MODE, SqliteLockStore, sqlite_path
from tests.support.locks import ALICE, INSTANCE, NOW, ids, make_lock


def url_for(path: Path) -> str:
    return f"sqlite:///{path}"


@pytest.mark.parametrize(("url", "path"), [
    ("sqlite:///statelock-locks.db", "statelock-locks.db"),
    ("sqlite:///data/locks.db", "data/locks.db"),
    ("sqlite:////var/lib/statelock/locks.db", "/var/lib/statelock/locks.db"),
    ("sqlite:///", ":memory:"),
])
def test_sqlite_path(url: str, path: str) -> None:
    assert sqlite_path(url) == path


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


@pytest.fixture
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """Run the test under the umask it is parametrized with."""
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077], indirect=True)
async def test_the_database_and_its_wal_and_shm_are_0640_whatever_the_umask(
    tmp_path: Path, umask: int
) -> None:
    path = tmp_path / "locks.db"
    s = SqliteLockStore(url_for(path))
    await s.open()
    try:
        await s.add(make_lock("lk-1"))
        files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
        assert {f.name: stat.S_IMODE(f.stat().st_mode) for f in files} == {f.name: FILE_MODE for f in files}
    finally:
        await s.close()
    assert FILE_MODE & 0o007 == 0


async def test_an_existing_database_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "locks.db"
    path.touch(mode=0o600)
    path.chmod(0o600)
    s = SqliteLockStore(url_for(path))
    await s.open()
    await s.add(make_lock("lk-1"))
    await s.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_guard_is_one_in_process_guard(tmp_path: Path) -> None:
    s = SqliteLockStore(url_for(tmp_path / "locks.db"))
    guard = s.guard(5.0)
    assert isinstance(guard, InstanceGuard)
    assert s.guard(1.0) is guard


async def _opened(path: Path) -> SqliteLockStore:
    store = SqliteLockStore(url_for(path))
    await store.open()
    return store


async def test_reads_from_memory_follow_writes_through_the_store(tmp_path: Path) -> None:
    store = await _opened(tmp_path / "locks.db")
    now = NOW + timedelta(seconds=5)
    try:
        assert await store.instance_locks(INSTANCE, now) == ([], False)
        assert await store.instance_locks(INSTANCE, now) == ([], False)
        await store.add(make_lock("lk-1"))
        await store.add(make_lock("lk-p", "project", "demo", created=1))
        locks, scoped = await store.instance_locks(INSTANCE, now)
        assert ids(locks) == ["lk-1"] and scoped
        assert ids(await store.effective_locks(INSTANCE, "demo", None, now)) == ["lk-1", "lk-p"]
        assert ids((await store.locks_on_instances([INSTANCE, "other"], now))[INSTANCE]) == ["lk-1"]
        await store.lift(["lk-1", "lk-p"], ALICE, "dec-1", now)
        assert await store.instance_locks(INSTANCE, now) == ([], False)
        assert await store.locks_on_instances([INSTANCE], now) == {INSTANCE: []}
    finally:
        await store.close()


async def test_reads_from_memory_see_a_commit_of_another_connection(tmp_path: Path) -> None:
    """Another process on the file (a second worker, ``locks migrate``) moves PRAGMA data_version."""
    path = tmp_path / "locks.db"
    store, other = await _opened(path), await _opened(path)
    now = NOW + timedelta(seconds=5)
    try:
        assert await store.instance_locks(INSTANCE, now) == ([], False)
        assert not await store.has_scoped_locks(now)
        await other.add(make_lock("lk-1"))
        await other.add(make_lock("lk-h", "host", "cmp-1", created=1))
        locks, scoped = await store.instance_locks(INSTANCE, now)
        assert ids(locks) == ["lk-1"] and scoped
        assert ids(await store.effective_locks(INSTANCE, None, "cmp-1", now)) == ["lk-1", "lk-h"]
    finally:
        await other.close()
        await store.close()


async def test_reads_from_memory_apply_expiry_at_the_time_of_the_read(tmp_path: Path) -> None:
    store = await _opened(tmp_path / "locks.db")
    now = NOW + timedelta(seconds=5)
    try:
        await store.add(make_lock("lk-1", expires_in=60))
        await store.add(make_lock("lk-p", "project", "demo", created=1, expires_in=60))
        assert ids((await store.instance_locks(INSTANCE, now))[0]) == ["lk-1"]
        later = NOW + timedelta(seconds=61)
        assert await store.instance_locks(INSTANCE, later) == ([], False)
        assert await store.effective_locks(INSTANCE, "demo", None, later) == []
    finally:
        await store.close()
