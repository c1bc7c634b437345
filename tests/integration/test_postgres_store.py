"""What only the PostgreSQL store does, on a real PostgreSQL.

Starting replicas together, connection failures (fail closed, recover, never show
the password), the guard it supplies, and the replica cache with its listener.
Everything both stores do is in test_lock_store_contract.py; the guard itself is
in test_pg_guard.py, the copy of ``statelock locks migrate`` in test_locks_migrate.py.
"""

from __future__ import annotations

import asyncio

import pytest

from sidecar.errors import LockStoreError
from sidecar.guard import ALL_INSTANCES
from sidecar.identity import Subject
from sidecar.locks.model import redact_url
from sidecar.locks.pg_guard import PgAdvisoryGuard
from sidecar.locks.pg_schema import MIGRATIONS
from sidecar.locks.postgres import PostgresLockStore
from tests.support.locks import INSTANCE, NOW, eventually, ids, make_lock, pg_sql
from tests.support.postgres import (  # noqa: F401
    TIMEOUT_S,
    PgServer,
    advisory_locks,
    open_pg_store,
    pg_other_fixture,
    pg_server_fixture,
    pg_store_fixture,
    pg_url_fixture,
)

pytestmark = pytest.mark.integration

LEGAL = Subject("lea", "legal", ("legal",))


def test_the_store_supplies_its_advisory_guard(store: PostgresLockStore) -> None:
    guard = store.guard(2.5)
    assert isinstance(guard, PgAdvisoryGuard) and guard.timeout_s == 2.5


async def test_replicas_starting_together_migrate_once(pg_url: str) -> None:
    stores = [PostgresLockStore(pg_url, timeout_s=5.0) for _ in range(3)]
    await asyncio.gather(*(s.open() for s in stores))
    await asyncio.gather(*(s.close() for s in stores))
    assert pg_sql(pg_url, "SELECT count(*) FROM schema_version") == [(len(MIGRATIONS),)]


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
        async with s.guard(TIMEOUT_S).shared(INSTANCE):
            pass


async def test_database_gone_mid_use_fails_closed(pg_server: PgServer, pg_url: str) -> None:
    s = await open_pg_store(pg_url)
    try:
        await s.count()
        dbname = pg_url.rsplit("/", 1)[1]
        pg_sql(pg_server.url(), f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{dbname}'")
        pg_sql(pg_server.url(), f"ALTER DATABASE {dbname} ALLOW_CONNECTIONS false")
        with pytest.raises(LockStoreError):
            for _ in range(3):  # NOTE: the pool may hand out a connection it has not yet seen die.
                await s.effective_locks(INSTANCE, None, None, NOW)
    finally:
        await s.close()


async def test_store_and_guard_recover_after_the_server_drops_every_connection(
    pg_server: PgServer, store: PostgresLockStore, pg_url: str
) -> None:
    guard = store.guard(TIMEOUT_S)
    async with guard.shared(INSTANCE):
        pass
    dbname = pg_url.rsplit("/", 1)[1]
    pg_sql(pg_server.url(), f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{dbname}'")
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


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://u:pw@db:5433/locks?sslmode=require", "postgresql://u@db:5433/locks?sslmode=require"),
    ("postgresql://u@db/locks", "postgresql://u@db/locks"),
    ("postgresql://:pw@db/locks", "postgresql://db/locks"),
])
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


# -- the replica cache and its listener ------------------------------------------------------


async def test_cache_is_used_under_the_guard_and_only_there(store: PostgresLockStore,
    pg_url: str,
) -> None:
    guard = store.guard(TIMEOUT_S)
    await store.add(make_lock("lk-1"))
    await eventually(lambda: store._cache.applied == 1)
    async with guard.shared(INSTANCE):
        assert ids((await store.instance_locks(INSTANCE, NOW))[0]) == ["lk-1"]
    # A change that bypasses the trigger (so no generation, no notification) shows what is cached.
    pg_sql(pg_url, "ALTER TABLE locks DISABLE TRIGGER locks_changed; DELETE FROM locks; "
                          "ALTER TABLE locks ENABLE TRIGGER locks_changed")
    async with guard.shared(INSTANCE):
        assert ids((await store.instance_locks(INSTANCE, NOW))[0]) == ["lk-1"]
    assert ids((await store.instance_locks(INSTANCE, NOW))[0]) == []


async def test_another_replicas_write_invalidates_the_cache(
    store: PostgresLockStore, other: PostgresLockStore
) -> None:
    guard = store.guard(TIMEOUT_S)
    for lock_id, expected in (("lk-1", ["lk-1"]), ("lk-2", ["lk-1", "lk-2"])):
        async with other.guard(TIMEOUT_S).exclusive(INSTANCE):
            await other.add(make_lock(lock_id, created=int(lock_id[-1])))
        async with guard.shared(ALL_INSTANCES), guard.shared(INSTANCE):
            assert ids((await store.instance_locks(INSTANCE, NOW))[0]) == expected
    async with other.guard(TIMEOUT_S).exclusive(ALL_INSTANCES):
        await other.add(make_lock("lk-p", scope="project", target="demo"))
    async with guard.shared(ALL_INSTANCES), guard.shared(INSTANCE):
        assert await store.has_scoped_locks(NOW)
        assert ids(await store.effective_locks(INSTANCE, "demo", None, NOW)) == ["lk-p", "lk-1", "lk-2"]


async def test_a_lagging_listener_means_reading_the_table(
    store: PostgresLockStore, other: PostgresLockStore
) -> None:
    guard = store.guard(TIMEOUT_S)
    async with guard.shared(INSTANCE):
        assert await store.instance_locks(INSTANCE, NOW) == ([], False)
    assert store._listener.task is not None
    store._listener.task.cancel()  # NOTE: no more notifications reach this replica.
    await asyncio.gather(store._listener.task, return_exceptions=True)
    await other.add(make_lock("lk-1"))
    async with guard.shared(INSTANCE):
        assert ids((await store.instance_locks(INSTANCE, NOW))[0]) == ["lk-1"]


async def test_own_write_under_the_guard_is_read_back(store: PostgresLockStore) -> None:
    guard = store.guard(TIMEOUT_S)
    async with guard.exclusive(INSTANCE):
        assert await store.instance_locks(INSTANCE, NOW) == ([], False)
        await store.add(make_lock("lk-1"))
        assert ids((await store.instance_locks(INSTANCE, NOW))[0]) == ["lk-1"]
        assert await store.lift(["lk-1"], LEGAL, "dec-1", NOW) == 1
        assert await store.instance_locks(INSTANCE, NOW) == ([], False)


def generation(url: str) -> int:
    return int(pg_sql(url, "SELECT value FROM lock_generation")[0][0])


async def test_another_replicas_lift_drops_the_lock_from_the_cache(
    store: PostgresLockStore, other: PostgresLockStore, pg_url: str
) -> None:
    guard = store.guard(TIMEOUT_S)
    await other.add(make_lock("lk-1", created=1))
    await other.add(make_lock("lk-p", scope="project", target="demo"))
    await eventually(lambda: store._cache.applied == generation(pg_url) == 2)
    async with guard.shared(ALL_INSTANCES), guard.shared(INSTANCE):
        assert ids(await store.effective_locks(INSTANCE, "demo", None, NOW)) == ["lk-p", "lk-1"]
    async with other.guard(TIMEOUT_S).exclusive(ALL_INSTANCES):
        assert await other.lift(["lk-1", "lk-p"], LEGAL, "dec-1", NOW) == 2
    # NOTE: once this replica has applied the lift's announcements, its cache may answer again.
    await eventually(lambda: store._cache.applied == generation(pg_url) == 4)
    async with guard.shared(ALL_INSTANCES), guard.shared(INSTANCE):
        assert await store.effective_locks(INSTANCE, "demo", None, NOW) == []
        assert not await store.has_scoped_locks(NOW)


async def test_changes_to_lifted_rows_alone_bump_no_generation_and_announce_nothing(
    store: PostgresLockStore, pg_url: str
) -> None:
    await store.add(make_lock("lk-1"))
    assert await store.lift(["lk-1"], LEGAL, "dec-1", NOW) == 1
    assert generation(pg_url) == 2
    await store.set_state("lk-1", "active", "suspended")
    assert await store.lift(["lk-1"], LEGAL, "dec-2", NOW) == 0
    pg_sql(pg_url, "UPDATE locks SET note = 'history' WHERE id = 'lk-1'")
    pg_sql(pg_url, "DELETE FROM locks WHERE id = 'lk-1'")
    assert generation(pg_url) == 2
    await store.add(make_lock("lk-2"))
    await eventually(lambda: store._cache.applied == generation(pg_url) == 3)  # NOTE: no gap: nothing was sent.

