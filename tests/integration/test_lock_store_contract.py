"""The LockStore contract: every test runs against SQLite and against a real PostgreSQL.

The ``store`` fixture opens the store for each ``lockstore.url`` kind through
``open_lock_store``, the way the service does; ``db`` reaches the same database
with its own driver. What only one store does (PostgreSQL's guard, cache and
listener; SQLite's file) is tested in that store's own module.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sidecar.errors import LockStoreError
from sidecar.identity import Subject
from sidecar.locks import pg_schema, sqlite
from sidecar.locks.factory import open_lock_store
from sidecar.locks.model import Lock, LockFilter, rfc3339
from sidecar.locks.sql import SCHEMA_VERSION_TABLE
from sidecar.locks.store import LockStore
from tests.support.locks import ALICE, BILLING, INSTANCE, NOW, OTHER, Database, ids, make_lock
from tests.support.postgres import pg_server_fixture, pg_url_fixture  # noqa: F401

TIMEOUT_S = 1.0
LEGAL = Subject("lea", "legal", ("legal", "reader"))
LATER = NOW + timedelta(seconds=10)
MIGRATIONS = {"sqlite": sqlite.MIGRATIONS, "postgresql": pg_schema.MIGRATIONS}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    """An empty database of each kind (PostgreSQL only starts when a test asks for it)."""
    if request.param == "sqlite":
        return Database(f"sqlite:///{tmp_path}/locks.db")
    return Database(request.getfixturevalue("pg_url"))


async def opened(db: Database) -> LockStore:
    store = open_lock_store(db.url, pool_size=4, timeout_s=TIMEOUT_S)
    await store.open()
    return store


@pytest.fixture
async def store(db: Database) -> AsyncIterator[LockStore]:
    s = await opened(db)
    yield s
    await s.close()


# -- add, get, lift ---------------------------------------------------------------------------


async def test_add_get_lift_round_trip(store: LockStore) -> None:
    lock = replace(make_lock("lk-1", expires_in=60, owner=BILLING, kind="boot"),
                   state="pending", source="suspend-lock", note="suspending")
    await store.add(lock)
    assert await store.get("lk-1") == lock
    assert await store.count() == 1
    assert await store.lift(["lk-1", "lk-absent"], LEGAL, "dec-1", LATER) == 1
    assert await store.get("lk-1") == replace(lock, state="lifted", lifted_at=LATER,
                                              lifted_by=Subject("lea", "legal", ()), lifted_decision_id="dec-1")
    assert await store.count() == 1  # NOTE: the row stays, as history.
    assert await store.effective_locks(INSTANCE, None, None, NOW) == []
    assert await store.get("lk-absent") is None


async def test_lift_nothing_and_get_missing(store: LockStore) -> None:
    assert await store.lift([], LEGAL, "dec-1", NOW) == 0
    assert await store.get("lk-absent") is None


async def test_lift_several_in_one_call(store: LockStore) -> None:
    for n in range(3):
        await store.add(make_lock(f"lk-{n}"))
    assert await store.lift(["lk-0", "lk-2"], LEGAL, "dec-1", NOW) == 2
    assert ids(await store.find(LockFilter(state="active"), NOW)) == ["lk-1"]
    assert ids(await store.find(LockFilter(state="lifted"), NOW)) == ["lk-0", "lk-2"]
    assert ids(await store.find(LockFilter(), NOW)) == ["lk-0", "lk-1", "lk-2"]


async def test_a_lifted_lock_is_not_lifted_again(store: LockStore) -> None:
    await store.add(make_lock("lk-1"))
    await store.add(make_lock("lk-2", created=1))
    assert await store.lift(["lk-1"], LEGAL, "dec-1", NOW) == 1
    assert await store.lift(["lk-1", "lk-2"], ALICE, "dec-2", LATER) == 1
    first, second = await store.get("lk-1"), await store.get("lk-2")
    assert first is not None and second is not None
    assert (first.lifted_at, first.lifted_decision_id) == (NOW, "dec-1")
    assert first.lifted_by is not None and first.lifted_by.user_id == "lea"
    assert (second.lifted_at, second.lifted_decision_id) == (LATER, "dec-2")
    assert second.lifted_by == Subject("alice", "demo", ())
    assert await store.lift(["lk-1", "lk-2"], ALICE, "dec-3", LATER) == 0


async def test_duplicate_id_is_a_lock_store_error(store: LockStore) -> None:
    await store.add(make_lock("lk-1"))
    with pytest.raises(LockStoreError):
        await store.add(make_lock("lk-1", target=OTHER))
    assert await store.count() == 1


# -- what is in force -------------------------------------------------------------------------


async def test_effective_locks_by_instance_project_and_host(store: LockStore) -> None:
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
    store: LockStore, expires_in: int | None, in_force: bool
) -> None:
    lock = make_lock("lk-1", expires_in=expires_in)
    await store.add(lock)
    found = await store.effective_locks(INSTANCE, None, None, NOW)
    assert (ids(found) == ["lk-1"]) is in_force
    assert lock.in_force(NOW) is in_force


async def test_effective_locks_are_ordered_by_creation(store: LockStore) -> None:
    await store.add(make_lock("lk-b", created=2))
    await store.add(make_lock("lk-c", created=1))
    await store.add(make_lock("lk-a", created=2))
    assert ids(await store.effective_locks(INSTANCE, None, None, NOW)) == ["lk-c", "lk-a", "lk-b"]


async def test_has_scoped_locks(store: LockStore) -> None:
    assert not await store.has_scoped_locks(NOW)
    await store.add(make_lock("lk-i"))
    assert not await store.has_scoped_locks(NOW)
    await store.add(make_lock("lk-p", scope="project", target="demo", expires_in=0))
    assert not await store.has_scoped_locks(NOW)
    assert await store.has_scoped_locks(NOW - timedelta(seconds=1))
    await store.add(make_lock("lk-h", scope="host", target="compute1", expires_in=10))
    assert await store.has_scoped_locks(NOW)
    assert not await store.has_scoped_locks(NOW + timedelta(seconds=10))


async def test_instance_locks_returns_own_locks_and_the_scoped_flag(store: LockStore) -> None:
    assert await store.instance_locks(INSTANCE, NOW) == ([], False)
    await store.add(make_lock("lk-i"))
    await store.add(make_lock("lk-o", target=OTHER))
    await store.add(make_lock("lk-x", expires_in=0))
    locks, scoped = await store.instance_locks(INSTANCE, NOW)
    assert ids(locks) == ["lk-i"] and scoped is False
    await store.add(make_lock("lk-p", scope="project", target="demo"))
    locks, scoped = await store.instance_locks(INSTANCE, NOW)
    assert ids(locks) == ["lk-i"] and scoped is True


async def test_locks_on_instances(store: LockStore) -> None:
    await store.add(make_lock("lk-1", created=1))
    await store.add(make_lock("lk-2", created=2, expires_in=0))
    await store.add(make_lock("lk-3", target=OTHER, created=3))
    await store.add(make_lock("lk-p", scope="project", target=INSTANCE))
    got = await store.locks_on_instances([INSTANCE, OTHER, "absent", INSTANCE], NOW)
    assert {k: ids(v) for k, v in got.items()} == {INSTANCE: ["lk-1"], OTHER: ["lk-3"], "absent": []}
    assert await store.locks_on_instances([], NOW) == {}


async def test_locks_on_more_instances_than_one_statement_binds(store: LockStore) -> None:
    targets = [f"00000000-0000-4000-8000-{n:012d}" for n in range(2000)]
    for n in (0, 999, 1999):
        await store.add(make_lock(f"lk-{n}", target=targets[n], created=n))
    got = await store.locks_on_instances(targets, NOW)
    assert len(got) == 2000
    assert {k: ids(v) for k, v in got.items() if v} == {
        targets[0]: ["lk-0"], targets[999]: ["lk-999"], targets[1999]: ["lk-1999"]}


# -- listing ---------------------------------------------------------------------------------


@pytest.fixture
async def populated(store: LockStore) -> LockStore:
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
    (LockFilter(state="active"), ["lk-1", "lk-2", "lk-5"]),
    (LockFilter(state="expired"), ["lk-3", "lk-4"]),
    (LockFilter(owner="billing-svc", state="active"), ["lk-2"]),
    (LockFilter(owner="billing-svc", state="expired"), ["lk-4"]),
    (LockFilter(target=INSTANCE, kind="boot", state="active"), ["lk-2"]),
])
async def test_find_filters(populated: LockStore, filters: LockFilter, expected: list[str]) -> None:
    assert ids(await populated.find(filters, NOW)) == expected


async def test_find_active_moves_with_now(populated: LockStore) -> None:
    later = NOW + timedelta(seconds=30)
    assert ids(await populated.find(LockFilter(state="active"), later)) == ["lk-1", "lk-5"]
    assert ids(await populated.find(LockFilter(state="expired"), later)) == ["lk-2", "lk-3", "lk-4"]


async def test_counts_in_force_by_kind(populated: LockStore) -> None:
    assert await populated.count_in_force_by_kind(NOW) == {"state": 2, "boot": 1}
    assert await populated.count() == 5


# -- history: a lifted lock keeps its row, and no in-force read sees it -------------------------------


@pytest.fixture
async def history(populated: LockStore) -> LockStore:
    """``populated`` and two lifted locks on INSTANCE: lk-6 (no expiry) and lk-7 (expired as well)."""
    await populated.add(make_lock("lk-6", created=6))
    await populated.add(make_lock("lk-7", kind="boot", owner=BILLING, created=7, expires_in=-1))
    assert await populated.lift(["lk-6", "lk-7"], LEGAL, "dec-6", NOW) == 2
    return populated


@pytest.mark.parametrize(("filters", "expected"), [
    (LockFilter(), ["lk-1", "lk-2", "lk-3", "lk-4", "lk-5", "lk-6", "lk-7"]),
    (LockFilter(state="all"), ["lk-1", "lk-2", "lk-3", "lk-4", "lk-5", "lk-6", "lk-7"]),
    (LockFilter(state="active"), ["lk-1", "lk-2", "lk-5"]),
    (LockFilter(state="expired"), ["lk-3", "lk-4"]),
    (LockFilter(state="lifted"), ["lk-6", "lk-7"]),
    (LockFilter(target=INSTANCE, state="lifted"), ["lk-6", "lk-7"]),
    (LockFilter(owner="billing-svc", state="lifted"), ["lk-7"]),
    (LockFilter(owner="billing-svc", state="expired"), ["lk-4"]),
    (LockFilter(kind="boot"), ["lk-2", "lk-7"]),
    (LockFilter(scope="instance", target=INSTANCE), ["lk-1", "lk-2", "lk-6", "lk-7"]),
    (LockFilter(scope="project", state="lifted"), []),
])
async def test_find_by_state(history: LockStore, filters: LockFilter, expected: list[str]) -> None:
    assert ids(await history.find(filters, NOW)) == expected


async def test_an_instances_history_is_every_lock_on_it_oldest_first(store: LockStore) -> None:
    await store.add(make_lock("lk-c", created=3))
    await store.add(make_lock("lk-a", created=0))
    await store.add(make_lock("lk-b", created=1, expires_in=2))
    await store.add(make_lock("lk-p", scope="project", target="demo", created=2))
    await store.add(make_lock("lk-o", target=OTHER, created=2))
    assert await store.lift(["lk-a"], LEGAL, "dec-a", NOW + timedelta(seconds=1)) == 1
    timeline = await store.find(LockFilter(scope="instance", target=INSTANCE), LATER)
    assert [(lk.id, lk.as_json(LATER)["state"]) for lk in timeline] == [
        ("lk-a", "lifted"), ("lk-b", "expired"), ("lk-c", "active")]
    assert timeline[0].as_json(LATER)["lifted_by"] == {"user_id": "lea", "project_id": "legal"}


async def test_no_in_force_read_sees_a_lifted_lock(store: LockStore) -> None:
    await store.add(make_lock("lk-i"))
    await store.add(make_lock("lk-p", scope="project", target="demo", kind="delete"))
    await store.add(make_lock("lk-h", scope="host", target="compute1"))
    await store.add(replace(make_lock("lk-s", kind="boot"), state="pending", source="suspend-lock"))
    assert await store.count_in_force_by_kind(NOW) == {"state": 2, "delete": 1, "boot": 1}
    assert await store.lift(["lk-i", "lk-p", "lk-h", "lk-s"], LEGAL, "dec-1", NOW) == 4
    assert await store.effective_locks(INSTANCE, "demo", "compute1", NOW) == []
    assert await store.instance_locks(INSTANCE, NOW) == ([], False)
    assert await store.locks_on_instances([INSTANCE], NOW) == {INSTANCE: []}
    assert not await store.has_scoped_locks(NOW)
    assert await store.count_in_force_by_kind(NOW) == {}
    assert await store.pending_locks() == []
    assert ids(await store.find(LockFilter(state="active"), NOW)) == []
    for lock_id in ("lk-i", "lk-p", "lk-h", "lk-s"):
        got = await store.get(lock_id)
        assert got is not None and got.lifted and got.lifted_decision_id == "dec-1", lock_id
    assert await store.count() == 4


async def test_set_state_leaves_a_lifted_lock_lifted(store: LockStore) -> None:
    await store.add(replace(make_lock("lk-1"), state="pending", source="suspend-lock", note="suspending"))
    assert await store.lift(["lk-1"], LEGAL, "dec-1", NOW) == 1
    await store.set_state("lk-1", "active", "suspended")
    got = await store.get("lk-1")
    assert got is not None and (got.state, got.note) == ("lifted", "suspending")
    assert await store.effective_locks(INSTANCE, None, None, NOW) == []


async def test_a_lifted_lock_shows_as_lifted_never_active(store: LockStore) -> None:
    await store.add(make_lock("lk-1", expires_in=3600))
    assert await store.lift(["lk-1"], LEGAL, "dec-1", NOW) == 1
    got = await store.get("lk-1")
    assert got is not None
    doc = got.as_json(LATER)
    assert (doc["state"], doc["active"], doc["expired"], doc["lifted"]) == ("lifted", False, False, True)
    assert doc["lifted_at"] == rfc3339(NOW) and doc["lifted_decision_id"] == "dec-1"
    assert doc["lifted_by"] == {"user_id": "lea", "project_id": "legal"}


# -- suspend-lock bookkeeping ---------------------------------------------------------------------


async def test_set_state(store: LockStore) -> None:
    await store.add(replace(make_lock("lk-1"), state="pending", source="suspend-lock"))
    await store.set_state("lk-1", "failed", "suspend timed out")
    got = await store.get("lk-1")
    assert got is not None
    assert (got.state, got.note, got.source) == ("failed", "suspend timed out", "suspend-lock")
    await store.set_state("lk-1", "active")
    got = await store.get("lk-1")
    assert got is not None
    assert (got.state, got.note) == ("active", "")


async def test_pending_locks(store: LockStore) -> None:
    await store.add(make_lock("lk-1"))
    await store.add(replace(make_lock("lk-2", created=2), state="pending"))
    await store.add(replace(make_lock("lk-3", created=1), state="pending"))
    assert ids(await store.pending_locks()) == ["lk-3", "lk-2"]
    await store.set_state("lk-3", "active")
    assert ids(await store.pending_locks()) == ["lk-2"]


async def test_set_state_and_pending_locks(store: LockStore) -> None:
    await store.add(make_lock("lk-1"))
    await store.add(replace(make_lock("lk-2", created=2), state="pending", source="suspend-lock"))
    await store.add(replace(make_lock("lk-3", created=1), state="pending"))
    assert ids(await store.pending_locks()) == ["lk-3", "lk-2"]
    await store.set_state("lk-2", "failed", "suspend timed out")
    got = await store.get("lk-2")
    assert got is not None and (got.state, got.note, got.source) == ("failed", "suspend timed out", "suspend-lock")
    assert ids(await store.pending_locks()) == ["lk-3"]


# -- schema and lifecycle ------------------------------------------------------------------------


async def test_schema_migration_is_versioned_and_idempotent_on_reopen(db: Database) -> None:
    latest = len(MIGRATIONS[db.kind])
    first = await opened(db)
    await first.add(make_lock("lk-1", expires_in=60))
    assert await first.schema_version() == latest
    await first.close()
    assert db.schema_versions() == list(range(1, latest + 1))
    for n in range(2):
        again = await opened(db)
        assert await again.schema_version() == latest
        assert await again.get("lk-1") == make_lock("lk-1", expires_in=60)
        assert await again.count() == 1 + n
        await again.add(make_lock(f"lk-again-{n}", owner=ALICE))
        await again.close()
    assert db.schema_versions() == list(range(1, latest + 1))
    assert db.sql("SELECT count(*) FROM locks") == [(3,)]


async def test_calls_before_open_are_lock_store_errors(db: Database) -> None:
    s = open_lock_store(db.url, pool_size=4, timeout_s=TIMEOUT_S)
    with pytest.raises(LockStoreError, match="not open"):
        await s.count()
    await s.close()


V1_COLUMNS = ("id, kind, scope, target, reason, owner_user_id, owner_project_id, owner_roles, created_at, "
              "expires_at, state, source, note")


def v1_row(db: Database, lock: Lock) -> tuple[Any, ...]:
    """A lock as a row of schema version 1, encoded as that version's store wrote it."""
    def when(value: datetime | None) -> Any:
        return value if value is None or db.kind == "postgresql" else value.timestamp()

    roles: Any = list(lock.owner.roles) if db.kind == "postgresql" else json.dumps(list(lock.owner.roles))
    return (lock.id, lock.kind, lock.scope, lock.target, lock.reason, lock.owner.user_id, lock.owner.project_id,
            roles, when(lock.created_at), when(lock.expires_at), lock.state, lock.source, lock.note)


async def test_a_database_at_schema_version_1_migrates_with_its_rows(db: Database) -> None:
    db.script(f"{SCHEMA_VERSION_TABLE}; {MIGRATIONS[db.kind][0]}; INSERT INTO schema_version VALUES (1)")
    rows = [
        make_lock("lk-1", created=1),
        replace(make_lock("lk-2", kind="boot", owner=BILLING, created=2, expires_in=30), state="pending",
                source="suspend-lock", note="suspending"),
        make_lock("lk-3", scope="project", target="demo", kind="delete", created=3, expires_in=-5),
        make_lock("lk-4", scope="host", target="compute1", created=4),
    ]
    marks = ", ".join(db.mark for _ in range(13))
    for lock in rows:
        db.sql(f"INSERT INTO locks ({V1_COLUMNS}) VALUES ({marks})", v1_row(db, lock))
    assert db.schema_versions() == [1]
    store = await opened(db)
    try:
        assert await store.schema_version() == len(MIGRATIONS[db.kind])
        assert db.schema_versions() == list(range(1, len(MIGRATIONS[db.kind]) + 1))
        assert await store.find(LockFilter(), NOW) == rows
        assert ids(await store.find(LockFilter(state="active"), NOW)) == ["lk-1", "lk-2", "lk-4"]
        assert ids(await store.effective_locks(INSTANCE, "demo", "compute1", NOW)) == ["lk-1", "lk-2", "lk-4"]
        assert await store.has_scoped_locks(NOW)
        assert await store.lift(["lk-1", "lk-4"], LEGAL, "dec-1", NOW) == 2
        assert ids(await store.effective_locks(INSTANCE, "demo", "compute1", NOW)) == ["lk-2"]
        assert not await store.has_scoped_locks(NOW)
        lifted = await store.get("lk-4")
        assert lifted is not None and (lifted.state, lifted.lifted_decision_id) == ("lifted", "dec-1")
    finally:
        await store.close()
