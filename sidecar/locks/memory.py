"""Lock rows kept in memory for one version of the table: decisions read no SQL while nothing changed.

``LockMemory`` holds, per ``(scope, target)``, the rows that are not lifted (oldest
first, as the store reads them), and a summary of the project and host locks (is
one without expiry, and the latest expiry): enough to answer every read that
decides, filtered by ``now`` at the time of the read, since expiry does not change
a row. It does no I/O: the store fills it on a miss and hands it a *version* of the
table on every read. The version is whatever the store can check cheaply that
changes whenever the table may have (SQLite: its own count of writes plus ``PRAGMA
data_version``, which moves on any commit from any other connection or process);
a read at another version than the one filled empties it first. ``max_targets``
bounds it: past that many targets it starts again empty.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sidecar.locks.model import Lock

Key = tuple[str, str]


@dataclass(frozen=True)
class ScopedSummary:
    """The project and host locks not lifted: whether one has no expiry, and the latest expiry."""

    forever: bool
    latest_expiry: datetime | None

    def any_in_force(self, now: datetime) -> bool:
        """True when a project or host lock is in force at ``now``."""
        return self.forever or (self.latest_expiry is not None and now < self.latest_expiry)


class LockMemory:
    """Rows of the lock table read at one version (see the module docstring)."""

    def __init__(self, max_targets: int = 100_000) -> None:
        self._max = max_targets
        self._version: Hashable = None
        self._rows: dict[Key, tuple[Lock, ...]] = {}
        self._scoped: ScopedSummary | None = None
        self.hits = 0
        self.misses = 0
        self.resets = 0

    def at(self, version: Hashable) -> LockMemory:
        """This memory, emptied first if it was filled at another ``version``; returns self."""
        if version != self._version:
            self._version = version
            if self._rows or self._scoped is not None:
                self._rows, self._scoped = {}, None
                self.resets += 1
        return self

    def rows(self, key: Key) -> tuple[Lock, ...] | None:
        """The rows not lifted on ``key``, or None when not read yet."""
        found = self._rows.get(key)
        if found is None:
            self.misses += 1
        else:
            self.hits += 1
        return found

    def put(self, key: Key, rows: Sequence[Lock]) -> tuple[Lock, ...]:
        """Keep the rows read for ``key`` (not lifted, oldest first); returns them."""
        if len(self._rows) >= self._max:
            self._rows = {}
            self.resets += 1
        kept = self._rows[key] = tuple(rows)
        return kept

    @property
    def scoped(self) -> ScopedSummary | None:
        """The summary of project and host locks, or None when not read yet."""
        return self._scoped

    @scoped.setter
    def scoped(self, summary: ScopedSummary) -> None:
        self._scoped = summary


def in_force(rows: Sequence[Lock], now: datetime) -> list[Lock]:
    """The rows in force at ``now``, in their order."""
    return [lock for lock in rows if lock.in_force(now)]


def oldest_first(groups: Sequence[Sequence[Lock]], now: datetime) -> list[Lock]:
    """The rows of several targets in force at ``now``, ordered as the store orders them."""
    if len(groups) == 1:
        return in_force(groups[0], now)
    return sorted(in_force([lock for rows in groups for lock in rows], now), key=lambda lk: (lk.created_at, lk.id))
