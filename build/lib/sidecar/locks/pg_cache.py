"""A replica's cache of lock rows, checked against the lock generation read under the guard.

Every change to the lock table bumps a generation counter in the same transaction
and is announced (generation, scope, target) in commit order. ``applied`` is the
last generation whose announcement this replica has applied, with no gap. An entry
is rows read at generation ``g`` (read after ``g``, on a connection holding the
guard); an announcement for its target at a later generation drops it. So an entry
is still exact at generation ``G`` when ``g <= G <= applied``: every change up to
``G`` has been applied and none touched it. Callers pass the ``G`` their guard read
after it was granted; when the listener lags (``applied < G``) the answer is "not
cached" and they read the table. Instance entries are per instance; project and
host locks are cached as one set (they are few, and every state change asks whether
any exist).
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sidecar.locks.model import Lock

log = logging.getLogger(__name__)


@dataclass
class _Entry:
    locks: tuple[Lock, ...]
    generation: int
    since: datetime


class LockCache:
    """Lock rows read under a guard, kept until a notification says their target changed."""

    def __init__(self, max_instances: int = 10_000) -> None:
        self.applied = -1
        self._max = max_instances
        self._instances: OrderedDict[str, _Entry] = OrderedDict()
        self._scoped: _Entry | None = None

    def reset(self, generation: int) -> None:
        """Drop every entry; every change up to ``generation`` counts as applied."""
        self._instances.clear()
        self._scoped = None
        self.applied = generation

    def forget(self) -> None:
        """Know nothing: every read goes to the table until the listener resets the cache."""
        self.reset(-1)

    def clear(self) -> None:
        """Drop every entry (keep what was applied)."""
        self.reset(self.applied)

    def apply(self, payload: str) -> None:
        """Apply one notification; a gap or a malformed one drops everything."""
        try:
            doc = json.loads(payload)
            generation, scope, target = int(doc["generation"]), str(doc["scope"]), str(doc["target"])
        except (ValueError, KeyError, TypeError):
            log.warning("unreadable lock notification %r: cache dropped", payload)
            self.forget()
            return
        if generation <= self.applied:
            return
        if generation != self.applied + 1 or scope == "*":
            self.reset(generation)
            return
        self.drop(scope, target, generation)
        self.applied = generation

    def drop(self, scope: str, target: str, generation: int | None = None) -> None:
        """Drop what is cached for a target (changed at ``generation``; None: now, by us)."""
        if scope == "instance":
            entry = self._instances.get(target)
            if entry is not None and (generation is None or entry.generation < generation):
                del self._instances[target]
        elif self._scoped is not None and (generation is None or self._scoped.generation < generation):
            self._scoped = None

    def _valid(self, entry: _Entry | None, generation: int, now: datetime) -> tuple[Lock, ...] | None:
        if entry is None or not entry.generation <= generation <= self.applied or now < entry.since:
            return None
        return entry.locks

    def instance(self, target: str, generation: int, now: datetime) -> tuple[Lock, ...] | None:
        """The instance's rows if exact at ``generation`` (and read no later than ``now``), else None."""
        return self._valid(self._instances.get(target), generation, now)

    def scoped(self, generation: int, now: datetime) -> tuple[Lock, ...] | None:
        """Every project and host lock row, if exact at ``generation``, else None."""
        return self._valid(self._scoped, generation, now)

    def put_instance(self, target: str, locks: Sequence[Lock], generation: int, now: datetime) -> None:
        """Keep an instance's rows in force at ``now``, read under a guard at ``generation``."""
        # NOTE: rows read at a generation the listener has already passed may miss a change it
        # has dropped; such rows are used once and not kept.
        if generation >= self.applied:
            self._instances[target] = _Entry(tuple(locks), generation, now)
            self._instances.move_to_end(target)
            while len(self._instances) > self._max:
                self._instances.popitem(last=False)

    def put_scoped(self, locks: Sequence[Lock], generation: int, now: datetime) -> None:
        """Keep every project and host row in force at ``now``, read at ``generation``."""
        if generation >= self.applied:
            self._scoped = _Entry(tuple(locks), generation, now)
