"""Copying every lock from one store into a PostgreSQL one, and proving the copy is whole.

``migrate_locks`` is what ``statelock locks migrate`` runs when a single node moves to
several replicas. It reads every lock (expired and lifted ones too) from the source, refuses a
target that already holds locks the source lacks or holds different ones, copies in
one transaction, then reads the target back: the copy is good when it holds exactly
the source's ids with the same contents. Re-running it is harmless.

The copy holds the ``ALL_INSTANCES`` advisory lock exclusively, so replicas already
serving from the target order their state changes against it, as they do against a
project lock. Raises ConfigError for unusable URLs and LockStoreError when a store fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sidecar.errors import ConfigError
from sidecar.guard import ALL_INSTANCES
from sidecar.locks.factory import SQLITE_SCHEME, is_postgres_url, open_lock_store
from sidecar.locks.model import Lock, LockFilter, redact_url
from sidecar.locks.pg_copy import copy_in
from sidecar.locks.pg_guard import advisory_key
from sidecar.locks.postgres import PostgresLockStore
from sidecar.locks.sqlite import sqlite_path
from sidecar.locks.store import LockStore


@dataclass(frozen=True)
class TableCount:
    """Row counts of one table: in the source, in the target before and after, and copied."""

    table: str
    source: int
    target_before: int
    copied: int | None
    target_after: int


@dataclass(frozen=True)
class MigrationReport:
    """What a migration did; ``problems`` empty means the target was verified."""

    source: str
    target: str
    tables: tuple[TableCount, ...]
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def render(self) -> str:
        """The report as the CLI prints it."""
        lines = [f"from {self.source}", f"to   {self.target}",
                 f"{'table':16}{'source':>8}{'target before':>15}{'copied':>8}{'target after':>14}"]
        for t in self.tables:
            copied = "-" if t.copied is None else str(t.copied)
            lines.append(f"{t.table:16}{t.source:>8}{t.target_before:>15}{copied:>8}{t.target_after:>14}")
        locks = self.tables[0]
        if self.ok:
            lines.append(f"verified: the target holds the source's {locks.source} lock ids, "
                         "with the same contents")
        else:
            lines += [f"NOT verified: {p}" for p in self.problems]
        return "\n".join(lines)


def _check_urls(source_url: str, target_url: str) -> None:
    if not is_postgres_url(target_url):
        raise ConfigError("--to: give the PostgreSQL lock store, postgresql://user@host:5432/dbname")
    if source_url.startswith(SQLITE_SCHEME):
        path = sqlite_path(source_url)
        if path == ":memory:" or not Path(path).is_file():
            raise ConfigError(f"--from: there is no SQLite lock store at {path!r}")
    elif not is_postgres_url(source_url):
        raise ConfigError("--from: give the current lock store, sqlite:///path/locks.db or postgresql://...")
    if redact_url(source_url) == redact_url(target_url):
        raise ConfigError("--from and --to name the same lock store")


def _differences(source: dict[str, Lock], target: dict[str, Lock]) -> list[str]:
    problems: list[str] = []
    missing = sorted(set(source) - set(target))
    extra = sorted(set(target) - set(source))
    changed = sorted(i for i in set(source) & set(target) if source[i] != target[i])
    for what, found in (("the source's locks are missing from the target", missing),
                        ("locks in the target are not in the source", extra),
                        ("locks differ between source and target", changed)):
        if found:
            problems.append(f"{len(found)} {what}: {', '.join(found[:5])}{' ...' if len(found) > 5 else ''}")
    return problems


async def migrate_locks(source_url: str, target_url: str, timeout_s: float = 30.0) -> MigrationReport:
    """Copy every lock from ``source_url`` into the PostgreSQL store at ``target_url`` and verify."""
    _check_urls(source_url, target_url)
    source: LockStore = open_lock_store(source_url, pool_size=2, timeout_s=timeout_s)
    target = PostgresLockStore(target_url, pool_size=2, timeout_s=timeout_s)
    await source.open()
    try:
        await target.open()
        try:
            return await _copy(source, target, redact_url(source_url), redact_url(target_url))
        finally:
            await target.close()
    finally:
        await source.close()


async def _copy(source: LockStore, target: PostgresLockStore, source_shown: str,
                target_shown: str) -> MigrationReport:
    now = datetime.now(UTC)
    wanted = {lk.id: lk for lk in await source.find(LockFilter(), now)}
    before = {lk.id: lk for lk in await target.find(LockFilter(), now)}
    source_version = await source.schema_version()
    target_version = await target.schema_version()
    problems = [p for p in _differences(wanted, before) if "missing" not in p]
    copied: int | None = None
    if not problems:
        copied = await copy_in(target.db, list(wanted.values()), advisory_key(ALL_INSTANCES))
        problems = _differences(wanted, {lk.id: lk for lk in await target.find(LockFilter(), now)})
        after = await target.count()
        if after != len(wanted):
            problems.append(f"the target holds {after} locks, the source {len(wanted)}")
    else:
        problems.insert(0, "nothing was copied: the target must be empty or hold a part of this source")
        after = len(before)
    tables = (TableCount("locks", len(wanted), len(before), copied, after),
              TableCount("schema_version", source_version, target_version, None, target_version))
    return MigrationReport(source_shown, target_shown, tables, tuple(problems))
