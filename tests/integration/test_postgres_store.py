"""sidecar.locks.postgres, pg_cache, pg_guard, migrate and cli_migrate on a real PostgreSQL.

The store tests repeat the SQLite store's behaviour table; then the guard (shared and
exclusive advisory locks, the bounded wait, release on error, cancellation and
process death), the cache (used under the guard, invalidated by another replica's
writes) and ``statelock locks migrate``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from sidecar.cli.migrate import add_migrate_command, run_migrate_command
from sidecar.errors import LockStoreError
from sidecar.guard import ALL_INSTANCES
from sidecar.identity import Subject
from sidecar.locks.model import Lock, LockFilter, redact_url
from sidecar.locks.pg_cache import LockCache
from sidecar.locks.pg_guard import PgAdvisoryGuard, advisory_key
from sidecar.locks.postgres import MIGRATIONS, PostgresLockStore
from sidecar.locks.sqlite import SqliteLockStore
from sidecar.locks.store import open_lock_store
from tests.support.paths import ROOT
from tests.support.postgres import PgServer, pg_server_fixture, pg_url_fixture  # noqa: F401

pytestmark = pytest.mark.integration

NOW = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
ALICE = Subject("alice", "demo", ("member", "reader"))
BILLING = Subject("billing-svc", "service", ("billing",))
INSTANCE = "7a1f0c1e-9d3b-4c2a-8f5e-0123456789ab"
OTHER = "8f0c1e2d-0000-4000-8000-000000000000"
TIMEOUT_S = 1.0


def make_lock(lock_id: str, scope: str = "instance", target: str = INSTANCE, *, kind: str = "state",
              owner: Subject = ALICE, created: int = 0, expires_in: int | None = None) -> Lock:
    return Lock(
        id=lock_id, kind=kind, scope=scope, target=target, reason=f"reason {lock_id}", owner=owner,
        created_at=NOW + timedelta(seconds=created),
        expires_at=None if expires_in is None else NOW + timedelta(seconds=expires_in),
    )


def ids(locks: list[Lock]) -> list[str]:
    return [lock.id for lock in locks]


async def open_store(url: str) -> PostgresLockStore:
    store = PostgresLockStore(url, pool_size=4, timeout_s=TIMEOUT_S)
    await store.open()
    return store


@pytest.fixture
async def store(pg_url: str) -> AsyncIterator[PostgresLockStore]:
    s = await open_store(pg_url)
    yield s
    await s.close()


@pytest.fixture
async def other(pg_url: str) -> AsyncIterator[PostgresLockStore]:
    """A second replica's store on the same database."""
    s = await open_store(pg_url)
    yield s
    await s.close()


def sql(url: str, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(query.encode())
        return cur.fetchall() if cur.description else []


def advisory_locks(url: str) -> int:
    rows = sql(url, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")
    return int(str(rows[0][0]))


async def eventually(predicate: object, timeout_s: float = 5.0) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


# -- the store: same behaviour as SQLite -----------------------------------------------------


async def test_add_get_remove_round_trip(store: PostgresLockStore) -> None:
    lock = replace(make_lock("lk-1", expires_in=60, owner=BILLING, kind="boot"),
                   state="pending", source="suspend-lock", note="suspending")
    await store.add(lock)
    assert await store.get("lk-1") == lock
    assert await store.count() == 1
    assert await store.remove(["lk-1", "lk-absent"]) == 1
    assert await store.get("lk-1") is None
    assert await store.count() == 0


async def test_remove_nothing_and_get_missing(store: PostgresLockStore) -> None:
    assert await store.remove([]) == 0
    assert await store.get("lk-absent") is None


async def test_remove_several_in_one_call(store: PostgresLockStore) -> None:
    for n in range(3):
        await store.add(make_lock(f"lk-{n}"))
    assert await store.remove(["lk-0", "lk-2"]) == 2
    assert ids(await store.find(LockFilter(), NOW)) == ["lk-1"]


async def test_duplicate_id_is_a_lock_store_error(store: PostgresLockStore) -> None:
    await store.add(make_lock("lk-1"))
    with pytest.raises(LockStoreError):
        await store.add(make_lock("lk-1", target=OTHER))
    assert await store.count() == 1


async def test_effective_locks_by_instance_project_and_host(store: PostgresLockStore) -> None:
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


@pytest.mark.parametrize(("expires_in", "in_force"), [(None, True), (1, True), (0, False), (-1, False)])
async def test_effective_locks_expire_at_the_boundary(
    store: PostgresLockStore, expires_in: int | None, in_force: bool
) -> None:
    await store.add(make_lock("lk-1", expires_in=expires_in))
    found = await store.effective_locks(INSTANCE, None, None, NOW)
    assert (ids(found) == ["lk-1"]) is in_force


async def test_effective_locks_are_ordered_by_creation(store: PostgresLockStore) -> None:
    await store.add(make_lock("lk-b", created=2))
    await store.add(make_lock("lk-c", created=1))
    await store.add(make_lock("lk-a", created=2))
    assert ids(await store.effective_locks(INSTANCE, None, None, NOW)) == ["lk-c", "lk-a", "lk-b"]


async def test_has_scoped_locks(store: PostgresLockStore) -> None:
    assert not await store.has_scoped_locks(NOW)
    await store.add(make_lock("lk-i"))
    assert not await store.has_scoped_locks(NOW)
    await store.add(make_lock("lk-p", scope="project", target="demo", expires_in=0))
    assert not await store.has_scoped_locks(NOW)
    assert await store.has_scoped_locks(NOW - timedelta(seconds=1))
    await store.add(make_lock("lk-h", scope="host", target="compute1", expires_in=10))
    assert await store.has_scoped_locks(NOW)
    assert not await store.has_scoped_locks(NOW + timedelta(seconds=10))


async def test_instance_locks_returns_own_locks_and_the_scoped_flag(store: PostgresLockStore) -> None:
    assert await store.instance_locks(INSTANCE, NOW) == ([], False)
    await store.add(make_lock("lk-i"))
    await store.add(make_lock("lk-o", target=OTHER))
    await store.add(make_lock("lk-x", expires_in=0))
    locks, scoped = await store.instance_locks(INSTANCE, NOW)
    assert ids(locks) == ["lk-i"] and scoped is False
    await store.add(make_lock("lk-p", scope="project", target="demo"))
    locks, scoped = await store.instance_locks(INSTANCE, NOW)
    assert ids(locks) == ["lk-i"] and scoped is True


async def test_locks_on_instances(store: PostgresLockStore) -> None:
    await store.add(make_lock("lk-1", created=1))
    await store.add(make_lock("lk-2", created=2, expires_in=0))
    await store.add(make_lock("lk-3", target=OTHER, created=3))
    await store.add(make_lock("lk-p", scope="project", target=INSTANCE))
    got = await store.locks_on_instances([INSTANCE, OTHER, "absent", INSTANCE], NOW)
    assert {k: ids(v) for k, v in got.items()} == {INSTANCE: ["lk-1"], OTHER: ["lk-3"], "absent": []}
    assert await store.locks_on_instances([], NOW) == {}


@pytest.fixture
async def populated(store: PostgresLockStore) -> PostgresLockStore:
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
    (LockFilter(kind="state"), ["lk-1", "lk-4", "lk-5"]),
    (LockFilter(owner="billing-svc"), ["lk-2", "lk-4"]),
    (LockFilter(active=True), ["lk-1", "lk-2", "lk-5"]),
    (LockFilter(active=False), ["lk-3", "lk-4"]),
    (LockFilter(owner="billing-svc", active=False), ["lk-4"]),
    (LockFilter(target=INSTANCE, kind="boot", active=True), ["lk-2"]),
])
async def test_find_filters(populated: PostgresLockStore, filters: LockFilter, expected: list[str]) -> None:
    assert ids(await populated.find(filters, NOW)) == expected


async def test_counts_in_force_by_kind(populated: PostgresLockStore) -> None:
    assert await populated.count_in_force_by_kind(NOW) == {"state": 2, "boot": 1}
    assert await populated.count() == 5


async def test_set_state_and_pending_locks(store: PostgresLockStore) -> None:
    await store.add(make_lock("lk-1"))
    await store.add(replace(make_lock("lk-2", created=2), state="pending", source="suspend-lock"))
    await store.add(replace(make_lock("lk-3", created=1), state="pending"))
    assert ids(await store.pending_locks()) == ["lk-3", "lk-2"]
    await store.set_state("lk-2", "failed", "suspend timed out")
    got = await store.get("lk-2")
    assert got is not None and (got.state, got.note, got.source) == ("failed", "suspend timed out", "suspend-lock")
    assert ids(await store.pending_locks()) == ["lk-3"]


async def test_schema_migration_is_versioned_and_idempotent(pg_url: str) -> None:
    for _ in range(2):
        s = await open_store(pg_url)
        await s.add(make_lock(f"lk-{await s.count()}"))
        assert await s.schema_version() == len(MIGRATIONS)
        await s.close()
    assert sql(pg_url, "SELECT version FROM schema_version ORDER BY version") == [
        (n,) for n in range(1, len(MIGRATIONS) + 1)]
    assert sql(pg_url, "SELECT count(*) FROM locks") == [(2,)]


async def test_replicas_starting_together_migrate_once(pg_url: str) -> None:
    stores = [PostgresLockStore(pg_url, timeout_s=5.0) for _ in range(3)]
    await asyncio.gather(*(s.open() for s in stores))
    await asyncio.gather(*(s.close() for s in stores))
    assert sql(pg_url, "SELECT count(*) FROM schema_version") == [(len(MIGRATIONS),)]


@pytest.mark.parametrize("url", [
    "postgresql://statelock@127.0.0.1:1/none",
    "postgresql://statelock:s3cret@127.0.0.1:1/none",
])
async def test_unreachable_database_is_a_lock_store_error_without_the_password(url: str) -> None:
    s = PostgresLockStore(url, timeout_s=TIMEOUT_S)
    with pytest.raises(LockStoreError, match="cannot open lock store") as err:
        await s.open()
    assert "s3cret" not in err.value.message
    await s.close()


async def test_missing_database_is_a_lock_store_error(pg_server: PgServer) -> None:
    s = PostgresLockStore(pg_server.url("no_such_db"), timeout_s=TIMEOUT_S)
    with pytest.raises(LockStoreError, match="no_such_db"):
        await s.open()


async def test_calls_before_open_are_lock_store_errors(pg_url: str) -> None:
    s = PostgresLockStore(pg_url)
    with pytest.raises(LockStoreError, match="not open"):
        await s.count()
    with pytest.raises(LockStoreError, match="not open"):
        async with PgAdvisoryGuard(s, TIMEOUT_S).shared(INSTANCE):
            pass


async def test_database_gone_mid_use_fails_closed(pg_server: PgServer, pg_url: str) -> None:
    s = await open_store(pg_url)
    try:
        await s.count()
        dbname = pg_url.rsplit("/", 1)[1]
        sql(pg_server.url(), f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{dbname}'")
        sql(pg_server.url(), f"ALTER DATABASE {dbname} ALLOW_CONNECTIONS false")
        with pytest.raises(LockStoreError):
            for _ in range(3):  # NOTE: the pool may hand out a connection it has not yet seen die.
                await s.effective_locks(INSTANCE, None, None, NOW)
    finally:
        await s.close()


async def test_store_and_guard_recover_after_the_server_drops_every_connection(
    pg_server: PgServer, store: PostgresLockStore, pg_url: str
) -> None:
    guard = PgAdvisoryGuard(store, TIMEOUT_S)
    async with guard.shared(INSTANCE):
        pass
    dbname = pg_url.rsplit("/", 1)[1]
    sql(pg_server.url(), f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{dbname}'")
    failures = 0
    for _ in range(10):  # NOTE: each failure fails closed; the pool then replaces its dead connections.
        try:
            async with guard.shared(INSTANCE):
                await store.add(make_lock(f"lk-{failures}"))
            break
        except LockStoreError:
            failures += 1
            await asyncio.sleep(0.1)
    assert failures < 10
    await eventually(lambda: store._cache.applied == 1)  # NOTE: the listener is back and applying.
    assert advisory_locks(pg_url) == 0


def test_open_lock_store_picks_postgres_by_url(pg_url: str) -> None:
    s = open_lock_store(pg_url, pool_size=3, timeout_s=2.0)
    assert isinstance(s, PostgresLockStore) and s.timeout_s == 2.0
    assert isinstance(open_lock_store(pg_url.replace("postgresql://", "postgres://")), PostgresLockStore)


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://u:pw@db:5433/locks?sslmode=require", "postgresql://u@db:5433/locks?sslmode=require"),
    ("postgresql://u@db/locks", "postgresql://u@db/locks"),
    ("postgresql://:pw@db/locks", "postgresql://db/locks"),
])
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


# -- the guard -------------------------------------------------------------------------------


def test_advisory_keys_are_stable_signed_bigints() -> None:
    assert advisory_key(INSTANCE) == advisory_key(INSTANCE)
    keys = {advisory_key(k) for k in (INSTANCE, OTHER, ALL_INSTANCES)}
    assert len(keys) == 3 and all(-(2 ** 63) <= k < 2 ** 63 for k in keys)


async def test_shared_holders_on_two_replicas_run_together(
    store: PostgresLockStore, other: PostgresLockStore,
    pg_url: str,
) -> None:
    a, b = PgAdvisoryGuard(store, TIMEOUT_S), PgAdvisoryGuard(other, TIMEOUT_S)
    async with a.shared(INSTANCE), b.shared(INSTANCE):
        assert advisory_locks(pg_url) == 2


async def test_exclusive_waits_for_shared_and_fails_closed_in_time(
    store: PostgresLockStore, other: PostgresLockStore,
    pg_url: str,
) -> None:
    a, b = PgAdvisoryGuard(store, TIMEOUT_S), PgAdvisoryGuard(other, TIMEOUT_S)
    async with a.shared(INSTANCE):
        started = time.monotonic()
        with pytest.raises(LockStoreError, match="not free within 1s"):
            async with b.exclusive(INSTANCE):
                pytest.fail("exclusive entered while shared was held")
        assert TIMEOUT_S * 0.9 <= time.monotonic() - started < TIMEOUT_S + 2.0
        async with b.shared(OTHER):  # NOTE: the timed-out connection is still good for other keys.
            pass
    async with b.exclusive(INSTANCE):
        pass
    assert advisory_locks(pg_url) == 0


async def test_shared_waits_for_exclusive_then_sees_its_committed_lock(
    store: PostgresLockStore, other: PostgresLockStore
) -> None:
    writer, reader = PgAdvisoryGuard(store, 5.0), PgAdvisoryGuard(other, 5.0)
    order: list[str] = []
    in_writer = asyncio.Event()

    async def lock_call() -> None:
        async with writer.exclusive(INSTANCE):
            in_writer.set()
            await asyncio.sleep(0.3)
            await store.add(make_lock("lk-w"))
            order.append("lock committed")

    async def state_change() -> list[str]:
        await in_writer.wait()
        async with reader.shared(ALL_INSTANCES), reader.shared(INSTANCE):
            order.append("action decides")
            locks, _ = await other.instance_locks(INSTANCE, NOW)
            return ids(locks)

    # Warm the reader's cache with the empty lock set first: it must not be used after the write.
    async with reader.shared(INSTANCE):
        assert await other.instance_locks(INSTANCE, NOW) == ([], False)
    _, seen = await asyncio.gather(lock_call(), state_change())
    assert order == ["lock committed", "action decides"]
    assert seen == ["lk-w"]


async def test_waiting_exclusive_is_not_starved_by_new_shared_holders(
    store: PostgresLockStore, other: PostgresLockStore, pg_url: str
) -> None:
    a, b = PgAdvisoryGuard(store, 5.0), PgAdvisoryGuard(other, 5.0)
    log: list[str] = []
    first_in, release_first = asyncio.Event(), asyncio.Event()

    def waiting() -> int:
        rows = sql(pg_url, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        return int(str(rows[0][0]))

    async def first() -> None:
        async with a.shared(INSTANCE):
            first_in.set()
            await release_first.wait()
            # NOTE: logged before the release: after it, the writer may run before this task resumes.
            log.append("first out")

    async def writer() -> None:
        async with b.exclusive(INSTANCE):
            log.append("writer in")

    async def late_reader() -> None:
        async with a.shared(INSTANCE):
            log.append("late reader in")

    t1 = asyncio.create_task(first())
    await first_in.wait()
    t2 = asyncio.create_task(writer())
    await eventually(lambda: waiting() == 1)
    t3 = asyncio.create_task(late_reader())
    await eventually(lambda: waiting() == 2)  # NOTE: queued behind the writer, not let in beside "first".
    assert log == []
    release_first.set()
    await asyncio.gather(t1, t2, t3)
    assert log == ["first out", "writer in", "late reader in"]


async def test_nested_guards_share_one_connection(store: PostgresLockStore,
    pg_url: str,
) -> None:
    guard = PgAdvisoryGuard(store, TIMEOUT_S)
    async with guard.shared(ALL_INSTANCES), guard.shared(INSTANCE):
        rows = sql(pg_url, "SELECT count(DISTINCT pid), count(*) FROM pg_locks WHERE locktype = 'advisory'")
        assert rows == [(1, 2)]
    assert advisory_locks(pg_url) == 0


async def test_an_error_in_the_block_releases_the_guard(store: PostgresLockStore,
    pg_url: str,
) -> None:
    guard = PgAdvisoryGuard(store, TIMEOUT_S)
    with pytest.raises(RuntimeError):
        async with guard.exclusive(INSTANCE):
            raise RuntimeError("boom")
    assert advisory_locks(pg_url) == 0
    async with guard.exclusive(INSTANCE):
        pass


async def test_cancelled_holder_and_cancelled_waiter_release_everything(
    store: PostgresLockStore, other: PostgresLockStore,
    pg_url: str,
) -> None:
    a, b = PgAdvisoryGuard(store, 5.0), PgAdvisoryGuard(other, 5.0)
    inside = asyncio.Event()

    async def hold() -> None:
        async with a.exclusive(INSTANCE):
            inside.set()
            await asyncio.sleep(30)

    async def wait() -> None:
        async with b.shared(ALL_INSTANCES), b.shared(INSTANCE):
            pytest.fail("entered while the exclusive holder was inside")

    holder = asyncio.create_task(hold())
    await inside.wait()
    waiter = asyncio.create_task(wait())
    await asyncio.sleep(0.3)
    waiter.cancel()
    holder.cancel()
    results = await asyncio.gather(holder, waiter, return_exceptions=True)
    assert all(isinstance(r, asyncio.CancelledError) for r in results)
    await eventually(lambda: advisory_locks(pg_url) == 0)
    async with b.exclusive(INSTANCE):
        pass


HOLDER = """
import asyncio, sys
from sidecar.locks.postgres import PostgresLockStore
from sidecar.locks.pg_cache import LockCache
from sidecar.locks.pg_guard import PgAdvisoryGuard

async def main() -> None:
    store = PostgresLockStore(sys.argv[1], timeout_s=5.0)
    await store.open()
    async with PgAdvisoryGuard(store, 5.0).exclusive(sys.argv[2]):
        print("held", flush=True)
        await asyncio.sleep(60)

asyncio.run(main())
"""


async def test_a_killed_process_leaves_no_advisory_lock(store: PostgresLockStore,
    pg_url: str,
) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLDER, pg_url, INSTANCE, cwd=str(ROOT), stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    async with asyncio.timeout(20):
        assert (await proc.stdout.readline()).strip() == b"held"
    assert advisory_locks(pg_url) == 1
    guard = PgAdvisoryGuard(store, 0.3)
    with pytest.raises(LockStoreError):
        async with guard.shared(INSTANCE):
            pass
    os.kill(proc.pid, signal.SIGKILL)
    await proc.wait()
    await eventually(lambda: advisory_locks(pg_url) == 0)
    async with guard.shared(INSTANCE):
        pass


# -- the cache -------------------------------------------------------------------------------


def note(generation: int, scope: str = "instance", target: str = INSTANCE) -> str:
    return json.dumps({"generation": generation, "scope": scope, "target": target})


@pytest.mark.parametrize(("notes", "instance_cached", "scoped_cached", "applied"), [
    ([], True, True, 5),
    ([note(4)], True, True, 5),                                   # already applied: ignored
    ([note(6, target=OTHER)], True, True, 6),                     # another instance
    ([note(6)], False, True, 6),                                  # this instance changed
    ([note(6, "project", "demo")], True, False, 6),               # a project lock changed
    ([note(7, target=OTHER)], False, False, 7),                   # a gap: everything dropped
    ([note(6, "*", "")], False, False, 6),                        # truncate or a moved lock
    (["not json"], False, False, -1),                             # unreadable: know nothing
])
def test_cache_applies_notifications_in_order(
    notes: list[str], instance_cached: bool, scoped_cached: bool, applied: int
) -> None:
    cache = LockCache()
    cache.reset(5)
    cache.put_instance(INSTANCE, [make_lock("lk-1")], 5, NOW)
    cache.put_scoped([], 5, NOW)
    for payload in notes:
        cache.apply(payload)
    generation = max(applied, 5)
    assert cache.applied == applied
    assert (cache.instance(INSTANCE, generation, NOW) is not None) is (instance_cached and applied >= 5)
    assert (cache.scoped(generation, NOW) is not None) is (scoped_cached and applied >= 5)


def test_cache_is_exact_only_between_its_generation_and_what_was_applied() -> None:
    cache = LockCache()
    cache.reset(5)
    cache.put_instance(INSTANCE, [make_lock("lk-1")], 5, NOW)
    assert cache.instance(INSTANCE, 5, NOW) is not None
    assert cache.instance(INSTANCE, 6, NOW) is None                       # the listener lags
    assert cache.instance(INSTANCE, 4, NOW) is None                       # an older guard
    assert cache.instance(INSTANCE, 5, NOW - timedelta(seconds=1)) is None  # before it was read
    cache.apply(note(6, target=OTHER))
    assert cache.instance(INSTANCE, 6, NOW) is not None
    cache.put_instance(OTHER, [], 5, NOW)                                 # read before a change applied
    assert cache.instance(OTHER, 6, NOW) is None


async def test_cache_is_used_under_the_guard_and_only_there(store: PostgresLockStore,
    pg_url: str,
) -> None:
    guard = PgAdvisoryGuard(store, TIMEOUT_S)
    await store.add(make_lock("lk-1"))
    await eventually(lambda: store._cache.applied == 1)
    async with guard.shared(INSTANCE):
        assert ids((await store.instance_locks(INSTANCE, NOW))[0]) == ["lk-1"]
    # A change that bypasses the trigger (so no generation, no notification) shows what is cached.
    sql(pg_url, "ALTER TABLE locks DISABLE TRIGGER locks_changed; DELETE FROM locks; "
                          "ALTER TABLE locks ENABLE TRIGGER locks_changed")
    async with guard.shared(INSTANCE):
        assert ids((await store.instance_locks(INSTANCE, NOW))[0]) == ["lk-1"]
    assert ids((await store.instance_locks(INSTANCE, NOW))[0]) == []


async def test_another_replicas_write_invalidates_the_cache(
    store: PostgresLockStore, other: PostgresLockStore
) -> None:
    guard = PgAdvisoryGuard(store, TIMEOUT_S)
    for lock_id, expected in (("lk-1", ["lk-1"]), ("lk-2", ["lk-1", "lk-2"])):
        async with PgAdvisoryGuard(other, TIMEOUT_S).exclusive(INSTANCE):
            await other.add(make_lock(lock_id, created=int(lock_id[-1])))
        async with guard.shared(ALL_INSTANCES), guard.shared(INSTANCE):
            assert ids((await store.instance_locks(INSTANCE, NOW))[0]) == expected
    async with PgAdvisoryGuard(other, TIMEOUT_S).exclusive(ALL_INSTANCES):
        await other.add(make_lock("lk-p", scope="project", target="demo"))
    async with guard.shared(ALL_INSTANCES), guard.shared(INSTANCE):
        assert await store.has_scoped_locks(NOW)
        assert ids(await store.effective_locks(INSTANCE, "demo", None, NOW)) == ["lk-p", "lk-1", "lk-2"]


async def test_a_lagging_listener_means_reading_the_table(
    store: PostgresLockStore, other: PostgresLockStore
) -> None:
    guard = PgAdvisoryGuard(store, TIMEOUT_S)
    async with guard.shared(INSTANCE):
        assert await store.instance_locks(INSTANCE, NOW) == ([], False)
    assert store._listener is not None
    store._listener.cancel()  # NOTE: no more notifications reach this replica.
    await asyncio.gather(store._listener, return_exceptions=True)
    await other.add(make_lock("lk-1"))
    async with guard.shared(INSTANCE):
        assert ids((await store.instance_locks(INSTANCE, NOW))[0]) == ["lk-1"]


async def test_own_write_under_the_guard_is_read_back(store: PostgresLockStore) -> None:
    guard = PgAdvisoryGuard(store, TIMEOUT_S)
    async with guard.exclusive(INSTANCE):
        assert await store.instance_locks(INSTANCE, NOW) == ([], False)
        await store.add(make_lock("lk-1"))
        assert ids((await store.instance_locks(INSTANCE, NOW))[0]) == ["lk-1"]
        await store.remove(["lk-1"])
        assert await store.instance_locks(INSTANCE, NOW) == ([], False)


# -- the copy behind ``statelock locks migrate`` ---------------------------------------------------


async def test_copy_in_skips_present_ids_and_waits_for_state_changes(
    store: PostgresLockStore, other: PostgresLockStore
) -> None:
    await store.add(make_lock("lk-1"))
    guard = PgAdvisoryGuard(other, 5.0)
    copied: list[int] = []
    async with guard.shared(ALL_INSTANCES):
        copy = asyncio.create_task(store.copy_in([make_lock("lk-1"), make_lock("lk-2", created=2)],
                                                 advisory_key(ALL_INSTANCES)))
        await asyncio.sleep(0.3)
        assert not copy.done()  # NOTE: an in-flight state change holds the whole table shared.
    copied.append(await copy)
    assert copied == [1]
    assert ids(await store.find(LockFilter(), NOW)) == ["lk-1", "lk-2"]


# -- statelock locks migrate -------------------------------------------------------------------


def migrate(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="statelock locks")
    add_migrate_command(parser.add_subparsers(dest="locks_command"))
    return run_migrate_command(parser.parse_args(["migrate", *argv]))


def sqlite_with_locks(path: Path, locks: list[Lock]) -> str:
    async def fill() -> None:
        s = SqliteLockStore(f"sqlite:///{path}")
        await s.open()
        for lock in locks:
            await s.add(lock)
        await s.close()

    asyncio.run(fill())
    return f"sqlite:///{path}"


def read_all(url: str) -> list[Lock]:
    async def read() -> list[Lock]:
        s = open_lock_store(url)
        await s.open()
        try:
            return await s.find(LockFilter(), NOW)
        finally:
            await s.close()

    return asyncio.run(read())


SOURCE_LOCKS = [
    make_lock("lk-1", created=1),
    replace(make_lock("lk-2", kind="boot", owner=BILLING, created=2, expires_in=30), state="pending",
            source="suspend-lock", note="suspending"),
    make_lock("lk-3", scope="project", target="demo", kind="delete", created=3, expires_in=-5),
]


def test_migrate_copies_prints_counts_and_verifies(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source = sqlite_with_locks(tmp_path / "locks.db", SOURCE_LOCKS)
    assert migrate("--from", source, "--to", pg_url) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[3].split() == ["locks", "3", "0", "3", "3"]
    assert out.splitlines()[4].split() == ["schema_version", "1", "1", "-", "1"]
    assert "verified: the target holds the source's 3 lock ids" in out
    assert read_all(pg_url) == read_all(source) == SOURCE_LOCKS
    assert migrate("--from", source, "--to", pg_url) == 0
    assert capsys.readouterr().out.splitlines()[3].split() == ["locks", "3", "3", "0", "3"]


def test_migrate_refuses_a_target_with_other_locks(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source = sqlite_with_locks(tmp_path / "locks.db", SOURCE_LOCKS[:1])
    assert migrate("--from", sqlite_with_locks(tmp_path / "b.db", [make_lock("lk-9")]), "--to", pg_url) == 0
    capsys.readouterr()
    assert migrate("--from", source, "--to", pg_url) == 1
    out = capsys.readouterr().out
    assert "NOT verified: nothing was copied" in out
    assert "1 locks in the target are not in the source: lk-9" in out
    assert [lk.id for lk in read_all(pg_url)] == ["lk-9"]


@pytest.mark.parametrize(("argv", "message"), [
    (["--from", "sqlite:///{tmp}/absent.db", "--to", "{pg}"], "there is no SQLite lock store"),
    (["--from", "sqlite:///{tmp}/locks.db", "--to", "sqlite:///{tmp}/x.db"], "--to: give the PostgreSQL"),
    (["--from", "mysql://db/x", "--to", "{pg}"], "--from: give the current lock store"),
    (["--from", "{pg}", "--to", "{pg}"], "the same lock store"),
])
def test_migrate_usage_errors_exit_2(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    sqlite_with_locks(tmp_path / "locks.db", [])
    assert migrate(*(a.format(tmp=tmp_path, pg=pg_url) for a in argv)) == 2
    assert message in capsys.readouterr().err


def test_migrate_to_an_unreachable_database_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = sqlite_with_locks(tmp_path / "locks.db", SOURCE_LOCKS)
    assert migrate("--from", source, "--to", "postgresql://u:pw@127.0.0.1:1/x", "--timeout", "1") == 1
    err = capsys.readouterr().err
    assert "lock_store_error: cannot open lock store postgresql://u@127.0.0.1:1/x" in err and "pw" not in err
