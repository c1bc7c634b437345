"""``statelock locks migrate`` (sidecar.locks.migrate, pg_copy, sidecar.cli.migrate) into a real PostgreSQL."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from sidecar.cli import main
from sidecar.guard import ALL_INSTANCES
from sidecar.identity import Subject
from sidecar.locks.factory import open_lock_store
from sidecar.locks.model import Lock, LockFilter
from sidecar.locks.pg_copy import copy_in
from sidecar.locks.pg_guard import advisory_key
from sidecar.locks.pg_schema import MIGRATIONS
from sidecar.locks.postgres import PostgresLockStore
from sidecar.locks.sqlite import SqliteLockStore
from tests.support.locks import BILLING, NOW, ids, make_lock
from tests.support.postgres import (  # noqa: F401
    pg_other_fixture,
    pg_server_fixture,
    pg_store_fixture,
    pg_url_fixture,
)

pytestmark = pytest.mark.integration


async def test_copy_in_skips_present_ids_and_waits_for_state_changes(
    store: PostgresLockStore, other: PostgresLockStore
) -> None:
    await store.add(make_lock("lk-1"))
    guard = other.guard(5.0)
    copied: list[int] = []
    async with guard.shared(ALL_INSTANCES):
        copy = asyncio.create_task(copy_in(store.db, [make_lock("lk-1"), make_lock("lk-2", created=2)],
                                                 advisory_key(ALL_INSTANCES)))
        await asyncio.sleep(0.3)
        assert not copy.done()  # NOTE: an in-flight state change holds the whole table shared.
    copied.append(await copy)
    assert copied == [1]
    assert ids(await store.find(LockFilter(), NOW)) == ["lk-1", "lk-2"]



# -- statelock locks migrate -------------------------------------------------------------------


def migrate(*argv: str) -> int:
    return main(["locks", "migrate", *argv])


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
    replace(make_lock("lk-4", created=4), state="lifted", lifted_at=NOW + timedelta(seconds=5),
            lifted_by=Subject("lea", "legal", ()), lifted_decision_id="dec-4"),
]


def test_migrate_copies_prints_counts_and_verifies(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source = sqlite_with_locks(tmp_path / "locks.db", SOURCE_LOCKS)
    assert migrate("--from", source, "--to", pg_url) == 0
    out = capsys.readouterr().out
    version = str(len(MIGRATIONS))
    assert out.splitlines()[3].split() == ["locks", "4", "0", "4", "4"]
    assert out.splitlines()[4].split() == ["schema_version", version, version, "-", version]
    assert "verified: the target holds the source's 4 lock ids" in out
    assert read_all(pg_url) == read_all(source) == SOURCE_LOCKS
    assert migrate("--from", source, "--to", pg_url) == 0
    assert capsys.readouterr().out.splitlines()[3].split() == ["locks", "4", "4", "0", "4"]
    [lifted] = [lk for lk in read_all(pg_url) if lk.lifted]
    assert (lifted.id, lifted.lifted_decision_id, lifted.lifted_by) == ("lk-4", "dec-4", Subject("lea", "legal", ()))


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
