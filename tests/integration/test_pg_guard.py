"""sidecar.locks.pg_guard on a real PostgreSQL: advisory locks shared by replicas.

Shared and exclusive holders on two replicas' stores, the bounded wait, the
ordering against a committed lock, writer preference, one connection per task, and
release on error, cancellation and process death.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time

import pytest

from sidecar.errors import LockStoreError
from sidecar.guard import ALL_INSTANCES
from sidecar.locks.pg_guard import advisory_key
from sidecar.locks.postgres import PostgresLockStore
from tests.support.locks import INSTANCE, NOW, OTHER, eventually, ids, make_lock, pg_sql
from tests.support.paths import ROOT
from tests.support.postgres import (  # noqa: F401
    TIMEOUT_S,
    advisory_locks,
    pg_other_fixture,
    pg_server_fixture,
    pg_store_fixture,
    pg_url_fixture,
)

pytestmark = pytest.mark.integration


def test_advisory_keys_are_stable_signed_bigints() -> None:
    assert advisory_key(INSTANCE) == advisory_key(INSTANCE)
    keys = {advisory_key(k) for k in (INSTANCE, OTHER, ALL_INSTANCES)}
    assert len(keys) == 3 and all(-(2 ** 63) <= k < 2 ** 63 for k in keys)


async def test_shared_holders_on_two_replicas_run_together(
    store: PostgresLockStore, other: PostgresLockStore,
    pg_url: str,
) -> None:
    a, b = store.guard(TIMEOUT_S), other.guard(TIMEOUT_S)
    async with a.shared(INSTANCE), b.shared(INSTANCE):
        assert advisory_locks(pg_url) == 2


async def test_exclusive_waits_for_shared_and_fails_closed_in_time(
    store: PostgresLockStore, other: PostgresLockStore,
    pg_url: str,
) -> None:
    a, b = store.guard(TIMEOUT_S), other.guard(TIMEOUT_S)
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
    writer, reader = store.guard(5.0), other.guard(5.0)
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
    a, b = store.guard(5.0), other.guard(5.0)
    log: list[str] = []
    first_in, release_first = asyncio.Event(), asyncio.Event()

    def waiting() -> int:
        rows = pg_sql(pg_url, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
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
    guard = store.guard(TIMEOUT_S)
    async with guard.shared(ALL_INSTANCES), guard.shared(INSTANCE):
        rows = pg_sql(pg_url, "SELECT count(DISTINCT pid), count(*) FROM pg_locks WHERE locktype = 'advisory'")
        assert rows == [(1, 2)]
    assert advisory_locks(pg_url) == 0


async def test_an_error_in_the_block_releases_the_guard(store: PostgresLockStore,
    pg_url: str,
) -> None:
    guard = store.guard(TIMEOUT_S)
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
    a, b = store.guard(5.0), other.guard(5.0)
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

async def main() -> None:
    store = PostgresLockStore(sys.argv[1], timeout_s=5.0)
    await store.open()
    async with store.guard(5.0).exclusive(sys.argv[2]):
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
    guard = store.guard(0.3)
    with pytest.raises(LockStoreError):
        async with guard.shared(INSTANCE):
            pass
    os.kill(proc.pid, signal.SIGKILL)
    await proc.wait()
    await eventually(lambda: advisory_locks(pg_url) == 0)
    async with guard.shared(INSTANCE):
        pass

